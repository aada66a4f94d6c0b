// A vector as the B operand of the decode MoE kernels' tensor-core MMAs (moe.cu): every fp32
// value as the sum of three bf16 (hi + mid + lo, exact for normal fp32: each term takes the next
// 8 bits), so MMAs with bf16 inputs reproduce fp32 products. The router writes the normed hidden
// state in this form, the gate-up kernel its output for the down kernel.
//
// Layout of a vector of K values (K % 32 == 0), as 32-bit words [3 terms][K / 32 blocks][16]:
// word 4q + p of block b holds the term of element 32b + 8q + p in its low half and that of
// element 32b + 8q + p + 4 in its high half, the order in which the kernels decode a 32-bit word
// of eight E2M1 codes (moe.cu, decode_pairs).
#pragma once

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/moe.cuh"

namespace vex::cuda {

// Writes element i (of K) with value v into the split vector out (as 16-bit halves).
__device__ __forceinline__ void store_split(float v, int i, int K, uint16_t* out) {
  const int b = i / 32, q = (i % 32) / 8, e = i % 8;
  const int at = (b * 16 + 4 * q + e % 4) * 2 + e / 4;  // a term is K halves
  const uint16_t hi = to_bf16(v);
  const float r1 = v - bf16(hi);
  const uint16_t mid = to_bf16(r1);
  out[at] = hi;
  out[K + at] = mid;
  out[2 * K + at] = to_bf16(r1 - bf16(mid));
}

}  // namespace vex::cuda
