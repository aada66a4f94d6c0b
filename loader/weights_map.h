// The one place where tensor names of both checkpoint layouts map onto the Weights struct.
#pragma once

#include "loader/checkpoint.h"
#include "core/weights.h"

namespace vex {

// Checks every tensor's dtype and shape against the config and points Weights into the map.
// Missing tensors, wrong shapes or dtypes, and tensors gpt-oss does not have are errors.
absl::StatusOr<Weights> map_weights(const Checkpoint& ck);

}  // namespace vex
