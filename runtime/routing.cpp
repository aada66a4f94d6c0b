#include "runtime/routing.h"

#include <algorithm>

namespace vex {

std::vector<int> RoutingPlan::forced_slots(int l) const {
  std::vector<int> out;
  if (forced.empty()) return out;
  for (int e = 0; e < static_cast<int>(forced[l].size()); ++e)
    if (forced[l][e]) out.push_back(e);
  return out;
}

absl::StatusOr<RoutingPlan> plan_routing(const RoutingOverride& o,
                                         std::span<const std::span<const vex_slot>> layers,
                                         int model_k, int max_k) {
  const int n_layers = static_cast<int>(layers.size());
  int min_slots = 1 << 30;
  for (const auto& L : layers) min_slots = std::min(min_slots, static_cast<int>(L.size()));
  RoutingPlan plan;
  plan.k = o.k ? o.k : model_k;
  if (plan.k < 1 || plan.k > std::min(max_k, min_slots))
    return absl::InvalidArgumentError(absl::StrFormat(
        "k = %d: experts per token must be 1 .. %d", plan.k, std::min(max_k, min_slots)));
  auto mark = [&](const std::vector<std::pair<int, int>>& pairs, const char* what,
                  std::vector<std::vector<uint8_t>>& set) -> absl::Status {
    if (pairs.empty()) return absl::OkStatus();
    set.resize(n_layers);
    for (int l = 0; l < n_layers; ++l) set[l].assign(layers[l].size(), 0);
    for (const auto& [l, e] : pairs) {
      if (l < 0 || l >= n_layers)
        return absl::InvalidArgumentError(
            absl::StrFormat("%s %d:%d: the model has layers 0 .. %d", what, l, e, n_layers - 1));
      if (e < 0 || e >= static_cast<int>(layers[l].size()))
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s %d:%d: layer %d has slots 0 .. %d", what, l, e, l, layers[l].size() - 1));
      if (layers[l][e].kind == VEX_SLOT_PRUNED)
        return absl::InvalidArgumentError(
            absl::StrFormat("%s %d:%d: that expert is pruned by the manifest", what, l, e));
      set[l][e] = 1;
    }
    return absl::OkStatus();
  };
  VEX_RETURN_IF_ERROR(mark(o.ablate, "ablate", plan.ablated));
  VEX_RETURN_IF_ERROR(mark(o.force, "force", plan.forced));
  for (int l = 0; l < static_cast<int>(plan.forced.size()); ++l) {
    int n = 0;
    for (int e = 0; e < static_cast<int>(plan.forced[l].size()); ++e) {
      n += plan.forced[l][e];
      if (plan.forced[l][e] && !plan.ablated.empty() && plan.ablated[l][e])
        return absl::InvalidArgumentError(
            absl::StrFormat("slot %d:%d is both ablated and forced", l, e));
    }
    if (n > plan.k)
      return absl::InvalidArgumentError(
          absl::StrFormat("layer %d: %d slots forced, more than k = %d", l, n, plan.k));
  }
  for (int l = 0; l < static_cast<int>(plan.ablated.size()); ++l) {
    int left = 0;
    for (int e = 0; e < static_cast<int>(layers[l].size()); ++e)
      left += !plan.ablated[l][e] && layers[l][e].kind == VEX_SLOT_NEURAL;
    if (left < plan.k)
      return absl::InvalidArgumentError(absl::StrFormat(
          "layer %d: %d experts left after the ablation, fewer than k = %d", l, left, plan.k));
  }
  return plan;
}

absl::StatusOr<RoutingPlan> plan_routing(const RoutingOverride& o,
                                         std::span<const LayerWeights> layers, int model_k,
                                         int max_k) {
  std::vector<std::span<const vex_slot>> tables;
  for (const LayerWeights& L : layers) tables.emplace_back(L.slots);
  return plan_routing(o, tables, model_k, max_k);
}

}  // namespace vex
