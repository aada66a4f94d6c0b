// HOST experts (docs/architecture.md §4, exact mode): deterministic functions the router calls by firing a
// HOST slot. After the step, the runtime gives the expert the text written so far (the open
// message's content in chat mode, the whole text in raw mode); the expert reads its operands from
// the exact text just before the trigger and either declines (nothing parses: generation goes on
// untouched) or answers with the text to append. Experts never guess: an input they cannot read
// exactly is declined.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

namespace vex {

struct ExpertAnswer {
  std::string inputs;        // what was parsed, for the trace ("127 * 89")
  std::string output;        // the exact result ("11303")
  std::string continuation;  // the text appended to the sequence (" 11303")
};

class HostExpert {
 public:
  virtual ~HostExpert() = default;
  virtual const std::string& name() const = 0;
  // The answer to the question `text` ends with, or nullopt to decline.
  virtual std::optional<ExpertAnswer> answer(std::string_view text) const = 0;
};

// The continuation for `output` after `text`: a space first unless the text already ends in one.
std::string continue_with(std::string_view text, std::string_view output);

// `text` with trailing whitespace removed.
std::string_view trim_end(std::string_view text);

// The builtin experts (each in its own file).
std::unique_ptr<HostExpert> make_calculator();
std::unique_ptr<HostExpert> make_units();
std::unique_ptr<HostExpert> make_finance();
std::unique_ptr<HostExpert> make_interpreter();
std::unique_ptr<HostExpert> make_symbolic();  // GiNaC: derivatives, solving, integrals, radicals
// datetime answers "today" from `now` in `zone`; the default reads the system clock in the local
// time zone (the TZ environment variable, e.g. TZ=Europe/Paris).
std::unique_ptr<HostExpert> make_datetime();
std::unique_ptr<HostExpert> make_datetime(absl::TimeZone zone, std::function<absl::Time()> now);

// The builtins by name (calculator, units, finance, datetime, interpreter, symbolic), from one table in
// experts/registry.cpp; null for other names.
std::vector<std::string> builtin_expert_names();
std::unique_ptr<HostExpert> make_builtin_expert(std::string_view name);

// Names an expert can be attached by: builtins, then those registered (C API). Later
// registrations of a name replace earlier ones.
class ExpertRegistry {
 public:
  ExpertRegistry();  // with the builtins
  void add(std::unique_ptr<HostExpert> expert);
  const HostExpert* find(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  std::vector<std::unique_ptr<HostExpert>> experts_;
};

}  // namespace vex
