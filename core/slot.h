// The expert slot ABI (docs/architecture.md §4): one POD entry per router row of an MoE layer, in device
// memory, read by the fused MoE kernels (and by the CPU path). C-compatible and identical on host
// and device, so a table built on the host is uploaded byte for byte.
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vex_slot_kind {
  VEX_SLOT_NEURAL = 0,  // MXFP4 FFN of the expert whose packed weights `expert` indexes
  VEX_SLOT_PRUNED = 1,  // never selected: its router row is masked to -inf, no weights loaded
  VEX_SLOT_DEVICE = 2,  // a deterministic device function of values read from the hidden state
  VEX_SLOT_HOST = 3,    // writes a trigger record, adds nothing; the runtime acts after the step
} vex_slot_kind;

// The exact functions a DEVICE slot computes from its two arguments a, b (core/device_fn.h).
typedef enum vex_device_fn {
  VEX_FN_ADD = 0,         // a + b
  VEX_FN_SUB = 1,         // a - b
  VEX_FN_MUL = 2,         // a * b
  VEX_FN_DIV = 3,         // a / b (0 when b == 0)
  VEX_FN_DSCR = 4,        // NOI / annual debt service: a / b
  VEX_FN_LTV = 5,         // loan / value x 100
  VEX_FN_CAP_RATE = 6,    // NOI / price x 100
  VEX_FN_DEBT_YIELD = 7,  // NOI / loan x 100
  VEX_FN_COUNT = 8,
} vex_device_fn;

typedef struct vex_slot {
  uint32_t kind;      // vex_slot_kind
  uint32_t expert;    // NEURAL: index of the expert's weights in the layer's packed arrays;
                      // DEVICE: index of the slot's parameters in the layer's device table
  float threshold;    // virtual slots: minimum routing weight to count; 0 = none
  uint32_t function;  // DEVICE: a vex_device_fn; HOST: the model's host-expert index
} vex_slot;

// What a HOST slot writes when the router chooses it at or above its threshold: where, and with
// what routing weight. The MoE kernels (CPU and CUDA) write these; the runtime reads them after
// the step (runtime/engine.h, Engine::triggers()) in the same layout.
typedef struct vex_trigger {
  int32_t seq;    // sequence (0 for single-sequence engines)
  int32_t pos;    // position of the token whose MoE layer chose the slot
  int32_t layer;  // MoE layer
  int32_t slot;   // router row / slot index in that layer
  float weight;   // routing weight
} vex_trigger;

#ifdef __cplusplus
}
#endif
