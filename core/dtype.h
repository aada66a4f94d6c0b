// Scalar formats at the storage boundary: bf16 <-> fp32. Host and device.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define VEX_HD __host__ __device__ __forceinline__
#else
#define VEX_HD inline
#endif

// bf16 is the top half of an fp32: widening is exact (a shift).
VEX_HD float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

// Round to nearest even, as torch's .to(bfloat16) does; NaN stays a quiet NaN.
VEX_HD uint16_t f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
