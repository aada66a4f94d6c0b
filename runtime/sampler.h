// Token sampling from logits (docs/architecture.md §3): greedy, temperature, top-k, top-p, min-p, seeded.
//
// Order, as transformers' logits processors: temperature scales the logits; top-k keeps the k
// largest; softmax; top-p keeps the smallest set of most probable tokens whose mass reaches p;
// min-p keeps tokens with probability >= min_p * (largest probability); the kept probabilities are
// renormalized and one token is drawn. Temperature 0 (or top_k 1) is greedy: the largest logit,
// ties to the lower id. Draws come from a counter-based generator of (seed, draw index), so a
// seed reproduces a run exactly on any machine and no state leaks between sequences.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace vex {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  uint64_t seed = 0;
};

// Checks ranges: temperature >= 0, top_k >= 0, top_p in (0, 1], min_p in [0, 1].
absl::Status validate(const SamplingParams& p);

// The sampling fields of a checkpoint's generation_config.json (temperature, top_k, top_p, min_p,
// do_sample = false meaning greedy) over `base`; absent keys keep base's values. A missing file
// is not an error (base is returned); a malformed one is, naming the file and key.
absl::StatusOr<SamplingParams> sampling_from_generation_config(const std::string& path,
                                                               SamplingParams base);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : p_(p) {}

  // Draws a token from logits [vocab]. Allocates only on the first call (scratch sized to vocab).
  int32_t sample(std::span<const float> logits);

  // Back to the first draw of the seed.
  void reset() { draws_ = 0; }
  // Draws made so far; set_draws continues after a draw made elsewhere with the same
  // parameters (an engine choosing on the GPU, Engine::decode).
  uint64_t draws() const { return draws_; }
  void set_draws(uint64_t n) { draws_ = n; }
  const SamplingParams& params() const { return p_; }

 private:
  double uniform();  // in [0, 1), from (seed, draws_)

  SamplingParams p_;
  uint64_t draws_ = 0;
  std::vector<std::pair<float, int32_t>> cand_;  // (logit or probability, token id)
};

// The largest logit's id, ties to the lower id.
int32_t argmax(std::span<const float> logits);

}  // namespace vex
