// vexserve's reading of a request's conversation: the chat form (`messages`, `reasoning_effort`)
// and the Responses form (`input`, `instructions`, `reasoning.effort`), with function `tools`
// and `tool_choice`, as a Harmony conversation. Pure functions of the JSON, apart from the
// server, so that fuzz_chat_request reads requests exactly as the server does.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "runtime/harmony.h"

namespace vex::serve {

using json = nlohmann::json;

// An error the client caused (or could retry), as OpenAI's error object.
struct HttpError {
  HttpError(int s, std::string m, std::string t = "invalid_request_error", std::string p = "",
            std::string c = "")
      : status(s),
        message(std::move(m)),
        type(std::move(t)),
        param(std::move(p)),
        code(std::move(c)) {}
  int status;
  std::string message, type, param, code;
};

// Model output may hold invalid UTF-8 (a model writes any bytes): replaced, never thrown on.
std::string dump(const json& j);

// POST /v1/chat/completions: the conversation of `messages`, `reasoning_effort`, `tools` and
// `tool_choice`; *forced is the function a tool_choice names (the call is then forced: the
// prompt ends with its header), or "". Throws HttpError naming the field, or json::exception
// for a field of another JSON type than it is read as.
harmony::Conversation chat_conversation(const json& j, std::string* forced);

// POST /v1/responses: `input` (a string, or messages of role and content, function calls and
// their outputs), `instructions`, `reasoning.effort`, `tools`, `tool_choice`. Throws as above.
harmony::Conversation responses_conversation(const json& j, std::string* forced);

}  // namespace vex::serve
