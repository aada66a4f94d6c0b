// CPU reference ops against closed forms (docs/gpt-oss.md §9): SwiGLU edge cases, sink attention, YaRN
// tables, RoPE, router, RMSNorm.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/moe.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/router.h"

namespace vex {
namespace {

TEST(Swiglu, ClampsAndPlusOne) {
  const float L = 7.0f;
  auto sig = [](float g) { return 1.0f / (1.0f + std::exp(-1.702f * g)); };
  EXPECT_NEAR(swiglu(-20, 0, L), -20 * sig(-20), 1e-9);  // gate unclamped below: ~0
  EXPECT_NEAR(swiglu(20, 0, L), 7 * sig(7), 1e-6);       // gate clamped above to 7
  EXPECT_NEAR(swiglu(1, 20, L), sig(1) * 8, 1e-6);       // up clamped to +7, then +1
  EXPECT_NEAR(swiglu(1, -20, L), sig(1) * -6, 1e-6);     // up clamped to -7, then +1
  EXPECT_NEAR(swiglu(2, 0, L), 2 * sig(2), 1e-6);        // up = 0 still passes the gate (+1)
}

TEST(Attention, SinkClosedForm) {
  // All scores zero (q = 0), V = 1 everywhere: out = N / (N + e^sink) for N attended keys.
  const int Hq = 4, Hkv = 2, d = 8, T = 300;
  std::vector<float> q(Hq * d, 0.0f), k(T * Hkv * d), v(T * Hkv * d, 1.0f), out(Hq * d);
  std::mt19937 rng(1);
  for (auto& x : k) x = std::normal_distribution<float>()(rng);
  const float sink_vals[Hq] = {0.5f, -1.0f, 2.0f, 0.0f};
  uint16_t sinks[Hq];
  for (int h = 0; h < Hq; ++h) sinks[h] = f32_to_bf16(sink_vals[h]);
  for (int p : {0, 127, 128, 299}) {
    for (bool sliding : {false, true}) {
      const int first = sliding ? std::max(0, p - 128 + 1) : 0;
      attention_sinks(q.data(), k.data(), v.data(), sinks, first, p, Hq, Hkv, d, 0.125f,
                      out.data());
      const double N = p - first + 1;
      EXPECT_EQ(N, sliding ? std::min(p + 1, 128) : p + 1);
      for (int h = 0; h < Hq; ++h)
        for (int c = 0; c < d; ++c)
          EXPECT_NEAR(out[h * d + c], N / (N + std::exp(double(sink_vals[h]))), 1e-6)
              << "p " << p << " h " << h;
    }
  }
}

TEST(Attention, WindowAndGqaMapping) {
  // One key per position with a distinct value; a huge score on one key makes the output that
  // key's value: shows which keys are visible and that query head h reads KV head h / group.
  const int Hq = 4, Hkv = 2, d = 2, T = 40;
  std::vector<float> k(T * Hkv * d, 0.0f), v(T * Hkv * d), q(Hq * d, 0.0f), out(Hq * d);
  for (int j = 0; j < T; ++j)
    for (int g = 0; g < Hkv; ++g)
      v[(j * Hkv + g) * d] = 100.0f * g + j, v[(j * Hkv + g) * d + 1] = 0;
  uint16_t sinks[Hq] = {0, 0, 0, 0};
  for (auto& s : sinks) s = f32_to_bf16(-30.0f);
  k[(20 * Hkv + 1) * d] = 1000.0f;  // key 20 of KV head 1 is the only strong match
  for (int h = 0; h < Hq; ++h) q[h * d] = 1.0f;
  attention_sinks(q.data(), k.data(), v.data(), sinks, 20, 35, Hq, Hkv, d, 1.0f, out.data());
  EXPECT_NEAR(out[2 * d], 120.0f, 1e-3);  // heads 2, 3 -> KV head 1 -> key 20's value
  EXPECT_NEAR(out[3 * d], 120.0f, 1e-3);
  // Key 20 outside the window (first = 21): KV head 1 falls back to a uniform average.
  attention_sinks(q.data(), k.data(), v.data(), sinks, 21, 35, Hq, Hkv, d, 1.0f, out.data());
  EXPECT_NEAR(out[2 * d], 100.0f + (21 + 35) / 2.0f, 1e-3);
}

TEST(Yarn, InvFreqTableAndConcentration) {
  // Spec §4.3 table (float64 values; the reference computes in fp32: relative error <= 1e-6).
  const double expect[32] = {1.000000e+00, 6.890443e-01, 4.747821e-01, 3.271459e-01, 2.254180e-01,
                             1.553230e-01, 1.070244e-01, 7.374457e-02, 5.081327e-02, 3.170570e-02,
                             1.933500e-02, 1.159205e-02, 6.794959e-03, 3.860359e-03, 2.093792e-03,
                             1.052602e-03, 4.564839e-04, 1.293187e-04, 3.830881e-05, 2.639647e-05,
                             1.818834e-05, 1.253257e-05, 8.635496e-06, 5.950239e-06, 4.099978e-06,
                             2.825067e-06, 1.946596e-06, 1.341291e-06, 9.242090e-07, 6.368209e-07,
                             4.387978e-07, 3.023511e-07};
  float inv[32];
  const float conc = yarn_inv_freq({150000, 32, 32, 1, 4096, false}, 64, inv);
  EXPECT_NEAR(conc, 1.3465735902799727, 1e-6);
  // The table prints 7 significant digits: compare to its rounding (5e-7 relative) + fp32.
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(inv[i], expect[i], expect[i] * 2e-6) << i;
}

TEST(Rope, RotationAtPositions) {
  float inv[32];
  const float conc = yarn_inv_freq({150000, 32, 32, 1, 4096, false}, 64, inv);
  std::mt19937 rng(5);
  for (int pos : {0, 1, 127, 128, 4095, 4096, 100000, 131071}) {
    std::vector<float> x(64), y(64);
    for (auto& v : x) v = std::normal_distribution<float>()(rng);
    y = x;
    rope_apply(y.data(), 1, 64, pos, inv, conc);
    for (int i = 0; i < 32; ++i) {
      // fp32 theta exactly as the reference (float(p) * inv_freq), then double trig.
      const float th = static_cast<float>(pos) * inv[i];
      const double c = std::cos(double(th)) * conc, s = std::sin(double(th)) * conc;
      EXPECT_NEAR(y[i], x[i] * c - x[i + 32] * s, 1e-5) << pos << " " << i;
      EXPECT_NEAR(y[i + 32], x[i + 32] * c + x[i] * s, 1e-5) << pos << " " << i;
    }
  }
}

TEST(Router, TopkSoftmaxAndTies) {
  const float logits[8] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 3.0f, 0.0f, 1.0f};
  int idx[4];
  float w[4];
  router_topk_softmax(logits, 8, 4, idx, w);
  EXPECT_EQ(idx[0], 5);
  EXPECT_EQ(idx[1], 1);  // tie 2.0 at 1 and 3: lower index first
  EXPECT_EQ(idx[2], 3);
  EXPECT_EQ(idx[3], 4);  // tie 1.0 at 4 and 7
  const double den = std::exp(3.0) + 2 * std::exp(2.0) + std::exp(1.0);
  EXPECT_NEAR(w[0], std::exp(3.0) / den, 1e-7);
  EXPECT_NEAR(w[3], std::exp(1.0) / den, 1e-7);
}

TEST(RmsNorm, MatchesFormula) {
  std::vector<float> x = {1, -2, 3, -4}, y(4);
  uint16_t g[4] = {f32_to_bf16(1), f32_to_bf16(0.5f), f32_to_bf16(2), f32_to_bf16(-1)};
  rmsnorm(x.data(), g, y.data(), 1, 4, 1e-5f);
  const double r = 1 / std::sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-5);
  EXPECT_NEAR(y[0], 1 * r, 1e-6);
  EXPECT_NEAR(y[1], -2 * r * 0.5, 1e-6);
  EXPECT_NEAR(y[3], 4 * r, 1e-6);  // no 1+g offset: gain -1 flips the sign
}

TEST(Linear, Bf16WeightsWithBias) {
  const uint16_t W[6] = {f32_to_bf16(1),  f32_to_bf16(2),    f32_to_bf16(3),
                         f32_to_bf16(-1), f32_to_bf16(0.5f), f32_to_bf16(0)};
  const uint16_t b[2] = {f32_to_bf16(0.25f), f32_to_bf16(-1)};
  const float x[6] = {1, 1, 1, 2, 0, -2};
  float y[4];
  linear_bf16(x, W, b, y, 2, 3, 2);
  EXPECT_FLOAT_EQ(y[0], 6.25f);
  EXPECT_FLOAT_EQ(y[1], -1.5f);
  EXPECT_FLOAT_EQ(y[2], 2 - 6 + 0.25f);
  EXPECT_FLOAT_EQ(y[3], -2 - 1);
}

}  // namespace
}  // namespace vex
