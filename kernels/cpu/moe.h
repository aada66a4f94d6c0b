// The MXFP4 expert MLP with the clamped SwiGLU (docs/gpt-oss.md §4.6).
#pragma once

#include "core/weights.h"

namespace vex {

inline constexpr float kSwigluAlpha = 1.702f;  // hard-coded in every reference

// gate clamped above only, up clamped both sides, +1 on up.
float swiglu(float gate, float up, float limit);

// y[D] = W2 · swiglu(W1 · x + b1) + b2 for one token x[D]. scratch: [3 * I + D] floats.
// With bf16_inputs, x and the SwiGLU output are rounded to bf16 before their matrix products, as
// the tensor-core prefill path of forward_cuda (and the references, docs/gpt-oss.md §5) feed them.
void expert_ffn(const ExpertWeights& e, const float* x, float limit, float* scratch, float* y,
                bool bf16_inputs = false);

// A DEVICE slot (core/device_fn.h): a = A[0].xn + c[0], b = A[1].xn + c[1] (dot products in
// double, rounded to fp32), y[D] = f(a, b) * P + q. Returns f(a, b).
float device_expert(const vex_device_params& p, uint32_t fn, const float* xn, int D, float* y);

}  // namespace vex
