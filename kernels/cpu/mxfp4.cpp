#include "kernels/cpu/mxfp4.h"

#include <cmath>

namespace vex {

void mxfp4_decode_row(const uint8_t* blocks, const uint8_t* scales, int cols, int64_t r,
                      float* out) {
  const int groups = cols / 32;
  const uint8_t* b = blocks + r * groups * 16;
  const uint8_t* s = scales + r * groups;
  for (int g = 0; g < groups; ++g) {
    const int e = static_cast<int>(s[g]) - 127;  // E8M0: bias 127, no NaN special case (docs/gpt-oss.md §3)
    for (int i = 0; i < 16; ++i) {
      const uint8_t byte = b[g * 16 + i];
      out[32 * g + 2 * i] = std::ldexp(kE2M1[byte & 0x0F], e);
      out[32 * g + 2 * i + 1] = std::ldexp(kE2M1[byte >> 4], e);
    }
  }
}

void mxfp4_matvec(const uint8_t* blocks, const uint8_t* scales, int cols, int row_begin,
                  int row_end, const float* x, float* y) {
  const int groups = cols / 32;
  for (int r = row_begin; r < row_end; ++r) {
    const uint8_t* b = blocks + static_cast<int64_t>(r) * groups * 16;
    const uint8_t* s = scales + static_cast<int64_t>(r) * groups;
    double acc = 0;
    for (int g = 0; g < groups; ++g) {
      // Sum the block with unit-scale codes, then apply the block's power of two: exact
      // reassociation of the scale, one ldexp per block instead of 32.
      double part = 0;
      const float* xg = x + 32 * g;
      for (int i = 0; i < 16; ++i) {
        const uint8_t byte = b[g * 16 + i];
        part += static_cast<double>(kE2M1[byte & 0x0F]) * xg[2 * i];
        part += static_cast<double>(kE2M1[byte >> 4]) * xg[2 * i + 1];
      }
      acc += std::ldexp(part, static_cast<int>(s[g]) - 127);
    }
    y[r] = static_cast<float>(acc);
  }
}

}  // namespace vex
