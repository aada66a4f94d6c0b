#include "runtime/model.h"

#include "loader/weights_map.h"

namespace vex {

absl::StatusOr<std::unique_ptr<Model>> load_model(const std::string& dir) {
  auto m = std::make_unique<Model>();
  VEX_ASSIGN_OR_RETURN(m->checkpoint, Checkpoint::open(dir));
  VEX_ASSIGN_OR_RETURN(m->weights, map_weights(*m->checkpoint));
  return m;
}

}  // namespace vex
