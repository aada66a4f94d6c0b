#include "runtime/session.h"

#include <algorithm>
#include <chrono>
#include <limits>

namespace vex {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kStopToken:
      return "stop_token";
    case StopReason::kMaxTokens:
      return "max_tokens";
    case StopReason::kContextFull:
      return "context_full";
    case StopReason::kCallback:
      return "callback";
    case StopReason::kCancelled:
      return "cancelled";
  }
  return "?";
}

Session::Session(std::shared_ptr<Engine> engine, int seq)
    : engine_(std::move(engine)), seq_(seq), logits_(engine_->vocab(), 0.0f) {}

int Session::reuse_prefix(std::span<const int32_t> tokens) {
  // Keep the common prefix, but always re-run at least the last token for its logits.
  size_t keep = std::mismatch(tokens_.begin(), tokens_.end(), tokens.begin(), tokens.end()).first -
                tokens_.begin();
  keep = std::min(keep, tokens.size() - 1);
  (void)engine_->set_sequence(seq_);  // in range: sessions are made on the engine's sequences
  keep = engine_->truncate(static_cast<int>(keep));
  tokens_.resize(keep);
  choice_ = {};
  return reused_ = static_cast<int>(keep);
}

absl::Status Session::set_tokens(std::span<const int32_t> tokens) {
  if (tokens.empty()) return absl::InvalidArgumentError("the prompt is empty");
  if (static_cast<int64_t>(tokens.size()) > engine_->max_ctx())
    return absl::OutOfRangeError(absl::StrCat(
        "the prompt is ", tokens.size(), " tokens but the context size is ", engine_->max_ctx()));
  return append(tokens.subspan(reuse_prefix(tokens)));
}

absl::Status Session::set_virtual_experts(bool on) {
  if (on == virtual_on_) return absl::OkStatus();
  VEX_RETURN_IF_ERROR(engine_->set_sequence(seq_));
  VEX_RETURN_IF_ERROR(engine_->set_virtual_experts(on));
  virtual_on_ = on;
  drop_cache();
  return absl::OkStatus();
}

absl::Status Session::routed_as(const RoutingOverride& o) {
  if (o == routing_) return absl::OkStatus();
  VEX_RETURN_IF_ERROR(engine_->set_sequence(seq_));
  routing_ = o;
  drop_cache();
  return absl::OkStatus();
}

void Session::drop_cache() {
  engine_->truncate(0);  // the sequence is selected
  tokens_.clear();
  choice_ = {};
}

absl::Status Session::append(std::span<const int32_t> tokens) {
  if (tokens.empty()) return absl::OkStatus();
  VEX_RETURN_IF_ERROR(engine_->set_sequence(seq_));
  VEX_RETURN_IF_ERROR(engine_->forward(tokens, logits_.data(), /*last_only=*/true));
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  choice_ = {};
  logits_current_ = true;
  keep_triggers(engine_->triggers());
  return absl::OkStatus();
}

void Session::ran(std::span<const int32_t> tokens, const float* logits, DecodeChoice choice,
                  std::span<const vex_trigger> triggers) {
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  if (logits && logits != logits_.data())
    std::copy(logits, logits + logits_.size(), logits_.begin());
  logits_current_ = logits != nullptr;
  choice_ = choice;
  keep_triggers(triggers);
}

void Session::keep_triggers(std::span<const vex_trigger> triggers) {
  triggers_.clear();
  for (const vex_trigger& t : triggers)
    if (t.seq == seq_) triggers_.push_back(t);
}

absl::StatusOr<GenerateResult> Session::generate(std::span<const int32_t> prompt,
                                                 const GenerateOptions& opt,
                                                 const TokenCallback& on_token) {
  VEX_ASSIGN_OR_RETURN(Generation g, Generation::start(*this, prompt, opt));
  for (;;) {
    VEX_ASSIGN_OR_RETURN(const bool more, g.step(on_token));
    if (!more) return g.result();
  }
}

absl::StatusOr<Generation> Generation::start(Session& session, std::span<const int32_t> prompt,
                                             const GenerateOptions& opt, int prefill_chunk) {
  VEX_RETURN_IF_ERROR(validate(opt.sampling));
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  if (static_cast<int64_t>(prompt.size()) > session.max_ctx())
    return absl::OutOfRangeError(absl::StrCat("the prompt is ", prompt.size(),
                                              " tokens but the context size is ",
                                              session.max_ctx()));
  Generation g(session, opt);
  g.t0_ = g.gen_t0_ = Clock::now();
  session.cancel_.store(false);
  g.r_.prompt_tokens = static_cast<int>(prompt.size());
  g.prompt_.assign(prompt.begin(), prompt.end());
  g.prefilled_ = session.reuse_prefix(prompt);
  g.r_.reused_tokens = session.reused_;
  g.prefill_chunk_ = prefill_chunk;
  return g;
}

Generation::Next Generation::stop(StopReason why) {
  r_.reason = why;
  done_ = true;
  r_.generate_ms = std::chrono::duration<double, std::milli>(Clock::now() - gen_t0_).count();
  return Next::kDone;
}

absl::StatusOr<Generation::Next> Generation::next(const TokenCallback& on_token) {
  if (done_) return Next::kDone;
  Session& s = session_;
  if (s.cancel_.load()) return stop(StopReason::kCancelled);
  if (prefilling()) return Next::kPrefill;
  // max_tokens counts sampled tokens: an expert's answer is atomic, never cut by the limit.
  const int sampled = r_.generated - r_.injected;
  if (opt_.max_tokens >= 0 && sampled >= opt_.max_tokens) return stop(StopReason::kMaxTokens);
  if (opt_.experts && !injected_last_) {
    VEX_ASSIGN_OR_RETURN(std::vector<int32_t> cont, s.continuation(*opt_.experts));
    if (!cont.empty()) {
      // An answer that does not fit the context whole is not written at all.
      const size_t room = static_cast<size_t>(s.max_ctx() - static_cast<int>(s.tokens_.size()));
      if (cont.size() > room) return stop(StopReason::kContextFull);
      VEX_RETURN_IF_ERROR(s.append(cont));
      injected_last_ = true;
      sealed_ = true;
      after_answer_.clear();
      r_.injected += static_cast<int>(cont.size());
      bool go_on = true;
      for (int32_t t : cont) {
        ++r_.generated;
        if (on_token && !on_token(t)) go_on = false;
      }
      if (!go_on) return stop(StopReason::kCallback);
      if (s.cancel_.load()) return stop(StopReason::kCancelled);
      return Next::kRan;
    }
  }
  injected_last_ = false;
  int32_t token;
  if (s.choice_.token >= 0 && !wants_host_logits()) {
    token = s.choice_.token;  // the engine drew it as sampler_ would have
    sampler_.set_draws(s.choice_.draws);
  } else {
    std::span<const float> logits = s.logits_;
    if (sealed_ && opt_.experts) {  // the expert's answer may not be run on into (seal)
      s.masked_.assign(s.logits_.begin(), s.logits_.end());
      sealed_ = opt_.experts->seal(after_answer_, s.masked_);
      if (sealed_) logits = s.masked_;
    }
    token = sampler_.sample(logits);
    if (opt_.on_sample) opt_.on_sample(logits, token);
  }
  s.choice_ = {};
  if (sealed_) after_answer_.push_back(token);
  ++r_.generated;
  const bool is_stop =
      std::find(opt_.stop_tokens.begin(), opt_.stop_tokens.end(), token) != opt_.stop_tokens.end();
  const bool go_on = !on_token || on_token(token);
  // Stop before running a token whose logits nobody will read.
  if (is_stop) return stop(StopReason::kStopToken);
  if (!go_on) return stop(StopReason::kCallback);
  if (s.cancel_.load()) return stop(StopReason::kCancelled);
  if (r_.generated - r_.injected == opt_.max_tokens) return stop(StopReason::kMaxTokens);
  if (static_cast<int>(s.tokens_.size()) >= s.max_ctx()) return stop(StopReason::kContextFull);
  pending_ = token;
  return Next::kDecode;
}

PrefillChunk Generation::prefill_chunk(int max_tokens) const {
  size_t n = std::min<size_t>(prompt_.size() - prefilled_, std::max(max_tokens, 1));
  if (prefill_chunk_ > 0) n = std::min<size_t>(n, prefill_chunk_);
  return PrefillChunk{.seq = session_.seq_,
                      .tokens = std::span(prompt_).subspan(prefilled_, n),
                      .host_logits = wants_host_logits(),
                      .sampling = opt_.sampling,
                      .draws = sampler_.draws()};
}

void Generation::prefilled(size_t n) {
  prefilled_ += n;
  if (!prefilling()) {
    gen_t0_ = Clock::now();
    r_.prompt_ms = std::chrono::duration<double, std::milli>(gen_t0_ - t0_).count();
  }
}

DecodeRow Generation::decode_row() const {
  // The next choice needs the host's logits when they are reported (on_sample) or masked
  // after an expert's answer (seal); otherwise the engine may choose on its own.
  return DecodeRow{.seq = session_.seq_,
                   .token = pending_,
                   .host_logits = wants_host_logits(),
                   .sampling = opt_.sampling,
                   .draws = sampler_.draws()};
}

absl::StatusOr<bool> Generation::step(const TokenCallback& on_token) {
  VEX_ASSIGN_OR_RETURN(const Next n, next(on_token));
  if (n == Next::kDone) return false;
  Session& s = session_;
  float* logits = s.logits_.data();  // the engine writes the last token's logits in place
  DecodeChoice choice;
  if (n == Next::kPrefill) {
    const PrefillChunk chunk = prefill_chunk(std::numeric_limits<int>::max());
    VEX_RETURN_IF_ERROR(s.engine_->prefill(std::span(&chunk, 1), logits, &choice));
    s.ran(chunk.tokens, choice.token < 0 || chunk.host_logits ? logits : nullptr, choice,
          s.engine_->triggers());
    prefilled(chunk.tokens.size());
  } else if (n == Next::kDecode) {
    const DecodeRow row = decode_row();
    VEX_RETURN_IF_ERROR(s.engine_->decode(std::span(&row, 1), logits, &choice));
    s.ran(std::span(&row.token, 1), choice.token < 0 || row.host_logits ? logits : nullptr,
          choice, s.engine_->triggers());
  }
  return true;
}

absl::StatusOr<std::vector<int32_t>> Session::continuation(TriggerHandler& experts) {
  std::vector<vex_trigger> fired;
  const int last = static_cast<int>(tokens_.size()) - 1;
  for (const vex_trigger& t : triggers_)
    if (t.pos == last) fired.push_back(t);
  if (fired.empty()) return std::vector<int32_t>{};
  return experts.on_triggers(fired, tokens_);
}

}  // namespace vex
