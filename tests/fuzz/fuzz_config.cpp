// config.json (loader/config_json.cpp) on arbitrary text: refused with an error, or a Config whose
// derived sizes are positive and fit the int products the engines compute.
#include <cstdint>

#include "loader/config_json.h"
#include "loader/json_util.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using vex::fuzz::check;
  auto j = vex::parse_json_text(vex::fuzz::text(data, size), "config.json");
  if (!j.ok()) return 0;
  auto c = vex::parse_config(*j, "config.json");
  if (!c.ok()) {
    check(!c.status().message().empty(), "an error without a message");
    return 0;
  }
  check(vex::validate_config(*c, "config.json").ok(), "parse_config returned an invalid Config");
  const int64_t q = int64_t{c->n_heads} * c->head_dim, kv = int64_t{c->n_kv_heads} * c->head_dim;
  check(q > 0 && q == c->q_dim() && kv > 0 && kv == c->kv_dim(), "head products overflow");
  check(static_cast<int>(c->layer_sliding.size()) == c->n_layers, "layer pattern size");
  check(c->n_experts_active >= 1 && c->n_experts_active <= c->n_experts, "top-k out of range");
  return 0;
}
