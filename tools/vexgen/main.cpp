// vexgen: writes a deterministic synthetic gpt-oss checkpoint.
//   vexgen --shape tiny --out /tmp/tiny [--seed 1] [--layout hf|original|both] [--layers 6 ...]
#include <chrono>
#include <cstdio>

#include "loader/config_json.h"
#include "tools/args.h"
#include "tools/vexgen/vexgen.h"

int main(int argc, char** argv) {
  using namespace vex;
  std::string shape = "tiny", layout = "hf";
  GenOptions opt;
  bool help = false;
  std::vector<std::pair<int Config::*, int64_t>> overrides;
  Args args;
  args.value({"--shape"}, "tiny | 20b | 120b (default tiny)", [&](const std::string& v) {
    shape = v;
    return absl::OkStatus();
  });
  args.value({"--out", "-o"}, "output directory (required)", [&](const std::string& v) {
    opt.out = v;
    return absl::OkStatus();
  });
  args.value({"--seed"}, "PRNG seed (default 0)", [&](const std::string& v) {
    int64_t s;
    VEX_RETURN_IF_ERROR(parse_int("--seed", v, 0, INT64_MAX, &s));
    opt.seed = static_cast<uint64_t>(s);
    return absl::OkStatus();
  });
  args.value({"--layout"}, "hf | original | both (default hf)", [&](const std::string& v) {
    if (v != "hf" && v != "original" && v != "both")
      return absl::InvalidArgumentError("--layout: expected hf, original or both");
    layout = v;
    return absl::OkStatus();
  });
  args.value({"--shards"}, "Hugging Face shard count (default: ~5 GB each, at least 2)",
             [&](const std::string& v) {
               int64_t n;
               VEX_RETURN_IF_ERROR(parse_int("--shards", v, 1, 1000, &n));
               opt.shards = static_cast<int>(n);
               return absl::OkStatus();
             });
  args.value({"--threads"}, "writer threads (default: all cores)", [&](const std::string& v) {
    int64_t n;
    VEX_RETURN_IF_ERROR(parse_int("--threads", v, 1, 1024, &n));
    opt.threads = static_cast<int>(n);
    return absl::OkStatus();
  });
  const std::pair<const char*, int Config::*> dims[] = {
      {"--layers", &Config::n_layers},
      {"--hidden", &Config::d_model},
      {"--heads", &Config::n_heads},
      {"--kv-heads", &Config::n_kv_heads},
      {"--head-dim", &Config::head_dim},
      {"--experts", &Config::n_experts},
      {"--experts-per-token", &Config::n_experts_active},
      {"--intermediate", &Config::d_ff},
      {"--vocab", &Config::vocab_size},
      {"--sliding-window", &Config::sliding_window},
  };
  for (const auto& [name, field] : dims) {
    std::string n = name;
    args.value({n}, "override this dimension of the shape",
               [&overrides, n, f = field](const std::string& v) {
                 int64_t x;
                 VEX_RETURN_IF_ERROR(parse_int(n, v, 1, 1 << 24, &x));
                 overrides.push_back({f, x});
                 return absl::OkStatus();
               });
  }
  args.flag({"--help", "-h"}, "show this help", [&] { help = true; });

  absl::Status st = args.parse(argc, argv);
  if (help || !st.ok() || opt.out.empty()) {
    if (!st.ok())
      fprintf(stderr, "vexgen: %s\n", std::string(st.message()).c_str());
    else if (!help)
      fprintf(stderr, "vexgen: --out is required\n");
    fprintf(help ? stdout : stderr, "usage: vexgen --shape tiny|20b|120b --out DIR [options]\n%s",
            args.usage().c_str());
    return help ? 0 : 2;
  }
  auto cfg = preset_config(shape);
  if (!cfg.ok()) {
    fprintf(stderr, "vexgen: %s\n", std::string(cfg.status().message()).c_str());
    return 2;
  }
  opt.config = *cfg;
  for (const auto& [field, v] : overrides) opt.config.*field = static_cast<int>(v);
  opt.config.set_alternating_layers();
  if (auto v = validate_config(opt.config, "vexgen options"); !v.ok()) {
    fprintf(stderr, "vexgen: %s\n", std::string(v.message()).c_str());
    return 2;
  }
  opt.write_hf = layout != "original";
  opt.write_original = layout != "hf";

  const auto t0 = std::chrono::steady_clock::now();
  auto report = generate_checkpoint(opt);
  if (!report.ok()) {
    fprintf(stderr, "vexgen: %s\n", std::string(report.status().message()).c_str());
    return 1;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fprintf(stderr, "vexgen: wrote %s (%s, seed %llu): %d files, %.3f GB in %.2f s (%.2f GB/s)\n",
          opt.out.c_str(), shape.c_str(), static_cast<unsigned long long>(opt.seed), report->files,
          report->bytes / 1e9, s, report->bytes / 1e9 / s);
  return 0;
}
