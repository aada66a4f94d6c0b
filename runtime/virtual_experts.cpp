#include "runtime/virtual_experts.h"

#include <cctype>
#include <cmath>

#include "absl/strings/str_join.h"
#include "runtime/model.h"

namespace vex {

absl::StatusOr<std::unique_ptr<VirtualExperts>> VirtualExperts::bind(
    const Model& model, const ExpertRegistry& registry) {
  auto v = std::unique_ptr<VirtualExperts>(new VirtualExperts(model));
  for (const std::string& name : model.host_experts) {
    const HostExpert* e = registry.find(name);
    if (!e)
      return absl::NotFoundError(absl::StrCat(
          model.manifest_path, ": virtual expert '", name,
          "' is neither a builtin nor registered (known: ", absl::StrJoin(registry.names(), ", "),
          ")"));
    v->experts_.push_back(e);
  }
  return v;
}

std::optional<std::string> expert_reads(std::string_view text) {
  const size_t msg = text.rfind("<|message|>");
  const size_t start = text.rfind("<|start|>");
  if (msg == std::string_view::npos && start == std::string_view::npos) return std::string(text);
  if (msg == std::string_view::npos || (start != std::string_view::npos && start > msg))
    return std::nullopt;  // in a header
  if (start != std::string_view::npos && !text.substr(start + 9).starts_with("assistant"))
    return std::nullopt;
  const std::string_view content = text.substr(msg + 11);
  if (content.find("<|") != std::string_view::npos) return std::nullopt;  // after its end
  return std::string(content);
}

std::optional<std::string> expert_request(std::string_view text) {
  const auto content = expert_reads(text);
  if (!content || !content->empty() || !text.ends_with("<|message|>")) return std::nullopt;
  constexpr std::string_view kUser = "<|start|>user<|message|>";
  const size_t at = text.rfind(kUser);
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view rest = text.substr(at + kUser.size());
  const size_t end = rest.find("<|end|>");
  if (end == std::string_view::npos || rest.substr(0, end).find("<|") != std::string_view::npos)
    return std::nullopt;
  return std::string(rest.substr(0, end));
}

absl::StatusOr<std::vector<int32_t>> VirtualExperts::on_triggers(
    std::span<const vex_trigger> fired, std::span<const int32_t> tokens) {
  std::optional<std::string> written;
  if (text) {
    written = text();
  } else {
    VEX_ASSIGN_OR_RETURN(const Tokenizer* tok, model_.require_tokenizer());
    written = expert_reads(tok->decode(tokens));
  }
  if (!written) return std::vector<int32_t>{};  // not where text is written: nothing to do
  // At the start of a reply the expert reads the user's request (expert_request), and its answer
  // opens the reply.
  std::optional<std::string> request;
  if (written->empty()) {
    VEX_ASSIGN_OR_RETURN(const Tokenizer* tok, model_.require_tokenizer());
    request = expert_request(tok->decode(tokens));
    if (!request) return std::vector<int32_t>{};
  }
  // Each expert fired at this position is asked once (several layers may fire the same one),
  // in the order of the first layer that chose it.
  std::vector<uint32_t> asked;
  for (const vex_trigger& t : fired) {
    const vex_slot& slot = model_.weights.layers[t.layer].slots[t.slot];
    if (std::find(asked.begin(), asked.end(), slot.function) != asked.end()) continue;
    asked.push_back(slot.function);
    const HostExpert& e = *experts_[slot.function];
    ExpertFiring f{e.name(), t.layer, t.pos, t.weight, false, "", ""};
    std::optional<ExpertAnswer> a = e.answer(request ? *request : *written);
    if (a && request) {
      const size_t lead = a->continuation.find_first_not_of(" \n");
      if (lead == std::string::npos) a.reset();  // nothing to open the reply with
      else a->continuation.erase(0, lead);
    }
    if (a) f.answered = true, f.inputs = a->inputs, f.output = a->output;
    firings_.push_back(f);
    if (on_firing) on_firing(f);
    if (a) {
      VEX_ASSIGN_OR_RETURN(const Tokenizer* tok, model_.require_tokenizer());
      answer_ = a->continuation;
      return tok->encode(a->continuation, /*allow_special=*/false);
    }
  }
  return std::vector<int32_t>{};
}

bool VirtualExperts::seal(std::span<const int32_t> after, std::span<float> logits) {
  const Tokenizer* tok = model_.tokenizer.get();
  if (answer_.empty() || !tok || after.size() > 1) return false;
  const unsigned char last = answer_.back();
  if (first_.empty()) {  // token classes, once
    first_.assign(tok->vocab_size(), 0);
    for (int32_t id = 0; id < tok->vocab_size(); ++id) {
      const std::string& b = tok->token_bytes(id);
      if (b.empty() || tok->is_special(id)) continue;
      const unsigned char c = b[0];
      first_[id] = (isalnum(c) ? kAlnum : 0) | (isdigit(c) ? kDigit : 0) |
                   (b == "." || b == "," ? kSeparator : 0);
    }
  }
  uint8_t banned = 0;
  if (after.empty() && isalnum(last)) banned = kAlnum;
  if (after.size() == 1 && isdigit(last) && after[0] < static_cast<int32_t>(first_.size()) &&
      (first_[after[0]] & kSeparator))
    banned = kDigit;
  if (!banned) return false;
  const size_t n = std::min(logits.size(), first_.size());
  for (size_t id = 0; id < n; ++id)
    if (first_[id] & banned) logits[id] = -INFINITY;
  return true;
}

}  // namespace vex
