// Shared test fixtures: synthetic checkpoints written once per test process.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "core/config.h"
#include "runtime/model.h"
#include "runtime/scheduler.h"
#include "runtime/tokenizer.h"

namespace vex::testing {

// How two engines' logits agree over n positions of V logits (ref the reference): per position
// the largest |ref - got| over the largest |ref| (a non-finite `got` counts as infinite), the
// positions above `threshold`, and top-1 agreement overall and where the reference's top-2
// margin is clear (over 5 % of the row's scale). Printed as one line.
struct Agreement {
  double median = 0, p90 = 0, max = 0;
  int over = 0;
  int top1 = 0, clear = 0, clear_top1 = 0;
};
Agreement compare_logits(std::span<const float> ref, std::span<const float> got, int n, int V,
                         double threshold);

// A fresh temporary directory, removed at process exit.
std::string temp_dir(const std::string& tag);

// The tiny checkpoint of `vexgen --shape tiny --seed SEED --layout both`, written once per
// process and cached; do not modify it (copy it with copy_checkpoint first).
const std::string& tiny_checkpoint(uint64_t seed = 0);

// The tiny checkpoint (seed 0) with the gpt-oss tokenizer.json beside it, as the demo model:
// text prompts work. Written once per process.
const std::string& tiny_chat_checkpoint();

// The gpt-oss tokenizer.json fetched by tools/fetch-tokenizer.sh (the `tokenizer` CTest
// fixture), loaded once per process; aborts with a hint when it is missing.
const Tokenizer& tokenizer();

// models/vex-demo, the trained demo model committed in the repository ($VEX_DEMO_MODEL when set,
// for test binaries run away from the source tree).
std::string demo_model();

// Copies a checkpoint directory (recursively) for tests that corrupt files.
std::string copy_checkpoint(const std::string& from, const std::string& tag);

// The scheduler tests on the GPU: prompts of mixed kinds (arithmetic, prose, code, a question, a
// long one), request i's options (greedy for odd i, else sampled at 0.8 with its own seed;
// base + step * i tokens), and request i run alone for comparison: on `engine` routed as
// `routing`, through Session::generate, its tokens.
const std::vector<std::string>& mixed_prompts();
GenerateOptions mixed_options(const Model& m, size_t i, int base, int step);
absl::StatusOr<std::vector<int32_t>> generate_alone(std::unique_ptr<Engine> engine,
                                                    const RoutingOverride& routing,
                                                    std::span<const int32_t> prompt,
                                                    const GenerateOptions& options);

// What scheduler requests produced, by request index: their tokens and results, written from
// the scheduler's thread.
struct Collected {
  std::mutex mu;
  std::map<size_t, std::vector<int32_t>> tokens;
  std::map<size_t, GenerateResult> results;
  // Sets r's callbacks to collect into this under index i (a failed request fails the test).
  void collect(size_t i, Request& r);
};

}  // namespace vex::testing
