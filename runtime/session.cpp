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
  using Clock = std::chrono::steady_clock;
  using ms = std::chrono::duration<double, std::milli>;
  VEX_RETURN_IF_ERROR(validate(opt.sampling));
  cancel_.store(false);
  GenerateResult r;
  r.prompt_tokens = static_cast<int>(prompt.size());
  const auto t0 = Clock::now();
  VEX_RETURN_IF_ERROR(set_tokens(prompt));
  r.reused_tokens = reused_;
  const auto t1 = Clock::now();
  r.prompt_ms = ms(t1 - t0).count();

  Sampler sampler(opt.sampling);
  bool injected_last = false;  // the last tokens came from an expert: its triggers are not re-asked
  bool sealed = false;         // sampling right after an expert's answer
  std::vector<int32_t> after_answer;  // tokens sampled since that answer
  for (;;) {
    if (opt.max_tokens >= 0 && r.generated >= opt.max_tokens) {
      r.reason = StopReason::kMaxTokens;
      break;
    }
    if (opt.experts && !injected_last) {
      VEX_ASSIGN_OR_RETURN(std::vector<int32_t> cont, continuation(*opt.experts));
      if (!cont.empty()) {
        const size_t room = static_cast<size_t>(engine_->max_ctx() - engine_->pos());
        if (opt.max_tokens >= 0)
          cont.resize(std::min<size_t>(cont.size(), opt.max_tokens - r.generated));
        cont.resize(std::min(cont.size(), room));
        if (cont.empty()) {
          r.reason = StopReason::kContextFull;
          break;
        }
        VEX_RETURN_IF_ERROR(append(cont));
        injected_last = true;
        sealed = true;
        after_answer.clear();
        r.injected += static_cast<int>(cont.size());
        bool go_on = true;
        for (int32_t t : cont) {
          ++r.generated;
          if (on_token && !on_token(t)) go_on = false;
        }
        if (!go_on || cancel_.load()) {
          r.reason = go_on ? StopReason::kCancelled : StopReason::kCallback;
          break;
        }
        continue;
      }
    }
    injected_last = false;
    std::span<const float> logits = logits_;
    if (sealed && opt.experts) {  // the expert's answer may not be run on into (TriggerHandler::seal)
      masked_.assign(logits_.begin(), logits_.end());
      sealed = opt.experts->seal(after_answer, masked_);
      if (sealed) logits = masked_;
    }
    const int32_t token = sampler.sample(logits);
    if (sealed) after_answer.push_back(token);
    ++r.generated;
    const bool stop =
        std::find(opt.stop_tokens.begin(), opt.stop_tokens.end(), token) != opt.stop_tokens.end();
    const bool go_on = !on_token || on_token(token);
    // Stop before running a token whose logits nobody will read.
    if (stop)
      r.reason = StopReason::kStopToken;
    else if (!go_on)
      r.reason = StopReason::kCallback;
    else if (cancel_.load())
      r.reason = StopReason::kCancelled;
    else if (r.generated == opt.max_tokens)
      r.reason = StopReason::kMaxTokens;
    else if (engine_->pos() >= engine_->max_ctx())
      r.reason = StopReason::kContextFull;
    else {
      VEX_RETURN_IF_ERROR(append(std::span(&token, 1)));
      continue;
    }
    break;
  }
  r.generate_ms = ms(Clock::now() - t1).count();
  return r;
}

absl::StatusOr<std::vector<int32_t>> Session::continuation(TriggerHandler& experts) {
  std::vector<ExpertTrigger> fired;
  const int last = static_cast<int>(tokens_.size()) - 1;
  for (const ExpertTrigger& t : engine_->triggers())
    if (t.pos == last) fired.push_back(t);
  if (fired.empty()) return std::vector<int32_t>{};
  return experts.on_triggers(fired, tokens_);
}

}  // namespace vex
