#include <algorithm>

#include "experts/expert.h"

namespace vex {

std::string continue_with(std::string_view text, std::string_view output) {
  const bool space = !text.empty() && (text.back() == ' ' || text.back() == '\n');
  return space ? std::string(output) : " " + std::string(output);
}

std::string_view trim_end(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n' ||
                           text.back() == '\r'))
    text.remove_suffix(1);
  return text;
}

namespace {
// The builtin experts: the one list of their names and constructors.
struct Builtin {
  std::string_view name;
  std::unique_ptr<HostExpert> (*make)();
};
constexpr Builtin kBuiltins[] = {
    {"calculator", &make_calculator}, {"units", &make_units},
    {"finance", &make_finance},       {"datetime", [] { return make_datetime(); }},
    {"interpreter", &make_interpreter}, {"symbolic", &make_symbolic},
};
}  // namespace

std::vector<std::string> builtin_expert_names() {
  std::vector<std::string> out;
  for (const Builtin& b : kBuiltins) out.emplace_back(b.name);
  return out;
}

std::unique_ptr<HostExpert> make_builtin_expert(std::string_view name) {
  for (const Builtin& b : kBuiltins)
    if (b.name == name) return b.make();
  return nullptr;
}

ExpertRegistry::ExpertRegistry() {
  for (const Builtin& b : kBuiltins) add(b.make());
}

void ExpertRegistry::add(std::unique_ptr<HostExpert> expert) {
  auto it = std::find_if(experts_.begin(), experts_.end(),
                         [&](const auto& e) { return e->name() == expert->name(); });
  if (it != experts_.end())
    *it = std::move(expert);
  else
    experts_.push_back(std::move(expert));
}

const HostExpert* ExpertRegistry::find(std::string_view name) const {
  for (const auto& e : experts_)
    if (e->name() == name) return e.get();
  return nullptr;
}

std::vector<std::string> ExpertRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& e : experts_) out.push_back(e->name());
  return out;
}

}  // namespace vex
