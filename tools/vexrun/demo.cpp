#include "tools/vexrun/demo.h"

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "absl/strings/str_join.h"

namespace vex {
namespace fs = std::filesystem;

absl::StatusOr<std::string> demo_model_dir() {
  std::vector<std::string> tried;
  std::error_code ec;
  if (const char* env = std::getenv("VEX_DEMO_MODEL"); env && *env) {
    tried.push_back(env);  // asked for: the only place looked at
  } else {
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) tried.push_back((exe.parent_path().parent_path() / "models/vex-demo").string());
    tried.push_back(std::string(VEX_SOURCE_DIR) + "/models/vex-demo");
  }
  for (const std::string& dir : tried)
    if (fs::exists(fs::path(dir) / "config.json", ec)) return dir;
  return absl::NotFoundError(absl::StrCat("the demo model is not in ", absl::StrJoin(tried, " nor "),
                                          " (set VEX_DEMO_MODEL, or pass --weights DIR)"));
}

}  // namespace vex
