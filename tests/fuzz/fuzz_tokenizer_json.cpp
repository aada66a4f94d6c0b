// tokenizer.json (runtime/tokenizer.cpp) on arbitrary text: refused with an error, or a tokenizer
// that encodes a fixed probe text and decodes it back.
#include <cstdint>

#include "runtime/tokenizer.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using vex::fuzz::check;
  auto t = vex::Tokenizer::parse(
      absl::string_view(reinterpret_cast<const char*>(data), size), "tokenizer.json");
  if (!t.ok()) {
    check(!t.status().message().empty(), "an error without a message");
    return 0;
  }
  constexpr absl::string_view kProbe = "Hello, world! 127 * 89 = 11303 <|start|>user";
  const std::vector<int32_t> ids = (*t)->encode(kProbe, /*allow_special=*/false);
  for (int32_t id : ids) check(id >= 0 && id < (*t)->vocab_size(), "id out of the vocabulary");
  check((*t)->decode(ids) == kProbe, "decode(encode(x)) != x");
  return 0;
}
