// The Harmony chat format of gpt-oss (docs/gpt-oss.md §6.2–6.4): rendering a conversation into tokens, and
// parsing the generated tokens back into messages and channels as they stream.
//
//   <|start|>{role}[ to={recipient}][<|channel|>{channel}][
//   {content_type}]<|message|>{content}<|end|>
//
// Rendering follows the openai-harmony library (the format's reference implementation): special
// tokens are emitted as ids. Unlike that library, message content is encoded as ordinary text, so
// content that spells "<|end|>" can never close a message; header fields keep formatting tokens
// such as "<|constrain|>". Generation stops on <|return|> or <|call|>, never on
// <|end|> (which ends one message; the model goes on with the next).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/tokenizer.h"

namespace vex::harmony {

// The token that closed a message.
enum class End { kNone, kEnd, kReturn, kCall };

struct Message {
  std::string role = "";          // system, developer, user, assistant, or a tool's name
  std::string recipient = "";     // " to=..." target ("functions.get_weather"), or empty
  std::string channel = "";       // analysis, commentary, final, or empty
  std::string content_type = "";  // "json", "<|constrain|>json", ... or empty
  std::string content = "";
  End end = End::kNone;
};

// The system message (harmony's SystemContent; its defaults).
struct SystemOptions {
  std::string identity = "You are ChatGPT, a large language model trained by OpenAI.";
  std::string knowledge_cutoff = "2024-06";
  std::string reasoning = "medium";  // low, medium or high
  std::string current_date;          // "YYYY-MM-DD", or empty for no date line
};

struct Conversation {
  SystemOptions system;
  std::string developer;          // developer instructions; no developer message when empty
  // The function tools' section (functions_section), rendered into the developer message; the
  // system message then says that calls go to the commentary channel. Empty: no tools.
  std::string tools;
  std::vector<Message> messages;  // user, assistant and tool messages, in order
};

// A function the model may call (an OpenAI "function" tool).
struct Tool {
  std::string name;              // [A-Za-z0-9_-], at most 64 characters
  std::string description = {};  // "" for none
  std::string parameters = {};   // its arguments' JSON Schema (an object), "" for none
};

// The developer message's "# Tools" section for function tools, in the form gpt-oss was trained
// on: "## functions", then "namespace functions { ... }" with one TypeScript-like signature per
// tool, descriptions as // comments, optional properties marked "?", enums as unions of string
// literals, defaults noted. Errors name the tool whose name or schema cannot be used.
absl::StatusOr<std::string> functions_section(const std::vector<Tool>& tools);

// Checks a reasoning effort: low, medium or high.
absl::Status check_reasoning(absl::string_view effort);

// A rendering: token ids, and the same as text (special tokens spelled out) for display.
struct Rendered {
  std::vector<int32_t> tokens;
  std::string text;
};

// Renders the conversation: system message, developer message, then the messages, with the
// history rules of docs/gpt-oss.md §6.4: an assistant message that ended with <|return|> is stored with
// <|end|>, and assistant analysis messages before the last final-channel answer are dropped.
// With for_completion, appends "<|start|>assistant" so the model writes the next message.
Rendered render(const Tokenizer& tok, const Conversation& conv, bool for_completion);

// The system message's text, between <|message|> and <|end|>.
std::string system_text(const SystemOptions& s);

// Parses generated tokens into messages as they arrive. The prompt rendered for completion ends
// inside a header ("<|start|>assistant"), so the parser starts there with that role.
//
// Robust to malformed output (a model with random weights writes any token anywhere): text where
// a header should start is kept as stray text, <|start|> inside content begins a new message,
// and other special tokens inside content are kept as their text.
class StreamParser {
 public:
  explicit StreamParser(const Tokenizer& tok, std::string role = "assistant");

  struct Step {
    std::string content;        // UTF-8 text this token added to the open message's content
    bool message_done = false;  // this token closed a message (messages().back())
    bool stop = false;          // <|return|> or <|call|>: the turn is over
  };
  Step feed(int32_t id);

  // Closed messages, then the open one (if any) as it stands.
  const std::vector<Message>& messages() const { return messages_; }
  // The message whose header or content is being read, or null between messages.
  const Message* open() const { return state_ == State::kBetween ? nullptr : &messages_.back(); }
  bool in_content() const { return state_ == State::kContent; }
  // The open message's content so far while its content is being read; null in a header or
  // between messages.
  const std::string* content() const {
    return in_content() ? &messages_.back().content : nullptr;
  }
  // Text generated outside any message (malformed output).
  const std::string& stray() const { return stray_; }
  bool done() const { return done_; }

 private:
  enum class State { kBetween, kHeader, kContent };
  void begin(std::string role);
  void parse_header();
  std::string close(End end);

  const Tokenizer& tok_;
  int32_t start_, end_, message_, channel_, return_, call_;
  State state_ = State::kBetween;
  std::string header_;  // header text so far; <|channel|> is kept as a marker
  std::optional<StreamDecoder> content_;
  std::vector<Message> messages_;
  std::string stray_;
  bool done_ = false;
};

}  // namespace vex::harmony
