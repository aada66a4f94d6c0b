// A sandboxed evaluator of small Python programs for the interpreter expert: the lines of a REPL
// session over None, bool, int (arbitrary precision), float (IEEE double, Python's rounding and
// repr), str, list, tuple, range, dict (insertion order) and set, with the operators (| & ^ on
// ints, sets and dicts included), comparisons, conditional expressions, comprehensions (list,
// set, dict) and generator expressions of Python 3; "def f(a, b=1): return EXPR" and lambda;
// "import math" / "from math import ..." with the functions Python defines exactly (sqrt, isqrt,
// floor, ceil, trunc, fabs, gcd, lcm, factorial, comb, perm, prod, fsum, copysign, isfinite,
// isinf, isnan, degrees, radians, fmod; pi, e, tau, inf, nan: exp, log, sin, ... are the
// platform libm's and declined); several statements on a line ("a; b"); the builtins
//   abs all any bool dict divmod enumerate filter float int len list map max min print range
//   reversed round set sorted str sum tuple zip
// (key= for sorted, min, max), print (its text is what the REPL shows), f-strings without
// conversions or format specs, the str methods count endswith find join lower replace split
// startswith strip upper, list/tuple count index, dict get keys values items. Results are
// Python's, bit for bit (sum adds left to right as Python 3.11 does). A set is shown or iterated
// only where CPython's order is known (small non-negative ints: ascending), a function is a
// closure over no local scope, an iterator is never kept in a name, values are never mutated.
// There is nothing else: no other imports, attributes, files, processes or network; every
// program runs within a step, memory and depth budget.
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

// Runs `statements` (the REPL's lines: "x = 5", "y += 1", "def f(x): return x", expressions;
// "a; b" on one line) in order and returns what the REPL shows for the last line: what it
// printed and the repr of each expression statement's value other than None. Errors (syntax,
// Python's exceptions, unsupported features, budget exhausted, nothing shown) are returned, not
// thrown.
absl::StatusOr<std::string> run(const std::vector<std::string>& statements,
                                const Limits& limits = {});

}  // namespace vex::py
