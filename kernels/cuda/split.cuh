// A vector as the B operand of the MoE kernels' tensor-core MMAs (moe.cu, moe_prefill.cu): for
// the decode kernels every fp32 value as the sum of three bf16 (hi + mid + lo, exact for normal
// fp32: each term takes the next 8 bits), so MMAs with bf16 inputs reproduce fp32 products; the
// router writes the normed hidden state in this form, the gate-up kernel its output for the down
// kernel. The grouped kernels' bf16 inputs are the same layout with one term.
//
// Layout of a vector of K values (K % 32 == 0), as 32-bit words [terms][K / 32 blocks][16]:
// word 4q + p of block b holds the term of element 32b + 8q + p in its low half and that of
// element 32b + 8q + p + 4 in its high half, the order in which the kernels decode a 32-bit word
// of eight E2M1 codes (e2m1.cuh, decode_pairs).
#pragma once

#include <cuda_bf16.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/moe.cuh"

namespace vex::cuda {

// (a, b) as bf16x2 terms t[0] + t[1] + ... + t[n-1]: each term the rounded remainder of the
// ones before, so n terms hold 8n significant bits (3: fp32's 24). a in the low half. The
// prefill attention splits its queries and probabilities with it too (attention.cu).
template <int n>
__device__ __forceinline__ void split_bf16(float a, float b, uint32_t* t) {
#pragma unroll
  for (int i = 0; i < n; ++i) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    const float2 f = __bfloat1622float2(h);
    t[i] = *reinterpret_cast<const uint32_t*>(&h), a -= f.x, b -= f.y;
  }
}

// Element i's place, in 16-bit halves, within a term of the layout: the same 8-element group,
// element e of it at half 2 (e % 4) + e / 4.
__host__ __device__ __forceinline__ int split_at(int i) {
  return (i & ~7) + 2 * (i % 4) + i % 8 / 4;
}

// Element i's place in the order of the grouped kernels' wgmma passes (moe_prefill.cu), which
// take a stage of 64 k as four k16 steps from shared memory: within each 64-element group,
// element 16c + 8h + p + 4b (the code word 2c + h of a row's stage that lane c decodes, pair p,
// half b) at 32h + 8p + 2c + b, where k step 2h + p / 2 expects it.
__host__ __device__ __forceinline__ int wide_at(int i) {
  const int e = i & 63, c = e >> 4, h = (e >> 3) & 1, p = e & 3, b = (e >> 2) & 1;
  return (i & ~63) + 32 * h + 8 * p + 2 * c + b;
}

// Writes element i (of K) with value v into the split vector out (as 16-bit halves), in n terms
// (n = 1: v in bf16, in the layout's order).
template <int n = kSplitTerms>
__device__ __forceinline__ void store_split(float v, int i, int K, uint16_t* out) {
  uint32_t t[n];
  split_bf16<n>(v, 0.0f, t);
#pragma unroll
  for (int j = 0; j < n; ++j) out[j * K + split_at(i)] = static_cast<uint16_t>(t[j]);
}

}  // namespace vex::cuda
