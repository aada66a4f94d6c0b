// MXFP4 codes to bf16 on the integer units, for the tensor-core MoE kernels (moe.cu,
// moe_prefill.cu): a word of eight E2M1 codes becomes four bf16x2 with three integer
// instructions a pair, then one bf16 multiply by the block's E8M0 scale, exact. The vector a
// pair multiplies must be laid out the same way: split.cuh's layout, whose word 4q + p holds
// elements 8q + p and 8q + p + 4.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace vex::cuda {

// The four bf16x2 pairs of a word of eight E2M1 codes n0..n7 (n_i at bits 4i): pair p holds
// n_p (low half) and n_(p+4) (high half), each as sign << 15 | magnitude << 6, which is the
// code's value times 2^-126 (the magnitude's two exponent bits and one mantissa bit fall on
// bf16's lowest exponent bits and top mantissa bit; 0.5 becomes the subnormal 2^-127). One
// multiply by 0x1040 (0x104 for the upper nibble of a byte) places a nibble's magnitude at
// bits 6-8 and its sign at bit 15 at once; the mask keeps those.
__device__ __forceinline__ void decode_pairs(uint32_t w, uint32_t* out) {
  constexpr uint32_t kKeep = 0x81C081C0u;
  const uint32_t w2 = w >> 8;
  out[0] = ((w & 0x000F000Fu) * 0x1040u) & kKeep;
  out[1] = ((w & 0x00F000F0u) * 0x0104u) & kKeep;
  out[2] = ((w2 & 0x000F000Fu) * 0x1040u) & kKeep;
  out[3] = ((w2 & 0x00F000F0u) * 0x0104u) & kKeep;
}

__device__ __forceinline__ uint32_t hmul2(uint32_t a, uint32_t b) {
  const __nv_bfloat162 r = __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&a),
                                   *reinterpret_cast<const __nv_bfloat162*>(&b));
  return *reinterpret_cast<const uint32_t*>(&r);
}

// Pairs from decode_pairs times their block's E8M0 scale s: value * 2^(s-127), exact (a power
// of two times a 2-bit significand). kOne: one multiply by f = 2^(s-1), a bf16 for s <= 128;
// otherwise (weights above 12, which gpt-oss does not have) by 2^126, then by f = 2^(s-127)
// (the subnormal 2^-127 for s = 0).
template <bool kOne>
__device__ __forceinline__ uint32_t scale_factor(uint32_t s) {
  const uint32_t f = kOne ? (s + 126) << 7 : s ? s << 7 : 0x0040u;
  return f * 0x10001u;
}
template <bool kOne>
__device__ __forceinline__ void scale_pairs(uint32_t* p, uint32_t f) {
#pragma unroll
  for (int i = 0; i < 4; ++i) p[i] = kOne ? hmul2(p[i], f) : hmul2(hmul2(p[i], 0x7E807E80u), f);
}

// Whether every scale of the warp takes scale_pairs<true> (s <= 128): one branch a step, the
// same for all lanes. s4: four of the lane's scales, a byte each.
__device__ __forceinline__ bool scales_fit(uint32_t s4) {
  return __all_sync(0xffffffffu, __vcmpgtu4(s4, 0x80808080u) == 0);
}

}  // namespace vex::cuda
