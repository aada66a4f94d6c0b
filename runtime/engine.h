// The interface every backend's forward pass offers the runtime (sessions, the C API, vexrun):
// one sequence's KV cache that grows as tokens are run and can be cut back. forward_cpu
// implements it now; forward_cuda plugs in under the same calls.
#pragma once

#include <cstdint>
#include <span>

#include "core/slot.h"
#include "core/status.h"

namespace vex {

// The checks every Engine::forward makes before running anything: the tokens fit after `pos`
// in `max_ctx`, and every id is in [0, vocab).
inline absl::Status check_tokens(std::span<const int32_t> tokens, int pos, int max_ctx,
                                 int vocab) {
  if (pos + static_cast<int64_t>(tokens.size()) > max_ctx)
    return absl::OutOfRangeError(absl::StrFormat(
        "sequence of %d tokens exceeds the context size %d", pos + tokens.size(), max_ctx));
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      return absl::InvalidArgumentError(absl::StrFormat(
          "token id %d at position %d is outside the vocabulary [0, %d)", tokens[i], i, vocab));
  return absl::OkStatus();
}

class Engine {
 public:
  virtual ~Engine() = default;

  // Runs `tokens` at positions pos() .. pos()+n-1, appending their keys and values to the cache.
  // With last_only, writes the logits of the last token only ([vocab]); otherwise of every token
  // ([n, vocab]). `logits` may be null. Fails, running nothing, when the tokens would not fit in
  // max_ctx() or an id is outside the vocabulary.
  virtual absl::Status forward(std::span<const int32_t> tokens, float* logits,
                               bool last_only = false) = 0;

  // Cuts the cache back to its first n positions (n <= pos()), so that a sequence sharing that
  // prefix continues from there without recomputing it. Returns the positions actually kept,
  // which may be fewer than n when a cache cannot go back that far (ring buffers); the caller
  // re-runs the rest.
  virtual int truncate(int n) = 0;

  // The HOST-slot triggers of the last forward() call, in position order (a layer's records
  // after the layer before it at the same position).
  virtual std::span<const vex_trigger> triggers() const = 0;
  // Off: virtual slots (DEVICE and HOST) are masked out of the routing, as if no manifest had
  // attached them; the model then runs exactly as without them. On by default.
  virtual absl::Status set_virtual_experts(bool on) = 0;

  virtual int pos() const = 0;
  virtual const char* device() const = 0;  // "cpu", "cuda"
  virtual int max_ctx() const = 0;
};

}  // namespace vex
