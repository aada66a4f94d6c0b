#include "runtime/virtual_experts.h"

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

absl::StatusOr<std::vector<int32_t>> VirtualExperts::on_triggers(
    std::span<const ExpertTrigger> fired, std::span<const int32_t> tokens) {
  std::optional<std::string> written;
  if (text) {
    written = text();
  } else {
    VEX_ASSIGN_OR_RETURN(const Tokenizer* tok, model_.require_tokenizer());
    written = tok->decode(tokens);
  }
  if (!written) return std::vector<int32_t>{};  // not where text is written: nothing to do
  // Each expert fired at this position is asked once (several layers may fire the same one),
  // in the order of the first layer that chose it.
  std::vector<uint32_t> asked;
  for (const ExpertTrigger& t : fired) {
    const vex_slot& slot = model_.weights.layers[t.layer].slots[t.slot];
    if (std::find(asked.begin(), asked.end(), slot.function) != asked.end()) continue;
    asked.push_back(slot.function);
    const HostExpert& e = *experts_[slot.function];
    ExpertFiring f{e.name(), t.layer, t.pos, t.weight, false, "", ""};
    const std::optional<ExpertAnswer> a = e.answer(*written);
    if (a) f.answered = true, f.inputs = a->inputs, f.output = a->output;
    firings_.push_back(f);
    if (on_firing) on_firing(f);
    if (a) {
      VEX_ASSIGN_OR_RETURN(const Tokenizer* tok, model_.require_tokenizer());
      return tok->encode(a->continuation, /*allow_special=*/false);
    }
  }
  return std::vector<int32_t>{};
}

}  // namespace vex
