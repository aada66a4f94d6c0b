#include "kernels/cpu/attention.h"

#include <cmath>
#include <vector>

#include "core/dtype.h"

namespace vex {

void attention_sinks(const float* q, const float* k, const float* v, const uint16_t* sinks,
                     int first, int p, int n_heads, int n_kv_heads, int head_dim, float sm_scale,
                     float* out) {
  const int kv_dim = n_kv_heads * head_dim, group = n_heads / n_kv_heads;
  std::vector<double> s(p - first + 1);
  for (int h = 0; h < n_heads; ++h) {
    const int g = h / group;
    const float* qh = q + h * head_dim;
    const double sink = bf16_to_f32(sinks[h]);
    double m = sink;  // the sink takes part in the running max (§7.5)
    for (int j = first; j <= p; ++j) {
      const float* kj = k + static_cast<int64_t>(j) * kv_dim + g * head_dim;
      double dot = 0;
      for (int c = 0; c < head_dim; ++c) dot += static_cast<double>(qh[c]) * kj[c];
      s[j - first] = dot * sm_scale;
      m = std::max(m, s[j - first]);
    }
    double den = std::exp(sink - m);  // the sink enlarges the denominator and has no value row
    for (double& sj : s) den += (sj = std::exp(sj - m));
    float* oh = out + h * head_dim;
    for (int c = 0; c < head_dim; ++c) {
      double acc = 0;
      for (int j = first; j <= p; ++j)
        acc += s[j - first] * v[static_cast<int64_t>(j) * kv_dim + g * head_dim + c];
      oh[c] = static_cast<float>(acc / den);
    }
  }
}

}  // namespace vex
