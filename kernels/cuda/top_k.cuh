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

// An order-preserving key of a score: a larger float has a larger key, and -0 is +0 (a tie, as
// the CPU twin's comparisons make it).
static __device__ __forceinline__ uint32_t score_key(float v) {
  const uint32_t u = __float_as_uint(v + 0.0f);
  return u & 0x80000000u ? ~u : u | 0x80000000u;
}
static __device__ __forceinline__ float key_score(uint32_t key) {
  return __uint_as_float(key & 0x80000000u ? key & 0x7FFFFFFFu : ~key);
}

// The top k of the E scores s by k rounds of a warp-wide arg-max (ties to the lower slot id, as
// the CPU twin), forced slots first: one warp, every lane ends with chosen[0..k) and their
// scores in logit[0..k) (the caller's arrays, registers once inlined). A lane reads its E / 32
// scores once; a round is the lane's best of them, then two warp reductions (redux.sync): the
// largest key, and the lowest slot holding it.
static __device__ __forceinline__ void choose_k(const float* s, const vex_slot* slots, int E, int k,
                                                const int* forced, int n_forced, uint32_t taken,
                                                int* chosen, float* logit) {
  constexpr int kPer = kMaxE / 32, kNone = 0x7FFFFFFF;
  const int lane = threadIdx.x % 32;
  uint32_t key[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) key[i] = lane + 32 * i < E ? score_key(s[lane + 32 * i]) : 0u;
#pragma unroll
  for (int r = 0; r < kMaxK; ++r) {
    if (r >= k) break;
    if (r < n_forced) {  // forced slots first (vexprobe --force), in the order given
      const int at = forced[r];
      chosen[r] = at, logit[r] = slots[at].kind == VEX_SLOT_PRUNED ? -INFINITY : s[at];
    } else {
      uint32_t best = 0;
      int at = kNone;
#pragma unroll
      for (int i = 0; i < kPer; ++i)
        if (lane + 32 * i < E && !(taken >> i & 1) && (key[i] > best || at == kNone))
          best = key[i], at = lane + 32 * i;
      const uint32_t top = __reduce_max_sync(0xffffffffu, best);
      at = static_cast<int>(__reduce_min_sync(0xffffffffu, best == top ? at : kNone));
      chosen[r] = at, logit[r] = key_score(top);
    }
    if (chosen[r] % 32 == lane) taken |= 1u << (chosen[r] / 32);
  }
}

// The softmax over the k chosen scores (a forced slot may rank below the others).
static __device__ __forceinline__ void softmax_k(const float* logit, int k, float* weight) {
  float m = logit[0];
#pragma unroll
  for (int i = 1; i < kMaxK; ++i)
    if (i < k) m = fmaxf(m, logit[i]);
  float den = 0;
#pragma unroll
  for (int i = 0; i < kMaxK; ++i)
    if (i < k) den += expf(logit[i] - m);
#pragma unroll
  for (int i = 0; i < kMaxK; ++i)
    if (i < k) weight[i] = expf(logit[i] - m) / den;
}

// Token t's choice (choose_k), its softmax, written to idx and weight [.., k] by lane 0. Not
// inlined: inlined into router_kernel it changed how that kernel's dot-product loop was compiled
// (its weights through local memory) and batch-1 decode lost 4 % (502 -> 482 tok/s, H200). The
// decode gate-up kernel inlines choose_k instead and leaves the softmax to the end.
static __device__ __noinline__ void top_k(const float* s, const vex_slot* slots, int E, int k,
                                          const int* forced, int n_forced, uint32_t taken, int t,
                                          int* idx, float* weight) {
  int chosen[kMaxK];
  float logit[kMaxK], w[kMaxK];
  choose_k(s, slots, E, k, forced, n_forced, taken, chosen, logit);
  if (threadIdx.x % 32 != 0) return;
  softmax_k(logit, k, w);
#pragma unroll
  for (int i = 0; i < kMaxK; ++i)
    if (i < k) idx[t * k + i] = chosen[i], weight[t * k + i] = w[i];
}

}  // namespace vex::cuda
