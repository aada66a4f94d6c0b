// Routing overrides (engine.h's RoutingOverride) checked against a model and resolved to the
// per-layer masks both engines apply: the CPU engine in its router loop, the CUDA engine in its
// slot tables (ablated slots become PRUNED rows) and the router kernel (forced slots).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "core/weights.h"
#include "runtime/engine.h"

namespace vex {

struct RoutingPlan {
  int k = 0;                                           // experts per token
  std::vector<std::vector<uint8_t>> ablated, forced;  // [layer][slot]; empty when none
  // Layer l's forced slots in ascending order (the order both engines choose them in).
  std::vector<int> forced_slots(int l) const;
};

// Fails, naming the pair, on a layer or slot that does not exist, a slot the manifest pruned, a
// slot both ablated and forced, more slots forced at a layer than k, fewer experts left after
// the ablation than k, or k outside 1 .. min(max_k, the fewest slots of a layer).
// `layers`: each layer's slot table.
absl::StatusOr<RoutingPlan> plan_routing(const RoutingOverride& o,
                                         std::span<const std::span<const vex_slot>> layers,
                                         int model_k, int max_k);
absl::StatusOr<RoutingPlan> plan_routing(const RoutingOverride& o,
                                         std::span<const LayerWeights> layers, int model_k,
                                         int max_k);

}  // namespace vex
