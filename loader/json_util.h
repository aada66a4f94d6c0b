// Reading JSON files with errors that name the file and the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace vex {

// Reads and parses a whole JSON file; errors name the file (and the byte for syntax errors).
absl::StatusOr<nlohmann::json> read_json_file(const std::string& path);
// Nesting deeper than this is refused before parsing: vex's JSON files nest 3 levels, and
// printing or walking a value recurses once per level (a config.json of 200,000 '[' crashed).
inline constexpr int kMaxJsonDepth = 64;
absl::Status check_json_depth(std::string_view text, const std::string& path);

// The same for JSON text, depth checked; `path` names it in errors.
absl::StatusOr<nlohmann::json> parse_json_text(std::string_view text, const std::string& path);

// A JSON integer that fits int32_t, else nothing (a float, or an integer out of range: get<int>()
// would wrap it silently).
std::optional<int32_t> json_int32(const nlohmann::json& v);

// Typed access to a key of a JSON object: NotFound-style error if missing, InvalidArgument if
// ill-typed; both name `file` and `key`.
class JsonObject {
 public:
  JsonObject(const nlohmann::json& j, std::string file) : j_(j), file_(std::move(file)) {}
  bool has(absl::string_view key) const { return j_.contains(key); }
  absl::StatusOr<int> positive_int(absl::string_view key) const;
  absl::StatusOr<double> number(absl::string_view key) const;
  absl::StatusOr<std::string> string(absl::string_view key) const;
  absl::StatusOr<bool> boolean(absl::string_view key) const;
  // Optional variants: the default when the key is absent or null, an error when ill-typed.
  absl::StatusOr<double> number_or(absl::string_view key, double fallback) const;
  absl::StatusOr<int> positive_int_or(absl::string_view key, int fallback) const;
  absl::StatusOr<bool> boolean_or(absl::string_view key, bool fallback) const;

  const nlohmann::json& json() const { return j_; }
  const std::string& file() const { return file_; }
  absl::Status error(absl::string_view key, absl::string_view what) const;

 private:
  const nlohmann::json& j_;
  std::string file_;
};

}  // namespace vex
