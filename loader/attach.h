// Applying a manifest (loader/manifest.h) to a model's mapped weights: physical pruning and
// virtual slots. Each layer's router is rebuilt with one row per slot (the kept neural experts'
// rows in id order, then one row per virtual expert attached there, read from its sidecar), and
// its slot table maps those rows to the loaded experts, the DEVICE functions and the HOST experts.
// Pruned experts are dropped from Weights: their bytes stay unread in the memory map and are
// never uploaded.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/weights.h"
#include "loader/checkpoint.h"
#include "loader/manifest.h"

namespace vex {

// The DEVICE functions by manifest name: add, sub, mul, div, dscr, ltv, cap_rate, debt_yield.
std::optional<vex_device_fn> device_fn_by_name(std::string_view name);
const char* device_fn_name(uint32_t fn);

struct AttachResult {
  // The HOST experts' names; a HOST slot's `function` indexes this list. The runtime binds each
  // name to a builtin or registered expert (experts/registry.h).
  std::vector<std::string> host_experts;
  int pruned = 0;  // neural experts not loaded, over all layers
};

// Applies `m` to `w`. With mask_pruned, dropped experts stay loaded and their slots are PRUNED
// (masked in the router) instead of removed: the oracle the physical pruning is tested against.
// Checks [base] index_sha256 against the checkpoint's model.safetensors.index.json.
absl::StatusOr<AttachResult> apply_manifest(const Manifest& m, const Checkpoint& ck, Weights* w,
                                            bool mask_pruned = false);

// Bytes of the tensors a forward pass reads through `w` (pruned experts excluded): what is read
// from disk and what the GPU engine uploads, apart from its own layout changes.
uint64_t weight_bytes(const Weights& w, const Config& c);

}  // namespace vex
