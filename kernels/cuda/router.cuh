// The MoE router (docs/gpt-oss.md §4.5), fused: linear + bias over the layer's slot rows, top-k, softmax
// over the k chosen. Twin of linear_bf16 + router_topk_softmax in kernels/cpu.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/slot.h"

namespace vex::cuda {

// x fp32 [n, D]; W bf16 [E, D]; b bf16 [E]; slots [E] (PRUNED rows never chosen).
// With norm_gain (bf16 [D]) the router reads RMSNorm(x) (docs/gpt-oss.md §4.1), computed here and also
// written to xn_out [n, D] for the experts: the MoE block's norm costs no launch of its own.
// idx [n, k] slot ids by descending logit (ties to the lower id); weight [n, k] fp32;
// logits [n, E] fp32 written when not null (PRUNED slots as -inf). E <= 256, k <= 8, D % 8 == 0.
// forced [n_forced] (device, n_forced <= k): slots every token takes first, whatever their
// logits; the rest are the best of the others, and the softmax runs over all k (vexprobe's
// --force; kernels/cpu/router.h's `preset`). xf_out [n, split_words(D)] (D % 32 == 0): the
// router's input once more, in the split form the MoE decode kernels read (split.cuh), when not
// null. x, norm_gain and xn_out 16-byte aligned (as cudaMalloc gives them): calls of many tokens
// read and write them 16 and 8 bytes at a time.
cudaError_t router(const float* x, const uint16_t* W, const uint16_t* b, const vex_slot* slots,
                   int n, int D, int E, int k, int* idx, float* weight, float* logits,
                   cudaStream_t stream, const uint16_t* norm_gain = nullptr, float eps = 0,
                   float* xn_out = nullptr, const int* forced = nullptr, int n_forced = 0,
                   uint32_t* xf_out = nullptr);

// Decode's router spread over SMs (a block per 8 slots of a token): the norm as router() fuses
// it (xn_out, xf_out), and the scores [n, E] (bias added; PRUNED slots' too) without choosing:
// the MoE gate-up kernel takes each token's top k from them (moe.cuh, ExpertChoice). xn_out, xf_out
// and scores are router()'s bit for bit (the same sums in the same order); logits as router()'s
// when not null.
cudaError_t router_scores(const float* x, const uint16_t* W, const uint16_t* b,
                          const vex_slot* slots, int n, int D, int E, float* scores, float* logits,
                          cudaStream_t stream, const uint16_t* norm_gain = nullptr, float eps = 0,
                          float* xn_out = nullptr, uint32_t* xf_out = nullptr);

}  // namespace vex::cuda
