#include "kernels/cpu/rmsnorm.h"

#include <cmath>

#include "core/dtype.h"

namespace vex {

void rmsnorm(const float* x, const uint16_t* g, float* y, int n, int dim, float eps) {
  for (int t = 0; t < n; ++t) {
    const float* xt = x + static_cast<int64_t>(t) * dim;
    float* yt = y + static_cast<int64_t>(t) * dim;
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += static_cast<double>(xt[i]) * xt[i];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / dim + eps));
    for (int i = 0; i < dim; ++i) yt[i] = (xt[i] * r) * bf16_to_f32(g[i]);
  }
}

}  // namespace vex
