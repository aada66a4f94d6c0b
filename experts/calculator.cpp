// The calculator expert: exact arithmetic on the expression that the text ends with, written
// "EXPR =", "EXPR is", "EXPR equals" (the trigger comes after it), or asked as a question
// ("What is EXPR?", "What's EXPR?", "How much is EXPR?", "Calculate EXPR?"). Operators may be
// symbols or words: "times", "x" between numbers, "multiplied by", "plus", "minus", "divided
// by", "to the power of", "squared", "cubed"; "**" is "^"; "n!" is a factorial (n <= 1000);
// numbers may be written in scientific notation ("1.5e3", "2E-4"). Functions: sqrt, cbrt, exp,
// ln, log10, log2, and "^" with a non-integer exponent: exact where the value is rational
// (sqrt(16) = 4, log10(1000) = 3), else computed in 512-bit MPFR and correctly rounded to the
// printed digits (declined when the value is too near a rounding boundary to be certain:
// sqrt(2) * sqrt(2)). "log" alone (which base?) and sin/cos/tan (degrees or radians?) are
// declined as ambiguous.
//
// Grammar (usual precedence; ^ binds right and tighter than unary minus, so -2^2 = -4):
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '×' | '·' | '/' | '÷') unary)*
//   unary   := ('-' | '+') unary | power
//   power   := postfix ('^' unary)?                                    integer exponents only
//   postfix := primary ('!' | '%' ('of' unary)?)?                      15% = 0.15; 15% of 200 = 30
//   primary := NUMBER | '(' expr ')'                                   1,234.5 thousands separators
// Values are GMP rationals. The result is printed with format_exact (experts/exact.h).
//
// Amounts of money: a currency symbol glued to its number ("$1,200", "€15", "-£2.50"). The
// expression is checked for units first (MoneyOps): amounts add only to amounts of the same
// currency, a product has at most one amount, an amount over an amount is a plain ratio, and
// powers, factorials and functions take plain numbers. An amount is written to the cent
// ("$1,200 + $350 =" -> "$1,550", "$45.50 * 3 =" -> "$136.50", "$100 / 3 =" -> "$33.33"), with
// cents when an operand has them or the value does, commas when an operand has them; a value
// between cents is rounded to the nearest, an exact half cent is declined.
//
// Declines (never guesses): no "=" at the end; the expression is not preceded by a space, a
// start of line or punctuation (so "x+3 =", "f(2) =" and "US$5 + 3 =" are not read as 3, 2, 8);
// money whose units disagree ("$5 + 3", "$5 + €3", "$3 * $4", "$ 5 + 3");
// a hedge before it ("approximately 3 × 4 =", "~3 × 4 ="); no operator ("room 127 ="); anything
// that does not parse, division by zero, a non-integer exponent, or a result beyond 100,000
// bits, or an irrational value of 10^32 or more or below 10^-32. Ambiguous between conventions, so
// declined too: '%' between two operands ("15 % 4": modulo, or 15 percent times 4?); a bare
// percentage added or subtracted ("200 + 15%": 230 on a shop calculator, 200.15 in arithmetic); and
// digits that are codes, not quantities - a number with a leading zero ("0199", "007") or integers
// of three digits or more joined by hyphens without spaces ("555-0199", "12345-6789", "2024-1-15":
// phone numbers, ids, dates).
#include <mpfr.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "experts/exact.h"
#include "experts/expert.h"
#include "experts/text.h"

namespace vex {
namespace {

enum class Tok {
  kNum, kPlus, kMinus, kTimes, kDivide, kPercent, kPow, kOpen, kClose, kOf, kFactorial, kFunction
};

struct Token {
  Tok kind;
  mpq_class value;      // kNum
  size_t begin;         // byte offset in the text
  bool spaced = false;  // whitespace before it
  std::string_view function = {};  // kFunction: its name
  std::string_view currency = {};  // kNum: "$", "€" or "£" written before it ("$1,200")
};

constexpr std::string_view kCurrencies[] = {"$", "€", "£"};

constexpr size_t kMaxBits = 100000;
// An irrational value below 10^-kMaxRealZeros is declined (format_real).
constexpr long kMaxRealZeros = 32;

// The functions of the grammar; "log" alone (base 10 or e?) and the trigonometric functions
// (degrees or radians?) are left out as ambiguous.
constexpr std::string_view kFunctions[] = {"sqrt", "cbrt", "exp", "ln", "log10", "log2"};

bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// A line split into expression tokens and barriers (words and other symbols).
struct Lexeme {
  bool barrier;
  Token tok;
  std::string_view text;
  bool space_before;
};

// A space (or the end) at s[i].
bool space_after(std::string_view s, size_t i) { return i >= s.size() || s[i] == ' '; }

// Words that are operators (lowercase), and the word that must follow ("divided by").
struct OperatorWord {
  std::string_view word, then;
  Tok kind;
};
constexpr OperatorWord kOperatorWords[] = {
    {"times", "", Tok::kTimes},      {"multiplied", "by", Tok::kTimes}, {"plus", "", Tok::kPlus},
    {"minus", "", Tok::kMinus},      {"divided", "by", Tok::kDivide},   {"over", "", Tok::kDivide},
};

// The exponent of scientific notation at s ("e3", "E-4", "e+10"), its length, or 0.
size_t exponent_suffix(std::string_view s) {
  if (s.empty() || (s[0] != 'e' && s[0] != 'E')) return 0;
  size_t i = 1;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  const size_t digits = i;
  while (i < s.size() && i - digits < 6 && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == digits || (i < s.size() && alnum(s[i]))) return 0;
  return i;
}

std::vector<Lexeme> lex(std::string_view s) {
  static constexpr std::pair<std::string_view, Tok> kSymbols[] = {
      {"**", Tok::kPow},    {"+", Tok::kPlus},   {"-", Tok::kMinus},  {"−", Tok::kMinus},
      {"*", Tok::kTimes},   {"×", Tok::kTimes},  {"·", Tok::kTimes},  {"/", Tok::kDivide},
      {"÷", Tok::kDivide},  {"%", Tok::kPercent}, {"^", Tok::kPow},   {"(", Tok::kOpen},
      {")", Tok::kClose},   {"!", Tok::kFactorial}};
  std::vector<Lexeme> out;
  size_t i = 0;
  bool space = true;
  auto after_operand = [&] {
    return !out.empty() && !out.back().barrier &&
           (out.back().tok.kind == Tok::kNum || out.back().tok.kind == Tok::kClose ||
            out.back().tok.kind == Tok::kPercent || out.back().tok.kind == Tok::kFactorial);
  };
  while (i < s.size()) {
    if (s[i] == ' ' || s[i] == '\t') {
      ++i, space = true;
      continue;
    }
    const size_t begin = i;
    Lexeme x{true, {Tok::kNum, 0, begin}, {}, space};
    space = false;
    // An amount of money: the currency symbol glued to its number ("$45.50", "-€3").
    for (std::string_view c : kCurrencies)
      if (s.substr(i).starts_with(c) && decimal_prefix(s.substr(i + c.size())) > 0)
        x.tok.currency = c, i += c.size();
    const size_t number = i;
    if (const size_t n = decimal_prefix(s.substr(i)); n > 0) {
      i += n;
      const size_t e = exponent_suffix(s.substr(i));
      // "3x", "127th", "1.2.3": not a number on its own.
      if (e == 0 && i < s.size() && (alnum(s[i]) || s[i] == '.' || s[i] == ',')) {
        while (i < s.size() && (alnum(s[i]) || s[i] == '.' || s[i] == ',')) ++i;
      } else if (e > 0 && !x.tok.currency.empty()) {
        // "$1e3": not how money is written.
      } else {
        x.barrier = false, x.tok.value = *parse_decimal(s.substr(number, n));
        if (e > 0) {
          x.tok.value *= pow10q(std::stol(std::string(s.substr(i + 1, e - 1))));
          i += e;
        }
      }
    } else if (alnum(s[i])) {
      while (i < s.size() && alnum(s[i])) ++i;
      const std::string w = lower(s.substr(begin, i - begin));
      size_t paren = i;
      while (paren < s.size() && s[paren] == ' ') ++paren;
      const auto fn = std::find(std::begin(kFunctions), std::end(kFunctions), w);
      if (fn != std::end(kFunctions) && paren < s.size() && s[paren] == '(') {
        x.barrier = false, x.tok.kind = Tok::kFunction, x.tok.function = *fn;
      } else if (w == "of" && !out.empty() && !out.back().barrier &&
          out.back().tok.kind == Tok::kPercent) {
        x.barrier = false, x.tok.kind = Tok::kOf;
      } else if (after_operand()) {
        // An operator word between operands: "7 times 8", "7 x 8", "10 divided by 4".
        std::string_view rest = s.substr(i);
        auto next_word = [&](std::string_view want) {
          size_t j = 0;
          while (j < rest.size() && rest[j] == ' ') ++j;
          if (j == 0 || !rest.substr(j).starts_with(want)) return size_t(0);
          const size_t k = j + want.size();
          return k < rest.size() && alnum(rest[k]) ? size_t(0) : k;
        };
        for (const OperatorWord& o : kOperatorWords)
          if (w == o.word) {
            const size_t more = o.then.empty() ? 0 : next_word(o.then);
            if (o.then.empty() || more) x.barrier = false, x.tok.kind = o.kind, i += more;
          }
        if (w == "x" && space_after(s, i)) x.barrier = false, x.tok.kind = Tok::kTimes;
        if (w == "squared" || w == "cubed") {  // "7 squared": two tokens, ^ and the exponent
          Lexeme pow = x;
          pow.barrier = false, pow.tok.kind = Tok::kPow;
          pow.text = s.substr(begin, i - begin);
          out.push_back(pow);
          x.barrier = false, x.tok.kind = Tok::kNum, x.tok.value = w == "squared" ? 2 : 3;
          x.space_before = false;
        }
        if (w == "to") {  // "2 to the power of 10"
          const size_t the = next_word("the");
          const std::string_view after_the = rest.substr(the);
          size_t j = 0;
          while (j < after_the.size() && after_the[j] == ' ') ++j;
          if (the && after_the.substr(j).starts_with("power of") &&
              (j + 8 >= after_the.size() || after_the[j + 8] == ' '))
            x.barrier = false, x.tok.kind = Tok::kPow, i += the + j + 8;
        }
      }
    } else {
      for (const auto& [text, kind] : kSymbols)
        if (s.substr(i).starts_with(text)) {
          // '!' is a factorial right after its operand ("5!"); elsewhere ("Hello!") punctuation.
          if (kind == Tok::kFactorial && (x.space_before || !after_operand())) break;
          x.barrier = false, x.tok.kind = kind, i += text.size();
          break;
        }
      if (x.barrier) {  // one UTF-8 character
        ++i;
        while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
      }
    }
    x.text = s.substr(number, i - number);  // an amount's digits without its symbol
    out.push_back(x);
  }
  return out;
}

// Thrown by the exact arithmetic when a value is irrational (sqrt(2), 2^0.5, ln(3)): the
// expression is then evaluated again in MPFR (RealOps).
struct NotExact {};

// A real number in MPFR at Real::precision bits, rounded to nearest at every operation.
class Real {
 public:
  static inline thread_local mpfr_prec_t precision = 512;
  Real() { mpfr_init2(x_, precision), mpfr_set_zero(x_, 1); }
  explicit Real(const mpq_class& q) { mpfr_init2(x_, precision), mpfr_set_q(x_, q.get_mpq_t(), MPFR_RNDN); }
  Real(const Real& o) { mpfr_init2(x_, mpfr_get_prec(o.x_)), mpfr_set(x_, o.x_, MPFR_RNDN); }
  Real& operator=(const Real& o) {
    if (this != &o) mpfr_set_prec(x_, mpfr_get_prec(o.x_)), mpfr_set(x_, o.x_, MPFR_RNDN);
    return *this;
  }
  ~Real() { mpfr_clear(x_); }
  Real& operator+=(const Real& o) { return mpfr_add(x_, x_, o.x_, MPFR_RNDN), *this; }
  Real& operator-=(const Real& o) { return mpfr_sub(x_, x_, o.x_, MPFR_RNDN), *this; }
  Real& operator*=(const Real& o) { return mpfr_mul(x_, x_, o.x_, MPFR_RNDN), *this; }
  Real& operator/=(const Real& o) { return mpfr_div(x_, x_, o.x_, MPFR_RNDN), *this; }
  Real operator-() const {
    Real r(*this);
    mpfr_neg(r.x_, r.x_, MPFR_RNDN);
    return r;
  }
  mpfr_t x_;
};
int sgn(const Real& r) { return mpfr_sgn(r.x_); }

// Exact arithmetic on GMP rationals; irrational results throw NotExact.
struct ExactOps {
  using V = mpq_class;
  static V from(const mpq_class& q) { return q; }
  static V from(const Token& t) { return t.value; }
  static bool too_big(const V& v) {
    return mpz_sizeinbase(v.get_num_mpz_t(), 2) + mpz_sizeinbase(v.get_den_mpz_t(), 2) > kMaxBits;
  }
  static bool integer(const V& v) { return v.get_den() == 1; }
  // The exact k-th root of a non-negative rational, or nullopt when it is irrational.
  static std::optional<V> root(const V& v, unsigned long k) {
    mpz_class n, d;
    if (!mpz_root(n.get_mpz_t(), v.get_num_mpz_t(), k) ||
        !mpz_root(d.get_mpz_t(), v.get_den_mpz_t(), k))
      return std::nullopt;
    V r(n, d);
    r.canonicalize();
    return r;
  }
  static std::optional<V> pow(const V& base, const V& e) {
    if (!integer(e)) {
      // base^(p/q) = (base^(1/q))^p for a non-negative base; irrational roots go to MPFR.
      if (sgn(base) < 0 || e.get_den() > 64) return std::nullopt;  // (-8)^(1/3): real or complex?
      const auto r = root(base, e.get_den().get_ui());
      if (!r) throw NotExact{};
      return pow(*r, V(e.get_num()));
    }
    const mpz_class& n = e.get_num();
    if (sgn(base) == 0 && sgn(n) < 0) return std::nullopt;
    if (abs(n) > 100000) return std::nullopt;
    // Bound the result's size before computing it.
    const unsigned long k = mpz_class(abs(n)).get_ui();
    const size_t bits =
        (mpz_sizeinbase(base.get_num_mpz_t(), 2) + mpz_sizeinbase(base.get_den_mpz_t(), 2)) * k;
    if (bits > kMaxBits) return std::nullopt;
    mpz_class num, den;
    mpz_pow_ui(num.get_mpz_t(), base.get_num_mpz_t(), k);
    mpz_pow_ui(den.get_mpz_t(), base.get_den_mpz_t(), k);
    V r(num, den);
    r.canonicalize();
    if (sgn(n) < 0) r = 1 / r;
    return r;
  }
  static std::optional<V> factorial(const V& v) {
    if (!integer(v) || sgn(v) < 0 || v > 1000) return std::nullopt;
    mpz_class f;
    mpz_fac_ui(f.get_mpz_t(), v.get_num().get_ui());
    return V(f);
  }
  // n = base^k exactly for a rational n and integer base >= 2: k, else nullopt.
  static std::optional<V> log_exact(const V& v, unsigned long base) {
    if (sgn(v) <= 0) return std::nullopt;
    const bool inverse = v.get_num() == 1 && v.get_den() != 1;
    mpz_class n = inverse ? mpz_class(v.get_den()) : mpz_class(v.get_num());
    if (!inverse && v.get_den() != 1) return std::nullopt;
    const long k = static_cast<long>(mpz_remove(
        n.get_mpz_t(), n.get_mpz_t(), mpz_class(base).get_mpz_t()));  // not a division at a time
    if (n != 1) return std::nullopt;
    return V(inverse ? -k : k);
  }
  static std::optional<V> call(std::string_view f, const V& v) {
    if (f == "sqrt" || f == "cbrt") {
      if (f == "sqrt" && sgn(v) < 0) return std::nullopt;
      const auto r = root(abs(v), f == "sqrt" ? 2 : 3);
      if (!r) throw NotExact{};
      return sgn(v) < 0 ? V(-*r) : *r;
    }
    if (f == "exp") {
      if (sgn(v) != 0) throw NotExact{};
      return V(1);
    }
    if (sgn(v) <= 0) return std::nullopt;  // ln, log10, log2 of zero or a negative number
    if (f == "ln") {
      if (v != 1) throw NotExact{};
      return V(0);
    }
    const auto r = log_exact(v, f == "log10" ? 10 : 2);
    if (!r) throw NotExact{};
    return r;
  }
};

// The same grammar in MPFR, for expressions with an irrational value.
struct RealOps {
  using V = Real;
  static V from(const mpq_class& q) { return Real(q); }
  static V from(const Token& t) { return Real(t.value); }
  static bool too_big(const V& v) { return !mpfr_number_p(v.x_); }
  static bool integer(const V& v) { return mpfr_integer_p(v.x_); }
  static std::optional<V> pow(const V& base, const V& e) {
    if (sgn(base) < 0 && !integer(e)) return std::nullopt;
    if (sgn(base) == 0 && sgn(e) < 0) return std::nullopt;
    if (mpfr_cmpabs_ui(e.x_, 100000) > 0) return std::nullopt;
    V r;
    mpfr_pow(r.x_, base.x_, e.x_, MPFR_RNDN);
    return r;
  }
  static std::optional<V> factorial(const V&) { return std::nullopt; }  // of an irrational: no
  static std::optional<V> call(std::string_view f, const V& v) {
    if ((f == "sqrt" && sgn(v) < 0) || ((f == "ln" || f == "log10" || f == "log2") && sgn(v) <= 0))
      return std::nullopt;
    if (f == "exp" && mpfr_cmpabs_ui(v.x_, 100000) > 0) return std::nullopt;
    V r;
    if (f == "sqrt") mpfr_sqrt(r.x_, v.x_, MPFR_RNDN);
    if (f == "cbrt") mpfr_cbrt(r.x_, v.x_, MPFR_RNDN);
    if (f == "exp") mpfr_exp(r.x_, v.x_, MPFR_RNDN);
    if (f == "ln") mpfr_log(r.x_, v.x_, MPFR_RNDN);
    if (f == "log10") mpfr_log10(r.x_, v.x_, MPFR_RNDN);
    if (f == "log2") mpfr_log2(r.x_, v.x_, MPFR_RNDN);
    return r;
  }
};

// The same grammar over units of money: 1 for an amount, 0 for a plain number. Amounts add to
// amounts only ("$5 + 3": declined), a product has at most one amount, an amount divided by an
// amount is a plain ratio; powers, factorials and functions take plain numbers.
struct Money {
  int degree = 0;
  bool bad = false;
  Money& operator+=(const Money& o) { return bad |= o.bad || degree != o.degree, *this; }
  Money& operator-=(const Money& o) { return *this += o; }
  Money& operator*=(const Money& o) { return degree += o.degree, bad |= o.bad, *this; }
  Money& operator/=(const Money& o) { return degree -= o.degree, bad |= o.bad, *this; }
  Money operator-() const { return *this; }
};
int sgn(const Money&) { return 1; }
struct MoneyOps {
  using V = Money;
  static V from(const mpq_class&) { return {}; }
  static V from(const Token& t) { return {t.currency.empty() ? 0 : 1, false}; }
  static bool too_big(const V& v) { return v.bad || v.degree < 0 || v.degree > 1; }
  static std::optional<V> plain(const V& v) {
    return v.degree == 0 && !v.bad ? std::optional<V>(v) : std::nullopt;
  }
  static std::optional<V> pow(const V& base, const V& e) {
    return base.degree == 0 && e.degree == 0 ? std::optional<V>(Money{0, base.bad || e.bad}) : std::nullopt;
  }
  static std::optional<V> factorial(const V& v) { return plain(v); }
  static std::optional<V> call(std::string_view, const V& v) { return plain(v); }
};

template <typename Ops>
class Parser {
 public:
  using V = typename Ops::V;
  explicit Parser(const std::vector<Token>& t) : t_(t) {}

  std::optional<V> parse() {
    auto v = expr();
    if (!v || at_ != t_.size()) return std::nullopt;
    return v;
  }
  bool saw_operator() const { return ops_ > 0; }

 private:
  bool peek(Tok k, size_t ahead = 0) const {
    return at_ + ahead < t_.size() && t_[at_ + ahead].kind == k;
  }
  bool eat(Tok k) { return peek(k) ? (++at_, true) : false; }

  std::optional<V> expr() {
    auto v = term();
    bool percent_term = bare_percent_;
    while (v && (peek(Tok::kPlus) || peek(Tok::kMinus))) {
      const bool plus = t_[at_++].kind == Tok::kPlus;
      ++ops_;
      auto r = term();
      if (!r) return std::nullopt;
      percent_term |= bare_percent_;
      if (percent_term) return std::nullopt;  // "200 + 15%": a shop's 230 or arithmetic's 200.15
      if (plus)
        *v += *r;
      else
        *v -= *r;
    }
    return v;
  }

  // Sets bare_percent_: the term is one percentage ("15%", "-15%"), not a product or "15% of x".
  std::optional<V> term() {
    auto v = unary();
    bool single = true;
    for (;;) {
      if (!v) return std::nullopt;
      if (peek(Tok::kPercent) && (peek(Tok::kNum, 1) || peek(Tok::kOpen, 1)))
        return std::nullopt;  // '%' between operands: modulo, or a percentage times? Declined.
      if (!peek(Tok::kTimes) && !peek(Tok::kDivide)) {
        bare_percent_ = single && bare_percent_;
        return v;
      }
      const Tok op = t_[at_].kind;
      ++at_, ++ops_;
      single = false;
      auto r = unary();
      if (!r) return std::nullopt;
      if (op == Tok::kTimes) {
        *v *= *r;
      } else {
        if (sgn(*r) == 0) return std::nullopt;
        *v /= *r;
      }
      if (Ops::too_big(*v)) return std::nullopt;
    }
  }

  // Recursion follows the input only through unary() ("- - - 1") and primary() ("((1))"): both
  // count their depth, and past kMaxDepth the question is declined (a prompt of ~16k "(" used to
  // exhaust the stack). No arithmetic a person writes nests 100 deep.
  static constexpr int kMaxDepth = 100;
  struct Nest {
    explicit Nest(Parser& p) : p_(p) { ++p_.depth_; }
    ~Nest() { --p_.depth_; }
    bool too_deep() const { return p_.depth_ > kMaxDepth; }
    Parser& p_;
  };

  std::optional<V> unary() {
    const Nest nest(*this);
    if (nest.too_deep()) return std::nullopt;
    if (eat(Tok::kMinus)) {
      auto v = unary();
      if (v) *v = -*v;
      return v;
    }
    if (eat(Tok::kPlus)) return unary();
    return power();
  }

  std::optional<V> power() {
    auto base = postfix();
    if (!base || !eat(Tok::kPow)) return base;
    ++ops_;
    bare_percent_ = false;
    auto e = unary();
    if (!e) return std::nullopt;
    auto r = Ops::pow(*base, *e);
    if (r && Ops::too_big(*r)) return std::nullopt;
    return r;
  }

  std::optional<V> postfix() {
    auto v = primary();
    bare_percent_ = false;
    while (v && eat(Tok::kFactorial)) {  // n! for integers 0..1000
      ++ops_;
      v = Ops::factorial(*v);
    }
    if (!v || !peek(Tok::kPercent) || peek(Tok::kNum, 1) || peek(Tok::kOpen, 1)) return v;
    // "7 % -3": '%' spaced like the operator before a signed operand - a modulo by -3, or 7
    // percent minus 3? Ambiguous: declined. ("181%+4", '%' on its number, is 1.81 + 4.)
    if (t_[at_].spaced && (peek(Tok::kMinus, 1) || peek(Tok::kPlus, 1)) &&
        (peek(Tok::kNum, 2) || peek(Tok::kOpen, 2)))
      return std::nullopt;
    ++at_, ++ops_;
    *v /= Ops::from(100);
    if (eat(Tok::kOf)) {
      auto r = unary();
      if (!r) return std::nullopt;
      *v *= *r;
      bare_percent_ = false;
    } else {
      bare_percent_ = true;
    }
    return v;
  }

  // NUMBER, "(" expr ")", or FUNCTION "(" expr ")".
  std::optional<V> primary() {
    const Nest nest(*this);
    if (nest.too_deep()) return std::nullopt;
    if (peek(Tok::kNum)) return Ops::from(t_[at_++]);
    std::string_view fn;
    if (peek(Tok::kFunction)) fn = t_[at_++].function, ++ops_;
    if (!eat(Tok::kOpen)) return std::nullopt;
    auto v = expr();
    if (!v || !eat(Tok::kClose)) return std::nullopt;
    if (!fn.empty()) return Ops::call(fn, *v);
    return v;
  }

  const std::vector<Token>& t_;
  size_t at_ = 0;
  int ops_ = 0;
  int depth_ = 0;
  bool bare_percent_ = false;  // the factor or term just read is a bare percentage
};

// An irrational value to 15 significant digits (format_exact's rule: at least 3 decimals),
// correctly rounded: declined when the value lies so near a rounding boundary (within 10^-25 of
// the kept digits) that 512 bits cannot decide it, and when it is 10^32 or more (its integer
// part would need more than the 60 digits asked of MPFR) or below 10^-32 (written out, more
// than 32 zeros after the point: "6666 / 66666666666^666666666666^0.4", near 10^-580000, would
// be 580 kB of them).
std::optional<std::string> format_real(const Real& v) {
  if (!mpfr_number_p(v.x_)) return std::nullopt;
  if (mpfr_zero_p(v.x_)) return "0";
  mpfr_exp_t e10;
  // 60 significant digits: e10 is the decimal exponent (value = 0.d1d2... x 10^e10).
  char* raw = mpfr_get_str(nullptr, &e10, 10, 60, v.x_, MPFR_RNDN);
  std::string digits(raw);
  mpfr_free_str(raw);
  const bool neg = digits[0] == '-';
  if (neg) digits.erase(0, 1);
  const long e = static_cast<long>(e10) - 1;  // 10^e <= |value| < 10^(e+1)
  if (e < -kMaxRealZeros) return std::nullopt;
  const long places = std::max<long>(kSignificantDigits - 1 - e, 3);
  const long keep = e + 1 + places;  // digits kept
  if (keep <= 0 || keep + 25 > static_cast<long>(digits.size())) return std::nullopt;
  const std::string rest = digits.substr(keep, 25);
  if (rest == std::string(25, '0') || rest == std::string(25, '9') ||
      rest == "5" + std::string(24, '0') || rest == "4" + std::string(24, '9'))
    return std::nullopt;  // at (or within 10^-25 of) an exact or a tie: not certain
  mpz_class n(digits.substr(0, keep), 10);
  if (rest[0] >= '5') ++n;  // half way is excluded above: round to nearest
  mpq_class q(n, 1);
  q /= pow10q(places);
  return format_exact(neg ? mpq_class(-q) : q);
}

// An amount of money to the cent: "$1,550", "$136.50", "-€2.25". Cents are shown when an operand
// was written with them or the value has them; commas when an operand was written with them.
// A value between cents is rounded to the nearest cent; an exact half cent is declined.
std::optional<std::string> format_money(const mpq_class& v, std::string_view symbol, bool cents,
                                        bool grouped) {
  const mpq_class in_cents = v * 100;
  mpz_class q, r;
  mpz_fdiv_qr(q.get_mpz_t(), r.get_mpz_t(), in_cents.get_num_mpz_t(), in_cents.get_den_mpz_t());
  const int c = cmp(mpz_class(2 * r), in_cents.get_den());
  if (c == 0) return std::nullopt;  // half a cent: rounds up or to even? Declined.
  if (c > 0) ++q;
  const bool neg = sgn(q) < 0;
  q = abs(q);
  const mpz_class whole = q / 100, frac = q % 100;
  cents = cents || frac != 0 || in_cents.get_den() != 1;
  std::string digits = whole.get_str();
  if (grouped)
    for (int at = static_cast<int>(digits.size()) - 3; at > 0; at -= 3) digits.insert(at, ",");
  std::string out = (neg ? "-" : "") + std::string(symbol) + digits;
  if (cents) out += absl::StrFormat(".%02d", static_cast<int>(frac.get_si()));
  return out;
}

// Digits that are codes rather than quantities: a number written with a leading zero ("0199",
// "007"; "0" and "0.5" are numbers), or integers of three digits or more joined by hyphens
// without spaces ("555-0199", "12345-6789"), or three integers so joined ("2024-1-15").
bool looks_like_code(const std::vector<Lexeme>& line, size_t first) {
  auto integer = [](const Lexeme& x) {
    return !x.barrier && x.tok.kind == Tok::kNum &&
           x.text.find_first_not_of("0123456789") == std::string_view::npos;
  };
  for (size_t i = first; i < line.size(); ++i) {
    const Lexeme& x = line[i];
    if (!x.barrier && x.tok.kind == Tok::kNum && x.text.size() > 1 && x.text[0] == '0' &&
        std::isdigit(static_cast<unsigned char>(x.text[1])))
      return true;
    // i: a hyphen glued on both sides between integers.
    if (i == first || i + 1 >= line.size() || x.barrier || x.tok.kind != Tok::kMinus ||
        x.space_before || line[i + 1].space_before || !integer(line[i - 1]) ||
        !integer(line[i + 1]))
      continue;
    if (line[i - 1].text.size() >= 3 && line[i + 1].text.size() >= 3) return true;
    if (i + 3 < line.size() && line[i + 2].tok.kind == Tok::kMinus && !line[i + 2].barrier &&
        !line[i + 2].space_before && !line[i + 3].space_before && integer(line[i + 3]))
      return true;
  }
  return false;
}

// "EXPR is", "EXPR equals", "EXPR is equal to", "EXPR makes": strips the verb.
bool strip_verb(std::string_view* s) {
  static constexpr std::string_view kVerbs[] = {" is equal to", " equals", " is", " makes"};
  const std::string l = lower(*s);
  for (std::string_view v : kVerbs)
    if (l.ends_with(v)) {
      s->remove_suffix(v.size());
      return true;
    }
  return false;
}

// The words before the expression (line[first] on) ask for its value: "what is", "what's",
// "whats", "how much is", "calculate", "compute", "evaluate", right before it.
bool asks_for_value(const std::vector<Lexeme>& line, size_t first) {
  std::vector<std::string> w;  // the last words before the expression, lowercase
  for (size_t i = first; i-- > 0 && w.size() < 3;) {
    if (line[i].text == "'" || line[i].text == "’") continue;  // "what's" lexes as what ' s
    w.insert(w.begin(), lower(line[i].text));
  }
  auto ends = [&](std::initializer_list<std::string_view> p) {
    if (p.size() > w.size()) return false;
    return std::equal(p.begin(), p.end(), w.end() - static_cast<long>(p.size()));
  };
  return ends({"what", "is"}) || ends({"what", "s"}) || ends({"whats"}) ||
         ends({"how", "much", "is"}) || ends({"calculate"}) || ends({"compute"}) ||
         ends({"evaluate"});
}

class Calculator final : public HostExpert {
 public:
  const std::string& name() const override { return name_; }

  std::optional<ExpertAnswer> answer(std::string_view text) const override {
    std::string_view s = trim_end(text);
    bool question = false;
    if (s.ends_with('=')) {
      s.remove_suffix(1);
      if (s.ends_with('=') || s.ends_with('<') || s.ends_with('>') || s.ends_with('!'))
        return std::nullopt;  // "==", "<=", ">=", "!=" are comparisons
    } else if (s.ends_with('?')) {
      s.remove_suffix(1);
      question = true;
    } else if (!strip_verb(&s)) {
      return std::nullopt;
    }
    s = trim_end(s);
    if (const size_t nl = s.rfind('\n'); nl != std::string_view::npos) s = s.substr(nl + 1);
    const std::vector<Lexeme> line = lex(s);
    size_t first = line.size();  // the expression: the lexemes after the last barrier
    while (first > 0 && !line[first - 1].barrier) --first;
    if (first == line.size()) return std::nullopt;
    // A question: the expression is all that follows "What is" (or the like) up to the "?".
    if (question && !asks_for_value(line, first)) return std::nullopt;
    if (first > 0) {
      const Lexeme& b = line[first - 1];
      if (is_hedge(b.text)) return std::nullopt;
      // "$ 5 + 3", "USD 5 + 3": a currency apart from its number.
      for (std::string_view c : kCurrencies)
        if (b.text == c) return std::nullopt;
      const std::string_view word = b.text;
      // Glued to a word or a symbol ("x+3", "f(2)", "$5"): part of something else.
      if (!line[first].space_before && word != ":" && word != "\"" && word != "'" && word != "`")
        return std::nullopt;
    }
    if (looks_like_code(line, first)) return std::nullopt;
    std::vector<Token> toks;
    for (size_t i = first; i < line.size(); ++i) {
      toks.push_back(line[i].tok);
      toks.back().spaced = line[i].space_before;
    }
    // Amounts of money: one currency, and units that make sense (an amount, or a ratio of two).
    std::string_view currency;
    bool cents = false, grouped = false;
    for (size_t i = first; i < line.size(); ++i) {
      const Token& t = line[i].tok;
      if (line[i].barrier || t.kind != Tok::kNum) continue;
      grouped |= line[i].text.find(',') != std::string_view::npos;
      if (t.currency.empty()) continue;
      if (!currency.empty() && currency != t.currency) return std::nullopt;  // "$5 + €3"
      currency = t.currency;
      cents |= line[i].text.find('.') != std::string_view::npos;
    }
    bool money = false;
    if (!currency.empty()) {
      Parser<MoneyOps> p(toks);
      const auto v = p.parse();
      if (!v || MoneyOps::too_big(*v)) return std::nullopt;
      money = v->degree == 1;
    }
    std::string out;
    try {
      Parser<ExactOps> p(toks);
      const auto v = p.parse();
      if (!v || !p.saw_operator()) return std::nullopt;
      if (money) {
        const auto m = format_money(*v, currency, cents, grouped);
        if (!m) return std::nullopt;
        out = *m;
      } else {
        out = format_exact(*v);
      }
    } catch (const NotExact&) {
      if (money) return std::nullopt;  // an irrational amount of money
      // An irrational value: evaluated again in 512-bit MPFR and rounded once.
      Parser<RealOps> p(toks);
      const auto v = p.parse();
      if (!v) return std::nullopt;
      const auto r = format_real(*v);
      if (!r) return std::nullopt;
      out = *r;
    }
    const std::string expr(trim_end(s.substr(toks.front().begin)));
    return ExpertAnswer{expr, out, continue_with(text, out)};
  }

 private:
  std::string name_ = "calculator";
};

}  // namespace

std::unique_ptr<HostExpert> make_calculator() { return std::make_unique<Calculator>(); }

}  // namespace vex
