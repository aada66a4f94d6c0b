// A sandboxed evaluator of small Python-style programs for the interpreter expert: assignments
// and expressions over None, bool, int (arbitrary precision), float (IEEE double, Python's
// rounding and repr), str, list, tuple and range, with the operators, comparisons, conditional
// expressions, comprehensions and generator expressions of Python 3, and the builtins
//   abs all any bool divmod enumerate float int len list max min range reversed round sorted
//   str sum tuple zip
// and print (its text is what the REPL shows), f-strings without conversions or format specs,
// plus the str methods count endswith find join
// lower replace split startswith strip upper and
// the list/tuple methods count index. Results are Python's, bit for bit (sum adds left to right
// as Python 3.11 does). There is nothing else: no imports, attributes, files, processes or
// network; every program runs within a step and a memory budget.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vex::py {

struct Limits {
  int64_t steps = 1000000;      // evaluated nodes and iterated elements
  int64_t bytes = 16ll << 20;   // bytes of values created (strings, lists, integers)
};

// Runs `statements` in order ("x = 5", "y += 1", expressions) and returns the repr of the last
// one, which must be an expression with a value other than None. Errors (syntax, Python's
// exceptions, unsupported features, budget exhausted) are returned, not thrown.
absl::StatusOr<std::string> run(const std::vector<std::string>& statements,
                                const Limits& limits = {});

}  // namespace vex::py
