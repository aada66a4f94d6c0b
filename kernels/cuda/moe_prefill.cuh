// The MoE block of a prefill chunk on tensor cores: expert-major like moe_grouped, with the
// MXFP4 weights dequantized exactly to bf16 in registers (e2m1.cuh), straight into the A
// fragments of mma.sync m16n8k16 or, for prefill's 64- and 128-token passes on sm_90, of wgmma
// m64n64k16 / m64n128k16 (bf16 x bf16 -> fp32), and the tokens' activations in bf16 as the B
// operand (the references' dtype at expert inputs, docs/gpt-oss.md §5). Launched by
// moe_grouped.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/slot.h"
#include "kernels/cuda/moe.cuh"

namespace vex::cuda {

// Whether a call with `pairs` (token, slot) pairs over E slots takes the wgmma passes (64 or 128
// tokens at a time: prefill), whose xb and hb rows are in wide_at's order instead of split_at's.
bool grouped_wide(int pairs, int E);

// hb[tj, j] = bf16(swiglu(W1_e xb[t] + b1_e)) for the NEURAL pairs listed per slot (offset,
// list); a DEVICE pair's arguments into virt.args, read from the fp32 xn[t]. pairs: the
// (token, slot) pairs listed (n * k), which picks the kernels' shape.
// xn: fp32 [n, D]; xb: bf16 [n, D]; hb: bf16 [n * k, I]; the rows of xb and hb in split.cuh's
// order (one term; wide_at's when grouped_wide). D, I multiples of 64.
cudaError_t moe_gate_up_mma(const float* xn, const uint16_t* xb, const vex_slot* slots,
                            const int* offset, const int* list, const MoeWeights& w,
                            const VirtualSlots& virt, int E, int k, float limit, uint16_t* hb,
                            int pairs, cudaStream_t stream);

// y[tj, d] = weight[tj] * (W2_e hb[tj] + b2_e)[d] for NEURAL pairs; a virtual pair's
// weighted output (0 for HOST slots, which record their triggers).
cudaError_t moe_down_mma(const uint16_t* hb, const float* weight, const vex_slot* slots,
                         const int* offset, const int* list, const MoeWeights& w,
                         const VirtualSlots& virt, int E, int k, float* y, int pairs,
                         cudaStream_t stream);

}  // namespace vex::cuda
