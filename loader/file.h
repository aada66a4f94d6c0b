// Reading a whole (small) file as a user named it: a regular file only, and not larger than the
// caller's limit. A directory, a FIFO, a device (/dev/zero) or an oversized file is a one-line
// error naming the path; nothing blocks (opened with O_NONBLOCK) and nothing reads without bound.
#pragma once

#include <cstddef>
#include <string>

#include "core/status.h"

namespace vex {

// Whether something is at `path`: false when nothing is, an error naming the path when the
// system will not say (a name too long, a component that is not a folder, no permission), where
// std::filesystem::exists would throw.
absl::StatusOr<bool> file_present(const std::string& path);

// `what` names the file's role in the error ("the prompt file", "the manifest").
absl::StatusOr<std::string> read_regular_file(const std::string& path, size_t max_bytes,
                                              const char* what = "the file");

}  // namespace vex
