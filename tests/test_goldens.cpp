// forward_cpu against transformers. Oracle: transformers 5.17 GptOssForCausalLM in float32 with
// eager attention and eager experts, on the checkpoint of
//     vexgen --shape tiny --seed 0
// and on the trained demo model, models/vex-demo (golden_demo.safetensors).
// (the command is also recorded in the golden file's metadata). The golden file was written by
// tools/goldens/make_goldens.py on the GPU machine (tools/device/goldens.sh); this test
// regenerates the same checkpoint, byte for byte, and runs forward_cpu on the golden sequences.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "loader/safetensors.h"
#include "runtime/forward_cpu.h"
#include "runtime/model.h"
#include "tests/fixtures.h"

namespace vex {
namespace {

template <typename T>
std::span<const T> view(const SafetensorsFile& f, const std::string& name, DType dt) {
  const TensorInfo* t = f.find(name);
  EXPECT_NE(t, nullptr) << name;
  if (!t) return {};
  EXPECT_EQ(t->dtype, dt) << name;
  return {reinterpret_cast<const T*>(f.data(*t)), static_cast<size_t>(t->numel())};
}

// Runs forward_cpu on every golden sequence of `golden_file` and compares with transformers.
void check_goldens(const std::string& golden_file, const std::string& key,
                   const std::string& source, const std::string& model_dir) {
  auto golden = SafetensorsFile::open(std::string(VEX_TEST_DATA) + "/" + golden_file);
  ASSERT_TRUE(golden.ok()) << golden.status();
  const auto& meta = (*golden)->metadata();
  ASSERT_EQ(meta.at(key), source);
  printf("oracle: %s; its own float32-vs-float64 spread: %s\n", meta.at("oracle").c_str(),
         meta.at("fp32_vs_fp64_max_rel").c_str());

  auto model = load_model(model_dir);
  ASSERT_TRUE(model.ok()) << model.status();
  const int V = (*model)->config().vocab_size;
  auto cols = view<int32_t>(**golden, "cols", DType::kI32);

  double worst_rel = 0, worst_lse = 0;
  int positions = 0;
  for (int s = 0; (*golden)->find("tokens_" + std::to_string(s)); ++s) {
    const std::string k = std::to_string(s);
    auto tokens = view<int32_t>(**golden, "tokens_" + k, DType::kI32);
    auto top_ids = view<int32_t>(**golden, "top_ids_" + k, DType::kI32);
    auto top_logits = view<float>(**golden, "top_logits_" + k, DType::kF32);
    auto col_logits = view<float>(**golden, "col_logits_" + k, DType::kF32);
    auto lse = view<double>(**golden, "lse_" + k, DType::kF64);
    const int n = static_cast<int>(tokens.size()), n_top = static_cast<int>(top_ids.size()) / n;
    const int n_cols = static_cast<int>(cols.size());

    CpuEngine engine((*model)->config(), (*model)->weights, n);
    std::vector<float> logits(static_cast<size_t>(n) * V);
    ASSERT_TRUE(engine.forward(tokens, logits.data()).ok());

    for (int p = 0; p < n; ++p, ++positions) {
      const float* row = &logits[static_cast<size_t>(p) * V];
      const float scale = std::fabs(top_logits[p * n_top]);  // the row's largest |logit| ~ 8-10
      // Tolerance: both sides are fp32 math on identical (exactly decoded) weights; transformers
      // itself differs from float64 by up to 1e-5 of the largest logit (its summation order and
      // fp32 accumulation), and this reference accumulates in double. 5e-5 of the row's scale
      // leaves a 5x margin over the oracle's own error while catching any real mistake (a wrong
      // window, sink or RoPE detail moves logits by 1e-2 or more).
      const float tol = 5e-5f * scale;
      for (int j = 0; j < n_top; ++j) {
        const float ref = top_logits[p * n_top + j], got = row[top_ids[p * n_top + j]];
        ASSERT_LE(std::fabs(got - ref), tol) << "seq " << s << " pos " << p << " top " << j;
        worst_rel = std::max(worst_rel, double(std::fabs(got - ref) / scale));
      }
      for (int j = 0; j < n_cols; ++j) {
        const float ref = col_logits[p * n_cols + j], got = row[cols[j]];
        ASSERT_LE(std::fabs(got - ref), tol) << "seq " << s << " pos " << p << " col " << cols[j];
        worst_rel = std::max(worst_rel, double(std::fabs(got - ref) / scale));
      }
      // Every logit of the row, in aggregate: log-sum-exp agrees to the same tolerance.
      double m = *std::max_element(row, row + V), sum = 0;
      for (int v = 0; v < V; ++v) sum += std::exp(row[v] - m);
      const double got_lse = m + std::log(sum);
      ASSERT_NEAR(got_lse, lse[p], tol) << "seq " << s << " pos " << p;
      worst_lse = std::max(worst_lse, std::fabs(got_lse - lse[p]) / scale);
      // Identical top-5, in order, wherever the oracle's neighbouring logits are more than 2 tol
      // apart (closer ones may swap within the tolerance).
      std::vector<int> order(V);
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + 6, order.end(),
                        [&](int a, int b) { return row[a] > row[b]; });
      for (int j = 0; j < 5; ++j) {
        const float* t = &top_logits[p * n_top + j];
        if (t[0] - t[1] > 2 * tol && (j == 0 || t[-1] - t[0] > 2 * tol)) {
          ASSERT_EQ(order[j], top_ids[p * n_top + j]) << "seq " << s << " pos " << p << " rank " << j;
        }
      }
    }
  }
  EXPECT_GT(positions, 100);
  printf(
      "%d positions: max |cpu - transformers| / max|logit| = %.2e (top-32 and 512 columns), "
      "log-sum-exp %.2e; top-5 identical everywhere\n",
      positions, worst_rel, worst_lse);
}

TEST(Goldens, ForwardCpuMatchesTransformers) {
  check_goldens("golden_tiny.safetensors", "vexgen",
                "vexgen --shape tiny --seed 0 --out /tmp/vex-golden-tiny", testing::tiny_checkpoint(0));
}

// The trained demo model: its weights are not random, so its activations and routing have the
// structure a real checkpoint's have (the MXFP4 experts as exported by tools/train/train.py).
TEST(Goldens, DemoModelMatchesTransformers) {
  check_goldens("golden_demo.safetensors", "source", "models/vex-demo", testing::demo_model());
}

}  // namespace
}  // namespace vex
