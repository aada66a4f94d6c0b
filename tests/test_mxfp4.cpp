// MXFP4 decoding (docs/gpt-oss.md §3, §9.1): code table, nibble order, E8M0 scale; the matvec agrees with
// decode-then-dot.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/dtype.h"
#include "kernels/cpu/mxfp4.h"

namespace vex {
namespace {

TEST(Mxfp4, CodeTable) {
  // Sign bit 3, exponent bits 2..1 with bias 1, mantissa bit 0: (-1)^s * 2^(e-1) * (1 + m/2),
  // subnormal for e == 0: (-1)^s * m/2.
  for (int code = 0; code < 16; ++code) {
    const int s = code >> 3, e = (code >> 1) & 3, m = code & 1;
    const float v = e == 0 ? 0.5f * m : std::ldexp(1.0f + 0.5f * m, e - 1);
    EXPECT_EQ(kE2M1[code], s ? -v : v) << code;
    EXPECT_EQ(std::signbit(kE2M1[code]), s == 1) << "negative zero for code 8";
  }
}

TEST(Mxfp4, NibbleOrderAndScale) {
  // One row, two blocks. Byte b of block g: low nibble -> k = 32g + 2b, high nibble -> k + 1.
  uint8_t blocks[32] = {};
  uint8_t scales[2] = {127 + 1, 127 - 3};  // x2 and x1/8
  blocks[0] = 0x21;                        // k=0: code 1 (+0.5), k=1: code 2 (+1.0)
  blocks[5] = 0xF7;                        // k=10: code 7 (+6), k=11: code 15 (-6)
  blocks[16 + 15] = 0x9C;                  // k=62: code 12 (-2), k=63: code 9 (-0.5)
  float out[64];
  mxfp4_decode_row(blocks, scales, 64, 0, out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 2.0f);
  EXPECT_EQ(out[10], 12.0f);
  EXPECT_EQ(out[11], -12.0f);
  EXPECT_EQ(out[62], -0.25f);
  EXPECT_EQ(out[63], -0.0625f);
  EXPECT_EQ(out[2], 0.0f);
}

TEST(Mxfp4, DecodedValuesAreExactInBf16) {
  // Every decoded value has a 1-bit mantissa: bf16 holds it exactly (the references' bf16
  // weights equal the MXFP4 values).
  std::mt19937 rng(7);
  for (int i = 0; i < 10000; ++i) {
    uint8_t b[16], s = static_cast<uint8_t>(107 + rng() % 41);  // exponents 107..147
    for (auto& x : b) x = rng() & 0xFF;
    float out[32];
    mxfp4_decode_row(b, &s, 32, 0, out);
    for (float v : out) ASSERT_EQ(bf16_to_f32(f32_to_bf16(v)), v);
  }
}

TEST(Mxfp4, MatvecEqualsDecodeThenDot) {
  std::mt19937 rng(3);
  const int rows = 37, cols = 96, groups = cols / 32;
  std::vector<uint8_t> blocks(rows * groups * 16), scales(rows * groups);
  for (auto& b : blocks) b = rng() & 0xFF;
  for (auto& s : scales) s = 110 + rng() % 30;
  std::vector<float> x(cols), y(rows, NAN), w(cols);
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  mxfp4_matvec(blocks.data(), scales.data(), cols, 0, rows, x.data(), y.data());
  for (int r = 0; r < rows; ++r) {
    mxfp4_decode_row(blocks.data(), scales.data(), cols, r, w.data());
    double ref = 0, mag = 0;
    for (int k = 0; k < cols; ++k)
      ref += double(w[k]) * x[k], mag += std::fabs(double(w[k]) * x[k]);
    // Both sum in double; the only difference is applying the block scale after the block sum,
    // which is exact (a power of two), so agreement is to double rounding, far below fp32's.
    EXPECT_NEAR(y[r], ref, 1e-7 * mag) << r;
  }
}

TEST(Bf16, RoundTripAndRounding) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);
  // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);  // halfway, rounds up to the even mantissa
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

}  // namespace
}  // namespace vex
