#include "runtime/session.h"

#include <algorithm>
#include <chrono>

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

Session::Session(std::unique_ptr<Engine> engine, int vocab_size)
    : engine_(std::move(engine)), logits_(vocab_size, 0.0f) {}

absl::Status Session::set_tokens(std::span<const int32_t> tokens) {
  if (tokens.empty()) return absl::InvalidArgumentError("the prompt is empty");
  if (static_cast<int64_t>(tokens.size()) > engine_->max_ctx())
    return absl::OutOfRangeError(absl::StrCat(
        "the prompt is ", tokens.size(), " tokens but the context size is ", engine_->max_ctx()));
  // Keep the common prefix, but always re-run at least the last token for its logits.
  size_t keep = std::mismatch(tokens_.begin(), tokens_.end(), tokens.begin(), tokens.end()).first -
                tokens_.begin();
  keep = std::min(keep, tokens.size() - 1);
  keep = engine_->truncate(static_cast<int>(keep));
  tokens_.resize(keep);
  reused_ = static_cast<int>(keep);
  return append(tokens.subspan(keep));
}

absl::Status Session::set_virtual_experts(bool on) {
  if (on == virtual_on_) return absl::OkStatus();
  VEX_RETURN_IF_ERROR(engine_->set_virtual_experts(on));
  virtual_on_ = on;
  engine_->truncate(0);
  tokens_.clear();
  return absl::OkStatus();
}

absl::Status Session::append(std::span<const int32_t> tokens) {
  if (tokens.empty()) return absl::OkStatus();
  VEX_RETURN_IF_ERROR(engine_->forward(tokens, logits_.data(), /*last_only=*/true));
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  return absl::OkStatus();
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
                                             const GenerateOptions& opt) {
  VEX_RETURN_IF_ERROR(validate(opt.sampling));
  Generation g(session, opt);
  session.cancel_.store(false);
  g.r_.prompt_tokens = static_cast<int>(prompt.size());
  const auto t0 = Clock::now();
  VEX_RETURN_IF_ERROR(session.set_tokens(prompt));
  g.r_.reused_tokens = session.reused_;
  g.r_.prompt_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return g;
}

absl::StatusOr<bool> Generation::step(const TokenCallback& on_token) {
  if (done_) return false;
  const auto t0 = Clock::now();
  const auto stop = [&](StopReason why) {
    r_.reason = why;
    done_ = true;
    r_.generate_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    return false;
  };
  Session& s = session_;
  Engine& engine = *s.engine_;
  if (opt_.max_tokens >= 0 && r_.generated >= opt_.max_tokens) return stop(StopReason::kMaxTokens);
  if (opt_.experts && !injected_last_) {
    VEX_ASSIGN_OR_RETURN(std::vector<int32_t> cont, s.continuation(*opt_.experts));
    if (!cont.empty()) {
      const size_t room = static_cast<size_t>(engine.max_ctx() - engine.pos());
      if (opt_.max_tokens >= 0)
        cont.resize(std::min<size_t>(cont.size(), opt_.max_tokens - r_.generated));
      cont.resize(std::min(cont.size(), room));
      if (cont.empty()) return stop(StopReason::kContextFull);
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
      r_.generate_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      return true;
    }
  }
  injected_last_ = false;
  std::span<const float> logits = s.logits_;
  if (sealed_ && opt_.experts) {  // the expert's answer may not be run on into (TriggerHandler::seal)
    s.masked_.assign(s.logits_.begin(), s.logits_.end());
    sealed_ = opt_.experts->seal(after_answer_, s.masked_);
    if (sealed_) logits = s.masked_;
  }
  const int32_t token = sampler_.sample(logits);
  if (opt_.on_sample) opt_.on_sample(logits, token);
  if (sealed_) after_answer_.push_back(token);
  ++r_.generated;
  const bool is_stop =
      std::find(opt_.stop_tokens.begin(), opt_.stop_tokens.end(), token) != opt_.stop_tokens.end();
  const bool go_on = !on_token || on_token(token);
  // Stop before running a token whose logits nobody will read.
  if (is_stop) return stop(StopReason::kStopToken);
  if (!go_on) return stop(StopReason::kCallback);
  if (s.cancel_.load()) return stop(StopReason::kCancelled);
  if (r_.generated == opt_.max_tokens) return stop(StopReason::kMaxTokens);
  if (engine.pos() >= engine.max_ctx()) return stop(StopReason::kContextFull);
  VEX_RETURN_IF_ERROR(s.append(std::span(&token, 1)));
  r_.generate_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return true;
}

absl::StatusOr<std::vector<int32_t>> Session::continuation(TriggerHandler& experts) {
  std::vector<vex_trigger> fired;
  const int last = static_cast<int>(tokens_.size()) - 1;
  for (const vex_trigger& t : engine_->triggers())
    if (t.pos == last) fired.push_back(t);
  if (fired.empty()) return std::vector<int32_t>{};
  return experts.on_triggers(fired, tokens_);
}

}  // namespace vex
