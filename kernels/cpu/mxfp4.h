// MXFP4 (docs/gpt-oss.md §3): E2M1 codes, two per byte (low nibble = even element), one E8M0 exponent per
// block of 32 along the row. Decoding is exact in fp32: every value is a 1-bit-mantissa number
// times a power of two.
#pragma once

#include <cstdint>

namespace vex {

// E2M1 code -> value: bit 3 sign, bits 2..1 exponent (bias 1), bit 0 mantissa.
inline constexpr float kE2M1[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// Decodes row r of an MXFP4 matrix with `cols` columns into out[cols].
//   blocks: [rows, cols/32, 16], scales: [rows, cols/32]
void mxfp4_decode_row(const uint8_t* blocks, const uint8_t* scales, int cols, int64_t r,
                      float* out);

// y[rows] = W x for an MXFP4 W [rows, cols] and fp32 x [cols]; rows in [row_begin, row_end).
void mxfp4_matvec(const uint8_t* blocks, const uint8_t* scales, int cols, int row_begin,
                  int row_end, const float* x, float* y);

}  // namespace vex
