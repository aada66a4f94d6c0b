// The expert slot ABI (DESIGN.md §5): one POD entry per router row of an MoE layer, in device
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
  VEX_SLOT_DEVICE = 2,  // a deterministic device function (issue #5)
  VEX_SLOT_HOST = 3,    // writes a trigger record, adds nothing (issue #5)
} vex_slot_kind;

typedef struct vex_slot {
  uint32_t kind;       // vex_slot_kind
  uint32_t expert;     // NEURAL: index of the expert's weights in the layer's packed arrays
  float threshold;     // virtual slots: minimum routing weight to count; 0 = none
  uint32_t function;   // DEVICE/HOST: which function or registered expert (issue #5)
} vex_slot;

#ifdef __cplusplus
}
#endif
