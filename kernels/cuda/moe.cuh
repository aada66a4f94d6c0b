// The MXFP4 expert MLPs: decode (a few tokens) and the grouped prefill path, reading the
// layer's slot table (core/slot.h). Twin of expert_ffn in kernels/cpu/moe.cpp. MXFP4 is decoded
// exactly in registers (docs/gpt-oss.md §3); nothing is dequantized in memory.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/device_fn.h"
#include "core/slot.h"
#include "kernels/cuda/rows.cuh"

namespace vex::cuda {

// A layer's experts, packed by expert index (the slot's `expert`).
struct MoeWeights {
  const uint8_t* gate_up_blocks;  // [Ek, 2I, D/32, 16]: row 2j gate j, row 2j+1 up j
  const uint8_t* gate_up_scales;  // [Ek, 2I, D/32] E8M0
  const uint16_t* gate_up_bias;   // [Ek, 2I] bf16
  const uint8_t* down_blocks;     // [Ek, D, I/32, 16]
  const uint8_t* down_scales;     // [Ek, D, I/32]
  const uint16_t* down_bias;      // [Ek, D] bf16
  int D, I;
};

// HOST slots chosen by the router at or above their threshold: recorded for the runtime (the
// records are core/slot.h's vex_trigger), adding nothing.
struct TriggerBuffer {
  vex_trigger* records;  // [capacity]
  int* count;        // records written (may exceed capacity: the excess is dropped)
  int capacity;
};

// A layer's virtual slots as the fused kernels see them (kernels/cuda/virtual_slots.cuh).
// Empty (the default) for a layer without any: the decode kernels then run their neural-only
// instantiation, and a virtual slot would add nothing and record nothing.
struct VirtualSlots {
  const vex_device_params* device = nullptr;  // DEVICE slots' parameters, by the slot's `expert`
  float* args = nullptr;                      // [n * k, 2]: a DEVICE pair's arguments a, b
  int layer = 0;                              // written into trigger records
  CacheRows rows{};                           // each token's sequence and position
  TriggerBuffer triggers{};                   // HOST records; null: not recorded
  bool empty() const { return !args && !triggers.records; }
};

// Every chosen slot counts only at or above its threshold (neural slots: 0). NEURAL slots run
// the expert's MLP; DEVICE slots add weight * (f(a, b) * P + q) with a, b read linearly from
// xn[t] (core/device_fn.h); HOST slots append {seq, pos, layer, slot, weight} to
// virt.triggers and add nothing. Twin of CpuEngine::moe_token.

// 32-bit words of a vector of K values in split form (split.cuh): three bf16 terms per value,
// which make the decode kernels' tensor-core products those of fp32 inputs.
constexpr int kSplitTerms = 3;
__host__ __device__ constexpr int split_words(int K) { return kSplitTerms * K / 2; }

// Decode (a few tokens, each chosen expert streamed once per token), on tensor cores.
//
// Gate-up pass: h[t, j, :] = swiglu(W1_e xn[t] + b1_e) for the j-th chosen slot e = idx[t, j]
// of token t when it is NEURAL (h is not written for others); a DEVICE slot's a, b into
// virt.args. xn fp32 [n, D] (DEVICE slots read it); xf the same rows in split form
// [n, split_words(D)] (the router writes it); hf: h in split form [n, k, split_words(I)].
// D % 32 == 0, I % 32 == 0.
//
// With choice.scores (router_scores' [n, E]) the kernel chooses: each block takes its token's
// top k over choice.slots, the router's table (forced slots first, PRUNED never; router()'s
// choice bit for bit, top_k.cuh) and runs its j-th through `slots`, the execution table (with
// experts split over GPUs the others' experts are PRUNED there, yet chosen); the token's first
// block writes idx and choice.weight [n, k] for observers (and moe_down without the choice).
// Without it, idx is the router's choice and only read.
struct ExpertChoice {
  const float* scores = nullptr;    // [n, E]
  const vex_slot* slots = nullptr;  // [E] the router's table
  int E = 0;
  const int* forced = nullptr;  // [n_forced] (device), as router()'s
  int n_forced = 0;
  float* weight = nullptr;  // [n, k]
};
cudaError_t moe_gate_up(const float* xn, const uint32_t* xf, int* idx, const vex_slot* slots,
                        const MoeWeights& w, const VirtualSlots& virt, int n, int k, float limit,
                        uint32_t* hf, cudaStream_t stream, const ExpertChoice& choice = {});

// Down pass: x[t] += sum_j weight[t, j] * out_j[t] over the chosen slots, in slot order: the
// NEURAL slots' W2_e h[t, j] + b2_e, the DEVICE slots' results; the HOST slots' triggers.
// D % 8 == 0. With choice.scores (the gate-up call's; its weight unused here) each block makes
// the gate-up kernel's choice again, before waiting on that kernel, so the first weights stream
// in while it finishes; idx and weight are then not read.
cudaError_t moe_down(const uint32_t* hf, const int* idx, const float* weight,
                     const vex_slot* slots, const MoeWeights& w, const VirtualSlots& virt, int n,
                     int k, float* x, cudaStream_t stream, const ExpertChoice& choice = {});

// x fp32 [n, K] -> split form [n, split_words(K)] (K % 32 == 0).
cudaError_t split_rows(const float* x, int n, int K, uint32_t* out, cudaStream_t stream);

// Buffers of the grouped (prefill) path, for up to `capacity` (token, slot) pairs.
struct MoeScratch {
  int* offset;   // [E + 1]
  int* list;     // [capacity]
  float* y;      // [capacity, D]
  int capacity;
  uint16_t* xb;  // [capacity / k, D]: the expert GEMMs' bf16 inputs (moe_prefill.cuh), each
                 // row in split.cuh's order (one term)
  uint16_t* hb;  // [capacity, I]: the same for the SwiGLU outputs
};

// The whole MoE block for a chunk of n tokens, expert-major: the (token, slot) pairs are grouped
// by slot, every chosen expert's weights are read once for all its tokens (tensor-core GEMMs
// with bf16 inputs, moe_prefill.cuh), and the k outputs of each token are summed into x in slot
// order. Virtual slots as in the decode passes. E <= 1024, D % 64 == 0, I % 64 == 0.
cudaError_t moe_grouped(const float* xn, const int* idx, const float* weight, const vex_slot* slots,
                        const MoeWeights& w, const VirtualSlots& virt, int n, int k, int E,
                        float limit, MoeScratch scratch, float* x, cudaStream_t stream);

}  // namespace vex::cuda
