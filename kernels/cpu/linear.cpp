#include "kernels/cpu/linear.h"

#include "core/dtype.h"
#include "kernels/cpu/parallel.h"

namespace vex {

void linear_bf16(const float* x, const uint16_t* W, const uint16_t* b, float* y, int n, int in,
                 int out) {
  parallel_for(out, 4096, [&](int lo, int hi) {
    for (int o = lo; o < hi; ++o) {
      const uint16_t* w = W + static_cast<int64_t>(o) * in;
      const double bias = b ? bf16_to_f32(b[o]) : 0.0;
      for (int t = 0; t < n; ++t) {
        const float* xt = x + static_cast<int64_t>(t) * in;
        double acc = 0;
        for (int i = 0; i < in; ++i) acc += static_cast<double>(bf16_to_f32(w[i])) * xt[i];
        y[static_cast<int64_t>(t) * out + o] = static_cast<float>(acc + bias);
      }
    }
  });
}

}  // namespace vex
