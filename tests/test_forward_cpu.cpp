// forward_cpu: KV-cache consistency, layout independence, and bad input.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "runtime/forward_cpu.h"
#include "runtime/model.h"
#include "tests/fixtures.h"

namespace vex {
namespace {

std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % vocab);
  return t;
}

class ForwardCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = load_model(testing::tiny_checkpoint());
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::move(*m);
  }
  std::vector<float> run(const std::vector<int32_t>& tokens, const std::vector<int>& splits,
                         const Model& m) {
    const int V = m.config().vocab_size, n = static_cast<int>(tokens.size());
    std::vector<float> logits(static_cast<size_t>(n) * V, NAN);
    CpuEngine engine(m.config(), m.weights, n);
    int at = 0;
    for (int len : splits) {
      EXPECT_TRUE(engine.forward(std::span(tokens).subspan(at, len), &logits[size_t(at) * V]).ok());
      at += len;
    }
    EXPECT_EQ(at, n);
    EXPECT_EQ(engine.pos(), n);
    return logits;
  }
  std::unique_ptr<Model> model_;
};

// 70 tokens with a window of 16 span four windows. Each token's computation does not depend on
// how the sequence is split into calls (same ops in the same order), so the logits of prefill-
// then-decode are bitwise equal to those of one prefill: tolerance 0.
TEST_F(ForwardCpu, PrefillThenDecodeEqualsOnePrefill) {
  const auto tokens = random_tokens(70, model_->config().vocab_size, 11);
  const auto whole = run(tokens, {70}, *model_);
  std::vector<int> decode = {40};
  for (int i = 0; i < 30; ++i) decode.push_back(1);
  const auto stepped = run(tokens, decode, *model_);
  const auto chunked = run(tokens, {5, 33, 1, 31}, *model_);
  ASSERT_EQ(whole.size(), stepped.size());
  EXPECT_EQ(memcmp(whole.data(), stepped.data(), whole.size() * sizeof(float)), 0);
  EXPECT_EQ(memcmp(whole.data(), chunked.data(), whole.size() * sizeof(float)), 0);
  for (float v : whole) ASSERT_TRUE(std::isfinite(v));
}

TEST_F(ForwardCpu, OriginalLayoutGivesIdenticalLogits) {
  auto orig = load_model(testing::tiny_checkpoint() + "/original");
  ASSERT_TRUE(orig.ok()) << orig.status();
  const auto tokens = random_tokens(20, model_->config().vocab_size, 5);
  const auto a = run(tokens, {20}, *model_), b = run(tokens, {20}, **orig);
  EXPECT_EQ(memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

TEST_F(ForwardCpu, SlidingWindowMatters) {
  // Changing a token more than a window back changes later logits only through full layers;
  // with every layer sliding, a change further back than layers x window cannot reach.
  Config all_sliding = model_->config();
  for (auto& s : all_sliding.layer_sliding) s = 1;
  auto tokens = random_tokens(80, all_sliding.vocab_size, 9);
  auto logits_of = [&](const Config& c, const std::vector<int32_t>& t) {
    std::vector<float> out(size_t(t.size()) * c.vocab_size);
    CpuEngine e(c, model_->weights, static_cast<int>(t.size()));
    EXPECT_TRUE(e.forward(t, out.data()).ok());
    return std::vector<float>(out.end() - c.vocab_size, out.end());  // last position
  };
  auto changed = tokens;
  changed[0] = (changed[0] + 1) % all_sliding.vocab_size;  // 79 positions back > 4 x 15
  EXPECT_EQ(logits_of(all_sliding, tokens), logits_of(all_sliding, changed));
  EXPECT_NE(logits_of(model_->config(), tokens), logits_of(model_->config(), changed));
}

TEST_F(ForwardCpu, BadTokensAndContextOverflow) {
  CpuEngine engine(model_->config(), model_->weights, 4);
  std::vector<int32_t> bad = {1, 201088};
  absl::Status st = engine.forward(bad, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("token id 201088 at position 1"), std::string::npos) << st;
  EXPECT_EQ(engine.pos(), 0) << "nothing ran";
  std::vector<int32_t> five = {1, 2, 3, 4, 5};
  st = engine.forward(five, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("exceeds the context size 4"), std::string::npos) << st;
}

}  // namespace
}  // namespace vex
