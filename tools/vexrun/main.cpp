// vexrun: runs a model. For now the token-level interface:
//   vexrun --weights DIR --tokens 1,2,3 [--logits out.npy]
// runs the sequence through forward_cpu, prints the top tokens of the last position, and writes
// the logits of every position as float32 [positions, vocab].
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>

#include "runtime/forward_cpu.h"
#include "runtime/model.h"
#include "runtime/npy.h"
#include "tools/args.h"

namespace {

int fail(const absl::Status& st) {
  fprintf(stderr, "vexrun: %s\n", std::string(st.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace vex;
  std::string weights, logits_path;
  std::vector<int32_t> tokens;
  bool help = false, verbose = false;
  Args args;
  args.value({"--weights", "-m"}, "checkpoint directory (Hugging Face or original/ layout)",
             [&](const std::string& v) {
               weights = v;
               return absl::OkStatus();
             });
  args.value({"--tokens"}, "comma-separated token ids to run",
             [&](const std::string& v) { return parse_int_list("--tokens", v, &tokens); });
  args.value({"--logits"}, "write the logits of every position to this .npy (float32 [n, vocab])",
             [&](const std::string& v) {
               logits_path = v;
               return absl::OkStatus();
             });
  args.flag({"-v", "--verbose"}, "print timings", [&] { verbose = true; });
  args.flag({"--help", "-h"}, "show this help", [&] { help = true; });
  if (absl::Status st = args.parse(argc, argv); !st.ok() || help) {
    if (!st.ok()) fprintf(stderr, "vexrun: %s\n", std::string(st.message()).c_str());
    fprintf(help ? stdout : stderr,
            "usage: vexrun --weights DIR --tokens 1,2,3 [--logits out.npy]\n%s",
            args.usage().c_str());
    return help ? 0 : 2;
  }
  if (weights.empty()) return fail(absl::InvalidArgumentError("--weights DIR is required"));
  if (tokens.empty()) return fail(absl::InvalidArgumentError("--tokens is required"));

  const auto t0 = std::chrono::steady_clock::now();
  auto model = load_model(weights);
  if (!model.ok()) return fail(model.status());
  const Config& c = (*model)->config();
  const auto t1 = std::chrono::steady_clock::now();

  const int n = static_cast<int>(tokens.size());
  std::vector<float> logits(static_cast<size_t>(n) * c.vocab_size);
  CpuEngine engine(c, (*model)->weights, n);
  if (absl::Status st = engine.forward(tokens, logits.data()); !st.ok()) return fail(st);
  const auto t2 = std::chrono::steady_clock::now();

  const float* last = logits.data() + static_cast<size_t>(n - 1) * c.vocab_size;
  std::vector<int> order(c.vocab_size);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + 5, order.end(),
                    [&](int a, int b) { return last[a] > last[b]; });
  printf("position %d top-5:", n - 1);
  for (int i = 0; i < 5; ++i) printf(" %d (%.4f)", order[i], last[order[i]]);
  printf("\n");
  if (!logits_path.empty()) {
    if (absl::Status st = write_npy_f32(logits_path, logits.data(), {n, c.vocab_size}); !st.ok())
      return fail(st);
  }
  if (verbose) {
    using ms = std::chrono::duration<double, std::milli>;
    fprintf(stderr, "vexrun: load %.1f ms, forward_cpu %d tokens %.1f ms (%.1f tok/s)\n",
            ms(t1 - t0).count(), n, ms(t2 - t1).count(), n / (ms(t2 - t1).count() / 1e3));
  }
  return 0;
}
