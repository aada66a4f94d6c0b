// The symbolic expert: exact symbolic mathematics on GiNaC (with CLN), for the question the text
// ends with ("...=", "...:", "... is"):
//   "The derivative of 3x^2 + 2x is"  -> "6*x + 2"         "d/dx sin(x)^2 ="  -> "2*sin(x)*cos(x)"
//   "Expand (x+1)^3:"                -> "x^3 + 3*x^2 + 3*x + 1"
//   "Simplify (x^2 - 1)/(x - 1):"    -> "x + 1"           "sqrt(8) ="        -> "2*sqrt(2)"
//   "Solve x^2 - 5x + 6 = 0:"        -> "x = 2 or x = 3"  "Solve 2x + 3y = 5, x - y = 0:" -> "x = 1, y = 1"
//   "The integral of x^2 from 0 to 3 is" -> "9"           "∫ 3x^2 dx ="      -> "x^3 + C"
//   "The limit of (x^2 - 1)/(x - 1) as x approaches 1 is" -> "2"
// Solving covers linear equations, quadratics with rational coefficients and real roots (exact
// radicals), and square linear systems of up to four unknowns with one solution; integrals cover
// polynomials; limits cover rational functions where the limit is the value of the reduced
// function. Everything else is declined: other equations, complex roots, free parameters,
// transcendental integrals, limits it cannot take by substitution, hedged or ambiguous text
// (several variables and no "with respect to"), inputs past the budgets (200 bytes, exponents
// up to 32, expansions up to 2,000 terms). Pure rational arithmetic is the calculator's.
#include "experts/symbolic.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "experts/expert.h"
#include "experts/text.h"

namespace vex {
namespace symbolic {
namespace {

using GiNaC::ex;
using GiNaC::numeric;

constexpr size_t kMaxInput = 200;
constexpr long kMaxExponent = 32;
constexpr double kMaxTerms = 2000;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)); }

// `s` in GiNaC's syntax and the variables it uses, or nullopt outside the grammar.
std::optional<std::string> to_syntax(std::string_view s, std::set<char>* vars) {
  static constexpr std::string_view kFunctions[] = {"sqrt", "exp", "log", "ln",
                                                    "sin",  "cos", "tan"};
  static constexpr std::pair<std::string_view, std::string_view> kSymbols[] = {
      {"**", "^"}, {"×", "*"}, {"·", "*"}, {"÷", "/"}, {"−", "-"}, {"²", "^2"}, {"³", "^3"},
      {"^", "^"},  {"+", "+"}, {"-", "-"}, {"*", "*"}, {"/", "/"}};
  if (s.size() > kMaxInput) return std::nullopt;
  std::string out;
  bool operand = false;  // the last thing written ends an operand (an implicit product follows)
  int depth = 0;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == ' ') {
      ++i;
      continue;
    }
    if (is_digit(c) || (c == '.' && i + 1 < s.size() && is_digit(s[i + 1]))) {
      size_t j = i;
      while (j < s.size() && is_digit(s[j])) ++j;
      std::string digits(s.substr(i, j - i)), decimals;
      if (j < s.size() && s[j] == '.' && j + 1 < s.size() && is_digit(s[j + 1])) {
        size_t k = j + 1;
        while (k < s.size() && is_digit(s[k])) ++k;
        decimals = std::string(s.substr(j + 1, k - j - 1));
        j = k;
      }
      if (decimals.size() > 20 || digits.size() > 30) return std::nullopt;
      if (operand) out += '*';
      // A decimal is read exactly: 1.25 is 125/100.
      out += decimals.empty() ? digits
                              : "(" + digits + decimals + "/1" + std::string(decimals.size(), '0') + ")";
      operand = true;
      i = j;
      continue;
    }
    if (is_alpha(c)) {
      size_t j = i;
      while (j < s.size() && is_alpha(s[j])) ++j;
      const std::string word = lower(s.substr(i, j - i));
      if (std::find(std::begin(kFunctions), std::end(kFunctions), word) != std::end(kFunctions)) {
        size_t k = j;
        while (k < s.size() && s[k] == ' ') ++k;
        if (k >= s.size() || s[k] != '(') return std::nullopt;  // "sin x": declined
        if (operand) out += '*';
        out += word == "ln" ? "log" : word;
        operand = false;
      } else if (word == "pi") {
        if (operand) out += '*';
        out += "Pi";
        operand = true;
      } else if (j - i == 1 && std::islower(static_cast<unsigned char>(c)) && c != 'e' &&
                 c != 'i') {
        if (operand) out += '*';
        out += c;
        vars->insert(c);
        operand = true;
      } else {
        return std::nullopt;  // "xy", "e", "I", words: not read
      }
      i = j;
      continue;
    }
    if (c == '(') {
      // "()" is no expression (and "sqrt()" crashes GiNaC 1.8's parser: found by fuzzing).
      size_t k = i + 1;
      while (k < s.size() && s[k] == ' ') ++k;
      if (k < s.size() && s[k] == ')') return std::nullopt;
      if (operand) out += '*';
      out += '(', ++depth, operand = false, ++i;
      continue;
    }
    if (c == ')') {
      if (--depth < 0) return std::nullopt;
      out += ')', operand = true, ++i;
      continue;
    }
    bool matched = false;
    for (const auto& [sym, text] : kSymbols)
      if (s.substr(i).starts_with(sym)) {
        const bool superscript = sym == "²" || sym == "³";
        if (superscript && !operand) return std::nullopt;
        // GiNaC evaluates numeric powers while it parses (5^55555162 would run for hours
        // before any budget is checked): an exponent is written "n", "(n)", "-n", "(-n)" or
        // "(p/q)" with numbers of at most two digits, nothing else.
        if (text == "^") {
          std::string_view e = s.substr(i + sym.size());
          while (!e.empty() && e.front() == ' ') e.remove_prefix(1);
          const bool paren = e.starts_with('(');
          if (paren) e.remove_prefix(1);
          if (e.starts_with('-')) e.remove_prefix(1);
          auto digits = [&e] {
            size_t n = 0;
            while (n < e.size() && is_digit(e[n])) ++n;
            e.remove_prefix(n);
            return n;
          };
          const size_t p = digits();
          size_t q = 1;
          if (paren && e.starts_with('/')) e.remove_prefix(1), q = digits();
          if (p == 0 || p > 2 || q == 0 || q > 2 || (paren && !e.starts_with(')')) ||
              (!paren && e.starts_with('.')))
            return std::nullopt;
          if (paren) e.remove_prefix(1);
          // The exponent goes to GiNaC in parentheses: it reads "a^-2*(7)" as a^(-2*7), so
          // "(3x - 1)^-2(7)" was answered with the power -14 (found by fuzzing).
          const size_t from = i + sym.size();
          const std::string_view exponent = s.substr(from, static_cast<size_t>(e.data() - s.data()) - from);
          while (!e.empty() && e.front() == ' ') e.remove_prefix(1);
          if (e.starts_with('^') || e.starts_with("**")) return std::nullopt;  // a tower
          std::string x;
          for (char ch : exponent)
            if (ch != ' ') x += ch;
          out += "^(" + x + ")";
          operand = true;
          i = from + exponent.size();
          matched = true;
          break;
        }
        out += text;
        operand = superscript;
        i += sym.size();
        matched = true;
        break;
      }
    if (!matched) return std::nullopt;
  }
  if (depth != 0 || out.empty()) return std::nullopt;
  return out;
}

// An upper bound on the terms of e expanded: sums add, products multiply, a power of a sum of
// k terms to the n has C(n + k - 1, k - 1). GiNaC expands the base of every power, whatever its
// exponent, so a base past kMaxTerms makes the whole unbounded (infinity), even under ^-1: a
// denominator of ~10^35 terms was counted as one until fuzzing found it. The binomial is a
// product of n ratios, never a difference of lgammas (which cancels to 0 for large k).
double expanded_terms(const ex& e) {
  if (GiNaC::is_a<GiNaC::add>(e)) {
    double t = 0;
    for (size_t i = 0; i < e.nops(); ++i) t += expanded_terms(e.op(i));
    return t;
  }
  if (GiNaC::is_a<GiNaC::mul>(e)) {
    double t = 1;
    for (size_t i = 0; i < e.nops(); ++i) t *= expanded_terms(e.op(i));
    return t;
  }
  if (GiNaC::is_a<GiNaC::power>(e) && GiNaC::is_a<numeric>(e.op(1))) {
    const double k = expanded_terms(e.op(0));
    if (k > kMaxTerms) return HUGE_VAL;
    const double m = std::ceil(std::abs(GiNaC::ex_to<numeric>(e.op(1)).to_double()));
    if (k <= 1) return 1;
    if (m > kMaxExponent) return HUGE_VAL;
    double c = 1;  // C(m + k - 1, m)
    for (double i = 1; i <= m; ++i) c = c * (k - 1 + i) / i;
    return c;
  }
  // A function is one term, its arguments expanded inside it.
  for (size_t i = 0; i < e.nops(); ++i)
    if (expanded_terms(e.op(i)) > kMaxTerms) return HUGE_VAL;
  return 1;
}

// Budgets: every exponent a rational of magnitude <= 32 (integer or a root), no floats, and the
// expansion below kMaxTerms terms (nested powers of sums included: fuzzing found
// "(x+w(x+w+v)^28+v)^28", which asked for more memory than exists).
bool exponents_in_budget(const ex& e) {
  if (GiNaC::is_a<GiNaC::power>(e)) {
    const ex& n = e.op(1);
    if (!GiNaC::is_a<numeric>(n)) return false;  // x^x, 2^x: not handled
    const numeric& q = GiNaC::ex_to<numeric>(n);
    if (!q.is_rational() || GiNaC::abs(q) > kMaxExponent || q.denom() > kMaxExponent)
      return false;
  }
  if (GiNaC::is_a<numeric>(e) && !GiNaC::ex_to<numeric>(e).is_rational()) return false;
  for (size_t i = 0; i < e.nops(); ++i)
    if (!exponents_in_budget(e.op(i))) return false;
  return true;
}

bool within_budget(const ex& e) {
  return exponents_in_budget(e) && expanded_terms(e) <= kMaxTerms;
}

// n = s^q * t with t free of q-th powers; false when n is too large to factor quickly.
bool split_power(unsigned long long n, unsigned q, unsigned long long* s, unsigned long long* t) {
  if (n > 1000000000000ULL) return false;
  *s = 1;
  for (unsigned long long p = 2;; ++p) {
    unsigned long long pq = 1;
    bool over = false;
    for (unsigned k = 0; k < q && !over; ++k) over = (pq *= p) > n;
    if (over) break;
    while (n % pq == 0) n /= pq, *s *= p;
  }
  *t = n;
  return true;
}

// Radicals of positive rationals reduced: (n/d)^(p/q) = floor part times s^r * t^(r/q) / d^r.
struct ReduceRadicals : GiNaC::map_function {
  ex operator()(const ex& e) override {
    if (GiNaC::is_a<GiNaC::power>(e) && GiNaC::is_a<numeric>(e.op(0)) &&
        GiNaC::is_a<numeric>(e.op(1))) {
      const numeric base = GiNaC::ex_to<numeric>(e.op(0));
      const numeric expo = GiNaC::ex_to<numeric>(e.op(1));
      if (base.is_rational() && base.is_positive() && expo.is_rational() && !expo.is_integer() &&
          expo.denom() <= kMaxExponent) {
        const long q = expo.denom().to_long(), p = expo.numer().to_long();
        const long whole = p >= 0 ? p / q : -((-p + q - 1) / q), r = p - whole * q;  // 0 < r < q
        const numeric n = base.numer(), d = base.denom();
        const numeric m = n * d.power(q - 1);  // (n/d)^(1/q) = (n d^(q-1))^(1/q) / d
        if (m.is_pos_integer() && m <= numeric(1000000000000LL)) {
          unsigned long long s, t;
          if (split_power(static_cast<unsigned long long>(m.to_long()), static_cast<unsigned>(q),
                          &s, &t)) {
            const ex root = GiNaC::pow(ex(numeric(static_cast<long>(s))), r) *
                            GiNaC::pow(ex(numeric(static_cast<long>(t))), numeric(r, q)) /
                            GiNaC::pow(ex(d), r);
            return GiNaC::pow(ex(base), whole) * root;
          }
        }
      }
    }
    return e.map(*this);
  }
};

GiNaC::lst symbols_of(const ex& e) {
  std::set<std::string> names;
  std::map<std::string, ex> found;
  for (GiNaC::const_preorder_iterator it = e.preorder_begin(); it != e.preorder_end(); ++it)
    if (GiNaC::is_a<GiNaC::symbol>(*it))
      found.emplace(GiNaC::ex_to<GiNaC::symbol>(*it).get_name(), *it);
  GiNaC::lst out;
  for (const auto& [name, s] : found) out.append(s);
  return out;
}

// A polynomial in x with rational coefficients, by descending degree; nullopt otherwise.
std::optional<std::string> polynomial_text(const ex& e, const ex& x) {
  const ex p = e.expand();
  if (!p.is_polynomial(x)) return std::nullopt;
  const int deg = p.degree(x), low = p.ldegree(x);
  if (low < 0) return std::nullopt;
  std::string out;
  for (int n = deg; n >= low; --n) {
    const ex c = p.coeff(x, n);
    if (!GiNaC::is_a<numeric>(c)) return std::nullopt;
    const numeric v = GiNaC::ex_to<numeric>(c);
    if (v.is_zero()) continue;
    if (!v.is_rational()) return std::nullopt;
    const numeric a = GiNaC::abs(v);
    const std::string sign = v.is_negative() ? "-" : "+";
    out += out.empty() ? (sign == "-" ? "-" : "") : " " + sign + " ";
    std::string power = n == 0 ? "" : n == 1 ? GiNaC::ex_to<GiNaC::symbol>(x).get_name()
                                             : GiNaC::ex_to<GiNaC::symbol>(x).get_name() + "^" +
                                                   std::to_string(n);
    std::ostringstream num, den;
    num << a.numer();
    den << a.denom();
    if (n == 0) {
      out += num.str() + (a.is_integer() ? "" : "/" + den.str());
    } else {
      out += (a.numer() == 1 ? "" : num.str() + "*") + power + (a.is_integer() ? "" : "/" + den.str());
    }
  }
  return out.empty() ? "0" : out;
}

}  // namespace

// One symbol per letter for the whole program, so that the equations of a system (parsed one
// by one) share their unknowns.
const GiNaC::symbol& letter(char c) {
  static const std::vector<GiNaC::symbol> symbols = [] {
    std::vector<GiNaC::symbol> out;
    for (char l = 'a'; l <= 'z'; ++l) out.emplace_back(std::string(1, l));
    return out;
  }();
  return symbols[c - 'a'];
}

std::optional<ex> parse(std::string_view s) {
  std::set<char> vars;
  const auto text = to_syntax(s, &vars);
  if (!text) return std::nullopt;
  GiNaC::symtab table;
  for (char v : vars) table[std::string(1, v)] = letter(v);
  table["Pi"] = GiNaC::Pi;
  try {
    GiNaC::parser reader(table, /*strict=*/true);
    const ex e = reader(*text);
    if (!within_budget(e)) return std::nullopt;
    return e;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

ex canonical(const ex& e) {
  ReduceRadicals reduce;
  ex r = reduce(e);
  const GiNaC::lst vars = symbols_of(r);
  if (r.is_polynomial(vars)) return reduce(r.expand());
  // A rational function's normal form takes multivariate gcds, which grow fast with its size
  // (fuzzing found inputs running for minutes): past 200 terms the question is declined.
  if (expanded_terms(r) > 200) throw std::length_error("rational function past the budget");
  // Multivariate gcds grow with the number of variables too: a few terms in five variables at
  // degree 28 ran past the fuzzer's 15 s ("Expand (...(x*w+v)^28...)/(...)"); at most two.
  if (vars.nops() > 2) throw std::length_error("rational function in more than two variables");
  return reduce(r.normal());
}

std::string to_text(const ex& e) {
  const GiNaC::lst vars = symbols_of(e);
  if (vars.nops() <= 1) {
    const ex x = vars.nops() == 1 ? vars.op(0) : ex(letter('x'));
    if (auto p = polynomial_text(e, x)) return *p;
  }
  std::ostringstream out;
  out << e;
  std::string s = out.str(), spaced;
  for (size_t at; (at = s.find("Pi")) != std::string::npos;) s.replace(at, 2, "pi");
  // Terms of a sum apart: "3+2*sqrt(2)" -> "3 + 2*sqrt(2)" (signs inside parentheses and of
  // exponents stay).
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    depth += c == '(' ? 1 : c == ')' ? -1 : 0;
    const bool binary = depth == 0 && i > 0 && (c == '+' || c == '-') &&
                        std::string_view("^*/(").find(s[i - 1]) == std::string_view::npos;
    spaced += binary ? std::string(" ") + c + " " : std::string(1, c);
  }
  return spaced;
}

bool same_value(std::string_view a, std::string_view b) {
  const auto x = parse(a), y = parse(b);
  if (!x || !y) return false;
  try {
    return canonical(canonical(*x) - canonical(*y)).is_zero();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace symbolic

namespace {

using GiNaC::ex;
using GiNaC::numeric;
using symbolic::canonical;
using symbolic::parse;
using symbolic::to_text;

// The text after the last occurrence of `key` (lowercase) in s, or nullopt.
std::optional<std::string_view> after(std::string_view s, std::string_view key) {
  const size_t at = lower(s).rfind(key);
  if (at == std::string::npos) return std::nullopt;
  std::string_view r = s.substr(at + key.size());
  while (!r.empty() && r.front() == ' ') r.remove_prefix(1);
  return r;
}

// Splits "E with respect to v" / "E wrt v" / "E dv" (dv only when dx-style is allowed).
std::optional<std::string_view> strip_variable(std::string_view* e, bool dx) {
  for (std::string_view key : {" with respect to ", " wrt "}) {
    const size_t at = lower(*e).rfind(key);
    if (at == std::string::npos) continue;
    std::string_view v = e->substr(at + key.size());
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    *e = e->substr(0, at);
    return v;
  }
  if (dx && e->size() >= 3 && (*e)[e->size() - 2] == 'd' && symbolic::is_alpha(e->back()) &&
      (*e)[e->size() - 3] == ' ') {
    std::string_view v = e->substr(e->size() - 1);
    e->remove_suffix(3);
    return v;
  }
  return std::nullopt;
}

// The variable an operation is about: the one named (it must be a variable of e, or e has
// none), else e's only variable; nullopt when ambiguous.
std::optional<ex> variable(const ex& e, std::optional<std::string_view> named) {
  const GiNaC::lst vars = symbolic::symbols_of(e);
  if (named) {
    if (named->size() != 1 || !std::islower(static_cast<unsigned char>((*named)[0])))
      return std::nullopt;
    for (const ex& v : vars)
      if (GiNaC::ex_to<GiNaC::symbol>(v).get_name() == *named) return v;
    return vars.nops() == 0 ? std::optional<ex>(symbolic::letter((*named)[0])) : std::nullopt;
  }
  if (vars.nops() == 1) return vars.op(0);
  return std::nullopt;
}

std::optional<std::string> derivative(std::string_view e_text) {
  const auto named = strip_variable(&e_text, false);
  const auto e = parse(e_text);
  if (!e) return std::nullopt;
  const auto x = variable(*e, named);
  if (!x) return std::nullopt;
  return to_text(canonical(e->diff(GiNaC::ex_to<GiNaC::symbol>(*x))));
}

// The antiderivative of a polynomial in x (coefficients may hold other variables).
std::optional<ex> antiderivative(const ex& e, const ex& x) {
  const ex p = canonical(e).expand();
  if (!p.is_polynomial(x) || p.ldegree(x) < 0) return std::nullopt;
  ex out = 0;
  for (int n = 0; n <= p.degree(x); ++n) out += p.coeff(x, n) * GiNaC::pow(x, n + 1) / (n + 1);
  return out;
}

std::optional<std::string> integral(std::string_view e_text) {
  // "E from A to B": a definite integral.
  std::optional<std::string_view> lo, hi;
  if (const size_t at = lower(e_text).rfind(" from "); at != std::string::npos) {
    std::string_view bounds = e_text.substr(at + 6);
    const size_t to = lower(bounds).find(" to ");
    if (to == std::string::npos) return std::nullopt;
    lo = bounds.substr(0, to), hi = bounds.substr(to + 4);
    e_text = e_text.substr(0, at);
  }
  const auto named = strip_variable(&e_text, true);
  const auto e = parse(e_text);
  if (!e) return std::nullopt;
  const auto x = variable(*e, named);
  if (!x) return std::nullopt;
  const auto f = antiderivative(*e, *x);
  if (!f) return std::nullopt;
  if (!lo) return to_text(canonical(*f)) + " + C";
  const auto a = parse(*lo), b = parse(*hi);
  if (!a || !b || symbolic::symbols_of(*a).nops() != 0 || symbolic::symbols_of(*b).nops() != 0)
    return std::nullopt;
  return to_text(canonical(f->subs(*x == *b) - f->subs(*x == *a)));
}

std::optional<std::string> limit(std::string_view s) {
  // "E as x approaches A", "E as x goes to A", "E as x -> A"
  const size_t as = lower(s).rfind(" as ");
  if (as == std::string::npos) return std::nullopt;
  std::string_view e_text = s.substr(0, as), rest = s.substr(as + 4);
  size_t sep = std::string::npos, len = 0;
  for (std::string_view k : {" approaches ", " goes to ", " tends to ", " -> ", " → "})
    if (const size_t at = lower(rest).find(k); at != std::string::npos) sep = at, len = k.size();
  if (sep == std::string::npos) return std::nullopt;
  const auto e = parse(e_text), a = parse(rest.substr(sep + len));
  if (!e || !a || symbolic::symbols_of(*a).nops() != 0) return std::nullopt;
  const auto x = variable(*e, rest.substr(0, sep));
  if (!x) return std::nullopt;
  // A rational function: the reduced form's value where its denominator is not zero.
  const ex r = e->normal();
  const ex num = r.numer(), den = r.denom();
  if (!num.is_polynomial(*x) || !den.is_polynomial(*x)) return std::nullopt;
  const ex at = canonical(den.subs(*x == *a));
  if (at.is_zero()) return std::nullopt;
  return to_text(canonical(num.subs(*x == *a) / at));
}

// Equations "L = R" (or expressions, "= 0") separated by "," or " and ".
std::optional<std::vector<ex>> equations(std::string_view s) {
  std::vector<ex> out;
  std::string text(s);
  for (size_t at; (at = lower(text).find(" and ")) != std::string::npos;) text.replace(at, 5, ",");
  std::vector<std::string_view> parts;
  for (std::string_view rest = text;;) {
    const size_t comma = rest.find(',');
    parts.push_back(rest.substr(0, comma));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  for (std::string_view part : parts) {
    const size_t eq = part.find('=');
    if (part.find('=', eq + 1) != std::string_view::npos) return std::nullopt;
    const auto l = parse(eq == std::string_view::npos ? part : part.substr(0, eq));
    const auto r = eq == std::string_view::npos ? std::optional<ex>(0) : parse(part.substr(eq + 1));
    if (!l || !r) return std::nullopt;
    out.push_back(canonical(*l - *r));
  }
  if (out.empty() || out.size() > 4) return std::nullopt;
  return out;
}

std::optional<std::string> solve(std::string_view s) {
  std::optional<std::string_view> named;
  if (const size_t at = lower(s).rfind(" for "); at != std::string::npos) {
    named = s.substr(at + 5);
    s = s.substr(0, at);
  }
  const auto eqs = equations(s);
  if (!eqs) return std::nullopt;
  // The unknowns in alphabetical order (GiNaC's own order of symbols follows hashes of serial
  // numbers, which is not the order people read).
  std::map<std::string, ex> by_name;
  for (const ex& e : *eqs)
    for (const ex& v : symbolic::symbols_of(e))
      by_name.emplace(GiNaC::ex_to<GiNaC::symbol>(v).get_name(), v);
  GiNaC::lst all;
  for (const auto& [name, v] : by_name) all.append(v);
  if (eqs->size() == 1) {
    const auto x = variable((*eqs)[0], named);
    if (!x || all.nops() != 1) return std::nullopt;  // one unknown, rational coefficients
    const ex p = (*eqs)[0];
    if (!p.is_polynomial(*x)) return std::nullopt;
    const int deg = p.degree(*x);
    const std::string name = GiNaC::ex_to<GiNaC::symbol>(*x).get_name();
    std::vector<ex> roots;
    if (deg == 1) {
      roots.push_back(canonical(-p.coeff(*x, 0) / p.coeff(*x, 1)));
    } else if (deg == 2) {
      const ex a = p.coeff(*x, 2), b = p.coeff(*x, 1), c = p.coeff(*x, 0);
      const ex disc = canonical(b * b - 4 * a * c);
      if (!GiNaC::is_a<numeric>(disc) || GiNaC::ex_to<numeric>(disc).is_negative())
        return std::nullopt;  // complex roots: declined
      if (GiNaC::ex_to<numeric>(disc).is_zero()) {
        roots.push_back(canonical(-b / (2 * a)));
      } else {
        roots.push_back(canonical((-b - GiNaC::sqrt(disc)) / (2 * a)));
        roots.push_back(canonical((-b + GiNaC::sqrt(disc)) / (2 * a)));
        if (GiNaC::ex_to<numeric>(GiNaC::evalf(roots[0] - roots[1])).is_positive())
          std::swap(roots[0], roots[1]);
      }
    } else {
      return std::nullopt;
    }
    std::string out;
    for (const ex& r : roots) out += (out.empty() ? "" : " or ") + name + " = " + to_text(r);
    return out;
  }
  // A square linear system with one solution.
  if (named || all.nops() != eqs->size()) return std::nullopt;
  GiNaC::lst lhs;
  for (const ex& e : *eqs) {
    for (const ex& v : all)
      if (!e.is_polynomial(v) || e.degree(v) > 1) return std::nullopt;
    lhs.append(e == 0);
  }
  ex sol;
  try {
    sol = GiNaC::lsolve(lhs, all);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (sol.nops() != all.nops()) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < sol.nops(); ++i) {
    const ex value = canonical(sol.op(i).rhs());
    if (symbolic::symbols_of(value).nops() != 0) return std::nullopt;  // a free parameter
    out += (out.empty() ? "" : ", ") + GiNaC::ex_to<GiNaC::symbol>(sol.op(i).lhs()).get_name() +
           " = " + to_text(value);
  }
  return out;
}

// "d/dx E": the variable is the letter after d/d.
std::optional<std::string> derivative_dx(std::string_view s) {
  const std::string_view v = s.substr(0, 1), e = s.substr(1);
  if (e.empty() || (e.front() != ' ' && e.front() != '(')) return std::nullopt;
  std::string t(e);
  t.append(" with respect to ").append(v);
  return derivative(t);
}

std::optional<std::string> expand(std::string_view s) {
  const auto v = parse(s);
  if (!v) return std::nullopt;
  return to_text(canonical(v->expand()));
}

std::optional<std::string> simplify(std::string_view s) {
  const auto v = parse(s);
  if (!v) return std::nullopt;
  return to_text(canonical(*v));
}

class Symbolic final : public HostExpert {
 public:
  const std::string& name() const override { return name_; }

  std::optional<ExpertAnswer> answer(std::string_view text) const override {
    const auto q = question_line(text);
    if (!q || q->size() > 2 * symbolic::kMaxInput) return std::nullopt;  // words and math
    // GiNaC's expressions share reference-counted nodes without locks: one caller at a time
    // across every instance (contexts on several threads).
    static std::mutex mu;
    std::lock_guard lock(mu);
    std::string_view line = *q;
    for (std::string_view w : words(line))
      if (is_hedge(w)) return std::nullopt;
    std::optional<std::string> out;
    std::string_view inputs = line;
    // The operation named last in the line, and the expression after its name.
    using Op = std::optional<std::string> (*)(std::string_view);
    static constexpr std::pair<std::string_view, Op> kOps[] = {
        {"derivative of ", &derivative}, {"differentiate ", &derivative},
        {"d/d", &derivative_dx},         {"expand ", &expand},
        {"simplify ", &simplify},        {"solve ", &solve},
        {"integral of ", &integral},     {"integrate ", &integral},
        {"∫", &integral},                {"limit of ", &limit}};
    try {
      bool named = false;
      for (const auto& [key, op] : kOps)
        if (const auto rest = after(line, key); rest && !rest->empty()) {
          inputs = *rest, out = op(*rest), named = true;
          break;
        }
      if (!named && trim_end(text).ends_with('=')) out = exact_value(line);
    } catch (const std::exception&) {
      return std::nullopt;  // GiNaC's domain errors (division by zero, ...): declined
    }
    if (!out) return std::nullopt;
    return ExpertAnswer{std::string(inputs), *out, continue_with(text, *out)};
  }

 private:
  // "sqrt(8) =": a constant with radicals or pi, reduced; pure rational arithmetic and values
  // already in lowest form are declined (nothing to compute, or the calculator's).
  static std::optional<std::string> exact_value(std::string_view line) {
    const auto e = parse(line);
    if (!e || symbolic::symbols_of(*e).nops() != 0 || GiNaC::is_a<numeric>(*e)) return std::nullopt;
    bool radical = false;
    for (GiNaC::const_preorder_iterator it = e->preorder_begin(); it != e->preorder_end(); ++it)
      radical |= GiNaC::is_a<GiNaC::power>(*it) || GiNaC::is_a<GiNaC::function>(*it);
    if (!radical) return std::nullopt;
    const std::string out = to_text(canonical(*e));
    std::string in = to_text(*e);
    if (out == in) return std::nullopt;
    return out;
  }

  std::string name_ = "symbolic";
};

}  // namespace

std::unique_ptr<HostExpert> make_symbolic() { return std::make_unique<Symbolic>(); }

}  // namespace vex
