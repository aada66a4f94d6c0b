// RoPE with YaRN (docs/gpt-oss.md §4.3) fused with the KV-cache write; twin of kernels/cpu/rope.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/rows.cuh"

namespace vex::cuda {

// For rows t < n (at rows.pos[t] in sequence rows.seq[t], kernels/cuda/rows.cuh): rotates q [n, Hq, d] in place (inside qkv rows of
// `stride` floats: q at 0, k at Hq*d, v at (Hq+Hkv)*d), rotates k, and stores k and v as bf16 in
// the sequence's part of the layer's cache [seqs, slots, Hkv*d] at slot = position % ring (ring > 0: sliding layers) or the
// position (ring = 0). theta = float(pos) * inv_freq[i] in fp32 with accurate sincosf (never
// fast-math, docs/gpt-oss.md §7.4); cos and sin carry the YaRN concentration.
cudaError_t rope_kv(float* qkv, int stride, int n, CacheRows rows, const float* inv_freq,
                    float concentration, int n_heads, int n_kv_heads, int head_dim, int ring,
                    uint16_t* k_cache, uint16_t* v_cache, cudaStream_t stream);

}  // namespace vex::cuda
