#include "experts/text.h"

#include <array>

#include "experts/expert.h"

namespace vex {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_hedge(std::string_view word) {
  static constexpr std::array<std::string_view, 12> kHedges = {
      "approximately", "approx", "about", "roughly", "around", "nearly",
      "almost",        "circa",  "~",     "≈",       "ca",     "some"};
  const std::string w = lower(word);
  for (std::string_view h : kHedges)
    if (w == h) return true;
  return false;
}

std::optional<std::string_view> question_line(std::string_view text) {
  std::string_view s = trim_end(text);
  if (const size_t nl = s.rfind('\n'); nl != std::string_view::npos) s = s.substr(nl + 1);
  if (s.ends_with('=')) {
    s.remove_suffix(1);
    if (s.ends_with('=') || s.ends_with('<') || s.ends_with('>') || s.ends_with('!'))
      return std::nullopt;
  } else if (s.ends_with(':')) {
    s.remove_suffix(1);
  } else {
    bool found = false;
    for (std::string_view m : {" is", " are", " was", " equals", " comes to", " of"})
      if (s.size() > m.size() && lower(s.substr(s.size() - m.size())) == m) {
        s.remove_suffix(m.size());
        found = true;
        break;
      }
    if (!found) return std::nullopt;
  }
  s = trim_end(s);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

std::vector<std::string_view> words(std::string_view s) {
  static constexpr std::string_view kPunct = ",;:()?!\"'";
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != '\n') ++j;
    std::string_view w = s.substr(i, j - i);
    while (!w.empty() && kPunct.find(w.front()) != std::string_view::npos) w.remove_prefix(1);
    while (!w.empty() && kPunct.find(w.back()) != std::string_view::npos) w.remove_suffix(1);
    while (w.ends_with('.')) w.remove_suffix(1);
    if (!w.empty()) out.push_back(w);
    i = j;
  }
  return out;
}

}  // namespace vex
