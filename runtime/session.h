// One sequence being generated: an engine's KV cache, the tokens in it, the sampler, and the
// generation loop. vexrun and the C API both drive generation through this class.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "runtime/virtual_experts.h"

namespace vex {

enum class StopReason {
  kStopToken,    // sampled a stop token (reported to the callback, not added to the sequence)
  kMaxTokens,    // generated max_tokens
  kContextFull,  // the sequence filled the context
  kCallback,     // the token callback asked to stop
  kCancelled,    // cancel() was called
};
const char* stop_reason_name(StopReason r);

struct GenerateOptions {
  // Sampled tokens at most (-1: until a stop token or the context is full). A HOST expert's
  // answer is atomic: written whole or not at all, and not counted here.
  int max_tokens = -1;
  SamplingParams sampling = {};
  std::vector<int32_t> stop_tokens = {};
  // HOST experts: when the last position run fired HOST slots, the handler may return a
  // continuation, which is appended (one prefill chunk) and streamed instead of a sampled token.
  // A trigger at the prompt's last position acts on the first generated tokens. Null: triggers
  // are ignored.
  TriggerHandler* experts = nullptr;
  // Called with each sampled token and the logits it was drawn from ([vocab], before the
  // temperature; tokens an expert appended are not sampled and not reported here), before the
  // token callback. For log-probabilities (vexserve's logprobs).
  std::function<void(std::span<const float> logits, int32_t token)> on_sample = {};
};

struct GenerateResult {
  StopReason reason = StopReason::kMaxTokens;
  int prompt_tokens = 0;   // tokens of the prompt
  int reused_tokens = 0;   // of those, already in the cache from an earlier call (not recomputed)
  int generated = 0;       // tokens passed to the callback, the stop token included
  int injected = 0;        // of those, tokens a HOST expert appended (not limited by max_tokens)
  // Wall-clock times: from the start to the prompt's last chunk run (in a scheduler this
  // includes the other requests' steps in between), and from there to the stop.
  double prompt_ms = 0;
  double generate_ms = 0;
};

class Generation;

// One sequence of an engine: the tokens in its cache, the logits of the last one, and what the
// engine chose next. A session may own its engine (sequence 0) or be one of several sessions on
// the sequences of a shared engine (the scheduler's slots on one GPU).
class Session {
 public:
  explicit Session(std::shared_ptr<Engine> engine, int seq = 0);

  // Makes the sequence exactly `tokens`, reusing the longest prefix already in the cache (a chat
  // turn re-runs only the new messages), and leaves the last token's logits in logits().
  absl::Status set_tokens(std::span<const int32_t> tokens);
  // Appends tokens to the sequence; logits() become the last one's.
  absl::Status append(std::span<const int32_t> tokens);

  // Called with each sampled token; returning false stops generation after it. Tokens that end
  // generation (a stop token, a refused one) are reported but not added to the sequence.
  using TokenCallback = std::function<bool(int32_t token)>;
  // set_tokens(prompt), then samples from logits() and appends, token by token, until a stop
  // token, max_tokens, a full context, the callback, or cancel(). A prompt that does not fit the
  // context is an error; filling the context while generating is a normal stop.
  absl::StatusOr<GenerateResult> generate(std::span<const int32_t> prompt,
                                          const GenerateOptions& opt,
                                          const TokenCallback& on_token);

  // Switches the sequence's virtual slots on or off (Engine::set_virtual_experts). The keys and
  // values in the cache were computed under the old routing, so a change drops them: the next
  // prompt is run in full.
  absl::Status set_virtual_experts(bool on);
  // Tells the session its engine now routes with `o` (Engine::set_routing_override, set by the
  // engine's owner: it acts on every sequence). A change drops the cache, as above.
  absl::Status routed_as(const RoutingOverride& o);

  // Asks a running generate() to stop after the current token; safe from any thread.
  void cancel() { cancel_.store(true); }

  const std::vector<int32_t>& tokens() const { return tokens_; }
  std::span<const float> logits() const { return logits_; }  // [vocab] of the last token run
  // False when the last decode step chose the next token on the GPU without copying the logits
  // back (logits() are then older).
  bool logits_current() const { return logits_current_; }
  int max_ctx() const { return engine_->max_ctx(); }
  int seq() const { return seq_; }
  Engine& engine() { return *engine_; }
  const Engine& engine() const { return *engine_; }

  // After `tokens` ran as this sequence's row of Engine::decode or chunk of Engine::prefill:
  // records them, with the last one's logits (null when the engine chose without copying them;
  // may point at logits() itself when the engine wrote them there),
  // the engine's choice, and the call's triggers (this sequence's are kept).
  void ran(std::span<const int32_t> tokens, const float* logits, DecodeChoice choice,
           std::span<const vex_trigger> triggers);

 private:
  friend class Generation;
  // Cuts the cache back to the longest prefix it shares with `tokens` (always leaving at least
  // the last token to run); returns how many tokens were kept.
  int reuse_prefix(std::span<const int32_t> tokens);
  // Empties the selected sequence's cache (its keys and values were computed under a routing
  // that no longer holds).
  void drop_cache();
  // What the HOST triggers at the last position ask to append (empty: none fired or declined).
  absl::StatusOr<std::vector<int32_t>> continuation(TriggerHandler& experts);
  // Keeps the triggers of this sequence.
  void keep_triggers(std::span<const vex_trigger> triggers);

  std::shared_ptr<Engine> engine_;
  int seq_ = 0;
  std::vector<int32_t> tokens_;  // the tokens whose keys and values are in the cache
  RoutingOverride routing_;      // the routing they were computed with
  std::vector<float> logits_;
  std::vector<float> masked_;  // logits_ with the tokens masked that would run on into an answer
  std::vector<vex_trigger> triggers_;  // HOST triggers of the tokens run last
  DecodeChoice choice_;        // the engine's choice of the next token (-1: sample logits_)
  bool logits_current_ = false;
  int reused_ = 0;  // tokens the last set_tokens() kept from the cache
  bool virtual_on_ = true;  // the sequence's virtual slots (engines start with them on)
  std::atomic<bool> cancel_{false};
};

// One generation in progress on a session, advanced a step at a time: Session::generate runs one
// to its end; the scheduler interleaves many, running their decode steps as rows of one
// Engine::decode. A step runs a prompt chunk, or takes a HOST expert's answer, or samples a
// token (or takes the engine's choice), reports it, and leaves it to be run.
class Generation {
 public:
  using TokenCallback = Session::TokenCallback;
  // Checks the options and cuts the session's cache back to the prefix it shares with the
  // prompt; the rest of the prompt runs in the first steps, at most prefill_chunk tokens each
  // (0: no limit).
  static absl::StatusOr<Generation> start(Session& session, std::span<const int32_t> prompt,
                                          const GenerateOptions& opt, int prefill_chunk = 0);

  enum class Next {
    kDone,     // generation has stopped (result().reason says why)
    kRan,      // the step ran its tokens itself (an expert's answer)
    kPrefill,  // prompt tokens are left: run prefill_chunk() in Engine::prefill, then prefilled()
    kDecode,   // a token was chosen and reported: run decode_row() in Engine::decode
  };
  // The next step up to running tokens. Errors leave the generation stopped where it was.
  absl::StatusOr<Next> next(const TokenCallback& on_token);
  // The prompt's next chunk, at most max_tokens (and prefill_chunk) tokens, asking for host
  // logits when the next choice needs them.
  PrefillChunk prefill_chunk(int max_tokens) const;
  // After the chunk ran (Session::ran): n more prompt tokens are in the cache.
  void prefilled(size_t n);
  // The row that runs the token next() chose (Engine::decode), asking for host logits when
  // the next choice needs them.
  DecodeRow decode_row() const;
  // One whole step: next(), and the decode step on the session's engine alone. False once
  // generation has stopped.
  absl::StatusOr<bool> step(const TokenCallback& on_token);

  bool done() const { return done_; }
  bool prefilling() const { return prefilled_ < prompt_.size(); }
  const GenerateResult& result() const { return r_; }

 private:
  using Clock = std::chrono::steady_clock;
  Generation(Session& session, const GenerateOptions& opt)
      : session_(session), opt_(opt), sampler_(opt.sampling) {}
  Next stop(StopReason why);
  bool wants_host_logits() const { return opt_.on_sample || (sealed_ && opt_.experts); }

  Session& session_;
  GenerateOptions opt_;
  Sampler sampler_;
  GenerateResult r_;
  std::vector<int32_t> prompt_;
  size_t prefilled_ = 0;  // prompt tokens in the cache
  int prefill_chunk_ = 0;
  Clock::time_point t0_, gen_t0_;  // start, end of the prompt
  int32_t pending_ = -1;           // the token next() chose, to run
  bool done_ = false;
  bool injected_last_ = false;  // the last tokens came from an expert: its triggers are not re-asked
  bool sealed_ = false;         // sampling right after an expert's answer
  std::vector<int32_t> after_answer_;  // tokens sampled since that answer
};

}  // namespace vex
