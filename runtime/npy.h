// NumPy .npy (format 1.0) for float32 arrays: the logits dump of vexrun --logits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace vex {

absl::Status write_npy_f32(const std::string& path, const float* data,
                           const std::vector<int64_t>& shape);

struct NpyF32 {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
// Reads a little-endian float32 C-order .npy written by write_npy_f32 or numpy.
absl::StatusOr<NpyF32> read_npy_f32(const std::string& path);

}  // namespace vex
