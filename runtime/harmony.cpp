#include "runtime/harmony.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "loader/json_util.h"

namespace vex::harmony {
namespace {

// Appends special tokens as ids and text as ordinary tokens, keeping a text copy for display.
struct Renderer {
  const Tokenizer& tok;
  Rendered out;
  void special(const char* name) {
    out.tokens.push_back(tok.special_id(name));
    out.text += name;
  }
  // Content is ordinary text. Header fields may hold formatting tokens ("<|constrain|>json").
  void text(absl::string_view s, bool allow_special = false) {
    if (s.empty()) return;
    const auto ids = tok.encode(s, allow_special);
    out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
    out.text.append(s.data(), s.size());
  }
  void message(const Message& m, End end) {
    special("<|start|>");
    text(m.role);
    if (!m.recipient.empty()) text(absl::StrCat(" to=", m.recipient));
    if (!m.channel.empty()) {
      special("<|channel|>");
      text(m.channel);
    }
    if (!m.content_type.empty()) text(absl::StrCat(" ", m.content_type), /*allow_special=*/true);
    special("<|message|>");
    text(m.content);
    special(end == End::kCall ? "<|call|>" : end == End::kReturn ? "<|return|>" : "<|end|>");
  }
};

}  // namespace

absl::Status check_reasoning(absl::string_view effort) {
  if (effort == "low" || effort == "medium" || effort == "high") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("reasoning effort must be low, medium or high, got '", effort, "'"));
}

namespace {

// Schemas keep their properties in the order written (the order a model sees in the prompt).
using Json = nlohmann::ordered_json;

// A JSON Schema as the TypeScript-like type of functions_section; depth: the schema's nesting
// (past 32 levels a type is "any"; parse_json_text already refused documents deeper than 64).
std::string ts_type(const Json& schema, int depth);

std::string ts_literal(const Json& v) {
  return v.is_string() ? Json(v.get<std::string>()).dump() : v.dump();
}

std::string ts_object(const Json& schema, int depth) {
  const Json props = schema.value("properties", Json::object());
  if (!props.is_object() || props.empty()) return "object";
  std::vector<std::string> required;
  if (schema.contains("required") && schema["required"].is_array())
    for (const auto& r : schema["required"])
      if (r.is_string()) required.push_back(r.get<std::string>());
  std::string out = "{\n";
  for (const auto& [name, prop] : props.items()) {
    if (prop.is_object() && prop.contains("description") && prop["description"].is_string())
      for (absl::string_view line : absl::StrSplit(prop["description"].get<std::string>(), '\n'))
        absl::StrAppend(&out, "// ", line, "\n");
    const bool optional = std::find(required.begin(), required.end(), name) == required.end();
    absl::StrAppend(&out, name, optional ? "?" : "", ": ", ts_type(prop, depth + 1), ",");
    if (prop.is_object() && prop.contains("default"))
      absl::StrAppend(&out, " // default: ", ts_literal(prop["default"]));
    out += "\n";
  }
  return out + "}";
}

std::string ts_type(const Json& schema, int depth) {
  if (!schema.is_object() || depth > 32) return "any";
  for (const char* key : {"anyOf", "oneOf"})
    if (schema.contains(key) && schema[key].is_array()) {
      std::vector<std::string> parts;
      for (const auto& s : schema[key]) parts.push_back(ts_type(s, depth + 1));
      return absl::StrJoin(parts, " | ");
    }
  if (schema.contains("enum") && schema["enum"].is_array() && !schema["enum"].empty()) {
    std::vector<std::string> parts;
    for (const auto& v : schema["enum"]) parts.push_back(ts_literal(v));
    return absl::StrJoin(parts, " | ");
  }
  if (schema.contains("const")) return ts_literal(schema["const"]);
  const Json type = schema.value("type", Json());
  if (type.is_array()) {  // ["string", "null"]
    std::vector<std::string> parts;
    for (const auto& t : type) {
      Json one = schema;
      one["type"] = t;
      parts.push_back(ts_type(one, depth + 1));
    }
    return absl::StrJoin(parts, " | ");
  }
  const std::string t = type.is_string() ? type.get<std::string>() : "";
  if (t == "string") return "string";
  if (t == "number" || t == "integer") return "number";
  if (t == "boolean") return "boolean";
  if (t == "null") return "null";
  if (t == "array")
    return schema.contains("items") ? absl::StrCat(ts_type(schema["items"], depth + 1), "[]")
                                    : "any[]";
  if (t == "object" || schema.contains("properties")) return ts_object(schema, depth);
  return "any";
}

}  // namespace

absl::StatusOr<std::string> functions_section(const std::vector<Tool>& tools) {
  std::string out = "## functions\n\nnamespace functions {\n\n";
  for (const Tool& t : tools) {
    if (t.name.empty() || t.name.size() > 64 ||
        !std::all_of(t.name.begin(), t.name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
        }))
      return absl::InvalidArgumentError(absl::StrCat(
          "tool name '", t.name, "' must be 1 to 64 letters, digits, '_' or '-'"));
    for (absl::string_view line : absl::StrSplit(t.description, '\n', absl::SkipEmpty()))
      absl::StrAppend(&out, "// ", line, "\n");
    std::string args = "()";
    if (!t.parameters.empty()) {
      const std::string what = absl::StrCat("tool '", t.name, "' parameters");
      VEX_RETURN_IF_ERROR(check_json_depth(t.parameters, what));
      const Json schema = Json::parse(t.parameters, nullptr, false);
      if (schema.is_discarded())
        return absl::InvalidArgumentError(absl::StrCat(what, ": not valid JSON"));
      if (!schema.is_object())
        return absl::InvalidArgumentError(
            absl::StrCat("tool '", t.name, "': parameters must be a JSON Schema object"));
      const Json props = schema.value("properties", Json::object());
      if (props.is_object() && !props.empty()) args = "(_: " + ts_object(schema, 0) + ")";
    }
    absl::StrAppend(&out, "type ", t.name, " = ", args, " => any;\n\n");
  }
  return out + "} // namespace functions";
}

std::string system_text(const SystemOptions& s) {
  std::string t = s.identity;
  if (!s.knowledge_cutoff.empty()) absl::StrAppend(&t, "\nKnowledge cutoff: ", s.knowledge_cutoff);
  if (!s.current_date.empty()) absl::StrAppend(&t, "\nCurrent date: ", s.current_date);
  absl::StrAppend(&t, "\n\nReasoning: ", s.reasoning,
                  "\n\n# Valid channels: analysis, commentary, final. Channel must be included for "
                  "every message.");
  return t;
}

Rendered render(const Tokenizer& tok, const Conversation& conv, bool for_completion) {
  Renderer r{tok, {}};
  std::string system = system_text(conv.system);
  if (!conv.tools.empty())
    system += "\nCalls to these tools must go to the commentary channel: 'functions'.";
  r.message({.role = "system", .content = system}, End::kEnd);
  std::string developer;
  if (!conv.developer.empty()) developer = absl::StrCat("# Instructions\n\n", conv.developer);
  if (!conv.tools.empty())
    absl::StrAppend(&developer, developer.empty() ? "" : "\n\n", "# Tools\n\n", conv.tools);
  if (!developer.empty()) r.message({.role = "developer", .content = developer}, End::kEnd);
  // Chain of thought is dropped from history once a final answer follows it (docs/gpt-oss.md §6.4).
  size_t last_final = 0;
  for (size_t i = 0; i < conv.messages.size(); ++i)
    if (conv.messages[i].role == "assistant" && conv.messages[i].channel == "final")
      last_final = i + 1;
  for (size_t i = 0; i < conv.messages.size(); ++i) {
    const Message& m = conv.messages[i];
    if (i < last_final && m.role == "assistant" && m.channel == "analysis") continue;
    // A stored answer ends with <|end|>; only a tool call keeps its own ending token.
    r.message(m, m.end == End::kCall ? End::kCall : End::kEnd);
  }
  if (for_completion) {
    r.special("<|start|>");
    r.text("assistant");
  }
  return std::move(r.out);
}

StreamParser::StreamParser(const Tokenizer& tok, std::string role)
    : tok_(tok),
      start_(tok.special_id("<|start|>")),
      end_(tok.special_id("<|end|>")),
      message_(tok.special_id("<|message|>")),
      channel_(tok.special_id("<|channel|>")),
      return_(tok.special_id("<|return|>")),
      call_(tok.special_id("<|call|>")) {
  if (!role.empty()) begin(std::move(role));
}

void StreamParser::begin(std::string role) {
  messages_.push_back({.role = std::move(role)});
  header_.clear();
  state_ = State::kHeader;
}

// "role to=x<|channel|>channel to=y <|constrain|>json": the role comes first unless the prompt
// gave it; "to=" words name the recipient wherever they are; other words after the channel name
// are the content type.
void StreamParser::parse_header() {
  Message& m = messages_.back();
  const size_t at = header_.find("<|channel|>");
  const std::string before = header_.substr(0, at);
  const std::string after = at == std::string::npos ? "" : header_.substr(at + 11);
  std::vector<std::string> types;
  auto words = [&](const std::string& s, bool first_is_name, std::string* name) {
    for (absl::string_view w : absl::StrSplit(s, ' ', absl::SkipWhitespace())) {
      if (first_is_name) {
        *name = std::string(w), first_is_name = false;
      } else if (absl::ConsumePrefix(&w, "to=")) {
        m.recipient = std::string(w);
      } else {
        types.emplace_back(w);
      }
    }
  };
  std::string role;
  words(before, m.role.empty(), &role);
  if (m.role.empty()) m.role = role;
  words(after, true, &m.channel);
  m.content_type = absl::StrJoin(types, " ");
}

std::string StreamParser::close(End end) {
  std::string rest = content_ ? content_->flush() : "";
  messages_.back().content += rest;
  messages_.back().end = end;
  content_.reset();
  state_ = State::kBetween;
  return rest;
}

StreamParser::Step StreamParser::feed(int32_t id) {
  Step step;
  if (done_) return step;
  const bool stop = id == return_ || id == call_;
  switch (state_) {
    case State::kBetween:
      if (id == start_)
        begin("");
      else if (stop)
        step.stop = done_ = true;
      else if (id != end_)
        stray_ += tok_.token_bytes(id);
      break;
    case State::kHeader:
      if (id == message_) {
        parse_header();
        content_.emplace(tok_);
        state_ = State::kContent;
      } else if (id == channel_) {
        header_ += "<|channel|>";
      } else if (id == start_) {  // a header that never opened its content: drop it
        messages_.pop_back();
        begin("");
      } else if (stop || id == end_) {
        parse_header();
        close(stop ? (id == call_ ? End::kCall : End::kReturn) : End::kEnd);
        step.message_done = true;
        step.stop = done_ = stop;
      } else {
        header_ += tok_.token_bytes(id);
      }
      break;
    case State::kContent:
      if (id == end_ || stop) {
        step.content = close(id == end_ ? End::kEnd : id == call_ ? End::kCall : End::kReturn);
        step.message_done = true;
        step.stop = done_ = stop;
      } else if (id == start_) {
        step.content = close(End::kNone);
        step.message_done = true;
        begin("");
      } else if (tok_.is_special(id)) {
        // Content is ordinary text: another special token (<|endoftext|>, which a model's
        // generation_config may list as a stop) cuts the message off and is never shown.
        step.content = close(End::kNone);
        step.message_done = true;
      } else {
        step.content = content_->feed(id);
        messages_.back().content += step.content;
      }
      break;
  }
  return step;
}

}  // namespace vex::harmony
