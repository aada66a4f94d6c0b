// A chat or Responses request body (tools/vexserve/request.cpp) on arbitrary text, read as
// vexserve reads it: refused with an HttpError (400 and a message) or a json::exception (a
// field of another JSON type, which the server answers with a 400), or a conversation that
// renders with the demo model's tokenizer to a prompt of ids in its vocabulary, and whose forced
// function, if any, is one of its tools. The first byte picks the form (odd: Responses).
#include <cstdint>
#include <string>

#include "loader/json_util.h"
#include "runtime/harmony.h"
#include "tests/fuzz/fuzz.h"
#include "tools/vexserve/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using vex::fuzz::check;
  const vex::Tokenizer& tok = vex::fuzz::demo_tokenizer();
  if (size == 0) return 0;
  const bool responses = data[0] & 1;
  auto j = vex::parse_json_text(vex::fuzz::text(data + 1, size - 1), "the request body");
  if (!j.ok() || !j->is_object()) return 0;  // the server refuses these before reading further
  std::string forced;
  vex::harmony::Conversation conv;
  try {
    conv = responses ? vex::serve::responses_conversation(*j, &forced)
                     : vex::serve::chat_conversation(*j, &forced);
  } catch (const vex::serve::HttpError& e) {
    check(e.status == 400 && !e.message.empty(), "a refusal without status 400 or a message");
    return 0;
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  const vex::harmony::Rendered r = vex::harmony::render(tok, conv, /*for_completion=*/true);
  check(!r.tokens.empty(), "an accepted request renders to no tokens");
  for (int32_t id : r.tokens) check(id >= 0 && id < tok.vocab_size(), "id out of the vocabulary");
  check(forced.empty() || conv.tools.find(forced) != std::string::npos,
        "the forced function is not among the tools");
  return 0;
}
