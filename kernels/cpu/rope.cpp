#include "kernels/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

namespace vex {

float yarn_inv_freq(const YarnParams& p, int head_dim, float* inv_freq) {
  const int half = head_dim / 2;
  // Correction range in float64 as in the references' Python; not rounded when !truncate.
  auto corr_dim = [&](double rotations) {
    return head_dim * std::log(p.original_ctx / (rotations * 2 * std::numbers::pi)) /
           (2 * std::log(static_cast<double>(p.theta)));
  };
  double low = corr_dim(p.beta_fast), high = corr_dim(p.beta_slow);
  if (p.truncate) low = std::floor(low), high = std::ceil(high);
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(head_dim - 1));
  if (low == high) high += 0.001;  // avoid a zero-width ramp, as transformers does
  for (int i = 0; i < half; ++i) {
    const float freq = std::pow(p.theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
    const float extrapolation = 1.0f / freq;
    const float interpolation = 1.0f / (p.factor * freq);
    const float ramp = std::clamp(static_cast<float>((i - low) / (high - low)), 0.0f, 1.0f);
    const float mask = 1.0f - ramp;  // 1: keep the original frequency (high-frequency dims)
    inv_freq[i] = interpolation * (1.0f - mask) + extrapolation * mask;
  }
  return p.factor > 1 ? static_cast<float>(0.1 * std::log(p.factor) + 1.0) : 1.0f;
}

void rope_apply(float* x, int n_heads, int head_dim, int pos, const float* inv_freq,
                float concentration) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float th = static_cast<float>(pos) * inv_freq[i];
    const float c = std::cos(th) * concentration, s = std::sin(th) * concentration;
    for (int h = 0; h < n_heads; ++h) {
      float* xh = x + h * head_dim;
      const float x1 = xh[i], x2 = xh[i + half];
      xh[i] = x1 * c - x2 * s;
      xh[i + half] = x2 * c + x1 * s;
    }
  }
}

}  // namespace vex
