// vexprobe eval: a model's own answers to questions with one exact answer, next to the answers
// with the manifest's virtual experts attached, greedy, raw (the text ends where the answer is
// due) or in Harmony chat (the answer is the number after the last "= " of the final message).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/engine.h"

namespace vex {

struct Model;

struct EvalItem {
  std::string cell;      // the table row it counts in ("* 3x2")
  std::string raw;       // raw prompt ("127 * 89 = ")
  std::string question;  // chat question ("What is 127 * 89?")
  std::string want;      // the exact answer ("11303")
  std::string marker = "= ";  // the answer is what follows the last marker
};

struct EvalResult {
  std::string model, with_experts;  // what was written (raw: the continuation; chat: the final)
  bool exact = false, exact_with_experts = false;
  bool fired = false;  // a virtual expert answered during the with-experts run
};

// n items per cell: multiplication, addition and division (exact quotients) at operand sizes
// 1x1, 2x1, 2x2, 3x2, 3x3, 4x3 digits, deterministic in seed.
std::vector<EvalItem> arithmetic_items(int n, uint64_t seed);

// n unit conversions (Convert 100 meters to feet; 100 meters in feet = ) and n weekdays of dates
// (What day of the week was 2024-02-29?; 2024-02-29 was a ), answers from the units and datetime
// experts on the raw text (exact by their oracle suites, tests/data/experts/).
std::vector<EvalItem> units_items(int n, uint64_t seed);
std::vector<EvalItem> weekday_items(int n, uint64_t seed);
// The items of a task by name: arith, units or weekday, or an eval set FILE.jsonl (every line
// an object with "raw", "question", "answer" and optionally "cell" and "marker", as
// eval_set_line writes them; errors name the file and line); InvalidArgument for another.
absl::StatusOr<std::vector<EvalItem>> task_items(const std::string& task, int n, uint64_t seed);
absl::StatusOr<std::vector<EvalItem>> read_eval_set(const std::string& path);
std::string eval_set_line(const EvalItem& item);

// The weights directory vexprobe runs on: the one given, else the embedded demo model's.
absl::StatusOr<std::string> weights_or_demo(const std::string& weights);
// The model at weights_or_demo(*weights) (written back to *weights), with the manifest `experts`
// (none when empty) applied.
absl::StatusOr<std::unique_ptr<Model>> load_probe_model(std::string* weights,
                                                        const std::string& experts = "");

// Runs every item with virtual experts off (the model alone) and, when the model has HOST
// experts attached, on.
// `routing`: overrides applied to the engine (ablated or forced experts, k), both passes.
absl::StatusOr<std::vector<EvalResult>> run_eval(const Model& m, const std::vector<EvalItem>& items,
                                                 bool chat, const std::string& device,
                                                 const RoutingOverride& routing = {});

}  // namespace vex
