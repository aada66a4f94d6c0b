// vexgen: deterministic synthetic gpt-oss checkpoints (Hugging Face layout, optionally original/).
// Same options and seed give byte-identical files on any machine: values come from a
// counter-based hash of (seed, tensor name, element index) with integer arithmetic and single
// IEEE operations only, so neither the thread count nor the platform's libm changes a byte.
#pragma once

#include <cstdint>
#include <string>

#include "core/config.h"
#include "core/status.h"

namespace vex {

struct GenOptions {
  Config config;  // shapes; vocab 201088 keeps the real tokenizer usable
  uint64_t seed = 0;
  std::string out;              // output directory (created)
  bool write_hf = true;         // config.json, generation_config.json, index + shards in out/
  bool write_original = false;  // out/original/: config.json, dtypes.json, model.safetensors
  int shards = 0;               // Hugging Face shards; 0: one per ~5 GB, at least 2
  int threads = 0;              // 0: hardware concurrency
};

// Preset shapes: "tiny" (tests, demo), "20b", "120b" (exact gpt-oss shapes).
absl::StatusOr<Config> preset_config(const std::string& shape);

struct GenReport {
  uint64_t bytes = 0;  // tensor bytes written over all layouts
  int files = 0;
};

absl::StatusOr<GenReport> generate_checkpoint(const GenOptions& opt);

}  // namespace vex
