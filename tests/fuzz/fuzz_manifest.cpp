// Expert manifests (loader/manifest.cpp) on arbitrary TOML text, against the demo model's config;
// the file is named as if it lay beside the demo model, so seed manifests find their sidecars.
#include <cstdint>

#include "loader/config_json.h"
#include "loader/json_util.h"
#include "loader/manifest.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using vex::fuzz::check;
  static const vex::Config config = [] {
    auto j = vex::read_json_file(VEX_DEMO_MODEL "/config.json");
    check(j.ok(), "the demo config does not read");
    auto c = vex::parse_config(*j, "config.json");
    check(c.ok(), "the demo config does not parse");
    return *c;
  }();
  auto m = vex::parse_manifest(std::string(vex::fuzz::text(data, size)),
                               VEX_DEMO_MODEL "/fuzz.toml", config);
  if (!m.ok()) check(!m.status().message().empty(), "an error without a message");
  return 0;
}
