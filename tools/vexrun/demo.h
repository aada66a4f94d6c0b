// The embedded demo model: with no --weights, vexrun and vexprobe run models/vex-demo, the small
// trained gpt-oss-architecture model committed in the repository (models/vex-demo/README.md).
#pragma once

#include <string>

#include "core/status.h"

namespace vex {

// The demo checkpoint directory: $VEX_DEMO_MODEL when set (and then only that), else
// models/vex-demo beside the build folder holding the running binary (build/vexrun ->
// models/vex-demo), else in the source tree this binary was built from. NotFound, naming the
// places looked at, when none holds it.
absl::StatusOr<std::string> demo_model_dir();

}  // namespace vex
