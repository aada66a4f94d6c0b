// Exact numbers for the builtin experts: decimal literals read into GMP rationals, and the one
// output format all of them use (docs/architecture.md §4: answers are exact by construction).
//
// Output format (format_exact): an integer is written in full ("11303", "-42"); a rational whose
// decimal expansion terminates is written exactly ("0.125", "8.04672"); any other rational is
// rounded to 15 significant digits but at least 3 decimal places (round half to even), trailing
// zeros dropped, in positional notation ("0.333333333333333", "1234.56790123457",
// "33333333333333333333.333"). No exponents, no thousands separators.
#pragma once

#include <gmpxx.h>

#include <optional>
#include <string>
#include <string_view>

namespace vex {

inline constexpr int kSignificantDigits = 15;

// "1,234.5" / "1234.5" / ".5" / "12" -> exact value. Thousands separators must group three digits
// ("1,23" is not a number). Nullopt when `s` is not entirely such a literal.
std::optional<mpq_class> parse_decimal(std::string_view s);

// Length of the decimal literal at the start of `s` (0 if none), as parse_decimal reads it.
size_t decimal_prefix(std::string_view s);

std::string format_exact(const mpq_class& q, int significant = kSignificantDigits);

// q rounded to `decimals` places, half away from zero, all places written ("12.50").
std::string format_fixed(const mpq_class& q, int decimals);

// 10^e as a rational (e may be negative).
mpq_class pow10q(long e);

}  // namespace vex
