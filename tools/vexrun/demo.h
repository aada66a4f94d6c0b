// The embedded demo model: with no --weights, vexrun runs the tiny synthetic checkpoint of
// `vexgen --shape tiny --seed 0` (random weights) with the real gpt-oss tokenizer, made on first
// use and cached.
#pragma once

#include <string>

#include "runtime/status.h"

namespace vex {

// Returns the demo checkpoint directory, creating it under $VEX_CACHE (default ~/.cache/vex) if
// needed. tokenizer.json comes from tools/fetch-tokenizer.sh's cache, fetched if missing.
absl::StatusOr<std::string> ensure_demo_model();

}  // namespace vex
