#include "kernels/cpu/moe.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "kernels/cpu/mxfp4.h"

namespace vex {

float swiglu(float gate, float up, float limit) {
  gate = std::min(gate, limit);
  up = std::clamp(up, -limit, limit);
  const float glu = gate * (1.0f / (1.0f + std::exp(-gate * kSwigluAlpha)));
  return glu * (up + 1.0f);
}

void expert_ffn(const ExpertWeights& e, const float* x, float limit, float* scratch, float* y,
                bool bf16_inputs) {
  const int two_i = e.gate_up.rows, d_ff = two_i / 2, d_model = e.down.rows;
  float* h = scratch;          // [2I] interleaved: h[2j] gate, h[2j+1] up (§2.3)
  float* a = scratch + two_i;  // [I]
  if (bf16_inputs) {
    float* xr = scratch + 3 * d_ff;  // [D]
    for (int i = 0; i < e.gate_up.cols; ++i) xr[i] = bf16_to_f32(f32_to_bf16(x[i]));
    x = xr;
  }
  mxfp4_matvec(e.gate_up.blocks, e.gate_up.scales, e.gate_up.cols, 0, two_i, x, h);
  for (int r = 0; r < two_i; ++r) h[r] += bf16_to_f32(e.gate_up_bias[r]);
  for (int j = 0; j < d_ff; ++j) a[j] = swiglu(h[2 * j], h[2 * j + 1], limit);
  if (bf16_inputs)
    for (int j = 0; j < d_ff; ++j) a[j] = bf16_to_f32(f32_to_bf16(a[j]));
  mxfp4_matvec(e.down.blocks, e.down.scales, e.down.cols, 0, d_model, a, y);
  for (int r = 0; r < d_model; ++r) y[r] += bf16_to_f32(e.down_bias[r]);
}

float device_expert(const vex_device_params& p, uint32_t fn, const float* xn, int D, float* y) {
  float arg[2];
  for (int a = 0; a < 2; ++a) {
    double acc = 0;
    for (int i = 0; i < D; ++i) acc += double(p.args_w[a * D + i]) * xn[i];
    arg[a] = static_cast<float>(acc) + p.args_b[a];
  }
  const float f = vex_device_apply(fn, arg[0], arg[1]);
  for (int i = 0; i < D; ++i) y[i] = f * p.out_w[i] + p.out_b[i];
  return f;
}

}  // namespace vex
