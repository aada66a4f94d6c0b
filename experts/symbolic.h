// The symbolic expert's reading and writing of mathematics (experts/symbolic.cpp), shared with
// its tests: the grammar people type ("3x^2 + 2x", "x**2", "sqrt(8)", "ln(x)") into GiNaC
// expressions, and the canonical form answers are compared in.
#pragma once

#include <ginac/ginac.h>
// CLN defines a macro by this name, which abseil uses as an identifier.
#undef Mutable

#include <optional>
#include <string>
#include <string_view>

namespace vex::symbolic {

// The expression `s` writes, or nullopt when it is outside the grammar: numbers (decimals read
// exactly), single-letter variables (not e or i), + - * / ^ ** × ÷ − and ² ³, parentheses,
// implicit products ("2x", "3(x+1)", "(x+1)(x-1)"), the functions sqrt, exp, log/ln, sin, cos,
// tan, and pi. At most 200 bytes.
std::optional<GiNaC::ex> parse(std::string_view s);

// The canonical form of a value: radicals of rationals reduced (sqrt(8) -> 2*sqrt(2), roots
// taken out of denominators), then expanded when it is a polynomial, else normalized as a
// rational function.
GiNaC::ex canonical(const GiNaC::ex& e);

// How the expert writes a value: polynomials in one variable by descending degree
// ("3*x^2 + 2*x - 1", "x^3/3"), anything else in GiNaC's notation.
std::string to_text(const GiNaC::ex& e);

// The variable a letter names (the same symbol everywhere).
const GiNaC::symbol& letter(char c);

// Whether two written values are equal (both parsed, their canonical forms' difference zero).
bool same_value(std::string_view a, std::string_view b);

}  // namespace vex::symbolic
