#include "loader/json_util.h"

#include "loader/file.h"

namespace vex {

absl::StatusOr<nlohmann::json> read_json_file(const std::string& path) {
  VEX_ASSIGN_OR_RETURN(const std::string text, read_regular_file(path, 64 << 20, "the JSON file"));
  return parse_json_text(text, path);
}

absl::Status check_json_depth(std::string_view text, const std::string& path) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": invalid JSON: nested deeper than ", kMaxJsonDepth, " levels at byte ", i));
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> parse_json_text(std::string_view text, const std::string& path) {
  VEX_RETURN_IF_ERROR(check_json_depth(text, path));
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": invalid JSON: ", e.what()));
  }
}

absl::Status JsonObject::error(absl::string_view key, absl::string_view what) const {
  return absl::InvalidArgumentError(absl::StrCat(file_, ": key '", key, "': ", what));
}

namespace {
std::string shown(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 40) + "..." : s;
}
}  // namespace

std::optional<int32_t> json_int32(const nlohmann::json& v) {
  constexpr int64_t lo = INT32_MIN, hi = INT32_MAX;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) return std::nullopt;
    return static_cast<int32_t>(u);
  }
  if (!v.is_number_integer()) return std::nullopt;
  const int64_t i = v.get<int64_t>();
  if (i < lo || i > hi) return std::nullopt;
  return static_cast<int32_t>(i);
}

absl::StatusOr<int> JsonObject::positive_int(absl::string_view key) const {
  if (!has(key)) return error(key, "missing");
  const auto& v = j_[std::string(key)];
  const std::optional<int32_t> i = json_int32(v);
  if (!i || *i <= 0 || *i > (1 << 30))
    return error(key, absl::StrCat("expected a positive integer, got ", shown(v)));
  return *i;
}

absl::StatusOr<double> JsonObject::number(absl::string_view key) const {
  if (!has(key)) return error(key, "missing");
  const auto& v = j_[std::string(key)];
  if (!v.is_number()) return error(key, absl::StrCat("expected a number, got ", shown(v)));
  return v.get<double>();
}

absl::StatusOr<std::string> JsonObject::string(absl::string_view key) const {
  if (!has(key)) return error(key, "missing");
  const auto& v = j_[std::string(key)];
  if (!v.is_string()) return error(key, absl::StrCat("expected a string, got ", shown(v)));
  return v.get<std::string>();
}

absl::StatusOr<bool> JsonObject::boolean(absl::string_view key) const {
  if (!has(key)) return error(key, "missing");
  const auto& v = j_[std::string(key)];
  if (!v.is_boolean()) return error(key, absl::StrCat("expected true or false, got ", shown(v)));
  return v.get<bool>();
}

absl::StatusOr<double> JsonObject::number_or(absl::string_view key, double fallback) const {
  if (!has(key) || j_[std::string(key)].is_null()) return fallback;
  return number(key);
}

absl::StatusOr<int> JsonObject::positive_int_or(absl::string_view key, int fallback) const {
  if (!has(key) || j_[std::string(key)].is_null()) return fallback;
  return positive_int(key);
}

absl::StatusOr<bool> JsonObject::boolean_or(absl::string_view key, bool fallback) const {
  if (!has(key) || j_[std::string(key)].is_null()) return fallback;
  return boolean(key);
}

}  // namespace vex
