// Weights: a flat struct of pointers into the memory-mapped checkpoint (nothing is copied; the
// MXFP4 experts stay packed). Filled in exactly one place: loader/weights_map.cpp. Shapes use
// the spec's names: D = d_model, V = vocab, Hq/Hkv heads of width d, E experts, I = d_ff.
// bf16 tensors are uint16_t bit patterns (core/dtype.h).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/device_fn.h"
#include "core/slot.h"

namespace vex {

// An MXFP4 matrix [rows, cols], blocks of 32 along cols (docs/gpt-oss.md §3).
struct Mxfp4Matrix {
  const uint8_t* blocks =
      nullptr;  // [rows, cols/32, 16]: two E2M1 codes a byte, low nibble = even k
  const uint8_t* scales = nullptr;  // [rows, cols/32]: E8M0 exponents, scale = 2^(s-127)
  int rows = 0;
  int cols = 0;
};

struct ExpertWeights {
  Mxfp4Matrix gate_up;                     // [2I, D]: row 2j is gate j, row 2j+1 is up j (§2.3)
  const uint16_t* gate_up_bias = nullptr;  // [2I] bf16, same interleave
  Mxfp4Matrix down;                        // [D, I]
  const uint16_t* down_bias = nullptr;     // [D] bf16, inside the routing-weighted sum
};

struct LayerWeights {
  const uint16_t* attn_norm = nullptr;  // [D] RMSNorm gain before attention
  const uint16_t* wq = nullptr;         // [Hq*d, D]
  const uint16_t* bq = nullptr;         // [Hq*d]
  const uint16_t* wk = nullptr;         // [Hkv*d, D]
  const uint16_t* bk = nullptr;         // [Hkv*d]
  const uint16_t* wv = nullptr;         // [Hkv*d, D]
  const uint16_t* bv = nullptr;         // [Hkv*d]
  const uint16_t* wo = nullptr;         // [D, Hq*d]
  const uint16_t* bo = nullptr;         // [D]
  const uint16_t* sinks = nullptr;      // [Hq] one raw sink logit per query head
  const uint16_t* mlp_norm = nullptr;   // [D] RMSNorm gain before the MoE
  const uint16_t* router_w = nullptr;   // [S, D]: one row per slot
  const uint16_t* router_b = nullptr;   // [S]
  // The dispatch table (core/slot.h): one slot per router row. Without a manifest S = E and
  // slot e is neural expert e; a manifest drops pruned rows and appends virtual ones
  // (loader/attach.cpp).
  std::vector<vex_slot> slots;                   // [S]
  std::vector<ExpertWeights> experts;            // the loaded neural experts, by slot.expert
  std::vector<int> expert_ids;                   // their ids in the checkpoint
  std::vector<vex_device_params> device_params;  // DEVICE slots' parameters, by slot.expert
  int n_slots() const { return static_cast<int>(slots.size()); }
};

struct Weights {
  const uint16_t* embedding = nullptr;   // [V, D]
  std::vector<LayerWeights> layers;      // [n_layers]
  const uint16_t* final_norm = nullptr;  // [D]
  const uint16_t* lm_head = nullptr;     // [V, D], not tied to the embedding
  // Tensors built at load rather than mapped (router tables a manifest rewrites, virtual experts'
  // parameters); the pointers above may point into them. Moving Weights keeps them valid.
  std::vector<std::unique_ptr<uint16_t[]>> owned_bf16;
  std::vector<std::unique_ptr<float[]>> owned_f32;
};

}  // namespace vex
