// Sampling: each filter against its definition, reproducibility per seed, and the empirical
// distribution against the softmax it samples from.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "runtime/sampler.h"
#include "tests/fixtures.h"

namespace vex {
namespace {

std::vector<float> random_logits(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, 3);
  std::vector<float> l(n);
  for (auto& x : l) x = d(rng);
  return l;
}

std::map<int32_t, int> histogram(const SamplingParams& p, std::span<const float> logits, int n) {
  Sampler s(p);
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) ++h[s.sample(logits)];
  return h;
}

TEST(Sampler, GreedyIsArgmaxWithTiesToLowerId) {
  std::vector<float> l = {1, 5, 2, 5, -1};
  Sampler s({.temperature = 0});
  EXPECT_EQ(s.sample(l), 1);
  Sampler k1({.temperature = 1, .top_k = 1});
  EXPECT_EQ(k1.sample(l), 1);
  const auto big = random_logits(201088, 3);
  EXPECT_EQ(s.sample(big), std::max_element(big.begin(), big.end()) - big.begin());
}

// A temperature so small that logits / T overflow is greedy, never a NaN softmax (which drew the
// last id forever).
TEST(Sampler, TinyTemperatureIsGreedy) {
  const auto big = random_logits(201088, 4);
  const int32_t best = std::max_element(big.begin(), big.end()) - big.begin();
  for (float t : {1e-38f, 1e-30f, 1e-20f}) {
    Sampler s({.temperature = t, .top_p = 0.9f, .seed = 5});
    for (int i = 0; i < 3; ++i) EXPECT_EQ(s.sample(big), best) << t;
  }
}

TEST(Sampler, SameSeedSameTokensOtherSeedOthers) {
  const auto l = random_logits(1000, 1);
  SamplingParams p{.temperature = 1.5f, .seed = 42};
  Sampler a(p), b(p);
  p.seed = 43;
  Sampler c(p);
  int differ = 0;
  for (int i = 0; i < 200; ++i) {
    const int32_t x = a.sample(l);
    EXPECT_EQ(x, b.sample(l));
    differ += x != c.sample(l);
  }
  EXPECT_GT(differ, 100);  // near-uniform over many tokens: two seeds rarely agree
  a.reset();
  Sampler d({.temperature = 1.5f, .seed = 42});
  EXPECT_EQ(a.sample(l), d.sample(l));
}

// Frequencies over 200,000 draws against softmax(l / T): each count is within 5 standard
// deviations of its binomial expectation (a false failure has probability < 1e-5 per token).
TEST(Sampler, FrequenciesFollowTheSoftmax) {
  const std::vector<float> l = {0.5f, 1.0f, -0.3f, 2.0f, 0.0f, 1.2f};
  const float T = 0.8f;
  const int N = 200000;
  const auto h = histogram({.temperature = T, .seed = 7}, l, N);
  double z = 0;
  for (float x : l) z += std::exp(x / T);
  for (size_t i = 0; i < l.size(); ++i) {
    const double p = std::exp(l[i] / T) / z;
    const double sd = std::sqrt(N * p * (1 - p));
    EXPECT_NEAR(h.count(i) ? h.at(i) : 0, N * p, 5 * sd) << "token " << i;
  }
}

TEST(Sampler, TopKKeepsOnlyTheKLargest) {
  const auto l = random_logits(5000, 2);
  std::vector<int> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
  const auto h = histogram({.temperature = 3, .top_k = 5, .seed = 1}, l, 5000);
  EXPECT_EQ(h.size(), 5u);  // temperature 3 flattens: all five appear in 5000 draws
  for (const auto& [id, n] : h)
    EXPECT_NE(std::find(order.begin(), order.begin() + 5, id), order.begin() + 5) << id;
}

// top_p keeps the smallest prefix (by probability) whose mass reaches p. With probabilities
// 0.5, 0.25, 0.125, ... and p = 0.8, that is the first three (0.875); p = 0.75 exactly keeps two.
TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  std::vector<float> l(300);
  for (size_t i = 0; i < l.size(); ++i) l[i] = -static_cast<float>(i) * std::log(2.0f);
  std::shuffle(l.begin(), l.end(), std::mt19937(5));  // the order of ids must not matter
  auto kept = [&](float p) {
    std::set<float> v;
    for (const auto& [id, n] : histogram({.top_p = p, .seed = 3}, l, 4000)) v.insert(l[id]);
    return v.size();
  };
  EXPECT_EQ(kept(0.8f), 3u);
  EXPECT_EQ(kept(0.74f), 2u);
  EXPECT_EQ(kept(0.4f), 1u);
  // A large vocabulary whose nucleus needs more than the first 64 sorted candidates.
  const std::vector<float> flat(201088, 0.0f);
  const auto h = histogram({.top_p = 0.01f, .seed = 9}, flat, 4000);  // ~1,740 distinct expected
  for (const auto& [id, n] : h) EXPECT_LT(id, 2011);  // ties keep the lower ids: 2011 = ceil(1%)
  EXPECT_GT(h.size(), 1500u);
}

TEST(Sampler, MinPDropsTokensBelowAFractionOfTheBest) {
  // probabilities proportional to 1, 0.5, 0.2, 0.05: min_p 0.3 keeps the first two.
  const std::vector<float> l = {0, std::log(0.5f), std::log(0.2f), std::log(0.05f)};
  const auto h = histogram({.min_p = 0.3f, .seed = 4}, l, 3000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_TRUE(h.count(0) && h.count(1));
}

TEST(Sampler, ValidateNamesTheBadField) {
  EXPECT_EQ(validate({.temperature = -1}).message(), "temperature must be >= 0, got -1");
  EXPECT_EQ(validate({.top_k = -2}).message(), "top_k must be >= 0, got -2");
  EXPECT_EQ(validate({.top_p = 0}).message(), "top_p must be in (0, 1], got 0");
  EXPECT_EQ(validate({.min_p = 2}).message(), "min_p must be in [0, 1], got 2");
  EXPECT_TRUE(validate({}).ok());
}

TEST(Sampler, GenerationConfigOverridesDefaults) {
  const std::string dir = testing::temp_dir("gencfg");
  auto write = [&](const std::string& text) {
    std::ofstream(dir + "/generation_config.json") << text;
    return sampling_from_generation_config(dir + "/generation_config.json", {.seed = 5});
  };
  auto p = write(R"({"do_sample": true, "temperature": 0.7, "top_p": 0.9, "top_k": 40})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FLOAT_EQ(p->temperature, 0.7f);
  EXPECT_FLOAT_EQ(p->top_p, 0.9f);
  EXPECT_EQ(p->top_k, 40);
  EXPECT_EQ(p->seed, 5u);
  p = write(R"({"do_sample": false, "temperature": 0.7})");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->temperature, 0);
  p = write(R"({"top_k": "many"})");
  EXPECT_NE(p.status().message().find("generation_config.json: key 'top_k': expected an integer"),
            std::string::npos)
      << p.status();
  // 2^32 + 5 wrapped to 5 through get<int>() before: out of range is refused.
  p = write(R"({"top_k": 4294967301})");
  EXPECT_NE(p.status().message().find("key 'top_k': expected an integer that fits 32 bits"),
            std::string::npos)
      << p.status();
  p = write(R"({"top_p": 3})");
  EXPECT_NE(p.status().message().find("top_p must be in (0, 1]"), std::string::npos);
  auto missing = sampling_from_generation_config(dir + "/none.json", {.top_k = 3});
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->top_k, 3);
}

}  // namespace
}  // namespace vex
