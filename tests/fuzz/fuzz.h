// Shared by the libFuzzer targets (tests/fuzz/README.md): the property checks a target makes on
// what a parser accepted. A failed check aborts, which libFuzzer reports as a crash with the input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/tokenizer.h"

namespace vex::fuzz {

inline void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

inline std::string_view text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The demo model's tokenizer (VEX_DEMO_TOKENIZER, set by tests/fuzz/CMakeLists.txt), loaded once.
inline const Tokenizer& demo_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = [] {
    auto t = Tokenizer::load(VEX_DEMO_TOKENIZER);
    check(t.ok(), "the demo tokenizer does not load");
    return std::move(t).value();
  }();
  return *tok;
}

}  // namespace vex::fuzz
