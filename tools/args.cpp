#include "tools/args.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace vex {

void Args::value(std::vector<std::string> names, std::string help,
                 std::function<absl::Status(const std::string&)> apply) {
  opts_.push_back({std::move(names), std::move(help), true, std::move(apply), nullptr});
}

void Args::flag(std::vector<std::string> names, std::string help, std::function<void()> apply) {
  opts_.push_back({std::move(names), std::move(help), false, nullptr, std::move(apply)});
}

void Args::text(std::vector<std::string> names, std::string help, std::string* out) {
  value(std::move(names), std::move(help), [out](const std::string& v) {
    *out = v;
    return absl::OkStatus();
  });
}

void Args::integer(std::vector<std::string> names, std::string help, int64_t lo, int64_t hi,
                   int* out) {
  const std::string flag = names[0];
  value(std::move(names), std::move(help), [=](const std::string& v) {
    int64_t x;
    VEX_RETURN_IF_ERROR(parse_int(flag, v, lo, hi, &x));
    *out = static_cast<int>(x);
    return absl::OkStatus();
  });
}

void Args::number(std::vector<std::string> names, std::string help, double lo, double hi,
                  float* out) {
  const std::string flag = names[0];
  value(std::move(names), std::move(help),
        [=](const std::string& v) { return parse_float(flag, v, lo, hi, out); });
}

void Args::flag(std::vector<std::string> names, std::string help, bool* out) {
  flag(std::move(names), std::move(help), [out] { *out = true; });
}

absl::Status Args::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], val;
    bool has_inline = false;
    if (arg.rfind("--", 0) == 0) {
      if (auto eq = arg.find('='); eq != std::string::npos) {
        val = arg.substr(eq + 1), arg = arg.substr(0, eq), has_inline = true;
      }
    }
    const Opt* opt = nullptr;
    for (const auto& o : opts_)
      for (const auto& n : o.names)
        if (n == arg) opt = &o;
    if (!opt)
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option '", argv[i], "' (see --help)"));
    if (!opt->takes_value) {
      if (has_inline) return absl::InvalidArgumentError(absl::StrCat(arg, " takes no value"));
      opt->apply_flag();
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(arg, " needs a value"));
      val = argv[++i];
    }
    VEX_RETURN_IF_ERROR(opt->apply_value(val));
  }
  return absl::OkStatus();
}

std::string Args::usage() const {
  std::string s;
  for (const auto& o : opts_) {
    std::string names = absl::StrJoin(o.names, ", ");
    if (o.takes_value) names += " V";
    absl::StrAppendFormat(&s, "  %-28s %s\n", names, o.help);
  }
  return s;
}

absl::Status parse_int(const std::string& flag, const std::string& s, int64_t lo, int64_t hi,
                       int64_t* out) {
  if (!absl::SimpleAtoi(s, out) || *out < lo || *out > hi)
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: expected an integer in [%d, %d], got '%s'", flag, lo, hi, s));
  return absl::OkStatus();
}

absl::Status parse_float(const std::string& flag, const std::string& s, double lo, double hi,
                         float* out) {
  double x;
  if (!absl::SimpleAtod(s, &x) || !(x >= lo && x <= hi))
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: expected a number in [%g, %g], got '%s'", flag, lo, hi, s));
  *out = static_cast<float>(x);
  return absl::OkStatus();
}

void add_routing_flags(Args& a, RoutingOverride* o) {
  a.value({"--ablate"}, "LAYER:EXPERT,...: experts masked out of the routing (the rest renormalized)",
          [o](const std::string& v) { return parse_layer_pairs("--ablate", v, &o->ablate); });
  a.value({"--force"}, "LAYER:EXPERT,...: experts chosen for every token at their layer",
          [o](const std::string& v) { return parse_layer_pairs("--force", v, &o->force); });
  a.integer({"--topk"}, "experts per token instead of the model's (1 .. 16)", 1, 16, &o->k);
}

absl::Status parse_layer_pairs(const std::string& flag, const std::string& s,
                               std::vector<std::pair<int, int>>* out) {
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
    const std::vector<absl::string_view> le = absl::StrSplit(part, ':');
    int l, e;
    if (le.size() != 2 || !absl::SimpleAtoi(le[0], &l) || !absl::SimpleAtoi(le[1], &e))
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": '", part, "' is not LAYER:EXPERT (as in 3:7)"));
    out->emplace_back(l, e);
  }
  if (out->empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": empty list"));
  return absl::OkStatus();
}

absl::Status parse_int_list(const std::string& flag, const std::string& s,
                            std::vector<int32_t>* out) {
  out->clear();
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
    int32_t v;
    if (!absl::SimpleAtoi(part, &v))
      return absl::InvalidArgumentError(absl::StrCat(flag, ": '", part, "' is not an integer"));
    out->push_back(v);
  }
  if (out->empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": empty list"));
  return absl::OkStatus();
}

void add_gpu_flags(Args& a, GpuFlags* g) {
  a.integer({"--gpus"}, "split the model over N GPUs, one process each (default 1)", 1, 64,
            &g->gpus);
  a.integer({"--tp"}, "with --gpus N: attention heads and lm_head over N GPUs, or 1 (default N)",
            1, 64, &g->split.tp);
  a.integer({"--ep"}, "with --gpus N: each layer's experts over N GPUs, or 1 (default N)", 1, 64,
            &g->split.ep);
}

absl::Status start_gpus(const GpuFlags& g) {
  // Started by a launcher (torchrun --no-python, mpirun), one process per GPU already; else
  // --gpus processes forked here.
  const int world = Group::launcher_size(), n = world > 1 ? world : g.gpus;
  for (const auto& [name, v] : {std::pair{"--tp", g.split.tp}, std::pair{"--ep", g.split.ep}})
    if (v != 0 && v != 1 && v != n)
      return absl::InvalidArgumentError(
          absl::StrCat(name, " is 1 or the number of GPUs (", n, "), not ", v));
  return Group::begin(g.gpus);
}

}  // namespace vex
