// Command-line parsing shared by the tools: `--name value`, `--name=value`, boolean `--flag`,
// short aliases. Unknown flags and missing values are errors naming the flag.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/engine.h"
#include "runtime/group.h"

namespace vex {

class Args {
 public:
  // A flag taking a value; `apply` parses it (returning an error message on bad input).
  void value(std::vector<std::string> names, std::string help,
             std::function<absl::Status(const std::string&)> apply);
  void flag(std::vector<std::string> names, std::string help, std::function<void()> apply);
  // Typed shorthands: store the value, an integer in [lo, hi], a number in [lo, hi].
  void text(std::vector<std::string> names, std::string help, std::string* out);
  void integer(std::vector<std::string> names, std::string help, int64_t lo, int64_t hi, int* out);
  void number(std::vector<std::string> names, std::string help, double lo, double hi, float* out);
  void flag(std::vector<std::string> names, std::string help, bool* out);
  absl::Status parse(int argc, char** argv);
  std::string usage() const;

 private:
  struct Opt {
    std::vector<std::string> names;
    std::string help;
    bool takes_value;
    std::function<absl::Status(const std::string&)> apply_value;
    std::function<void()> apply_flag;
  };
  std::vector<Opt> opts_;
};

// Typed helpers for Args::value.
absl::Status parse_int(const std::string& flag, const std::string& s, int64_t lo, int64_t hi,
                       int64_t* out);
absl::Status parse_float(const std::string& flag, const std::string& s, double lo, double hi,
                         float* out);
// --ablate, --force and --topk (runtime/engine.h RoutingOverride), as vexrun and vexprobe take them.
void add_routing_flags(Args& a, RoutingOverride* o);

// --gpus N, --tp, --ep (runtime/group.h): one process per GPU, the model split over them.
struct GpuFlags {
  int gpus = 1;
  Parallel split;
};
void add_gpu_flags(Args& a, GpuFlags* g);
// Launches the group of g.gpus processes (nothing for one): call right after parsing, before
// anything touches CUDA. Checks --tp and --ep against --gpus.
absl::Status start_gpus(const GpuFlags& g);
// "3:7,0:12" -> {(3, 7), (0, 12)}: (layer, expert) pairs for routing overrides, appended.
absl::Status parse_layer_pairs(const std::string& flag, const std::string& s,
                               std::vector<std::pair<int, int>>* out);
absl::Status parse_int_list(const std::string& flag, const std::string& s,
                            std::vector<int32_t>* out);

}  // namespace vex
