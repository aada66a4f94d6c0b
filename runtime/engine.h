// The interface every backend's forward pass offers the runtime (sessions, the scheduler, the C
// API): KV caches of one or more sequences that grow as tokens are run and can be cut back, and a
// decode step that advances several sequences in one pass. forward_cpu holds one sequence;
// forward_cuda holds many and chooses tokens on the GPU.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "core/slot.h"
#include "core/status.h"
#include "runtime/sampler.h"

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

// One row of a decode step (Engine::decode): `token` is appended to sequence `seq`; then the
// next token is chosen from the row's logits where the engine can (vex::Sampler(sampling) after
// `draws` draws, on the GPU, so that only the token comes back), and the logits are copied to the
// host only where host_logits asks (log-probabilities, masks that only the host knows).
struct DecodeRow {
  int seq = 0;
  int32_t token = 0;
  bool host_logits = true;
  SamplingParams sampling = {};
  uint64_t draws = 0;
};
// A prompt chunk of one sequence (Engine::prefill): `tokens` are appended to sequence `seq`,
// then the next token is chosen from the last one's logits as for a DecodeRow.
struct PrefillChunk {
  int seq = 0;
  std::span<const int32_t> tokens;
  bool host_logits = true;
  SamplingParams sampling = {};
  uint64_t draws = 0;
};
// What an engine chose for a row: the token and the sampler's draw count after it; token -1
// when the engine does not choose (the caller samples the host logits).
struct DecodeChoice {
  int32_t token = -1;
  uint64_t draws = 0;
};

// Routing research (vexprobe, docs/architecture.md): what a MoE layer's router chose for a token.
// The pointers are valid during the call only.
struct RoutingEvent {
  int layer, pos;
  int n_slots, k;
  const float* xn;             // [d_model] the normed MoE input the router read (null when the
                               // observer was set without hidden states)
  const float* residual;       // [d_model] the residual stream it was normed from (the same)
  const float* router_logits;  // [n_slots] one per slot (masked slots -inf)
  const int* slots;            // [k] the chosen slots, best first (forced ones first)
  const float* weights;        // [k] their routing weights (softmax over the chosen logits)
  int seq = 0;                 // the sequence (engines holding several)
};
using RoutingObserver = std::function<void(const RoutingEvent&)>;

// Changes to the routing of the running sequence(s), no manifest and no reload: slots ablated
// (masked out of the router, the chosen ones renormalized as for a pruned model), k changed, or
// slots forced into every token's choice at a layer.
struct RoutingOverride {
  int k = 0;                                // experts per token; 0: the model's
  std::vector<std::pair<int, int>> ablate;  // (layer, slot)
  std::vector<std::pair<int, int>> force;   // (layer, slot)
  bool empty() const { return k == 0 && ablate.empty() && force.empty(); }
  bool operator==(const RoutingOverride&) const = default;
};

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
  // Off: virtual slots (DEVICE and HOST) are masked out of the routing of the selected
  // sequence, as if no manifest had attached them; it then runs exactly as without them. On by
  // default.
  virtual absl::Status set_virtual_experts(bool on) = 0;

  // Sequences side by side in the caches: forward, truncate, pos, set_virtual_experts and
  // triggers act on the selected one (initially 0).
  virtual int n_seqs() const { return 1; }
  virtual absl::Status set_sequence(int seq) {
    if (seq == 0) return absl::OkStatus();
    return absl::OutOfRangeError(
        absl::StrCat("sequence ", seq, " does not exist (the engine holds one)"));
  }
  // One decode step of rows of distinct sequences at once. chosen [rows] receives what the
  // engine chose; logits [rows, vocab] the rows that ask for host logits and every row the
  // engine did not choose for. Afterwards triggers() holds every row's HOST triggers
  // (vex_trigger::seq says whose). This default runs one row through forward() and chooses
  // nothing.
  virtual absl::Status decode(std::span<const DecodeRow> rows, float* logits,
                              DecodeChoice* chosen) {
    if (rows.size() != 1)
      return absl::InvalidArgumentError(absl::StrCat(
          "this engine decodes one sequence per step, not ", rows.size()));
    VEX_RETURN_IF_ERROR(set_sequence(rows[0].seq));
    VEX_RETURN_IF_ERROR(forward(std::span(&rows[0].token, 1), logits,
                                /*last_only=*/true));
    chosen[0] = {-1, rows[0].draws};
    return absl::OkStatus();
  }

  // Prompt chunks of distinct sequences in as few passes as they fit (the scheduler's prefill
  // of several requests at once). chosen [chunks] and logits [chunks, vocab] as for decode(),
  // for each chunk's last token; triggers() then holds every chunk's triggers. This default runs
  // one chunk through forward() and chooses nothing.
  virtual absl::Status prefill(std::span<const PrefillChunk> chunks, float* logits,
                               DecodeChoice* chosen) {
    if (chunks.size() != 1)
      return absl::InvalidArgumentError(absl::StrCat(
          "this engine runs one sequence's prompt per call, not ", chunks.size()));
    VEX_RETURN_IF_ERROR(set_sequence(chunks[0].seq));
    VEX_RETURN_IF_ERROR(forward(chunks[0].tokens, logits, /*last_only=*/true));
    chosen[0] = {-1, chunks[0].draws};
    return absl::OkStatus();
  }

  // Routing capture: `f` is called for every token at every MoE layer (null: off, the default,
  // and free); without `hidden` the events' xn and residual may be null (the GPU then copies
  // back only the logits, slots and weights). Routing overrides, checked against the model (a layer or slot that does not
  // exist, a pruned slot forced, more slots forced than k, k outside 1..min(16, slots)).
  // Engines that cannot do either say so.
  virtual absl::Status set_routing_observer(RoutingObserver f, bool hidden = true) {
    (void)f, (void)hidden;
    return absl::UnimplementedError(
        absl::StrCat("the ", device(), " engine does not capture routing yet (use --device cpu)"));
  }
  virtual absl::Status set_routing_override(const RoutingOverride& o) {
    if (o.empty()) return absl::OkStatus();
    return absl::UnimplementedError(absl::StrCat(
        "the ", device(), " engine does not take routing overrides yet (use --device cpu)"));
  }

  virtual int vocab() const = 0;
  virtual int pos() const = 0;
  virtual const char* device() const = 0;  // "cpu", "cuda"
  virtual int max_ctx() const = 0;
};

}  // namespace vex
