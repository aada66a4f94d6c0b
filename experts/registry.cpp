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

ExpertRegistry::ExpertRegistry() {
  add(make_calculator());
  add(make_units());
  add(make_finance());
  add(make_datetime());
  add(make_interpreter());
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
