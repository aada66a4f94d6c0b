// The runtime side of HOST experts (docs/architecture.md §4): after a step whose last position fired HOST
// slots, the session asks a TriggerHandler what to append. VirtualExperts is the handler vexrun
// and the C API use: it binds the model's HOST slots to experts by name, gives the expert the
// text written so far, and records every firing.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "experts/expert.h"
#include "runtime/engine.h"
#include "runtime/harmony.h"

namespace vex {

struct Model;

// What an expert reads at the end of decoded text in raw mode: the text whole, or where it holds
// Harmony messages, the content of the open assistant message (nothing, nullopt, inside headers,
// between messages, or in a user, system or developer message: a model writing a chat in raw
// text gets its answers, never its user's words, written for it).
std::optional<std::string> expert_reads(std::string_view text);
// Where decoded text ends right where an assistant message's content begins: the last user
// message's content, the request an expert may answer at the start of the reply ("Run this:
// sorted([3,1,4,1,5,9])" -> "[1, 1, 3, 4, 5, 9]"), so a model that would copy the request wrongly
// never has to. Nullopt elsewhere.
std::optional<std::string> expert_request(std::string_view text);

class TriggerHandler {
 public:
  virtual ~TriggerHandler() = default;
  // `fired`: the HOST triggers at the last position of `tokens` (non-empty). Returns the tokens
  // to append instead of sampling (a continuation), or none to go on as if nothing fired.
  virtual absl::StatusOr<std::vector<int32_t>> on_triggers(std::span<const vex_trigger> fired,
                                                           std::span<const int32_t> tokens) = 0;
  // After a continuation the answer is sealed: tokens that would run on into it (a digit right
  // after "11303", or after "11303.") are masked (logit -inf) out of the next samples, so the
  // model cannot turn the exact answer into another one. `after`: the tokens sampled since the
  // continuation. Returns whether this sample is constrained; false ends the seal.
  virtual bool seal(std::span<const int32_t> after, std::span<float> logits) {
    (void)after, (void)logits;
    return false;
  }
};

// One firing of a HOST expert, answered or declined.
struct ExpertFiring {
  std::string expert;
  int layer = 0, pos = 0;
  float weight = 0;
  bool answered = false;
  std::string inputs, output;  // when answered
};

class VirtualExperts final : public TriggerHandler {
 public:
  // Binds each of the model's HOST experts (Model::host_experts) to the registry's expert of that
  // name; an unknown name is an error naming the manifest.
  static absl::StatusOr<std::unique_ptr<VirtualExperts>> bind(const Model& model,
                                                              const ExpertRegistry& registry);

  // The text the expert reads, or nullopt where no text may be injected (chat mode: outside a
  // message's content). Unset: the whole sequence decoded (raw mode).
  std::function<std::optional<std::string>()> text;
  // Chat mode: the expert reads the content of the message `parser` is in, and nothing is
  // injected in headers or between messages. The parser must outlive the generation.
  void read_message_content(const harmony::StreamParser& parser) {
    text = [&parser]() -> std::optional<std::string> {
      const std::string* c = parser.content();
      return c ? std::optional<std::string>(*c) : std::nullopt;
    };
  }
  // Called for every firing (the trace, --trace-experts).
  std::function<void(const ExpertFiring&)> on_firing;

  absl::StatusOr<std::vector<int32_t>> on_triggers(std::span<const vex_trigger> fired,
                                                   std::span<const int32_t> tokens) override;
  // Ends in a letter or digit: no token starting with one may follow; ends in a digit: no digit
  // after a "." or "," either (no "11303.5").
  bool seal(std::span<const int32_t> after, std::span<float> logits) override;
  const std::vector<ExpertFiring>& firings() const { return firings_; }
  void clear() { firings_.clear(); }

 private:
  VirtualExperts(const Model& m) : model_(m) {}
  const Model& model_;
  std::vector<const HostExpert*> experts_;  // by slot.function
  std::vector<ExpertFiring> firings_;
  std::string answer_;          // the last continuation
  std::vector<uint8_t> first_;  // [vocab] per token: kAlnum | kDigit of its first byte, kSeparator
  static constexpr uint8_t kAlnum = 1, kDigit = 2, kSeparator = 4;  // separator: exactly "." or ","
};

}  // namespace vex
