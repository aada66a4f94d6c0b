// Attention with sinks and the sliding window over the bf16 KV cache (docs/gpt-oss.md §4.4), twin
// of kernels/cpu/attention.cpp. One kernel for decode and for prefill chunks: row t is at position
// p = rows.pos[t] of sequence rows.seq[t] (kernels/cuda/rows.cuh) and attends that sequence's
// keys max(0, p - window + 1) .. p (window 0: all).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/rows.cuh"

namespace vex::cuda {

// q: rows of `q_stride` floats, query head h at h*d; k/v cache bf16 [seqs, slots, Hkv*d], key j at
// slot j % ring (ring > 0) or j; sinks bf16 [Hq]; out fp32 [n, Hq*d]. d in {16, 32, 64, 128},
// n_heads / n_kv_heads <= 8: a block per (row, KV head, key range) reads the group's keys once
// for its query heads, the rows of its tensor-core MMAs. 1 < splits <= kMaxSplits divides each
// query's keys into that many ranges run by separate blocks, the last of which to finish merges
// them (flash-decoding: a decode step at long context otherwise runs on only n * Hkv blocks);
// partial: fp32 scratch of n * Hq * splits * (d + 2) floats; counts: int [n, Hkv], zero before the
// call and left zero. The split count is fixed at launch (graphs) and the ranges follow the
// position read on the device.
// Launched after the kernel that writes the rows' keys (programmatic dependent launch), it reads
// the keys before each row's position p before waiting on that kernel: the kernel before may
// write the cache only at the rows' own positions (a decode pass, a row a sequence).
constexpr int kMaxSplits = 64;
cudaError_t attention(const float* q, int q_stride, const uint16_t* k_cache,
                      const uint16_t* v_cache, const uint16_t* sinks, float* out, int n,
                      CacheRows rows, int window, int ring, int n_heads, int n_kv_heads,
                      int head_dim, float sm_scale, cudaStream_t stream, int splits = 1,
                      float* partial = nullptr, int* counts = nullptr);

// Prefill on tensor cores: the rows of a pass cut into tiles, each up to kAttnTileRows rows
// t = row0 .. row0 + count - 1 of one sequence at consecutive positions, which share their keys.
constexpr int kAttnTileRows = 16;
struct RowTile {
  int row0, count;
};
// The tiles of rows placed at pos[t] of sequence seq[t] (seq empty: all in sequence 0).
std::vector<RowTile> row_tiles(const std::vector<int>& pos, const std::vector<int>& seq);

// The same attention as attention() for every row of `tiles` (n_tiles of them): a block per
// (tile, KV head), a warp per query head of the group (n_heads / n_kv_heads <= 8). Scores and
// the probability-weighted values on bf16 tensor cores (mma.sync m16n8k16, fp32 accumulation):
// the keys and values are bf16 already; the fp32 queries and probabilities enter as three bf16
// terms each (24 significant bits, fp32's: a score's error must stay small against 1, not
// against the score, which an untrained model makes large). With out_bf16 (not null) the
// output goes there rounded to bf16 (the O projection's GEMM input) instead of to out. n_tiles
// <= 65,535.
cudaError_t attention_prefill(const float* q, int q_stride, const uint16_t* k_cache,
                              const uint16_t* v_cache, const uint16_t* sinks, float* out,
                              const RowTile* tiles, int n_tiles, CacheRows rows, int window,
                              int ring, int n_heads, int n_kv_heads, int head_dim, float sm_scale,
                              cudaStream_t stream, uint16_t* out_bf16 = nullptr);

}  // namespace vex::cuda
