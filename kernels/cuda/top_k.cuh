// The router's choice from a token's E scores (router.cu, and moe.cu's gate-up kernel when it
// chooses for itself): top k by a warp-wide arg-max, softmax over the k chosen.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/slot.h"

namespace vex::cuda {

constexpr int kMaxE = 256, kMaxK = 8;  // slots a layer, chosen a token

// The lane's bits of the slots that cannot be chosen: bit i for slot lane + 32 i (PRUNED slots
// never compete).
static __device__ __forceinline__ uint32_t pruned_bits(const vex_slot* slots, int E, int lane) {
  uint32_t taken = 0;
  for (int i = 0; lane + 32 * i < E; ++i)
    if (slots[lane + 32 * i].kind == VEX_SLOT_PRUNED) taken |= 1u << i;
  return taken;
}

// Token t's top k of the E scores s by k rounds of a warp-wide arg-max (ties to the lower slot
// id, as the CPU twin), forced slots first, then the softmax over the k chosen: one warp. A lane
// reads its E / 32 scores once; the rounds and the softmax run in registers (loops unrolled to
// kMaxE / 32 and kMaxK: none through local memory). Inside the decode gate-up kernel it still
// costs ~2 us a call (that kernel alone 23.6 us, 21.4 with the choice left out, H200); ranking
// every candidate against all at once instead was slower (20b batch 1 529 -> 517 tok/s). Not
// inlined: inlined into router_kernel it changed how that kernel's dot-product loop was compiled
// (its weights through local memory) and batch-1 decode lost 4 % (502 -> 482 tok/s, H200).
static __device__ __noinline__ void top_k(const float* s, const vex_slot* slots, int E, int k,
                                          const int* forced, int n_forced, uint32_t taken, int t,
                                          int* idx, float* weight) {
  constexpr int kPer = kMaxE / 32;
  const int lane = threadIdx.x % 32;
  float v[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) v[i] = lane + 32 * i < E ? s[lane + 32 * i] : 0.0f;
  float chosen_logit[kMaxK];
  int chosen[kMaxK];
#pragma unroll
  for (int r = 0; r < kMaxK; ++r) {
    if (r >= k) break;
    float best = -INFINITY;
    int at = 0x7FFFFFFF;
    if (r < n_forced) {  // forced slots first (vexprobe --force), in the order given
      at = forced[r], best = slots[at].kind == VEX_SLOT_PRUNED ? -INFINITY : s[at];
    } else {
#pragma unroll
      for (int i = 0; i < kPer; ++i)
        if (lane + 32 * i < E && !(taken >> i & 1) && (v[i] > best || at == 0x7FFFFFFF))
          best = v[i], at = lane + 32 * i;
#pragma unroll
      for (int off = 16; off > 0; off /= 2) {
        const float ob = __shfl_xor_sync(0xffffffffu, best, off);
        const int oa = __shfl_xor_sync(0xffffffffu, at, off);
        if (ob > best || (ob == best && oa < at)) best = ob, at = oa;
      }
    }
    chosen[r] = at, chosen_logit[r] = best;
    if (at % 32 == lane) taken |= 1u << (at / 32);
  }
  if (lane != 0) return;
  float m = chosen_logit[0];  // a forced slot may rank below the others
#pragma unroll
  for (int i = 1; i < kMaxK; ++i)
    if (i < k) m = fmaxf(m, chosen_logit[i]);
  float den = 0;
#pragma unroll
  for (int i = 0; i < kMaxK; ++i)
    if (i < k) den += expf(chosen_logit[i] - m);
#pragma unroll
  for (int i = 0; i < kMaxK; ++i)
    if (i < k) {
      idx[t * k + i] = chosen[i];
      weight[t * k + i] = expf(chosen_logit[i] - m) / den;
    }
}

}  // namespace vex::cuda
