#include "tests/fixtures.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <vector>

#include "runtime/sampler.h"
#include "tools/vexgen/vexgen.h"

namespace vex::testing {
namespace fs = std::filesystem;

namespace {
struct TempDirs {
  std::vector<std::string> dirs;
  ~TempDirs() {
    std::error_code ec;
    for (const auto& d : dirs) fs::remove_all(d, ec);
  }
};
TempDirs& temp_dirs() {
  static TempDirs t;
  return t;
}
}  // namespace

Agreement compare_logits(std::span<const float> ref, std::span<const float> got, int n, int V,
                         double threshold) {
  Agreement a;
  std::vector<double> rel(n);
  for (int t = 0; t < n; ++t) {
    const float* r = &ref[size_t(t) * V];
    const float* g = &got[size_t(t) * V];
    double scale = 0, err = 0;
    for (int i = 0; i < V; ++i) {
      scale = std::max(scale, double(std::abs(r[i])));
      err = std::max(err, std::isfinite(g[i]) ? double(std::abs(r[i] - g[i])) : INFINITY);
    }
    rel[t] = err / scale;
    a.over += rel[t] > threshold;
    const int top = argmax(std::span(r, V));
    float second = -INFINITY;
    for (int i = 0; i < V; ++i)
      if (i != top) second = std::max(second, r[i]);
    const bool same = argmax(std::span(g, V)) == top;
    a.top1 += same;
    if (r[top] - second > 0.05 * scale) a.clear++, a.clear_top1 += same;
  }
  std::sort(rel.begin(), rel.end());
  a.median = rel[n / 2], a.p90 = rel[n * 9 / 10], a.max = rel.back();
  printf(
      "relative logit error: median %.3g, p90 %.3g, max %.3g; %d/%d positions over %.0e; "
      "top-1 %d/%d (%d/%d with a clear margin)\n",
      a.median, a.p90, a.max, a.over, n, threshold, a.top1, n, a.clear_top1, a.clear);
  return a;
}

std::string temp_dir(const std::string& tag) {
  std::string tmpl = (fs::temp_directory_path() / ("vex-" + tag + "-XXXXXX")).string();
  if (!mkdtemp(tmpl.data())) std::abort();
  temp_dirs().dirs.push_back(tmpl);
  return tmpl;
}

const std::string& tiny_checkpoint(uint64_t seed) {
  static std::mutex mu;
  static std::map<uint64_t, std::string> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(seed);
  if (it != cache.end()) return it->second;
  GenOptions opt;
  opt.config = *preset_config("tiny");
  opt.seed = seed;
  opt.out = temp_dir("tiny");
  opt.write_original = true;
  auto r = generate_checkpoint(opt);
  if (!r.ok()) {
    fprintf(stderr, "fixture: %s\n", std::string(r.status().message()).c_str());
    std::abort();
  }
  return cache[seed] = opt.out;
}

const std::string& tiny_chat_checkpoint() {
  static const std::string dir = [] {
    std::string d = copy_checkpoint(tiny_checkpoint(0), "tiny_chat");
    fs::copy_file(VEX_TOKENIZER_JSON, d + "/tokenizer.json");
    return d;
  }();
  return dir;
}

std::string demo_model() {
  const char* env = std::getenv("VEX_DEMO_MODEL");
  return env && *env ? env : std::string(VEX_TEST_DATA) + "/../../models/vex-demo";
}

std::string copy_checkpoint(const std::string& from, const std::string& tag) {
  std::string to = temp_dir(tag);
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  return to;
}

}  // namespace vex::testing

namespace vex::testing {

const Tokenizer& tokenizer() {
  static std::unique_ptr<Tokenizer> t = [] {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = Tokenizer::load(VEX_TOKENIZER_JSON);
    if (!r.ok()) {
      fprintf(stderr, "%s (run tools/fetch-tokenizer.sh)\n",
              std::string(r.status().message()).c_str());
      std::abort();
    }
    printf(
        "tokenizer.json loaded in %.0f ms\n",
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    return std::move(*r);
  }();
  return *t;
}

const std::vector<std::string>& mixed_prompts() {
  static const std::vector<std::string> prompts = {
      "127 * 89 = ", "Once upon a time, in a land far away,", "The capital of France is",
      "def f(x):\n    return", "Convert 100 meters to feet:", "What day is today?",
      "In the beginning God created the heaven and the earth. And the earth was without form, "
      "and void; and darkness was upon the face of the deep."};
  return prompts;
}

GenerateOptions mixed_options(const Model& m, size_t i, int base, int step) {
  GenerateOptions o;
  o.sampling = m.sampling;
  o.sampling.temperature = i % 2 ? 0.0f : 0.8f;
  o.sampling.seed = 100 + i;
  o.max_tokens = base + static_cast<int>(i) * step;
  o.stop_tokens = m.stop_tokens;
  return o;
}

absl::StatusOr<std::vector<int32_t>> generate_alone(std::unique_ptr<Engine> engine,
                                                    const RoutingOverride& routing,
                                                    std::span<const int32_t> prompt,
                                                    const GenerateOptions& options) {
  VEX_RETURN_IF_ERROR(engine->set_routing_override(routing));
  Session s(std::move(engine));
  std::vector<int32_t> tokens;
  VEX_RETURN_IF_ERROR(s.generate(prompt, options, [&](int32_t t) {
                         return tokens.push_back(t), true;
                       }).status());
  return tokens;
}

void Collected::collect(size_t i, Request& r) {
  r.on_token = [this, i](int32_t t) {
    std::lock_guard lock(mu);
    tokens[i].push_back(t);
    return true;
  };
  r.on_done = [this, i](const absl::StatusOr<GenerateResult>& res) {
    ASSERT_TRUE(res.ok()) << res.status();
    std::lock_guard lock(mu);
    results[i] = *res;
  };
}

}  // namespace vex::testing
