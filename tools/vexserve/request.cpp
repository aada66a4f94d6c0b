#include "tools/vexserve/request.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

namespace vex::serve {

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

std::string content_text(const json& c) {
  if (c.is_string()) return c.get<std::string>();
  if (c.is_null()) return "";
  std::string out;
  if (c.is_array()) {
    for (const json& part : c) {
      const std::string type = part.is_object() ? part.value("type", "") : "";
      if ((type != "text" && type != "input_text" && type != "output_text") ||
          !part.contains("text") || !part["text"].is_string())
        throw HttpError{400, "message content parts must be {\"type\": \"text\", \"text\": ...}",
                        "invalid_request_error", "messages"};
      out += part["text"].get<std::string>();
    }
    return out;
  }
  throw HttpError{400, "message content must be a string or an array of text parts",
                  "invalid_request_error", "messages"};
}

// A reasoning effort (low, medium, high) from `value` when given, named `param` in errors.
void read_effort(const json& value, const char* param, harmony::Conversation* conv) {
  if (value.is_null()) return;
  if (!value.is_string() || !harmony::check_reasoning(value.get<std::string>()).ok())
    throw HttpError{400, std::string("'") + param + "' must be low, medium or high",
                    "invalid_request_error", param};
  conv->system.reasoning = value.get<std::string>();
}

// The request's function tools into conv (unless tool_choice is "none"); returns the function
// a tool_choice names (the call is then forced: the prompt ends with its header), or "".
std::string read_tools(const json& j, bool responses, harmony::Conversation* conv) {
  std::vector<harmony::Tool> tools;
  if (j.contains("tools") && !j["tools"].is_null()) {
    if (!j["tools"].is_array())
      throw HttpError{400, "'tools' must be an array", "invalid_request_error", "tools"};
    for (const json& t : j["tools"]) {
      if (!t.is_object() || t.value("type", "") != "function")
        throw HttpError{400, "only tools of type 'function' are supported", "invalid_request_error",
                        "tools"};
      const json f = responses ? t : t.value("function", json(nullptr));
      if (!f.is_object() || !f.contains("name") || !f["name"].is_string())
        throw HttpError{400, "each tool needs a function 'name'", "invalid_request_error", "tools"};
      harmony::Tool tool{.name = f["name"], .description = "", .parameters = ""};
      if (f.contains("description") && f["description"].is_string())
        tool.description = f["description"];
      if (f.contains("parameters") && !f["parameters"].is_null())
        tool.parameters = dump(f["parameters"]);
      tools.push_back(std::move(tool));
    }
  }
  std::string forced;
  const json choice = j.value("tool_choice", json(nullptr));
  if (choice.is_object()) {
    const json name = responses
                          ? choice.value("name", json(nullptr))
                          : choice.value("function", json::object()).value("name", json(nullptr));
    if (choice.value("type", "") != "function" || !name.is_string())
      throw HttpError{400, "'tool_choice' must be \"auto\", \"none\" or a function by name",
                      "invalid_request_error", "tool_choice"};
    forced = name.get<std::string>();
    if (std::none_of(tools.begin(), tools.end(), [&](const auto& t) { return t.name == forced; }))
      throw HttpError{400, "'tool_choice' names '" + forced + "', which is not in 'tools'",
                      "invalid_request_error", "tool_choice"};
  } else if (choice.is_string() && choice == "required") {
    throw HttpError{
        400, "'tool_choice': \"required\" is not supported; name the function to force a call",
        "invalid_request_error", "tool_choice", "unsupported"};
  } else if (!choice.is_null() && choice != "auto" && choice != "none") {
    throw HttpError{400, "'tool_choice' must be \"auto\", \"none\" or a function by name",
                    "invalid_request_error", "tool_choice"};
  }
  if (tools.empty() || choice == "none") return "";
  auto section = harmony::functions_section(tools);
  if (!section.ok())
    throw HttpError{400, std::string(section.status().message()), "invalid_request_error", "tools"};
  conv->tools = std::move(*section);
  return forced;
}

// Messages of role and content: system and developer messages become the developer
// instructions; user and assistant messages the conversation (assistant ones as final
// answers). Function calls and their results, in the chat form (an assistant message's
// tool_calls, a "tool" message naming its tool_call_id) or the responses form (function_call
// and function_call_output items), become Harmony's commentary messages to and from
// "functions.NAME".
harmony::Conversation conversation(const json& messages, const char* param) {
  harmony::Conversation conv;
  std::map<std::string, std::string> calls;  // call id -> function name
  auto call = [&](const json& id, const json& name, const json& arguments) {
    if (!name.is_string() || !arguments.is_string())
      throw HttpError{400, "a function call needs a 'name' and 'arguments' (a string)",
                      "invalid_request_error", param};
    if (id.is_string()) calls[id.get<std::string>()] = name.get<std::string>();
    conv.messages.push_back({.role = "assistant",
                             .recipient = "functions." + name.get<std::string>(),
                             .channel = "commentary",
                             .content_type = "<|constrain|>json",
                             .content = arguments.get<std::string>(),
                             .end = harmony::End::kCall});
  };
  auto result = [&](const json& id, const std::string& output) {
    const auto it = id.is_string() ? calls.find(id.get<std::string>()) : calls.end();
    if (it == calls.end())
      throw HttpError{400, "a tool result's call id matches no earlier function call",
                      "invalid_request_error", param};
    conv.messages.push_back({.role = "functions." + it->second,
                             .recipient = "assistant",
                             .channel = "commentary",
                             .content = output});
  };
  for (const json& m : messages) {
    if (!m.is_object())
      throw HttpError{400, "each message must be an object", "invalid_request_error", param};
    const std::string type = m.value("type", "message");
    if (type == "function_call") {
      call(m.value("call_id", json(nullptr)), m.value("name", json(nullptr)),
           m.value("arguments", json(nullptr)));
      continue;
    }
    if (type == "function_call_output") {
      const json out = m.value("output", json(nullptr));
      result(m.value("call_id", json(nullptr)),
             out.is_string() ? out.get<std::string>() : dump(out));
      continue;
    }
    if (type != "message" || !m.contains("role") || !m["role"].is_string())
      throw HttpError{400, "each message needs a 'role'", "invalid_request_error", param};
    const std::string role = m["role"];
    const std::string text = content_text(m.value("content", json(nullptr)));
    if (role == "system" || role == "developer") {
      conv.developer += (conv.developer.empty() ? "" : "\n\n") + text;
    } else if (role == "user") {
      conv.messages.push_back({.role = "user", .content = text});
    } else if (role == "assistant" && m.contains("tool_calls") && m["tool_calls"].is_array() &&
               !m["tool_calls"].empty()) {
      // Text beside calls is what the model said before calling (commentary).
      if (!text.empty())
        conv.messages.push_back({.role = "assistant", .channel = "commentary", .content = text});
      for (const json& c : m["tool_calls"]) {
        const json f = c.is_object() ? c.value("function", json(nullptr)) : json(nullptr);
        if (!f.is_object())
          throw HttpError{400, "each tool call needs a 'function'", "invalid_request_error", param};
        call(c.value("id", json(nullptr)), f.value("name", json(nullptr)),
             f.value("arguments", json(nullptr)));
      }
    } else if (role == "assistant") {
      conv.messages.push_back({.role = "assistant", .channel = "final", .content = text});
    } else if (role == "tool") {
      result(m.value("tool_call_id", json(nullptr)), text);
    } else {
      throw HttpError{
          400, "role '" + role + "' is not supported (system, developer, user, assistant, tool)",
          "invalid_request_error", param};
    }
  }
  return conv;
}

}  // namespace

harmony::Conversation chat_conversation(const json& j, std::string* forced) {
  if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
    throw HttpError{400, "'messages' must be a non-empty array", "invalid_request_error",
                    "messages"};
  harmony::Conversation conv;
  read_effort(j.value("reasoning_effort", json(nullptr)), "reasoning_effort", &conv);
  *forced = read_tools(j, /*responses=*/false, &conv);
  harmony::Conversation from = conversation(j["messages"], "messages");
  conv.developer = std::move(from.developer);
  conv.messages = std::move(from.messages);
  return conv;
}

harmony::Conversation responses_conversation(const json& j, std::string* forced) {
  harmony::Conversation conv;
  if (j.contains("instructions") && !j["instructions"].is_null()) {
    if (!j["instructions"].is_string())
      throw HttpError{400, "'instructions' must be a string", "invalid_request_error",
                      "instructions"};
    conv.developer = j["instructions"].get<std::string>();
  }
  if (j.contains("reasoning") && j["reasoning"].is_object())
    read_effort(j["reasoning"].value("effort", json(nullptr)), "reasoning.effort", &conv);
  *forced = read_tools(j, /*responses=*/true, &conv);
  const json input = j.value("input", json(nullptr));
  if (input.is_string()) {
    conv.messages.push_back({.role = "user", .content = input.get<std::string>()});
  } else if (input.is_array() && !input.empty()) {
    harmony::Conversation from = conversation(input, "input");
    if (!from.developer.empty())
      conv.developer += (conv.developer.empty() ? "" : "\n\n") + from.developer;
    conv.messages = std::move(from.messages);
  } else {
    throw HttpError{400, "'input' must be a string or a non-empty array of messages",
                    "invalid_request_error", "input"};
  }
  return conv;
}

}  // namespace vex::serve
