// The interpreter expert: the value of a small Python-style program the text ends with, computed
// by the sandboxed evaluator of experts/pyexpr.h (no files, processes, network or imports;
// bounded steps and memory). Two ways to ask:
//   a REPL block, the trigger after the newline that ends a ">>> " line:
//       ">>> xs = [3, 1, 2]\n>>> sorted(xs)\n"  -> "[1, 2, 3]"
//     every ">>> " line of the block (back to a blank line or a ``` fence) runs in order; other
//     lines are earlier outputs and are skipped;
//   inline code in backticks followed by "=", "is", "returns", "evaluates to", "gives" or "->":
//       "`sum(range(10))` returns"  -> "`45`"
//   a request to run one line, the trigger after the code (or the newline after it):
//       "Run this: sorted([3,1,4,1,5,9])"  -> "[1, 1, 3, 4, 5, 9]" on the next line
//     ("Run this:", "Run:", "Evaluate:", "Execute:", "What does CODE print?" is not read).
// The output is what CPython's REPL shows: what the last statement printed, then the repr of its
// value unless None (in backticks for inline code).
//
// A def may span two REPL lines (">>> def f(x):", "...     return x * 2", "..."); no other
// continuation line is read.
//
// Declines: the last line shows nothing (an assignment, a value None); any Python exception
// (ZeroDivisionError, NameError, ...); syntax outside the subset; other continuation lines
// ("... "); more than 64 statements; the step, memory or nesting budget exhausted.
#include "experts/expert.h"
#include "experts/pyexpr.h"
#include "experts/text.h"

namespace vex {
namespace {

constexpr std::string_view kPrompt = ">>> ";
constexpr size_t kMaxStatements = 64;  // a longer block is declined, not run

// The ">>> " statements of the block the text ends with, or empty when it does not end with one.
std::vector<std::string> repl_block(std::string_view text) {
  if (!text.ends_with('\n')) return {};
  std::vector<std::string_view> lines;
  std::string_view rest = text.substr(0, text.size() - 1);
  for (;;) {
    const size_t nl = rest.rfind('\n');
    const std::string_view line = nl == std::string_view::npos ? rest : rest.substr(nl + 1);
    if (trim_end(line).empty() || line.starts_with("```")) break;
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    rest = rest.substr(0, nl);
  }
  if (lines.empty() || !lines.front().starts_with(kPrompt)) return {};
  std::vector<std::string> statements;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (it->starts_with("...")) {
      // The one continuation read: a def's "return EXPR" body, then "..." ending it.
      std::string_view body = trim_end(it->substr(3));
      while (!body.empty() && body.front() == ' ') body.remove_prefix(1);
      if (body.empty()) continue;
      if (statements.empty() || !statements.back().starts_with("def ") ||
          !statements.back().ends_with(':') || !body.starts_with("return "))
        return {};
      statements.back() += " " + std::string(body);
      continue;
    }
    if (it->starts_with(kPrompt)) statements.emplace_back(trim_end(it->substr(kPrompt.size())));
  }
  if (statements.size() > kMaxStatements) return {};
  return statements;
}

// The code of "`CODE` <marker>" at the end of the text.
std::optional<std::string_view> inline_code(std::string_view text) {
  std::string_view s = trim_end(text);
  bool marked = false;
  for (std::string_view m : {"=", "->", "→", " is", " returns", " evaluates to", " gives"})
    if (s.size() > m.size() && lower(s.substr(s.size() - m.size())) == m) {
      s = trim_end(s.substr(0, s.size() - m.size()));
      marked = true;
      break;
    }
  if (!marked || !s.ends_with('`') || s.ends_with("``")) return std::nullopt;
  s.remove_suffix(1);
  const size_t open = s.rfind('`');
  if (open == std::string_view::npos) return std::nullopt;
  const std::string_view code = s.substr(open + 1);
  if (code.empty() || code.find('\n') != std::string_view::npos) return std::nullopt;
  return code;
}

// The code of "Run this: CODE" (or "Run:", "Evaluate:", "Execute:", "Evaluate this:") that the
// text's last line is, with or without the newline after it.
std::optional<std::string_view> run_request(std::string_view text) {
  std::string_view s = text;
  if (s.ends_with('\n')) s.remove_suffix(1);
  const size_t nl = s.rfind('\n');
  std::string_view line = nl == std::string_view::npos ? s : s.substr(nl + 1);
  for (std::string_view lead : {"run this:", "run:", "evaluate this:", "evaluate:",
                                "execute this:", "execute:", "run this in python:"})
    if (line.size() > lead.size() && lower(line.substr(0, lead.size())) == lead) {
      std::string_view code = line.substr(lead.size());
      while (!code.empty() && code.front() == ' ') code.remove_prefix(1);
      code = trim_end(code);
      if (code.size() >= 2 && code.front() == '`' && code.back() == '`')
        code = code.substr(1, code.size() - 2);
      if (code.empty() || code.find('`') != std::string_view::npos) return std::nullopt;
      return code;
    }
  return std::nullopt;
}

class Interpreter final : public HostExpert {
 public:
  const std::string& name() const override { return name_; }

  std::optional<ExpertAnswer> answer(std::string_view text) const override {
    std::vector<std::string> statements = repl_block(text);
    const bool repl = !statements.empty();
    std::optional<std::string_view> request;
    if (!repl) {
      auto code = inline_code(text);
      if (!code) request = code = run_request(text);
      if (!code) return std::nullopt;
      statements.emplace_back(*code);
    }
    const auto value = py::run(statements);
    if (!value.ok()) return std::nullopt;
    const std::string out = repl || request ? *value : "`" + *value + "`";
    // A run request's output goes on the line after the code.
    const std::string cont = request && !text.ends_with('\n') ? "\n" + out : continue_with(text, out);
    return ExpertAnswer{statements.back(), out, cont};
  }

 private:
  std::string name_ = "interpreter";
};

}  // namespace

std::unique_ptr<HostExpert> make_interpreter() { return std::make_unique<Interpreter>(); }

}  // namespace vex
