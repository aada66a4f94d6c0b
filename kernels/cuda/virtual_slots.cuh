// The virtual slots' share of the fused MoE kernels (moe.cu, moe_prefill.cu): every kernel
// family runs a chosen DEVICE or HOST slot (core/slot.h) through these helpers, at the place
// its neural experts run, so the three paths agree with each other and with the CPU twin
// (CpuEngine::moe_token):
//  - gate-up pass: a DEVICE slot's two arguments a = A[0] . xn + c[0], b = A[1] . xn + c[1],
//    one warp per chosen pair, from the fp32 normed hidden state (whatever dtype the neural
//    experts read), into v.args;
//  - down pass: a DEVICE slot's output row d, weight * (f(a, b) * P[d] + q[d]), in place of an
//    expert's row and summed with the others in slot order; a HOST slot's trigger record, once
//    per chosen pair. Both only at or above the slot's threshold.
// With an empty VirtualSlots, a virtual slot adds nothing and records nothing.
#pragma once

#include "core/device_fn.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/moe.cuh"

namespace vex::cuda {

// v.args[tj] = {a, b} of DEVICE slot s for the pair tj, whose token's normed state is xn.
// Called by all 32 lanes of one warp.
__device__ __forceinline__ void device_slot_args(const vex_slot& s, const VirtualSlots& v,
                                                 const float* xn, int D, int tj, int lane) {
  const vex_device_params& p = v.device[s.expert];
  float a = 0, b = 0;
  for (int i = lane; i < D; i += 32) {
    a += p.args_w[i] * xn[i];
    b += p.args_w[D + i] * xn[i];
  }
  a = warp_sum(a), b = warp_sum(b);
  if (lane == 0) {
    v.args[2 * tj] = a + p.args_b[0];
    v.args[2 * tj + 1] = b + p.args_b[1];
  }
}

// The grouped kernels' gate-up pass for a virtual slot: the arguments of each of its pairs
// list[begin .. end), a warp per pair (HOST slots have none).
__device__ __forceinline__ void device_slot_args_grouped(const vex_slot& s, const VirtualSlots& v,
                                                         const float* xn, int D, const int* list,
                                                         int begin, int end, int k) {
  if (s.kind != VEX_SLOT_DEVICE || !v.args) return;
  for (int i = begin + threadIdx.x / 32; i < end; i += blockDim.x / 32)
    device_slot_args(s, v, xn + static_cast<int64_t>(list[i] / k) * D, D, list[i],
                     threadIdx.x % 32);
}

// Row d of the weighted output of the chosen slot s (pair tj, routing weight wt) when it is a
// DEVICE slot at or above its threshold; 0 otherwise.
__device__ __forceinline__ float virtual_slot_row(const vex_slot& s, const VirtualSlots& v, int tj,
                                                  float wt, int d) {
  if (s.kind != VEX_SLOT_DEVICE || wt < s.threshold || !v.args) return 0.0f;
  const vex_device_params& p = v.device[s.expert];
  const float f = vex_device_apply(s.function, v.args[2 * tj], v.args[2 * tj + 1]);
  return wt * (f * p.out_w[d] + p.out_b[d]);
}

// Records {sequence, position, layer, slot, weight} for token t's choice of slot `slot` (table
// entry s) when it is a HOST slot at or above its threshold. Call once per chosen pair.
__device__ __forceinline__ void host_slot_trigger(const vex_slot& s, const VirtualSlots& v,
                                                  int slot, int t, float wt) {
  if (s.kind != VEX_SLOT_HOST || wt < s.threshold || !v.triggers.records) return;
  const int at = atomicAdd(v.triggers.count, 1);
  if (at < v.triggers.capacity)
    v.triggers.records[at] = {v.rows.seq ? v.rows.seq[t] : 0, v.rows.pos[t], v.layer, slot, wt};
}

// The grouped kernels' down pass for virtual slot e (entry s): rows d0 .. d0 + rows of y for
// each of its pairs (0 unless DEVICE), and, from the block holding row 0, its triggers.
__device__ __forceinline__ void virtual_slot_rows_grouped(const vex_slot& s, const VirtualSlots& v,
                                                          int e, const int* list, int begin,
                                                          int end, int k, const float* weight,
                                                          int d0, int rows, int D, float* y) {
  for (int i = begin; i < end; ++i) {
    const int tj = list[i];
    const float wt = weight[tj];
    for (int r = threadIdx.x; r < rows; r += blockDim.x)
      y[static_cast<int64_t>(tj) * D + d0 + r] = virtual_slot_row(s, v, tj, wt, d0 + r);
    if (d0 == 0 && threadIdx.x == 0) host_slot_trigger(s, v, e, tj / k, wt);
  }
}

}  // namespace vex::cuda
