// SHA-256 (FIPS 180-4), for the manifest's check that it is applied to the weights it was made
// for ([base] index_sha256). Small and dependency-free; checked against the FIPS test vectors.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vex {

std::string sha256_hex(std::string_view data);  // 64 lowercase hex digits
absl::StatusOr<std::string> sha256_file_hex(const std::string& path);

}  // namespace vex
