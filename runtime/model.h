// A loaded model: the mapped checkpoint, its config, and the Weights pointing into it.
#pragma once

#include <memory>
#include <string>

#include "loader/checkpoint.h"
#include "runtime/weights.h"

namespace vex {

struct Model {
  std::unique_ptr<Checkpoint> checkpoint;  // owns the memory maps the weights point into
  Weights weights;
  const Config& config() const { return checkpoint->config(); }
};

absl::StatusOr<std::unique_ptr<Model>> load_model(const std::string& dir);

}  // namespace vex
