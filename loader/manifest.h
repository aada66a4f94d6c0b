// The expert manifest (`--experts manifest.toml`, docs/architecture.md §5): a sidecar next to unchanged base
// weights saying which neural experts each layer keeps (physical pruning) and which virtual
// experts are attached where. Parsed with toml++; every error names the file, the line and column,
// and the key; unknown keys are refused.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"

namespace vex {

struct VirtualExpertSpec {
  enum class Kind { kHost, kDevice };
  std::string name;  // a builtin or a name registered through the C API
  Kind kind = Kind::kHost;
  std::vector<int> layers;         // ascending, distinct
  std::string router;              // sidecar path, resolved against the manifest's folder
  std::optional<float> threshold;  // minimum routing weight for the slot to count
};

struct Manifest {
  std::string path;
  std::string base_name;     // [base] name, "" when absent
  std::string index_sha256;  // [base] index_sha256 (lowercase hex), "" when absent
  // Original expert ids each layer keeps, ascending; a layer not in the map keeps all.
  std::map<int, std::vector<int>> keep;
  std::vector<VirtualExpertSpec> virtuals;

  // The experts layer `layer` keeps (all of them when the manifest does not prune it).
  std::vector<int> kept(int layer, int n_experts) const;
};

// Parses manifest text against the model's shape: layer keys in [0, n_layers), expert ids in
// [0, n_experts), no layer in both keep and drop, at least top-k experts kept per layer, virtual
// experts with a name, kind host|device, layers in range, a router sidecar that exists and holds
// `weight` [1, hidden_size] and `bias` [1] (F32 or BF16), threshold in [0, 1]. `path` names the
// file in errors and anchors relative sidecar paths.
absl::StatusOr<Manifest> parse_manifest(const std::string& text, const std::string& path,
                                        const Config& config);
absl::StatusOr<Manifest> load_manifest(const std::string& path, const Config& config);

}  // namespace vex
