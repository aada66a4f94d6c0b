// RoPE with YaRN (docs/gpt-oss.md §4.3) fused with the KV-cache write; twin of kernels/cpu/rope.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/rows.cuh"

namespace vex::cuda {

// The rotation and the cache write of a layer: the rows' positions and sequences
// (kernels/cuda/rows.cuh), the YaRN frequencies and concentration, the heads, the ring (> 0:
// a sliding layer's cache, slot = position % ring; 0: slot = position) and the layer's bf16
// cache [seqs, slots, Hkv*d]. rope_kv takes it, and so does the QKV GEMV that applies it itself
// (gemv.cuh).
struct RopeKv {
  CacheRows rows;
  const float* inv_freq = nullptr;
  float concentration = 1;
  int n_heads = 0, n_kv_heads = 0, head_dim = 0, ring = 0;
  uint16_t* k_cache = nullptr;
  uint16_t* v_cache = nullptr;
};

// For rows t < n (at rows.pos[t] in sequence rows.seq[t]): rotates q [n, Hq, d] in place (inside
// qkv rows of `stride` floats: q at 0, k at Hq*d, v at (Hq+Hkv)*d), rotates k, and stores k and v
// as bf16 in the sequence's part of the cache at the row's slot. theta = float(pos) *
// inv_freq[i] in fp32 with accurate sincosf (never fast-math, docs/gpt-oss.md §7.4); cos and sin
// carry the YaRN concentration.
cudaError_t rope_kv(float* qkv, int stride, int n, const RopeKv& r, cudaStream_t stream);

#ifdef __CUDACC__
// The pair (x1, x2) = (x[i], x[i + d/2]) of a head rotated by the angle pos * inv_freq[i], cos
// and sin carrying the YaRN concentration: rope_kv's arithmetic, shared so that the fused GEMV
// writes the same bits (each product rounded, as the CPU twin's).
__device__ __forceinline__ void rope_angle(int pos, float inv_freq, float concentration, float& c,
                                           float& s) {
  sincosf(static_cast<float>(pos) * inv_freq, &s, &c);
  c *= concentration, s *= concentration;
}
__device__ __forceinline__ void rope_rotate(float x1, float x2, float c, float s, float& r1,
                                            float& r2) {
  r1 = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
  r2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
}
// The cache element of head g's dimension 0 for row t at its position (rope_kv's slot).
__device__ __forceinline__ int64_t rope_cache_at(const CacheRows& rows, int t, int pos, int ring,
                                                 int kv_dim, int g, int head_dim) {
  return cache_base(rows, t) + (ring > 0 ? pos % ring : pos) * int64_t(kv_dim) + g * head_dim;
}
#endif

}  // namespace vex::cuda
