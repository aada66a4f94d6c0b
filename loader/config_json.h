// config.json -> Config, for both checkpoint layouts (docs/gpt-oss.md §1.1 Hugging Face, §1.4 original/).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/status.h"

namespace vex {

// `file` names the source in error messages. The layout is told by the keys: Hugging Face
// configs carry model_type, original/ configs carry num_experts.
absl::StatusOr<Config> parse_config(const nlohmann::json& j, const std::string& file);

// The checks every Config must pass whatever its source (counts positive, heads divisible,
// MXFP4 dimensions multiples of 32, ...).
absl::Status validate_config(const Config& c, const std::string& file);

}  // namespace vex
