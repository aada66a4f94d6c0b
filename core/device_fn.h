// DEVICE slots (docs/architecture.md §4, "hybrid MoE"): two arguments read linearly from the normed hidden
// state, an exact function of them, and the result written back along a learned direction:
//   a = A[0] . xn + c[0],  b = A[1] . xn + c[1],  out = f(a, b) * P + q
// weighted by the routing weight like any expert. One definition for the CPU path and the CUDA
// kernels, so both compute f bit for bit the same.
#pragma once

#include "core/slot.h"

#ifdef __CUDACC__
#define VEX_HOST_DEVICE __host__ __device__
#else
#define VEX_HOST_DEVICE
#endif

// The parameters of one DEVICE slot, fp32, read from its sidecar (loader/attach.cpp).
typedef struct vex_device_params {
  const float* args_w;  // [2, D]: the rows reading a and b from the normed hidden state
  const float* args_b;  // [2]
  const float* out_w;   // [D]: the direction the result is written along
  const float* out_b;   // [D]
} vex_device_params;

VEX_HOST_DEVICE inline float vex_device_apply(uint32_t fn, float a, float b) {
  switch (fn) {
    case VEX_FN_ADD:
      return a + b;
    case VEX_FN_SUB:
      return a - b;
    case VEX_FN_MUL:
      return a * b;
    case VEX_FN_DIV:
    case VEX_FN_DSCR:
      return b != 0.0f ? a / b : 0.0f;
    case VEX_FN_LTV:
    case VEX_FN_CAP_RATE:
    case VEX_FN_DEBT_YIELD:
      return b != 0.0f ? a / b * 100.0f : 0.0f;
    default:
      return 0.0f;
  }
}
