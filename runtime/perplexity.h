// Perplexity of a text under a model, as llama.cpp's llama-perplexity measures it: the tokens are
// cut into chunks of `ctx`; each chunk runs from an empty cache, and only the second half of its
// positions is scored (the first half is context, so every scored token sees at least ctx/2
// tokens before it). The negative log-likelihood of each scored token is
// -log softmax(logits[j])[token j+1], computed in double.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/status.h"
#include "runtime/engine.h"

namespace vex {

struct Perplexity {
  std::vector<double> chunks;  // each chunk's perplexity: exp(mean NLL of its scored tokens)
  double mean = 0;             // the mean of the chunks' perplexities
  double stderr_mean = 0;      // its standard error (0 with one chunk)
  double overall = 0;          // exp(mean NLL over every scored token)
  int64_t scored = 0;          // tokens scored
  int ctx = 0;                 // chunk size
};

// `engine` must hold at least ctx positions; its selected sequence is cut back (truncate(0))
// before each chunk. `on_chunk` (optional) is told each chunk's perplexity as it is measured.
// Fails when the text has fewer than ctx tokens or ctx < 4.
absl::StatusOr<Perplexity> measure_perplexity(
    Engine& engine, std::span<const int32_t> tokens, int ctx,
    const std::function<void(int chunk, double ppl)>& on_chunk = nullptr);

}  // namespace vex
