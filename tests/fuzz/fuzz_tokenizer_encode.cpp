// Encoding arbitrary bytes with the demo model's tokenizer (models/vex-demo/tokenizer.json):
// every id is in the vocabulary and decoding gives back the input with invalid UTF-8 replaced.
#include <cstdint>

#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using vex::fuzz::check;
  const vex::Tokenizer& tok = vex::fuzz::demo_tokenizer();
  const absl::string_view in(reinterpret_cast<const char*>(data), size);
  const std::vector<int32_t> ids = tok.encode(in, /*allow_special=*/false);
  for (int32_t id : ids) check(id >= 0 && id < tok.vocab_size(), "id out of the vocabulary");
  check(tok.decode(ids) == vex::sanitize_utf8(in), "decode(encode(x)) != sanitize_utf8(x)");
  const std::vector<int32_t> with_special = tok.encode(in, /*allow_special=*/true);
  check(tok.decode(with_special) == vex::sanitize_utf8(in), "special tokens change the text");
  return 0;
}
