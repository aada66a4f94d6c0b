// Session: generation on the tiny model against step-by-step forward_cpu, prefix reuse, stop
// conditions and the context limit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "runtime/forward_cpu.h"
#include "runtime/model.h"
#include "runtime/session.h"
#include "tests/fixtures.h"

namespace vex {
namespace {

class SessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = load_model(testing::tiny_checkpoint());
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::move(*m).release();
  }
  std::unique_ptr<Session> session(int ctx) {
    auto e = make_engine(*model_, ctx);
    EXPECT_TRUE(e.ok());
    return std::make_unique<Session>(std::move(*e));
  }
  static Model* model_;
};
Model* SessionTest::model_ = nullptr;

const std::vector<int32_t> kPrompt = {200006, 17360, 200008, 3575, 553, 17554, 162016, 11};

// Greedy generation equals argmax over forward_cpu's logits run one token at a time.
TEST_F(SessionTest, GreedyGenerationMatchesForwardCpu) {
  auto s = session(64);
  std::vector<int32_t> got;
  auto r = s->generate(kPrompt, {.max_tokens = 10, .sampling = {.temperature = 0}},
                       [&](int32_t t) { return got.push_back(t), true; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->reason, StopReason::kMaxTokens);
  EXPECT_EQ(r->generated, 10);
  ASSERT_EQ(got.size(), 10u);

  const int V = model_->config().vocab_size;
  CpuEngine ref(model_->config(), model_->weights, 64);
  std::vector<float> logits(size_t(kPrompt.size()) * V);
  ASSERT_TRUE(ref.forward(kPrompt, logits.data()).ok());
  int32_t next = argmax(std::span(logits).subspan(size_t(kPrompt.size() - 1) * V, V));
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(got[i], next) << "token " << i;
    ASSERT_TRUE(ref.forward(std::span(&got[i], 1), logits.data()).ok());
    next = argmax(std::span(logits).subspan(0, V));
  }
  // The sequence holds the prompt and the generated tokens but the last (never run).
  EXPECT_EQ(s->tokens().size(), kPrompt.size() + 9);
}

TEST_F(SessionTest, LastOnlyLogitsEqualTheLastRow) {
  const int V = model_->config().vocab_size;
  CpuEngine a(model_->config(), model_->weights, 64), b(model_->config(), model_->weights, 64);
  std::vector<float> all(size_t(kPrompt.size()) * V), last(V, NAN);
  ASSERT_TRUE(a.forward(kPrompt, all.data()).ok());
  ASSERT_TRUE(b.forward(kPrompt, last.data(), /*last_only=*/true).ok());
  EXPECT_EQ(memcmp(last.data(), &all[size_t(kPrompt.size() - 1) * V], V * sizeof(float)), 0);
}

// A second prompt sharing a prefix re-runs only the rest, with the same logits as a fresh run.
TEST_F(SessionTest, SharedPrefixIsReused) {
  auto s = session(64);
  ASSERT_TRUE(s->set_tokens(kPrompt).ok());
  std::vector<int32_t> longer = kPrompt;
  longer.resize(5);
  longer.insert(longer.end(), {9, 8, 7});
  auto r = s->generate(longer, {.max_tokens = 0}, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reused_tokens, 5);
  auto fresh = session(64);
  ASSERT_TRUE(fresh->set_tokens(longer).ok());
  EXPECT_EQ(memcmp(s->logits().data(), fresh->logits().data(), s->logits().size_bytes()), 0);
  // The same prompt again reuses all but the last token (re-run for its logits).
  r = s->generate(longer, {.max_tokens = 0}, nullptr);
  EXPECT_EQ(r->reused_tokens, 7);
}

TEST_F(SessionTest, StopTokenEndsGenerationAndIsNotRun) {
  auto s = session(64);
  std::vector<int32_t> got;
  auto r = s->generate(kPrompt, {.max_tokens = 5, .sampling = {.temperature = 0}},
                       [&](int32_t t) { return got.push_back(t), true; });
  ASSERT_TRUE(r.ok());
  // Make the third greedy token a stop token: generation ends there.
  auto s2 = session(64);
  std::vector<int32_t> got2;
  r = s2->generate(kPrompt,
                   {.max_tokens = 5, .sampling = {.temperature = 0}, .stop_tokens = {got[2]}},
                   [&](int32_t t) { return got2.push_back(t), true; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reason, StopReason::kStopToken);
  EXPECT_EQ(got2, std::vector<int32_t>(got.begin(), got.begin() + 3));
  EXPECT_EQ(s2->tokens().size(), kPrompt.size() + 2);
}

TEST_F(SessionTest, CallbackAndCancelStop) {
  auto s = session(64);
  int n = 0;
  auto r = s->generate(kPrompt, {.max_tokens = 20}, [&](int32_t) { return ++n < 3; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reason, StopReason::kCallback);
  EXPECT_EQ(n, 3);
  r = s->generate(kPrompt, {.max_tokens = 20}, [&](int32_t) { return s->cancel(), true; });
  EXPECT_EQ(r->reason, StopReason::kCancelled);
  EXPECT_EQ(r->generated, 1);
}

// Generating past the context size is a normal stop; a prompt that does not fit is an error.
TEST_F(SessionTest, ContextLimit) {
  auto s = session(12);
  int n = 0;
  auto r = s->generate(kPrompt, {.max_tokens = 100}, [&](int32_t) { return ++n, true; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->reason, StopReason::kContextFull);
  EXPECT_EQ(n, 12 - int(kPrompt.size()) + 1);  // the last token is sampled but never run
  EXPECT_EQ(s->tokens().size(), 12u);
  auto small = session(4);
  r = small->generate(kPrompt, {}, nullptr);
  EXPECT_EQ(r.status().message(), "the prompt is 8 tokens but the context size is 4");
  r = small->generate({}, {}, nullptr);
  EXPECT_EQ(r.status().message(), "the prompt is empty");
  r = small->generate(std::vector<int32_t>{1}, {.sampling = {.top_p = 2}}, nullptr);
  EXPECT_EQ(r.status().message(), "top_p must be in (0, 1], got 2");
}

TEST_F(SessionTest, ModelDefaultsFromGenerationConfig) {
  // vexgen writes the hub's generation_config.json: sampling on, EOS [200002, 199999, 200012].
  EXPECT_EQ(model_->stop_tokens, (std::vector<int32_t>{199999, 200002, 200012}));
  EXPECT_EQ(model_->sampling.temperature, 1.0f);
}

// The CPU engine holds one sequence: asking it for a batch is a clear error, not a crash.
TEST_F(SessionTest, CpuEngineRefusesSeveralSequences) {
  auto e = make_engine(*model_, 64, Device::kCpu, 4);
  EXPECT_EQ(e.status().message(),
            "4 sequences per engine (batched decode) need the CUDA engine; the CPU engine holds "
            "one");
  EXPECT_TRUE(make_engine(*model_, 64, Device::kCpu, 1).ok());
}

}  // namespace
}  // namespace vex
