#include "experts/pyexpr.h"

#include <gmpxx.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "experts/text.h"

namespace vex::py {
namespace {

// ---------------------------------------------------------------------------------------------
// Values

struct Value;
using Items = std::vector<Value>;

// kDict holds its keys and values interleaved (k0, v0, k1, v1, ...) in insertion order; kSet
// its distinct elements in no particular order; kView a dict view's elements (start: 0 keys,
// 1 values, 2 items); kFunc a function (Func), kModule the math module.
enum class Type { kNone, kBool, kInt, kFloat, kStr, kList, kTuple, kRange, kIter, kDict, kSet,
                  kView, kFunc, kModule };

struct Node;
struct Func;

struct Value {
  Type type = Type::kNone;
  mpz_class i;                         // kBool (0/1), kInt
  double f = 0;                        // kFloat
  std::u32string s;                    // kStr, in code points
  std::shared_ptr<const Items> items;  // kList, kTuple, kIter (a materialised iterator), kDict, kSet, kView
  int64_t start = 0, stop = 0, step = 1;  // kRange
  std::shared_ptr<const Func> fn;      // kFunc
};

// A function: a builtin (by name: "len", "math.sqrt") or one defined by "def" or "lambda", whose
// body is one expression evaluated with its parameters bound.
struct Func {
  std::string name;
  bool builtin = false;
  std::vector<std::string> params;
  Items defaults;                     // for the last defaults.size() parameters
  std::shared_ptr<const Node> body;
};

Value none() { return {}; }
Value boolean(bool b) {
  Value v;
  v.type = Type::kBool, v.i = b ? 1 : 0;
  return v;
}
Value integer(mpz_class n) {
  Value v;
  v.type = Type::kInt, v.i = std::move(n);
  return v;
}
Value real(double d) {
  Value v;
  v.type = Type::kFloat, v.f = d;
  return v;
}
Value str(std::u32string s) {
  Value v;
  v.type = Type::kStr, v.s = std::move(s);
  return v;
}
Value seq(Type t, Items items) {
  Value v;
  v.type = t, v.items = std::make_shared<const Items>(std::move(items));
  return v;
}

bool is_int(const Value& v) { return v.type == Type::kInt || v.type == Type::kBool; }
bool is_num(const Value& v) { return is_int(v) || v.type == Type::kFloat; }

absl::Status error(std::string_view kind, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(kind), ": ", std::string(what)));
}
absl::Status type_error(std::string_view what) { return error("TypeError", what); }
absl::Status value_error(std::string_view what) { return error("ValueError", what); }
absl::Status unsupported(std::string_view what) { return error("unsupported", what); }

std::string type_name(const Value& v) {
  static constexpr const char* kNames[] = {
      "NoneType", "bool", "int",  "float", "str",  "list",     "tuple", "range",
      "iterator", "dict", "set",  "dict_view", "function", "module"};
  if (v.type == Type::kFunc && v.fn->builtin) return "builtin_function_or_method";
  return kNames[static_cast<int>(v.type)];
}

std::u32string from_utf8(std::string_view s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    const int n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    char32_t cp = n == 1 ? c : c & (0x3F >> (n - 1));
    for (int k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (s[i + k] & 0x3F);
    out.push_back(cp);
    i += n;
  }
  return out;
}

std::string to_utf8(std::u32string_view s) {
  std::string out;
  for (char32_t c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6)), out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F)), out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18)), out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F)), out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

// Python's float repr: the shortest digits that round-trip (std::to_chars picks the same ones),
// positional when the decimal point falls within 16 places, else d.ddde±XX.
std::string float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  if (x == 0) return std::signbit(x) ? "-0.0" : "0.0";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, std::fabs(x), std::chars_format::scientific);
  const std::string s(buf, r.ptr);
  const size_t e = s.find('e');
  const std::string digits = s.substr(0, 1) + (e > 2 ? s.substr(2, e - 2) : "");
  const int decpt = std::stoi(s.substr(e + 1)) + 1;  // value = 0.DIGITS × 10^decpt
  const int n = static_cast<int>(digits.size());
  std::string out;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0)
      out = "0." + std::string(-decpt, '0') + digits;
    else if (decpt >= n)
      out = digits + std::string(decpt - n, '0') + ".0";
    else
      out = digits.substr(0, decpt) + "." + digits.substr(decpt);
  } else {
    out = digits.substr(0, 1) + (n > 1 ? "." + digits.substr(1) : "");
    const int ex = decpt - 1;
    out += absl::StrFormat("e%c%02d", ex < 0 ? '-' : '+', std::abs(ex));
  }
  return (x < 0 ? "-" : "") + out;
}

// Python's str repr; characters whose printability depends on Unicode tables beyond Latin are
// refused rather than guessed.
absl::StatusOr<std::string> str_repr(std::u32string_view s) {
  const bool has_single = s.find(U'\'') != std::u32string_view::npos;
  const bool has_double = s.find(U'"') != std::u32string_view::npos;
  const char32_t quote = has_single && !has_double ? U'"' : U'\'';
  std::u32string out(1, quote);
  for (char32_t c : s) {
    if (c == quote || c == U'\\') {
      out += U'\\', out += c;
    } else if (c == U'\n') {
      out += U"\\n";
    } else if (c == U'\r') {
      out += U"\\r";
    } else if (c == U'\t') {
      out += U"\\t";
    } else if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) {
      out += from_utf8(absl::StrFormat("\\x%02x", static_cast<unsigned>(c)));
    } else if (c > 0x24F) {
      return unsupported("repr of a character outside Latin");
    } else {
      out += c;
    }
  }
  out += quote;
  return to_utf8(out);
}

// The running evaluation's budget. Walks over values (repr, ==, ordering, "in", count) may
// cross a structure shared many times over ("c = [[[0]*1000]*1000]*1000" is 3,000 list cells
// but 10^9 elements to print or compare), so they charge it per element visited and per byte
// produced, and stop once it is spent: the call declines within the same bound as any other work.
struct Budget {
  int64_t steps, bytes;
  // Set by a comparison CPython decides by object identity (dict views, functions): whatever
  // the walk answered, the evaluation declines.
  bool identity = false;
  bool spent() const { return steps < 0 || bytes < 0; }
};
thread_local Budget* t_budget = nullptr;

// Charges the running evaluation, if any; false once its budget is spent.
bool walk(int64_t steps, int64_t bytes = 0) {
  if (!t_budget) return true;
  t_budget->steps -= steps, t_budget->bytes -= bytes;
  return !t_budget->spent();
}

absl::Status budget_error() {
  return unsupported(t_budget && t_budget->steps < 0 ? "step budget exhausted"
                                                      : "memory budget exhausted");
}

// CPython iterates a set in its hash table's slot order. An int 0 <= v < the table's size sits in
// slot v (hash(v) == v), so a set of such ints iterates in ascending order. A set of n elements
// has at least S slots, S the least power of two >= 8 with 3 (S - 1) > 5 n (CPython keeps
// fill * 5 < mask * 3 after every insertion, presized merges included). Any other set's order
// depends on insertion history or on string hashes (randomized per process): nullopt.
std::optional<Items> set_order(const Value& v) {
  const Items& xs = *v.items;
  int64_t size = 8;
  while (3 * (size - 1) <= 5 * static_cast<int64_t>(xs.size())) size *= 2;
  for (const Value& x : xs)
    if (x.type != Type::kInt || sgn(x.i) < 0 || x.i >= size) return std::nullopt;
  Items out = xs;
  std::sort(out.begin(), out.end(), [](const Value& a, const Value& b) { return a.i < b.i; });
  return out;
}

absl::StatusOr<std::string> repr(const Value& v) {
  switch (v.type) {
    case Type::kNone:
      return "None";
    case Type::kBool:
      return v.i != 0 ? "True" : "False";
    case Type::kInt:
      // Python 3.11+ refuses to print integers of more than 4300 digits.
      if (mpz_sizeinbase(v.i.get_mpz_t(), 10) > 4300) return value_error("int too large to print");
      return v.i.get_str();
    case Type::kFloat:
      return float_repr(v.f);
    case Type::kStr:
      return str_repr(v.s);
    case Type::kList:
    case Type::kTuple: {
      const bool list = v.type == Type::kList;
      std::string out = list ? "[" : "(";
      for (size_t k = 0; k < v.items->size(); ++k) {
        VEX_ASSIGN_OR_RETURN(std::string item, repr((*v.items)[k]));
        if (!walk(1, static_cast<int64_t>(item.size()) + 2)) return budget_error();
        out += (k ? ", " : "") + item;
      }
      if (!list && v.items->size() == 1) out += ",";
      return out + (list ? "]" : ")");
    }
    case Type::kRange:
      return v.step == 1 ? absl::StrCat("range(", v.start, ", ", v.stop, ")")
                         : absl::StrCat("range(", v.start, ", ", v.stop, ", ", v.step, ")");
    case Type::kIter:
      return unsupported("repr of an iterator (its address)");
    case Type::kDict: {
      std::string out = "{";
      for (size_t k = 0; k < v.items->size(); k += 2) {
        VEX_ASSIGN_OR_RETURN(std::string key, repr((*v.items)[k]));
        VEX_ASSIGN_OR_RETURN(std::string value, repr((*v.items)[k + 1]));
        if (!walk(1, static_cast<int64_t>(key.size() + value.size()) + 4)) return budget_error();
        absl::StrAppend(&out, k ? ", " : "", key, ": ", value);
      }
      return out + "}";
    }
    case Type::kSet: {
      if (v.items->empty()) return "set()";
      const auto ordered = set_order(v);
      if (!ordered) return unsupported("the order of a set that CPython's hashes decide");
      Value as_list = seq(Type::kList, *ordered);
      VEX_ASSIGN_OR_RETURN(std::string out, repr(as_list));
      return "{" + out.substr(1, out.size() - 2) + "}";
    }
    case Type::kView: {
      static constexpr const char* kViews[] = {"dict_keys", "dict_values", "dict_items"};
      VEX_ASSIGN_OR_RETURN(std::string out, repr(seq(Type::kList, *v.items)));
      return absl::StrCat(kViews[v.start], "(", out, ")");
    }
    case Type::kFunc:
    case Type::kModule:
      return unsupported("repr of a function or module (its address)");
  }
  return unsupported("repr");
}

// Correctly rounded int -> float (round half to even), as Python converts.
absl::StatusOr<double> int_to_float(const mpz_class& n) {
  if (mpz_sizeinbase(n.get_mpz_t(), 2) <= 53) return n.get_d();
  const double d = std::strtod(n.get_str().c_str(), nullptr);
  if (std::isinf(d)) return error("OverflowError", "int too large to convert to float");
  return d;
}

// Correctly rounded a / b for integers, as Python's int true division: exact decimal digits well
// past any tie between two doubles, plus a sticky digit, then strtod (itself correctly rounded).
absl::StatusOr<double> divide_to_float(const mpz_class& a, const mpz_class& b) {
  if (mpz_sizeinbase(a.get_mpz_t(), 2) <= 53 && mpz_sizeinbase(b.get_mpz_t(), 2) <= 53)
    return a.get_d() / b.get_d();
  const mpz_class na = abs(a), nb = abs(b);
  const long shift = std::max<long>(0, 800 - static_cast<long>(mpz_sizeinbase(na.get_mpz_t(), 10)) +
                                           static_cast<long>(mpz_sizeinbase(nb.get_mpz_t(), 10)));
  mpz_class scale, q, r;
  mpz_ui_pow_ui(scale.get_mpz_t(), 10, shift);
  mpz_tdiv_qr(q.get_mpz_t(), r.get_mpz_t(), mpz_class(na * scale).get_mpz_t(), nb.get_mpz_t());
  std::string digits = q.get_str() + (r != 0 ? "1" : "") + "e-" +
                       std::to_string(shift + (r != 0 ? 1 : 0));
  const double d = std::strtod(digits.c_str(), nullptr);
  if (std::isinf(d)) return error("OverflowError", "integer division result too large for a float");
  return sgn(a) * sgn(b) < 0 ? -d : d;
}

absl::StatusOr<double> as_float(const Value& v) {
  if (v.type == Type::kFloat) return v.f;
  if (is_int(v)) return int_to_float(v.i);
  return type_error("must be real number, not " + type_name(v));
}

// The exact value of a finite number.
mpq_class exact(const Value& v) {
  if (v.type == Type::kFloat) return mpq_class(v.f);
  return mpq_class(v.i);
}

// -1, 0, 1 for numbers (exact, as Python compares int with float); nullopt if a NaN is involved.
std::optional<int> compare_numbers(const Value& a, const Value& b) {
  const double x = a.type == Type::kFloat ? a.f : 0, y = b.type == Type::kFloat ? b.f : 0;
  if (std::isnan(x) || std::isnan(y)) return std::nullopt;
  if (std::isinf(x) || std::isinf(y)) {
    const double xi = std::isinf(x) ? x : 0, yi = std::isinf(y) ? y : 0;
    if (xi == yi) return 0;
    return xi < yi ? -1 : 1;
  }
  const int c = cmp(exact(a), exact(b));
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

int64_t length(const Value& v) {
  if (v.type == Type::kStr) return static_cast<int64_t>(v.s.size());
  if (v.type == Type::kRange) {
    // In 128 bits: bounds up to 2^60 and a step up to 2^63 - 1 overflow int64 here
    // (len(range(-2**60, 2**60, 2**63 - 1)) was 0; Python: 1).
    const __int128 start = v.start, stop = v.stop, step = v.step;
    const __int128 n = step > 0 ? (stop - start + step - 1) / step : (start - stop - step - 1) / -step;
    return static_cast<int64_t>(std::max<__int128>(n, 0));
  }
  return static_cast<int64_t>(v.items->size() / (v.type == Type::kDict ? 2 : 1));
}

bool equal(const Value& a, const Value& b);
std::optional<size_t> find_key(const Value& d, const Value& key);

// A spent budget ends the walk with "not equal"; the evaluation declines at its next charge and
// run() checks the budget before answering, so that value is never shown.
bool equal_items(const Items& a, const Items& b) {
  if (a.size() != b.size()) return false;
  for (size_t k = 0; k < a.size(); ++k)
    if (!walk(1) || !equal(a[k], b[k])) return false;
  return true;
}

bool equal(const Value& a, const Value& b) {
  if (is_num(a) && is_num(b)) return compare_numbers(a, b) == 0;
  if (a.type == Type::kView || b.type == Type::kView) {  // keys() == {'a'} is True; values() by identity
    if (t_budget) t_budget->identity = true;
    return false;
  }
  if (a.type != b.type) return false;
  switch (a.type) {
    case Type::kNone:
      return true;
    case Type::kStr:
      return a.s == b.s;
    case Type::kList:
    case Type::kTuple:
      return equal_items(*a.items, *b.items);
    case Type::kRange: {
      // Ranges are equal when they hold the same elements.
      const int64_t n = length(a);
      return n == length(b) && (n == 0 || (a.start == b.start && (n == 1 || a.step == b.step)));
    }
    case Type::kDict:
    case Type::kSet: {
      // Same size, and every key (element) of one in the other with an equal value.
      const bool dict = a.type == Type::kDict;
      if (a.items->size() != b.items->size()) return false;
      for (size_t k = 0; k < a.items->size(); k += dict ? 2 : 1) {
        const auto at = find_key(b, (*a.items)[k]);
        if (!at || (dict && !equal((*a.items)[k + 1], (*b.items)[*at + 1]))) return false;
      }
      return true;
    }
    default:
      if (t_budget) t_budget->identity = true;
      return a.items == b.items && a.fn == b.fn;
  }
}

// Where a key is in a dict (the index of the key) or a set, by Python's equality (1 == 1.0 ==
// True: one key). The caller has checked it is hashable.
std::optional<size_t> find_in(const Items& items, size_t stride, const Value& key) {
  for (size_t k = 0; k < items.size(); k += stride) {
    if (!walk(1)) return std::nullopt;
    if (equal(items[k], key)) return k;
  }
  return std::nullopt;
}
std::optional<size_t> find_key(const Value& d, const Value& key) {
  return find_in(*d.items, d.type == Type::kDict ? 2 : 1, key);
}

// Whether a value may be a dict key or set element: None, bool, int, float, str, range and
// tuples of them. A NaN key is refused (CPython finds it by identity, not equality).
absl::Status hashable(const Value& v) {
  switch (v.type) {
    case Type::kNone: case Type::kBool: case Type::kInt: case Type::kStr: case Type::kRange:
      return absl::OkStatus();
    case Type::kFloat:
      return std::isnan(v.f) ? unsupported("a NaN key (found by identity)") : absl::OkStatus();
    case Type::kTuple:
      for (const Value& x : *v.items) VEX_RETURN_IF_ERROR(hashable(x));
      return absl::OkStatus();
    case Type::kFunc: case Type::kModule:
      return unsupported("a function or module as a key (hashed by identity)");
    default:
      return type_error("unhashable type: '" + type_name(v) + "'");
  }
}

// Python's ordering: numbers, strings, and lists or tuples (lexicographic) of one type.
absl::StatusOr<int> order(const Value& a, const Value& b) {
  if (is_num(a) && is_num(b)) {
    const auto c = compare_numbers(a, b);
    return c ? *c : 2;  // 2: unordered (NaN); every comparison with it is False
  }
  if (a.type == Type::kStr && b.type == Type::kStr) return a.s < b.s ? -1 : a.s == b.s ? 0 : 1;
  if (a.type == b.type && (a.type == Type::kList || a.type == Type::kTuple)) {
    const Items &x = *a.items, &y = *b.items;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (!walk(1)) return budget_error();
      if (equal(x[k], y[k])) continue;
      return order(x[k], y[k]);
    }
    return x.size() < y.size() ? -1 : x.size() == y.size() ? 0 : 1;
  }
  return type_error("'<' not supported between instances of '" + type_name(a) + "' and '" +
                    type_name(b) + "'");
}

bool truthy(const Value& v) {
  switch (v.type) {
    case Type::kNone:
      return false;
    case Type::kBool:
    case Type::kInt:
      return v.i != 0;
    case Type::kFloat:
      return v.f != 0;
    case Type::kStr:
      return !v.s.empty();
    case Type::kRange:
      return v.step > 0 ? v.start < v.stop : v.start > v.stop;
    case Type::kFunc:
    case Type::kModule:
      return true;
    default:
      return !v.items->empty();
  }
}

// ---------------------------------------------------------------------------------------------
// Lexer and parser

enum class Tok { kNum, kStr, kName, kOp, kEnd };

struct Token {
  Tok kind;
  std::string text;
  Value value;  // kNum, kStr
};

bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

absl::StatusOr<std::vector<Token>> lex(std::string_view s) {
  static constexpr std::string_view kOps3[] = {"**=", "//="};
  static constexpr std::string_view kOps2[] = {"**", "//", "==", "!=", "<=", ">=", "+=", "-=", "*="};
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == ' ' || c == '\t') {
      ++i;
      continue;
    }
    if (c == '#') break;
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      size_t j = i;
      bool is_float = false;
      std::string clean;
      while (j < s.size()) {
        const char d = s[j];
        if (std::isdigit(static_cast<unsigned char>(d))) {
          clean += d;
        } else if (d == '_' && j + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[j + 1])) &&
                   !clean.empty() && std::isdigit(static_cast<unsigned char>(clean.back()))) {
          // A digit separator ("1_000"): skipped.
        } else if (d == '.' && !is_float) {
          is_float = true, clean += d;
        } else if ((d == 'e' || d == 'E') && !clean.empty() && clean.find('e') == std::string::npos) {
          is_float = true, clean += 'e';
          if (j + 1 < s.size() && (s[j + 1] == '+' || s[j + 1] == '-')) clean += s[++j];
        } else {
          break;
        }
        ++j;
      }
      if (j < s.size() && ident_char(s[j])) return error("SyntaxError", "invalid number literal");
      Token t{Tok::kNum, std::string(s.substr(i, j - i)), {}};
      if (is_float) {
        if (clean.back() == 'e' || clean.back() == '+' || clean.back() == '-')
          return error("SyntaxError", "invalid float literal");
        t.value = real(std::strtod(clean.c_str(), nullptr));
      } else {
        if (clean.size() > 1 && clean[0] == '0' && clean.find_first_not_of('0') != std::string::npos)
          return error("SyntaxError", "leading zeros in an integer literal");
        if (clean.size() > 5000) return unsupported("integer literal too long");
        t.value = integer(mpz_class(clean, 10));
      }
      out.push_back(std::move(t));
      i = j;
      continue;
    }
    // f"..{x}..": lexed as ("..", str(x), "..") joined with +: what CPython's format(x, '')
    // gives for the values of this subset. Conversions (!r), format specs (:.2f) and escapes
    // are left out.
    if ((c == 'f' || c == 'F') && i + 1 < s.size() && (s[i + 1] == '\'' || s[i + 1] == '"')) {
      const char q = s[i + 1];
      if (s.substr(i + 1).starts_with(std::string(3, q))) return unsupported("triple-quoted string");
      std::vector<Token> parts;
      std::string lit;
      bool first = true;
      auto plus = [&] {
        if (!first) parts.push_back({Tok::kOp, "+", {}});
        first = false;
      };
      auto flush = [&](bool always) {
        if (lit.empty() && !always) return;
        plus();
        parts.push_back({Tok::kStr, "'...'", str(from_utf8(lit))});
        lit.clear();
      };
      size_t j = i + 2;
      for (;;) {
        if (j >= s.size()) return error("SyntaxError", "unterminated f-string");
        const char ch = s[j];
        if (ch == q) break;
        if (ch == '\\') return unsupported("an escape in an f-string");
        if ((ch == '{' || ch == '}') && j + 1 < s.size() && s[j + 1] == ch) {
          lit += ch, j += 2;
          continue;
        }
        if (ch == '}') return error("SyntaxError", "f-string: single '}' is not allowed");
        if (ch != '{') {
          lit += ch, ++j;
          continue;
        }
        size_t k = j + 1;
        int depth = 0;
        for (; k < s.size() && !(depth == 0 && s[k] == '}'); ++k) {
          if (s[k] == q) return error("SyntaxError", "f-string: unterminated expression");
          if (depth == 0 && (s[k] == '!' || s[k] == ':') && !(s[k] == '!' && k + 1 < s.size() && s[k + 1] == '='))
            return unsupported("an f-string conversion or format spec");
          depth += (s[k] == '(' || s[k] == '[' || s[k] == '{') - (s[k] == ')' || s[k] == ']' || s[k] == '}');
        }
        if (k >= s.size()) return error("SyntaxError", "f-string: expecting '}'");
        VEX_ASSIGN_OR_RETURN(std::vector<Token> sub, lex(s.substr(j + 1, k - j - 1)));
        sub.pop_back();  // its end marker
        if (sub.empty()) return error("SyntaxError", "f-string: empty expression not allowed");
        flush(false);
        plus();
        parts.push_back({Tok::kName, "str", {}});
        parts.push_back({Tok::kOp, "(", {}});
        parts.insert(parts.end(), sub.begin(), sub.end());
        parts.push_back({Tok::kOp, ")", {}});
        j = k + 1;
      }
      flush(first);
      out.push_back({Tok::kOp, "(", {}});
      out.insert(out.end(), parts.begin(), parts.end());
      out.push_back({Tok::kOp, ")", {}});
      i = j + 1;
      continue;
    }
    const bool raw = (c == 'r' || c == 'R') && i + 1 < s.size() && (s[i + 1] == '\'' || s[i + 1] == '"');
    if (c == '\'' || c == '"' || raw) {
      if (raw) ++i;
      const char q = s[i];
      if (s.substr(i).starts_with(std::string(3, q))) return unsupported("triple-quoted string");
      std::string body;
      size_t j = i + 1;
      for (;; ++j) {
        if (j >= s.size()) return error("SyntaxError", "unterminated string literal");
        if (s[j] == q) break;
        if (s[j] != '\\' || raw) {
          body += s[j];
          continue;
        }
        if (++j >= s.size()) return error("SyntaxError", "unterminated string literal");
        switch (s[j]) {
          case 'n': body += '\n'; break;
          case 't': body += '\t'; break;
          case 'r': body += '\r'; break;
          case '0': body += '\0'; break;
          case '\\': case '\'': case '"': body += s[j]; break;
          case 'x': {
            if (j + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[j + 1])) ||
                !std::isxdigit(static_cast<unsigned char>(s[j + 2])))
              return error("SyntaxError", "bad \\x escape");
            body += to_utf8(std::u32string(1, static_cast<char32_t>(
                                                  std::stoi(std::string(s.substr(j + 1, 2)), nullptr, 16))));
            j += 2;
            break;
          }
          default: return unsupported("string escape");
        }
      }
      Token t{Tok::kStr, std::string(s.substr(i, j + 1 - i)), str(from_utf8(body))};
      out.push_back(std::move(t));
      i = j + 1;
      continue;
    }
    if (ident_start(c)) {
      size_t j = i;
      while (j < s.size() && ident_char(s[j])) ++j;
      out.push_back({Tok::kName, std::string(s.substr(i, j - i)), {}});
      i = j;
      continue;
    }
    std::string op;
    for (std::string_view o : kOps3)
      if (s.substr(i).starts_with(o)) op = o;
    if (op.empty())
      for (std::string_view o : kOps2)
        if (s.substr(i).starts_with(o)) op = o;
    if (op.empty() && std::string_view("+-*/%<>=()[],:.{}|&^;").find(c) != std::string_view::npos)
      op = std::string(1, c);
    if (op.empty()) return error("SyntaxError", absl::StrCat("unexpected character '", std::string(1, c), "'"));
    out.push_back({Tok::kOp, op, {}});
    i += op.size();
  }
  out.push_back({Tok::kEnd, "", {}});
  return out;
}

enum class K { kLit, kName, kList, kTuple, kUnary, kBinary, kCompare, kAnd, kOr, kNot, kIf,
               kCall, kMethod, kIndex, kSlice, kComp, kDict, kSet, kAttr, kLambda };

struct Node;
using NodeP = std::unique_ptr<Node>;

struct Clause {
  std::vector<std::string> targets;  // "for x in" / "for i, x in"
  NodeP iter;
  std::vector<NodeP> conds;          // "if ..." after it
};

struct Node {
  K kind;
  Value lit;                       // kLit
  std::string name;                // kName, kCall, kMethod; the operator of kUnary / kBinary
  std::vector<std::string> ops;    // kCompare: the operators between kids
  std::vector<NodeP> kids;         // operands, elements, arguments (kMethod: the object first)
  std::vector<std::string> kw;     // kCall/kMethod: keyword names of the last kw.size() kids
  std::vector<Clause> clauses;     // kComp: kids[0] is the element (a dict's: kids[0]: kids[1]);
                                   // name is "list", "gen", "set" or "dict"
  std::vector<std::string> params; // kLambda: its parameters; kids: the defaults of the last ones
  std::shared_ptr<const Node> body;  // kLambda: shared with the functions it makes
};

NodeP make_node(K kind, std::string name = {}) {
  auto n = std::make_unique<Node>();
  n->kind = kind, n->name = std::move(name);
  return n;
}

constexpr std::string_view kKeywords[] = {"and", "or", "not", "in", "is", "if", "else", "for",
                                          "lambda", "None", "True", "False", "import", "def",
                                          "class", "while", "return", "yield", "del", "global"};

class Parser {
 public:
  explicit Parser(const std::vector<Token>& t) : t_(t) {}

  absl::StatusOr<NodeP> whole() {
    VEX_ASSIGN_OR_RETURN(NodeP n, tuple_or_expr());
    if (!at_end()) return error("SyntaxError", "unexpected '" + t_[at_].text + "'");
    return n;
  }
  // "x = ...", "x += ...": the target and operator, consumed; nullopt (nothing consumed) if not.
  std::optional<std::pair<std::string, std::string>> assignment() {
    if (t_.size() < 3 || t_[0].kind != Tok::kName || keyword(t_[0].text) || t_[1].kind != Tok::kOp)
      return std::nullopt;
    const std::string& op = t_[1].text;
    if (op != "=" && op != "+=" && op != "-=" && op != "*=" && op != "//=" && op != "**=")
      return std::nullopt;
    at_ = 2;
    return std::make_pair(t_[0].text, op);
  }
  bool at_end() const { return t_[at_].kind == Tok::kEnd; }
  void skip() { ++at_; }

 private:
  static bool keyword(const std::string& s) {
    return std::find(std::begin(kKeywords), std::end(kKeywords), s) != std::end(kKeywords);
  }
  bool is_op(std::string_view o, size_t ahead = 0) const {
    const Token& t = t_[std::min(at_ + ahead, t_.size() - 1)];
    return t.kind == Tok::kOp && t.text == o;
  }
  bool is_kw(std::string_view k, size_t ahead = 0) const {
    const Token& t = t_[std::min(at_ + ahead, t_.size() - 1)];
    return t.kind == Tok::kName && t.text == k;
  }
  bool eat_op(std::string_view o) { return is_op(o) ? (++at_, true) : false; }
  bool eat_kw(std::string_view k) { return is_kw(k) ? (++at_, true) : false; }
  NodeP fail(absl::Status s) {
    if (status_.ok()) status_ = std::move(s);
    return nullptr;
  }
  bool expect_op(std::string_view o) {
    if (eat_op(o)) return true;
    fail(error("SyntaxError", absl::StrCat("expected '", std::string(o), "'")));
    return false;
  }

  absl::StatusOr<NodeP> tuple_or_expr() {
    NodeP first = ternary();
    if (!status_.ok()) return status_;
    if (!is_op(",")) return first;
    auto t = node(K::kTuple);
    t->kids.push_back(std::move(first));
    while (eat_op(",") && !at_end()) {
      t->kids.push_back(ternary());
      if (!status_.ok()) return status_;
    }
    return t;
  }

  // Nesting depth (parentheses, unary operators, "not", "**"): bounded, so that neither this
  // recursive parser nor the evaluator and repr that follow the tree can exhaust the stack.
  static constexpr int kMaxDepth = 200;  // about 65 levels of parentheses
  // Nodes per statement: the loops that build left-deep trees ("1 + 1 + ...", "x[0][0]...",
  // "s.strip().strip()...") stop here, so the tree's height, and with it the recursion of the
  // evaluator and of the tree's destruction, stays bounded whatever the nesting counter sees.
  static constexpr int kMaxNodes = 2000;
  NodeP node(K kind, std::string name = {}) {
    if (++nodes_ > kMaxNodes) fail(unsupported("expression too long"));
    return make_node(kind, std::move(name));
  }
  struct Nest {
    explicit Nest(Parser& p) : p_(p) { ++p_.depth_; }
    ~Nest() { --p_.depth_; }
    bool too_deep() const { return p_.depth_ > kMaxDepth; }
    Parser& p_;
  };

  NodeP ternary() {
    const Nest nest(*this);
    if (nest.too_deep()) return fail(unsupported("nesting too deep"));
    if (eat_kw("lambda")) return lambda();
    NodeP a = or_test();
    if (!a || !is_kw("if")) return a;
    ++at_;
    auto n = node(K::kIf);
    NodeP cond = or_test();
    if (!cond || !eat_kw("else")) return fail(error("SyntaxError", "expected 'else'"));
    NodeP b = ternary();
    if (!b) return nullptr;
    n->kids.push_back(std::move(cond)), n->kids.push_back(std::move(a)), n->kids.push_back(std::move(b));
    return n;
  }

  // "lambda a, b=1: body" (the keyword eaten).
  NodeP lambda() {
    auto n = node(K::kLambda, "<lambda>");
    if (!parameters(*n, ":")) return nullptr;
    NodeP body = ternary();
    if (!body) return nullptr;
    n->body = std::move(body);
    return n;
  }

 public:
  // Parameter names, each with an optional default, up to `close` (eaten): "a, b=2". Defaults
  // are parsed into n.kids.
  bool parameters(Node& n, std::string_view close) {
    while (!eat_op(close)) {
      if (t_[at_].kind != Tok::kName || keyword(t_[at_].text)) {
        fail(unsupported("parameters other than names (with defaults)"));
        return false;
      }
      const std::string& p = t_[at_++].text;
      if (std::find(n.params.begin(), n.params.end(), p) != n.params.end()) {
        fail(error("SyntaxError", "duplicate argument '" + p + "'"));
        return false;
      }
      n.params.push_back(p);
      if (eat_op("=")) {
        NodeP d = ternary();
        if (!d) return false;
        n.kids.push_back(std::move(d));
      } else if (!n.kids.empty()) {
        fail(error("SyntaxError", "non-default argument follows default argument"));
        return false;
      }
      if (eat_op(close)) break;
      if (!expect_op(",")) return false;
    }
    return true;
  }
  // What follows "def": "NAME(PARAMS): return EXPR" to the end. The name and a kLambda node.
  absl::StatusOr<std::pair<std::string, NodeP>> def() {
    if (t_[at_].kind != Tok::kName || keyword(t_[at_].text)) return error("SyntaxError", "invalid def");
    const std::string name = t_[at_++].text;
    auto n = node(K::kLambda, name);
    if (!expect_op("(") || !parameters(*n, ")") || !expect_op(":")) return status_;
    if (!eat_kw("return")) return unsupported("a function body other than one 'return EXPR'");
    NodeP body = ternary();
    if (!body) return status_;
    if (!at_end()) return error("SyntaxError", "unexpected '" + t_[at_].text + "'");
    n->body = std::move(body);
    return std::make_pair(name, std::move(n));
  }

 private:
  NodeP or_test() { return chain(K::kOr, "or", &Parser::and_test); }
  NodeP and_test() { return chain(K::kAnd, "and", &Parser::not_test); }
  NodeP chain(K kind, std::string_view kw, NodeP (Parser::*next)()) {
    NodeP a = (this->*next)();
    if (!a || !is_kw(kw)) return a;
    auto n = node(kind);
    n->kids.push_back(std::move(a));
    while (eat_kw(kw)) {
      NodeP b = (this->*next)();
      if (!b) return nullptr;
      n->kids.push_back(std::move(b));
    }
    return n;
  }

  NodeP not_test() {
    const Nest nest(*this);
    if (nest.too_deep()) return fail(unsupported("nesting too deep"));
    if (!eat_kw("not")) return comparison();
    NodeP a = not_test();
    if (!a) return nullptr;
    auto n = node(K::kNot);
    n->kids.push_back(std::move(a));
    return n;
  }

  NodeP comparison() {
    NodeP a = bit_or();
    if (!a) return nullptr;
    auto n = node(K::kCompare);
    n->kids.push_back(std::move(a));
    for (;;) {
      std::string op;
      for (std::string_view o : {"<", ">", "==", "!=", "<=", ">="})
        if (is_op(o)) op = o;
      if (!op.empty()) {
        ++at_;
      } else if (is_kw("in")) {
        op = "in", ++at_;
      } else if (is_kw("not") && is_kw("in", 1)) {
        op = "not in", at_ += 2;
      } else if (is_kw("is")) {
        return fail(unsupported("'is' (object identity)"));
      } else {
        break;
      }
      NodeP b = bit_or();
      if (!b) return nullptr;
      n->ops.push_back(op);
      n->kids.push_back(std::move(b));
    }
    if (n->ops.empty()) return std::move(n->kids[0]);
    return n;
  }

  NodeP binary_left(const std::vector<std::string_view>& ops, NodeP (Parser::*next)()) {
    NodeP a = (this->*next)();
    for (;;) {
      if (!a || !status_.ok()) return nullptr;
      std::string op;
      for (std::string_view o : ops)
        if (is_op(o)) op = o;
      if (op.empty()) return a;
      ++at_;
      NodeP b = (this->*next)();
      if (!b) return nullptr;
      auto n = node(K::kBinary, op);
      n->kids.push_back(std::move(a)), n->kids.push_back(std::move(b));
      a = std::move(n);
    }
  }
  NodeP bit_or() { return binary_left({"|"}, &Parser::bit_xor); }
  NodeP bit_xor() { return binary_left({"^"}, &Parser::bit_and); }
  NodeP bit_and() { return binary_left({"&"}, &Parser::arith); }
  NodeP arith() { return binary_left({"+", "-"}, &Parser::term); }
  NodeP term() { return binary_left({"*", "/", "//", "%"}, &Parser::factor); }

  NodeP factor() {
    const Nest nest(*this);
    if (nest.too_deep()) return fail(unsupported("nesting too deep"));
    for (std::string_view o : {"-", "+"})
      if (eat_op(o)) {
        NodeP a = factor();
        if (!a) return nullptr;
        auto n = node(K::kUnary, std::string(o));
        n->kids.push_back(std::move(a));
        return n;
      }
    NodeP base = primary();
    if (!base || !eat_op("**")) return base;
    NodeP e = factor();  // right-associative, binds tighter than unary minus on its left
    if (!e) return nullptr;
    auto n = node(K::kBinary, "**");
    n->kids.push_back(std::move(base)), n->kids.push_back(std::move(e));
    return n;
  }

  // Arguments up to ")" (the "(" eaten): positional, then keyword; a lone generator expression.
  bool arguments(Node& call) {
    if (eat_op(")")) return true;
    for (;;) {
      if (t_[at_].kind == Tok::kName && is_op("=", 1)) {
        call.kw.push_back(t_[at_].text);
        at_ += 2;
      } else if (!call.kw.empty()) {
        fail(error("SyntaxError", "positional argument follows keyword argument"));
        return false;
      }
      NodeP a = ternary();
      if (!a) return false;
      if (is_kw("for")) {
        a = comprehension(std::move(a), "gen");
        if (!a) return false;
      }
      call.kids.push_back(std::move(a));
      if (eat_op(")")) return true;
      if (!expect_op(",")) return false;
      if (eat_op(")")) return true;
    }
  }

  NodeP primary() {
    NodeP a = atom();
    for (;;) {
      if (!a || !status_.ok()) return nullptr;
      if (eat_op("(")) {
        if (a->kind != K::kName) return fail(unsupported("calling anything but a builtin"));
        auto n = node(K::kCall, a->name);
        if (!arguments(*n)) return nullptr;
        a = std::move(n);
      } else if (eat_op(".")) {
        if (t_[at_].kind != Tok::kName) return fail(error("SyntaxError", "expected a name after '.'"));
        if (!is_op("(", 1)) {  // an attribute (math.pi)
          auto n = node(K::kAttr, t_[at_++].text);
          n->kids.push_back(std::move(a));
          a = std::move(n);
          continue;
        }
        auto n = node(K::kMethod, t_[at_].text);
        at_ += 2;
        n->kids.push_back(std::move(a));
        if (!arguments(*n)) return nullptr;
        a = std::move(n);
      } else if (eat_op("[")) {
        NodeP parts[3];
        int colons = 0;
        for (;;) {
          if (is_op(":")) {
            if (++colons > 2) return fail(error("SyntaxError", "bad slice"));
            ++at_;
            continue;
          }
          if (is_op("]")) break;
          if (parts[colons]) return fail(error("SyntaxError", "bad subscript"));
          parts[colons] = ternary();
          if (!parts[colons]) return nullptr;
        }
        ++at_;
        auto n = node(colons ? K::kSlice : K::kIndex);
        n->kids.push_back(std::move(a));
        if (!colons && !parts[0]) return fail(error("SyntaxError", "empty subscript"));
        for (int k = 0; k <= (colons ? 2 : 0); ++k) n->kids.push_back(std::move(parts[k]));
        a = std::move(n);
      } else {
        return a;
      }
    }
  }

  NodeP comprehension(NodeP element, std::string kind) {
    auto n = node(K::kComp, std::move(kind));
    n->kids.push_back(std::move(element));
    while (eat_kw("for")) {
      Clause c;
      do {
        if (t_[at_].kind != Tok::kName || keyword(t_[at_].text))
          return fail(unsupported("comprehension targets other than names"));
        c.targets.push_back(t_[at_++].text);
      } while (eat_op(","));
      if (!eat_kw("in")) return fail(error("SyntaxError", "expected 'in'"));
      c.iter = or_test();
      if (!c.iter) return nullptr;
      while (eat_kw("if")) {
        NodeP cond = or_test();
        if (!cond) return nullptr;
        c.conds.push_back(std::move(cond));
      }
      n->clauses.push_back(std::move(c));
    }
    return n;
  }

  // Elements up to `close`; a comprehension after the first element.
  NodeP display(K kind, std::string_view close) {
    auto n = node(kind);
    bool comma = false;
    while (!eat_op(close)) {
      NodeP e = ternary();
      if (!e) return nullptr;
      if (n->kids.empty() && is_kw("for")) {
        NodeP c = comprehension(std::move(e), kind == K::kList ? "list" : "gen");
        if (!c || !expect_op(close)) return nullptr;
        return c;
      }
      n->kids.push_back(std::move(e));
      if (eat_op(close)) break;
      if (!expect_op(",")) return nullptr;
      comma = true;
    }
    if (kind == K::kTuple && n->kids.size() == 1 && !comma) return std::move(n->kids[0]);
    return n;
  }

  // After "{": a dict ("{}", "{k: v, ...}", "{k: v for ...}") or a set ("{a, b}", "{x for ...}").
  NodeP braces() {
    if (eat_op("}")) return node(K::kDict);
    NodeP first = ternary();
    if (!first) return nullptr;
    if (!eat_op(":")) {  // a set: the elements as a list display's, kind changed
      NodeP n;
      if (is_kw("for")) {
        n = comprehension(std::move(first), "set");
        return n && expect_op("}") ? std::move(n) : nullptr;
      }
      n = node(K::kSet);
      n->kids.push_back(std::move(first));
      while (eat_op(",") && !is_op("}")) {
        NodeP e = ternary();
        if (!e) return nullptr;
        n->kids.push_back(std::move(e));
      }
      return expect_op("}") ? std::move(n) : nullptr;
    }
    NodeP value = ternary();
    if (!value) return nullptr;
    if (is_kw("for")) {
      NodeP c = comprehension(std::move(first), "dict");
      if (!c) return nullptr;
      c->kids.push_back(std::move(value));
      return expect_op("}") ? std::move(c) : nullptr;
    }
    auto n = node(K::kDict);
    n->kids.push_back(std::move(first)), n->kids.push_back(std::move(value));
    while (eat_op(",") && !is_op("}")) {
      NodeP k = ternary();
      if (!k || !expect_op(":")) return nullptr;
      NodeP v = ternary();
      if (!v) return nullptr;
      n->kids.push_back(std::move(k)), n->kids.push_back(std::move(v));
    }
    return expect_op("}") ? std::move(n) : nullptr;
  }

  NodeP atom() {
    const Token& t = t_[at_];
    if (t.kind == Tok::kNum) {
      ++at_;
      auto n = node(K::kLit);
      n->lit = t.value;
      return n;
    }
    if (t.kind == Tok::kStr) {
      auto n = node(K::kLit);
      n->lit = str({});
      while (t_[at_].kind == Tok::kStr) n->lit.s += t_[at_++].value.s;  // "a" "b" == "ab"
      return n;
    }
    if (t.kind == Tok::kName) {
      ++at_;
      if (t.text == "None" || t.text == "True" || t.text == "False") {
        auto n = node(K::kLit);
        n->lit = t.text == "None" ? none() : boolean(t.text == "True");
        return n;
      }
      if (keyword(t.text)) return fail(unsupported("'" + t.text + "'"));
      return node(K::kName, t.text);
    }
    if (eat_op("(")) return display(K::kTuple, ")");
    if (eat_op("[")) return display(K::kList, "]");
    if (eat_op("{")) return braces();
    return fail(error("SyntaxError", t.kind == Tok::kEnd ? "unexpected end" : "unexpected '" + t.text + "'"));
  }

  const std::vector<Token>& t_;
  size_t at_ = 0;
  int depth_ = 0;
  int nodes_ = 0;
  absl::Status status_;
};

// ---------------------------------------------------------------------------------------------
// Evaluation

class Eval {
 public:
  explicit Eval(const Limits& limits) : budget_{limits.steps, limits.bytes}, outer_(t_budget) {
    t_budget = &budget_;  // walks over values charge this evaluation (Budget)
  }
  ~Eval() { t_budget = outer_; }
  Eval(const Eval&) = delete;
  Eval& operator=(const Eval&) = delete;
  bool spent() const { return budget_.spent(); }
  bool identity() const { return budget_.identity; }

  absl::StatusOr<Value> eval(const Node& n);
  absl::Status assign(const std::string& name, Value v) {
    VEX_RETURN_IF_ERROR(storable(v));
    env_[name] = std::move(v);
    return absl::OkStatus();
  }
  absl::StatusOr<Value> lookup(const std::string& name) const {
    if (const Value* v = bound(name)) return *v;
    if (builtin_name(name)) return function(name);
    return error("NameError", "name '" + name + "' is not defined");
  }
  // A function value: a builtin by name, or one with its parameters and body (def, lambda).
  absl::StatusOr<Value> function(const Node& n);
  static Value function(const std::string& builtin) {
    auto f = std::make_shared<Func>();
    f->name = builtin, f->builtin = true;
    Value v;
    v.type = Type::kFunc, v.fn = std::move(f);
    return v;
  }
  static bool builtin_name(std::string_view name);
  // "import math", "import math as m", "from math import sqrt, pi".
  absl::Status import(const std::vector<Token>& t);
  absl::StatusOr<Value> binary(const std::string& op, const Value& a, const Value& b);
  // What print() wrote since the last call (UTF-8).
  std::string take_printed() { return std::exchange(printed_, {}); }

 private:
  std::string printed_;
  absl::Status charge(int64_t steps, int64_t bytes = 0) {
    return walk(steps, bytes) ? absl::OkStatus() : budget_error();
  }
  absl::Status charge_int(const mpz_class& n) {
    return charge(0, static_cast<int64_t>(mpz_sizeinbase(n.get_mpz_t(), 2) / 8));
  }
  // Calls f on each element of an iterable, one step each.
  absl::Status each(const Value& v, const std::function<absl::Status(const Value&)>& f);
  // The elements of an iterable; with any_order, a set's in whatever order each_any_order allows.
  absl::StatusOr<Items> materialise(const Value& v, bool any_order = false) {
    Items out;
    const auto add = [&](const Value& x) {
      out.push_back(x);
      return charge(0, sizeof(Value));
    };
    VEX_RETURN_IF_ERROR(any_order ? each_any_order(v, add) : each(v, add));
    return out;
  }
  // Local scopes: a call's parameters, a comprehension's loop names. A name is looked up in the
  // innermost scopes out to the running call's (not its caller's: Python's scopes are lexical,
  // and a def body has no enclosing function here), then in the globals.
  struct Frame {
    absl::flat_hash_map<std::string, Value> names;
    bool call = false;
  };
  // The variable in a local scope visible here, or null (a function made here reading one would
  // be a closure).
  const Value* local(const std::string& name) const {
    for (auto f = frames_.rbegin(); f != frames_.rend(); ++f) {
      const auto it = f->names.find(name);
      if (it != f->names.end()) return &it->second;
      if (f->call) break;
    }
    return nullptr;
  }
  const Value* bound(const std::string& name) const {
    if (const Value* v = local(name)) return v;
    const auto it = env_.find(name);
    return it == env_.end() ? nullptr : &it->second;
  }
  // Iterators are consumed once; held in a name or a container they could be read twice
  // (CPython's second read is empty): declined.
  static absl::Status storable(const Value& v) {
    return v.type == Type::kIter ? unsupported("an iterator kept for later (it is consumed once)")
                                 : absl::OkStatus();
  }
  absl::StatusOr<Value> call(const Node& n);
  absl::StatusOr<Value> invoke(const Value& f, std::vector<Value> args,
                               const std::vector<std::pair<std::string, Value>>& kw);
  absl::StatusOr<Value> builtin(const std::string& f, std::vector<Value> args,
                                const std::vector<std::pair<std::string, Value>>& kw_list);
  absl::StatusOr<Value> math(const std::string& f, const std::vector<Value>& args);
  absl::StatusOr<Value> method(const Node& n);
  absl::StatusOr<Value> attribute(const Node& n);
  // Like each(), but a set's elements in any order where the result cannot depend on it (all
  // numbers or all strings: min, max, sorted without key=; any, all).
  absl::Status each_any_order(const Value& v, const std::function<absl::Status(const Value&)>& f);
  // A dict or set from keys (and values) in order: later equal keys update the first one's value.
  absl::StatusOr<Value> make_dict(const Items& pairs);
  absl::StatusOr<Value> make_set(const Items& elements);
  absl::StatusOr<Value> set_op(const std::string& op, const Value& a, const Value& b);
  absl::StatusOr<Value> comprehension(const Node& n);
  absl::Status clauses(const Node& n, size_t k, Items& out);
  absl::StatusOr<Value> index(const Value& obj, const Value& idx);
  absl::StatusOr<Value> slice(const Value& obj, const Value* start, const Value* stop, const Value* step);
  absl::StatusOr<Value> power(const Value& a, const Value& b);
  absl::StatusOr<Value> round(const Value& x, const Value* digits);

  absl::flat_hash_map<std::string, Value> env_;
  std::vector<Frame> frames_;  // innermost last
  int depth_ = 0;                                  // eval() nesting (calls included)
  Budget budget_;
  Budget* outer_;
};

absl::Status Eval::each(const Value& v, const std::function<absl::Status(const Value&)>& f) {
  switch (v.type) {
    case Type::kRange:
      for (int64_t x = v.start; v.step > 0 ? x < v.stop : x > v.stop; x += v.step) {
        VEX_RETURN_IF_ERROR(charge(1));
        VEX_RETURN_IF_ERROR(f(integer(x)));
      }
      return absl::OkStatus();
    case Type::kStr:
      for (char32_t c : v.s) {
        VEX_RETURN_IF_ERROR(charge(1));
        VEX_RETURN_IF_ERROR(f(str(std::u32string(1, c))));
      }
      return absl::OkStatus();
    case Type::kList:
    case Type::kTuple:
    case Type::kIter:
    case Type::kView:
      for (const Value& x : *v.items) {
        VEX_RETURN_IF_ERROR(charge(1));
        VEX_RETURN_IF_ERROR(f(x));
      }
      return absl::OkStatus();
    case Type::kDict:
      for (size_t k = 0; k < v.items->size(); k += 2) {
        VEX_RETURN_IF_ERROR(charge(1));
        VEX_RETURN_IF_ERROR(f((*v.items)[k]));
      }
      return absl::OkStatus();
    case Type::kSet: {
      const auto ordered = set_order(v);
      if (!ordered) return unsupported("iterating a set in the order CPython's hashes decide");
      return each(seq(Type::kList, *ordered), f);
    }
    default:
      return type_error("'" + type_name(v) + "' object is not iterable");
  }
}

absl::Status Eval::each_any_order(const Value& v, const std::function<absl::Status(const Value&)>& f) {
  if (v.type != Type::kSet) return each(v, f);
  bool numbers = true, strings = true;
  for (const Value& x : *v.items) numbers &= is_num(x), strings &= x.type == Type::kStr;
  if (!numbers && !strings) return each(v, f);
  return each(seq(Type::kList, *v.items), f);
}

absl::StatusOr<Value> Eval::make_dict(const Items& pairs) {
  Items out;
  for (size_t k = 0; k + 1 < pairs.size(); k += 2) {
    VEX_RETURN_IF_ERROR(hashable(pairs[k]));
    VEX_RETURN_IF_ERROR(storable(pairs[k + 1]));
    VEX_RETURN_IF_ERROR(charge(static_cast<int64_t>(out.size() / 2) + 1, 2 * sizeof(Value)));
    if (const auto at = find_in(out, 2, pairs[k])) {
      out[*at + 1] = pairs[k + 1];
    } else {
      out.push_back(pairs[k]), out.push_back(pairs[k + 1]);
    }
  }
  if (spent()) return budget_error();
  return seq(Type::kDict, std::move(out));
}

absl::StatusOr<Value> Eval::make_set(const Items& elements) {
  Items out;
  for (const Value& x : elements) {
    VEX_RETURN_IF_ERROR(hashable(x));
    VEX_RETURN_IF_ERROR(charge(static_cast<int64_t>(out.size()) + 1, sizeof(Value)));
    if (!find_in(out, 1, x)) out.push_back(x);
  }
  if (spent()) return budget_error();
  return seq(Type::kSet, std::move(out));
}

// a | b, a & b, a - b, a ^ b of sets (elements kept as the left operand has them, as CPython).
absl::StatusOr<Value> Eval::set_op(const std::string& op, const Value& a, const Value& b) {
  Items out;
  const auto in = [&](const Value& s, const Value& x) { return find_key(s, x).has_value(); };
  VEX_RETURN_IF_ERROR(charge(static_cast<int64_t>(a.items->size() * b.items->size()) + 1));
  if (op == "&") {  // CPython walks the smaller set (the right one on a tie), keeping its elements
    const bool right = b.items->size() <= a.items->size();
    for (const Value& x : *(right ? b : a).items)
      if (in(right ? a : b, x)) out.push_back(x);
    if (spent()) return budget_error();
    return seq(Type::kSet, std::move(out));
  }
  for (const Value& x : *a.items)
    if (op == "|" || !in(b, x)) out.push_back(x);
  if (op == "|" || op == "^")
    for (const Value& x : *b.items)
      if (!in(a, x)) out.push_back(x);
  if (spent()) return budget_error();
  return seq(Type::kSet, std::move(out));
}


absl::StatusOr<int64_t> small_int(const Value& v, std::string_view what) {
  if (!is_int(v)) return type_error(absl::StrCat(std::string(what), " must be an integer, not ", type_name(v)));
  if (!v.i.fits_slong_p()) return error("OverflowError", absl::StrCat(std::string(what), " too large"));
  return v.i.get_si();
}

// Python's float floor division and modulo (Objects/floatobject.c, float_divmod).
std::pair<double, double> float_divmod(double vx, double wx) {
  double mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0) {
    if ((wx < 0) != (mod < 0)) mod += wx, div -= 1.0;
  } else {
    mod = std::copysign(0.0, wx);
  }
  double floordiv;
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
  return {floordiv, mod};
}

absl::StatusOr<Value> Eval::power(const Value& a, const Value& b) {
  if (is_int(a) && is_int(b) && sgn(b.i) >= 0) {
    if (!b.i.fits_ulong_p()) return unsupported("exponent too large");
    const unsigned long e = b.i.get_ui();
    const double bits = static_cast<double>(mpz_sizeinbase(a.i.get_mpz_t(), 2)) * e;
    if (bits > 1e6 && abs(a.i) > 1) return unsupported("result too large");
    VEX_RETURN_IF_ERROR(charge(1, static_cast<int64_t>(bits / 8)));
    mpz_class r;
    mpz_pow_ui(r.get_mpz_t(), a.i.get_mpz_t(), e);
    return integer(r);
  }
  VEX_ASSIGN_OR_RETURN(const double x, as_float(a));
  VEX_ASSIGN_OR_RETURN(const double y, as_float(b));
  // Python's float_pow special cases, then the C library's pow.
  if (y == 0) return real(1.0);
  if (std::isnan(x)) return real(x);
  if (std::isnan(y)) return real(x == 1.0 ? 1.0 : y);
  if (x == 0 && y < 0) return error("ZeroDivisionError", "0.0 cannot be raised to a negative power");
  if (x < 0 && std::isfinite(x) && std::isfinite(y) && y != std::floor(y))
    return unsupported("complex result");
  const double r = std::pow(x, y);
  if (std::isinf(r) && std::isfinite(x) && std::isfinite(y))
    return error("OverflowError", "(34, 'Numerical result out of range')");
  return real(r);
}

absl::StatusOr<Value> Eval::binary(const std::string& op, const Value& a, const Value& b) {
  VEX_RETURN_IF_ERROR(charge(1));
  if (a.type == Type::kSet && b.type == Type::kSet && (op == "|" || op == "&" || op == "^" || op == "-"))
    return set_op(op, a, b);
  if (op == "|" && a.type == Type::kDict && b.type == Type::kDict) {  // Python 3.9's merge
    Items pairs = *a.items;
    pairs.insert(pairs.end(), b.items->begin(), b.items->end());
    return make_dict(pairs);
  }
  if (op == "|" || op == "&" || op == "^") {
    if (!is_int(a) || !is_int(b))
      return type_error("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" +
                        type_name(b) + "'");
    VEX_RETURN_IF_ERROR(charge(static_cast<int64_t>(mpz_size(a.i.get_mpz_t()) + mpz_size(b.i.get_mpz_t())),
                               8 * static_cast<int64_t>(mpz_size(a.i.get_mpz_t()) + mpz_size(b.i.get_mpz_t()))));
    mpz_class r;  // two's complement, as Python's ints
    if (op == "|") mpz_ior(r.get_mpz_t(), a.i.get_mpz_t(), b.i.get_mpz_t());
    else if (op == "&") mpz_and(r.get_mpz_t(), a.i.get_mpz_t(), b.i.get_mpz_t());
    else mpz_xor(r.get_mpz_t(), a.i.get_mpz_t(), b.i.get_mpz_t());
    if (a.type == Type::kBool && b.type == Type::kBool) return boolean(r != 0);
    return integer(std::move(r));
  }
  if (op == "**") {
    if (!is_num(a) || !is_num(b)) return type_error("unsupported operand type(s) for **");
    return power(a, b);
  }
  if (is_int(a) && is_int(b)) {
    // The work of big-integer arithmetic grows with the operands: charged before it is done (a
    // step per 64-bit limb, the product's size in bytes).
    const int64_t la = static_cast<int64_t>(mpz_size(a.i.get_mpz_t())),
                  lb = static_cast<int64_t>(mpz_size(b.i.get_mpz_t()));
    VEX_RETURN_IF_ERROR(charge(la + lb, op == "*" ? 8 * (la + lb) : 0));
    mpz_class r;
    if (op == "+") r = a.i + b.i;
    else if (op == "-") r = a.i - b.i;
    else if (op == "*") r = a.i * b.i;
    else if (op == "/") {
      if (b.i == 0) return error("ZeroDivisionError", "division by zero");
      VEX_ASSIGN_OR_RETURN(const double d, divide_to_float(a.i, b.i));
      return real(d);
    } else {  // "//", "%": floored
      if (b.i == 0) return error("ZeroDivisionError", "integer division or modulo by zero");
      mpz_class q, m;
      mpz_fdiv_qr(q.get_mpz_t(), m.get_mpz_t(), a.i.get_mpz_t(), b.i.get_mpz_t());
      r = op == "//" ? q : m;
    }
    VEX_RETURN_IF_ERROR(charge_int(r));
    return integer(r);
  }
  if (is_num(a) && is_num(b)) {
    VEX_ASSIGN_OR_RETURN(const double x, as_float(a));
    VEX_ASSIGN_OR_RETURN(const double y, as_float(b));
    if (op == "+") return real(x + y);
    if (op == "-") return real(x - y);
    if (op == "*") return real(x * y);
    if (y == 0) return error("ZeroDivisionError", "float division by zero");
    if (op == "/") return real(x / y);
    const auto [q, m] = float_divmod(x, y);
    return real(op == "//" ? q : m);
  }
  const bool seq_a = a.type == Type::kStr || a.type == Type::kList || a.type == Type::kTuple;
  const bool seq_b = b.type == Type::kStr || b.type == Type::kList || b.type == Type::kTuple;
  if (op == "+" && seq_a && a.type == b.type) {
    VEX_RETURN_IF_ERROR(charge(0, (length(a) + length(b)) * (a.type == Type::kStr ? 4 : sizeof(Value))));
    if (a.type == Type::kStr) return str(a.s + b.s);
    Items items = *a.items;
    items.insert(items.end(), b.items->begin(), b.items->end());
    return seq(a.type, std::move(items));
  }
  if (op == "*" && ((seq_a && is_int(b)) || (is_int(a) && seq_b))) {
    const Value& s = seq_a ? a : b;
    const Value& n = seq_a ? b : a;
    // CPython raises OverflowError for counts outside Py_ssize_t, whatever the sequence: declined.
    if (!n.i.fits_slong_p()) return unsupported("repeat count beyond 64 bits");
    const int64_t len = length(s);
    // An empty sequence stays empty however many times it repeats (no loop of k empty copies:
    // "() * 8888888888888888888" ran for hours).
    const int64_t k = n.i > 0 && len > 0 ? n.i.get_si() : 0;
    if (len && k > (INT64_C(1) << 40) / len) return unsupported("memory budget exhausted");
    VEX_RETURN_IF_ERROR(charge(len * k, len * k * (s.type == Type::kStr ? 4 : sizeof(Value))));
    if (s.type == Type::kStr) {
      std::u32string out;
      for (int64_t r = 0; r < k; ++r) out += s.s;
      return str(std::move(out));
    }
    Items items;
    for (int64_t r = 0; r < k; ++r) items.insert(items.end(), s.items->begin(), s.items->end());
    return seq(s.type, std::move(items));
  }
  if (op == "%" && a.type == Type::kStr) return unsupported("printf-style formatting");
  return type_error("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" +
                    type_name(b) + "'");
}

absl::StatusOr<Value> Eval::index(const Value& obj, const Value& idx) {
  if (obj.type == Type::kDict) {
    VEX_RETURN_IF_ERROR(hashable(idx));
    const auto at = find_key(obj, idx);
    if (spent()) return budget_error();
    if (!at) return error("KeyError", "key not in the dict");
    return (*obj.items)[*at + 1];
  }
  if (obj.type != Type::kStr && obj.type != Type::kList && obj.type != Type::kTuple &&
      obj.type != Type::kRange)
    return type_error("'" + type_name(obj) + "' object is not subscriptable");
  VEX_ASSIGN_OR_RETURN(int64_t k, small_int(idx, "indices"));
  const int64_t n = length(obj);
  if (k < 0) k += n;
  if (k < 0 || k >= n) return error("IndexError", type_name(obj) + " index out of range");
  if (obj.type == Type::kStr) return str(std::u32string(1, obj.s[k]));
  if (obj.type == Type::kRange) return integer(obj.start + k * obj.step);
  return (*obj.items)[k];
}

// Python's slice semantics (PySlice_AdjustIndices).
absl::StatusOr<Value> Eval::slice(const Value& obj, const Value* start, const Value* stop,
                                  const Value* step) {
  if (obj.type != Type::kStr && obj.type != Type::kList && obj.type != Type::kTuple)
    return unsupported("slicing a " + type_name(obj));
  const int64_t n = length(obj);
  int64_t st = 1;
  if (step && step->type != Type::kNone) {
    VEX_ASSIGN_OR_RETURN(st, small_int(*step, "slice indices"));
    if (st == 0) return value_error("slice step cannot be zero");
  }
  const auto bound = [&](const Value* v, int64_t dflt) -> absl::StatusOr<int64_t> {
    if (!v || v->type == Type::kNone) return dflt;
    VEX_ASSIGN_OR_RETURN(int64_t k, small_int(*v, "slice indices"));
    if (k < 0) {
      k += n;
      if (k < 0) k = st < 0 ? -1 : 0;
    } else if (k >= n) {
      k = st < 0 ? n - 1 : n;
    }
    return k;
  };
  VEX_ASSIGN_OR_RETURN(const int64_t lo, bound(start, st < 0 ? n - 1 : 0));
  VEX_ASSIGN_OR_RETURN(const int64_t hi, bound(stop, st < 0 ? -1 : n));
  std::u32string s;
  Items items;
  for (int64_t k = lo; st > 0 ? k < hi : k > hi; k += st) {
    VEX_RETURN_IF_ERROR(charge(1, sizeof(Value)));
    if (obj.type == Type::kStr)
      s += obj.s[k];
    else
      items.push_back((*obj.items)[k]);
  }
  return obj.type == Type::kStr ? str(std::move(s)) : seq(obj.type, std::move(items));
}

// round(x) and round(x, n) as Python rounds: half to even on the exact binary value; a float
// result is the double nearest the rounded decimal.
absl::StatusOr<Value> Eval::round(const Value& x, const Value* digits) {
  if (!is_num(x)) return type_error("type " + type_name(x) + " doesn't define __round__");
  if (x.type == Type::kFloat && !std::isfinite(x.f)) {
    if (!digits || digits->type == Type::kNone)
      return std::isnan(x.f) ? value_error("cannot convert float NaN to integer")
                             : error("OverflowError", "cannot convert float infinity to integer");
    return x;
  }
  int64_t n = 0;
  const bool has_n = digits && digits->type != Type::kNone;
  if (has_n) {
    VEX_ASSIGN_OR_RETURN(n, small_int(*digits, "ndigits"));
  }
  if (is_int(x) && (!has_n || n >= 0)) return integer(x.i);
  if (n > 400 || n < -400) return unsupported("ndigits out of range");
  mpq_class scaled = exact(x);
  mpz_class p;
  mpz_ui_pow_ui(p.get_mpz_t(), 10, static_cast<unsigned long>(n < 0 ? -n : n));
  if (n >= 0) scaled *= p; else scaled /= p;
  // Half to even.
  mpz_class q, r;
  mpz_fdiv_qr(q.get_mpz_t(), r.get_mpz_t(), scaled.get_num_mpz_t(), scaled.get_den_mpz_t());
  const int c = cmp(mpz_class(2 * r), scaled.get_den());
  if (c > 0 || (c == 0 && mpz_odd_p(q.get_mpz_t()))) ++q;
  if (!has_n) return integer(q);
  if (is_int(x)) return integer(q * p);
  const std::string text = q.get_str() + "e" + std::to_string(-n);
  double d = std::strtod(text.c_str(), nullptr);
  if (d == 0) d = std::copysign(0.0, x.f);
  if (std::isinf(d)) return error("OverflowError", "rounded value too large to represent");
  return real(d);
}

absl::StatusOr<Value> to_int(const Value& v) {
  if (is_int(v)) return integer(v.i);
  if (v.type == Type::kFloat) {
    if (std::isnan(v.f)) return value_error("cannot convert float NaN to integer");
    if (std::isinf(v.f)) return error("OverflowError", "cannot convert float infinity to integer");
    return integer(mpz_class(std::trunc(v.f)));
  }
  if (v.type == Type::kStr) {
    std::string s = to_utf8(v.s);
    const size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
    s = b == std::string::npos ? "" : s.substr(b, e - b + 1);
    std::string digits;
    size_t k = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    for (; k < s.size(); ++k) {
      if (std::isdigit(static_cast<unsigned char>(s[k]))) digits += s[k];
      else if (!(s[k] == '_' && !digits.empty() && k + 1 < s.size() && s[k + 1] != '_'))
        return value_error("invalid literal for int() with base 10");
    }
    if (digits.empty()) return value_error("invalid literal for int() with base 10");
    if (digits.size() > 4300) return value_error("exceeds the limit for integer string conversion");
    mpz_class n(digits, 10);  // base 10: GMP's default (0) reads a leading 0 as octal
    return integer(s[0] == '-' ? mpz_class(-n) : n);
  }
  return type_error("int() argument must be a string or a real number, not '" + type_name(v) + "'");
}

absl::StatusOr<Value> to_float(const Value& v) {
  if (is_num(v)) {
    VEX_ASSIGN_OR_RETURN(const double d, as_float(v));
    return real(d);
  }
  if (v.type != Type::kStr) return type_error("float() argument must be a string or a real number");
  std::string s = to_utf8(v.s);
  const size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  s = b == std::string::npos ? "" : s.substr(b, e - b + 1);
  std::string t = s;
  std::erase(t, '_');
  const std::string l = lower(t);
  const std::string body = (!l.empty() && (l[0] == '-' || l[0] == '+')) ? l.substr(1) : l;
  const bool special = body == "inf" || body == "infinity" || body == "nan";
  const bool plain = !body.empty() && body.find_first_not_of("0123456789.e+-") == std::string::npos &&
                     (std::isdigit(static_cast<unsigned char>(body[0])) || body[0] == '.');
  char* end = nullptr;
  const double d = std::strtod(t.c_str(), &end);
  if ((!special && !plain) || end != t.c_str() + t.size() || s.find("__") != std::string::npos)
    return value_error("could not convert string to float");
  return real(d);
}

absl::StatusOr<Value> to_str(const Value& v) {
  if (v.type == Type::kStr) return v;
  VEX_ASSIGN_OR_RETURN(const std::string r, repr(v));
  return str(from_utf8(r));
}

constexpr std::string_view kBuiltins[] = {
    "abs", "all", "any", "bool", "dict", "divmod", "enumerate", "filter", "float", "int", "len",
    "list", "map", "max", "min", "print", "range", "reversed", "round", "set", "sorted", "str",
    "sum", "tuple", "zip"};

bool Eval::builtin_name(std::string_view name) {
  return std::find(std::begin(kBuiltins), std::end(kBuiltins), name) != std::end(kBuiltins);
}

absl::StatusOr<Value> Eval::call(const Node& n) {
  const size_t n_kw = n.kw.size(), n_pos = n.kids.size() - n_kw;
  std::vector<Value> args;
  for (size_t k = 0; k < n_pos; ++k) {
    VEX_ASSIGN_OR_RETURN(Value v, eval(*n.kids[k]));
    args.push_back(std::move(v));
  }
  std::vector<std::pair<std::string, Value>> kw;
  for (size_t k = 0; k < n_kw; ++k) {
    VEX_ASSIGN_OR_RETURN(Value v, eval(*n.kids[n_pos + k]));
    for (const auto& [name, _] : kw)
      if (name == n.kw[k]) return error("SyntaxError", "keyword argument repeated: " + name);
    kw.emplace_back(n.kw[k], std::move(v));
  }
  VEX_ASSIGN_OR_RETURN(const Value f, lookup(n.name));
  return invoke(f, std::move(args), kw);
}

absl::StatusOr<Value> Eval::invoke(const Value& f, std::vector<Value> args,
                                   const std::vector<std::pair<std::string, Value>>& kw) {
  if (f.type != Type::kFunc) return type_error("'" + type_name(f) + "' object is not callable");
  const Func& fn = *f.fn;
  if (fn.builtin) return builtin(fn.name, std::move(args), kw);
  // Parameters: positional, then by keyword, then the defaults.
  const size_t n = fn.params.size(), first_default = n - fn.defaults.size();
  if (args.size() > n)
    return type_error(absl::StrCat(fn.name, "() takes ", n, " positional arguments but ", args.size(), " were given"));
  absl::flat_hash_map<std::string, Value> frame;
  for (size_t k = 0; k < args.size(); ++k) frame[fn.params[k]] = std::move(args[k]);
  for (const auto& [name, v] : kw) {
    if (std::find(fn.params.begin(), fn.params.end(), name) == fn.params.end())
      return type_error(fn.name + "() got an unexpected keyword argument '" + name + "'");
    if (!frame.emplace(name, v).second)
      return type_error(fn.name + "() got multiple values for argument '" + name + "'");
  }
  for (size_t k = 0; k < n; ++k)
    if (!frame.contains(fn.params[k])) {
      if (k < first_default) return type_error(fn.name + "() missing argument '" + fn.params[k] + "'");
      frame[fn.params[k]] = fn.defaults[k - first_default];
    }
  for (const auto& [name, v] : frame) VEX_RETURN_IF_ERROR(storable(v));
  frames_.push_back({std::move(frame), true});
  auto result = eval(*fn.body);
  frames_.pop_back();
  return result;
}

absl::StatusOr<Value> Eval::function(const Node& n) {
  // The body sees its parameters and the globals. A lambda made inside a call or a
  // comprehension that reads that scope's names would be a closure: declined, not faked.
  std::vector<const Node*> todo = {n.body.get()};
  while (!todo.empty()) {
    const Node* x = todo.back();
    todo.pop_back();
    if ((x->kind == K::kName || x->kind == K::kCall) &&
        std::find(n.params.begin(), n.params.end(), x->name) == n.params.end() &&
        local(x->name))
      return unsupported("a function that reads a variable of the scope it is made in (a closure)");
    for (const NodeP& k : x->kids)
      if (k) todo.push_back(k.get());
    for (const Clause& c : x->clauses) {
      todo.push_back(c.iter.get());
      for (const NodeP& k : c.conds) todo.push_back(k.get());
    }
    if (x->body) todo.push_back(x->body.get());
  }
  auto f = std::make_shared<Func>();
  f->name = n.name, f->params = n.params, f->body = n.body;
  for (const NodeP& d : n.kids) {
    VEX_ASSIGN_OR_RETURN(Value v, eval(*d));
    VEX_RETURN_IF_ERROR(storable(v));
    f->defaults.push_back(std::move(v));
  }
  Value v;
  v.type = Type::kFunc, v.fn = std::move(f);
  return v;
}

absl::StatusOr<Value> Eval::builtin(const std::string& f, std::vector<Value> args,
                                    const std::vector<std::pair<std::string, Value>>& kw_list) {
  if (f.starts_with("math.")) {
    if (!kw_list.empty()) return unsupported("keyword arguments to math functions");
    return math(f.substr(5), args);
  }
  absl::flat_hash_map<std::string, Value> kw(kw_list.begin(), kw_list.end());
  const auto arity = [&](size_t lo, size_t hi, std::initializer_list<std::string_view> names = {}) {
    for (const auto& [name, v] : kw)
      if (std::find(names.begin(), names.end(), name) == names.end())
        return type_error("'" + name + "' is an invalid keyword argument for " + f + "()");
    if (args.size() < lo || args.size() > hi)
      return type_error(absl::StrCat(f, "() takes ", lo, " to ", hi, " arguments (", args.size(), " given)"));
    return absl::OkStatus();
  };
  if (f == "print") {  // the text goes to the transcript; the value is None
    VEX_RETURN_IF_ERROR(arity(0, 64, {"sep", "end"}));
    std::u32string sep = U" ", end = U"\n";
    for (const auto& [name, v] : kw) {
      if (v.type == Type::kNone) continue;
      if (v.type != Type::kStr)
        return type_error(name + " must be None or a string, not " + type_name(v));
      (name == "sep" ? sep : end) = v.s;
    }
    std::u32string line;
    for (size_t k = 0; k < args.size(); ++k) {
      VEX_ASSIGN_OR_RETURN(const Value text, to_str(args[k]));
      if (k) line += sep;
      line += text.s;
    }
    line += end;
    VEX_RETURN_IF_ERROR(charge(static_cast<int64_t>(line.size()), static_cast<int64_t>(line.size())));
    printed_ += to_utf8(line);
    return none();
  }
  if (f == "len") {
    VEX_RETURN_IF_ERROR(arity(1, 1));
    const Value& v = args[0];
    if (v.type != Type::kStr && v.type != Type::kList && v.type != Type::kTuple &&
        v.type != Type::kRange && v.type != Type::kDict && v.type != Type::kSet && v.type != Type::kView)
      return type_error("object of type '" + type_name(v) + "' has no len()");
    return integer(length(v));
  }
  if (f == "abs") {
    VEX_RETURN_IF_ERROR(arity(1, 1));
    if (is_int(args[0])) return integer(abs(args[0].i));
    if (args[0].type == Type::kFloat) return real(std::fabs(args[0].f));
    return type_error("bad operand type for abs(): '" + type_name(args[0]) + "'");
  }
  if (f == "range") {
    VEX_RETURN_IF_ERROR(arity(1, 3));
    int64_t a[3] = {0, 0, 1};
    for (size_t k = 0; k < args.size(); ++k) {
      VEX_ASSIGN_OR_RETURN(a[args.size() == 1 ? 1 : k], small_int(args[k], "range() arguments"));
    }
    if (a[2] == 0) return value_error("range() arg 3 must not be zero");
    if (std::abs(a[0]) > (INT64_C(1) << 60) || std::abs(a[1]) > (INT64_C(1) << 60))
      return unsupported("range bounds beyond 2^60");
    Value r;
    r.type = Type::kRange, r.start = a[0], r.stop = a[1], r.step = a[2];
    return r;
  }
  if (f == "sum") {
    VEX_RETURN_IF_ERROR(arity(1, 2, {"start"}));
    Value total = args.size() > 1 ? args[1] : kw.contains("start") ? kw["start"] : integer(0);
    if (total.type == Type::kStr) return type_error("sum() can't sum strings [use ''.join(seq) instead]");
    // Integers add exactly in any order: a set of them may be summed.
    const bool exact = is_int(total) && args[0].type == Type::kSet &&
                       std::all_of(args[0].items->begin(), args[0].items->end(), is_int);
    VEX_RETURN_IF_ERROR(each(exact ? seq(Type::kList, *args[0].items) : args[0], [&](const Value& x) -> absl::Status {
      VEX_ASSIGN_OR_RETURN(total, binary("+", total, x));
      return absl::OkStatus();
    }));
    return total;
  }
  // key=: a function of one argument (def, lambda, a builtin such as len); its results are
  // compared instead of the elements.
  const auto keys = [&](const Items& items) -> absl::StatusOr<Items> {
    if (!kw.contains("key") || kw["key"].type == Type::kNone) return items;
    Items out;
    for (const Value& x : items) {
      VEX_ASSIGN_OR_RETURN(Value k, invoke(kw["key"], {x}, {}));
      out.push_back(std::move(k));
    }
    return out;
  };
  // With key=, equal keys are resolved by the order of the elements: a set's must be known.
  const bool keyed = kw.contains("key") && kw["key"].type != Type::kNone;
  if (f == "min" || f == "max") {
    VEX_RETURN_IF_ERROR(arity(1, SIZE_MAX, {"default", "key"}));
    Items items;
    if (args.size() == 1) {
      VEX_ASSIGN_OR_RETURN(items, materialise(args[0], /*any_order=*/!keyed));
    } else {
      if (kw.contains("default")) return type_error("default with multiple arguments");
      items = args;
    }
    if (items.empty()) {
      if (kw.contains("default")) return kw["default"];
      return value_error(f + "() arg is an empty sequence");
    }
    VEX_ASSIGN_OR_RETURN(const Items by, keys(items));
    size_t best = 0;
    for (size_t k = 1; k < items.size(); ++k) {
      VEX_ASSIGN_OR_RETURN(const int c, order(by[k], by[best]));
      if (f == "min" ? c == -1 : c == 1) best = k;
    }
    return items[best];
  }
  if (f == "sorted") {
    VEX_RETURN_IF_ERROR(arity(1, 1, {"reverse", "key"}));
    VEX_ASSIGN_OR_RETURN(Items items, materialise(args[0], /*any_order=*/!keyed));
    const bool reverse = kw.contains("reverse") && truthy(kw["reverse"]);
    absl::Status st;
    VEX_RETURN_IF_ERROR(charge(static_cast<int64_t>(items.size()) * 20));
    // Sorted by key (the element itself without key=): pairs of (key, element index).
    VEX_ASSIGN_OR_RETURN(const Items by, keys(items));
    std::vector<size_t> at(items.size());
    for (size_t k = 0; k < at.size(); ++k) at[k] = k;
    // Stable, like Python's sort; reverse keeps equal elements in their original order too.
    std::stable_sort(at.begin(), at.end(), [&](size_t i, size_t j) {
      const Value &x = by[i], &y = by[j];
      auto c = reverse ? order(y, x) : order(x, y);
      if (c.ok() && *c == 2)  // NaN: CPython's result depends on its merge order; not ours
        c = unsupported("sorting values that include a NaN");
      if (!c.ok()) {
        if (st.ok()) st = c.status();
        return false;
      }
      return *c == -1;
    });
    VEX_RETURN_IF_ERROR(st);
    Items out;
    for (size_t k : at) out.push_back(items[k]);
    return seq(Type::kList, std::move(out));
  }
  if (f == "dict") {  // dict(), dict(pairs or a dict), with keyword entries after them
    if (args.size() > 1) return type_error("dict expected at most 1 argument");
    Items pairs;
    if (!args.empty()) {
      if (args[0].type == Type::kDict) {
        pairs = *args[0].items;
      } else {
        VEX_ASSIGN_OR_RETURN(const Items items, materialise(args[0]));
        for (const Value& p : items) {
          if ((p.type != Type::kTuple && p.type != Type::kList) || p.items->size() != 2)
            return value_error("dictionary update sequence element has length other than 2");
          pairs.push_back((*p.items)[0]), pairs.push_back((*p.items)[1]);
        }
      }
    }
    for (const auto& [name, v] : kw_list) pairs.push_back(str(from_utf8(name))), pairs.push_back(v);
    return make_dict(pairs);
  }
  if (f == "set") {
    VEX_RETURN_IF_ERROR(arity(0, 1));
    if (args.empty()) return seq(Type::kSet, {});
    if (args[0].type == Type::kSet) return args[0];  // the same elements, whatever their order
    VEX_ASSIGN_OR_RETURN(const Items items, materialise(args[0]));
    return make_set(items);
  }
  if (f == "map" || f == "filter") {
    VEX_RETURN_IF_ERROR(arity(2, 2));
    VEX_ASSIGN_OR_RETURN(const Items items, materialise(args[1]));
    Items out;
    const size_t printed = printed_.size();
    for (const Value& x : items) {
      if (f == "filter" && args[0].type == Type::kNone) {
        if (truthy(x)) out.push_back(x);
        continue;
      }
      VEX_ASSIGN_OR_RETURN(Value y, invoke(args[0], {x}, {}));
      if (f == "map")
        out.push_back(std::move(y));
      else if (truthy(y))
        out.push_back(x);
    }
    // CPython calls the function as the result is read, interleaved with whatever else reads.
    if (printed_.size() != printed) return unsupported("a lazily called function that prints");
    return seq(Type::kIter, std::move(out));
  }
  if (f == "round") {
    VEX_RETURN_IF_ERROR(arity(1, 2, {"ndigits"}));
    const Value* digits = args.size() > 1 ? &args[1] : kw.contains("ndigits") ? &kw["ndigits"] : nullptr;
    return round(args[0], digits);
  }
  if (f == "list" || f == "tuple") {
    VEX_RETURN_IF_ERROR(arity(0, 1));
    if (args.empty()) return seq(f == "list" ? Type::kList : Type::kTuple, {});
    VEX_ASSIGN_OR_RETURN(Items items, materialise(args[0]));
    return seq(f == "list" ? Type::kList : Type::kTuple, std::move(items));
  }
  if (f == "int" || f == "float" || f == "str" || f == "bool") {
    VEX_RETURN_IF_ERROR(arity(0, 1));
    if (args.empty()) return f == "int" ? integer(0) : f == "float" ? real(0) : f == "str" ? str({}) : boolean(false);
    if (f == "int") return to_int(args[0]);
    if (f == "float") return to_float(args[0]);
    if (f == "str") return to_str(args[0]);
    return boolean(truthy(args[0]));
  }
  if (f == "any" || f == "all") {
    VEX_RETURN_IF_ERROR(arity(1, 1));
    const bool any = f == "any";
    bool result = !any, done = false;
    VEX_RETURN_IF_ERROR(each_any_order(args[0], [&](const Value& x) {
      if (!done && truthy(x) == any) result = any, done = true;
      return absl::OkStatus();
    }));
    return boolean(result);
  }
  if (f == "divmod") {
    VEX_RETURN_IF_ERROR(arity(2, 2));
    VEX_ASSIGN_OR_RETURN(Value q, binary("//", args[0], args[1]));
    VEX_ASSIGN_OR_RETURN(Value m, binary("%", args[0], args[1]));
    return seq(Type::kTuple, {q, m});
  }
  if (f == "enumerate" || f == "reversed") {
    VEX_RETURN_IF_ERROR(arity(1, f == "enumerate" ? 2 : 1, {"start"}));
    VEX_ASSIGN_OR_RETURN(Items items, materialise(args[0]));
    if (f == "reversed") {
      if (args[0].type == Type::kIter) return type_error("'iterator' object is not reversible");
      std::reverse(items.begin(), items.end());
      return seq(Type::kIter, std::move(items));
    }
    const Value* start = args.size() > 1 ? &args[1] : kw.contains("start") ? &kw["start"] : nullptr;
    mpz_class k = 0;
    if (start) {
      if (!is_int(*start)) return type_error("'" + type_name(*start) + "' object cannot be interpreted as an integer");
      k = start->i;
    }
    Items out;
    for (Value& x : items) out.push_back(seq(Type::kTuple, {integer(k), std::move(x)})), ++k;
    return seq(Type::kIter, std::move(out));
  }
  if (f == "zip") {
    VEX_RETURN_IF_ERROR(arity(0, SIZE_MAX));
    std::vector<Items> lists;
    size_t n_min = SIZE_MAX;
    for (const Value& a : args) {
      VEX_ASSIGN_OR_RETURN(Items items, materialise(a));
      n_min = std::min(n_min, items.size());
      lists.push_back(std::move(items));
    }
    Items out;
    for (size_t k = 0; k < (lists.empty() ? 0 : n_min); ++k) {
      Items t;
      for (const Items& l : lists) t.push_back(l[k]);
      out.push_back(seq(Type::kTuple, std::move(t)));
    }
    return seq(Type::kIter, std::move(out));
  }
  return error("NameError", "name '" + f + "' is not defined (or not available here)");
}

absl::StatusOr<Value> Eval::method(const Node& n) {
  VEX_ASSIGN_OR_RETURN(const Value obj, eval(*n.kids[0]));
  if (!n.kw.empty()) return unsupported("keyword arguments to methods");
  std::vector<Value> args;
  for (size_t k = 1; k < n.kids.size(); ++k) {
    VEX_ASSIGN_OR_RETURN(Value v, eval(*n.kids[k]));
    args.push_back(std::move(v));
  }
  const std::string& m = n.name;
  const auto want = [&](size_t lo, size_t hi) {
    if (args.size() < lo || args.size() > hi)
      return type_error(absl::StrCat(m, "() takes ", lo, " to ", hi, " arguments"));
    return absl::OkStatus();
  };
  if (obj.type == Type::kModule) return math(m, args);
  if (obj.type == Type::kDict) {
    if (m == "get") {
      VEX_RETURN_IF_ERROR(want(1, 2));
      VEX_RETURN_IF_ERROR(hashable(args[0]));
      const auto at = find_key(obj, args[0]);
      if (spent()) return budget_error();
      return at ? (*obj.items)[*at + 1] : args.size() > 1 ? args[1] : none();
    }
    if (m == "keys" || m == "values" || m == "items") {
      VEX_RETURN_IF_ERROR(want(0, 0));
      Items out;
      for (size_t k = 0; k < obj.items->size(); k += 2) {
        VEX_RETURN_IF_ERROR(charge(1, sizeof(Value)));
        const Value &key = (*obj.items)[k], &value = (*obj.items)[k + 1];
        out.push_back(m == "keys" ? key : m == "values" ? value : seq(Type::kTuple, {key, value}));
      }
      Value v = seq(Type::kView, std::move(out));
      v.start = m == "keys" ? 0 : m == "values" ? 1 : 2;
      return v;
    }
    return unsupported("method dict." + m);
  }
  if (obj.type != Type::kStr && obj.type != Type::kList && obj.type != Type::kTuple)
    return unsupported("method " + type_name(obj) + "." + m);
  const auto str_arg = [&](size_t k) -> absl::StatusOr<std::u32string> {
    if (args[k].type != Type::kStr) return type_error("must be str, not " + type_name(args[k]));
    return args[k].s;
  };
  if (obj.type == Type::kList || obj.type == Type::kTuple) {
    VEX_RETURN_IF_ERROR(want(1, 1));
    VEX_RETURN_IF_ERROR(charge(static_cast<int64_t>(obj.items->size())));
    int64_t count = 0;
    for (size_t k = 0; k < obj.items->size(); ++k)
      if (equal((*obj.items)[k], args[0])) {
        if (m == "index") return integer(static_cast<long>(k));
        ++count;
      }
    if (m == "count") return integer(count);
    if (m == "index") return value_error("value is not in " + type_name(obj));
    return unsupported("method " + type_name(obj) + "." + m + " (values are immutable here)");
  }
  if (obj.type != Type::kStr) return unsupported("method " + type_name(obj) + "." + m);
  const std::u32string& s = obj.s;
  VEX_RETURN_IF_ERROR(charge(static_cast<int64_t>(s.size()) + 1, static_cast<int64_t>(s.size()) * 4));
  const auto ascii_only = [&]() {
    for (char32_t c : s)
      if (c >= 0x80) return unsupported("case mapping beyond ASCII");
    return absl::OkStatus();
  };
  if (m == "upper" || m == "lower") {
    VEX_RETURN_IF_ERROR(want(0, 0));
    VEX_RETURN_IF_ERROR(ascii_only());
    std::u32string out = s;
    for (char32_t& c : out)
      c = m == "upper" ? (c >= 'a' && c <= 'z' ? c - 32 : c) : (c >= 'A' && c <= 'Z' ? c + 32 : c);
    return str(std::move(out));
  }
  if (m == "strip") {
    VEX_RETURN_IF_ERROR(want(0, 1));
    std::u32string chars = U" \t\n\r\x0b\x0c";
    if (!args.empty() && args[0].type != Type::kNone) {
      VEX_ASSIGN_OR_RETURN(chars, str_arg(0));
    } else {
      VEX_RETURN_IF_ERROR(ascii_only());  // Unicode whitespace is not ASCII's
    }
    const size_t b = s.find_first_not_of(chars);
    if (b == std::u32string::npos) return str({});
    return str(s.substr(b, s.find_last_not_of(chars) - b + 1));
  }
  if (m == "split") {
    VEX_RETURN_IF_ERROR(want(0, 1));
    Items out;
    if (args.empty() || args[0].type == Type::kNone) {
      VEX_RETURN_IF_ERROR(ascii_only());
      size_t k = 0;
      const auto space = [](char32_t c) { return c == ' ' || (c >= 9 && c <= 13); };
      while (k < s.size()) {
        while (k < s.size() && space(s[k])) ++k;
        size_t j = k;
        while (j < s.size() && !space(s[j])) ++j;
        if (j > k) out.push_back(str(s.substr(k, j - k)));
        k = j;
      }
    } else {
      VEX_ASSIGN_OR_RETURN(const std::u32string sep, str_arg(0));
      if (sep.empty()) return value_error("empty separator");
      size_t k = 0;
      for (size_t j; (j = s.find(sep, k)) != std::u32string::npos; k = j + sep.size())
        out.push_back(str(s.substr(k, j - k)));
      out.push_back(str(s.substr(k)));
    }
    return seq(Type::kList, std::move(out));
  }
  if (m == "join") {
    VEX_RETURN_IF_ERROR(want(1, 1));
    std::u32string out;
    bool first = true;
    VEX_RETURN_IF_ERROR(each(args[0], [&](const Value& x) -> absl::Status {
      if (x.type != Type::kStr) return type_error("sequence item: expected str instance, " + type_name(x) + " found");
      if (!first) out += s;
      first = false;
      out += x.s;
      return charge(0, static_cast<int64_t>(x.s.size() + s.size()) * 4);
    }));
    return str(std::move(out));
  }
  if (m == "replace") {
    VEX_RETURN_IF_ERROR(want(2, 2));
    VEX_ASSIGN_OR_RETURN(const std::u32string from, str_arg(0));
    VEX_ASSIGN_OR_RETURN(const std::u32string to, str_arg(1));
    if (from.empty()) return unsupported("replace of the empty string");
    std::u32string out;
    size_t k = 0;
    for (size_t j; (j = s.find(from, k)) != std::u32string::npos; k = j + from.size()) {
      out += s.substr(k, j - k) + to;
      VEX_RETURN_IF_ERROR(charge(1, static_cast<int64_t>(to.size()) * 4));
    }
    return str(out + s.substr(k));
  }
  if (m == "startswith" || m == "endswith" || m == "count" || m == "find") {
    VEX_RETURN_IF_ERROR(want(1, 1));
    VEX_ASSIGN_OR_RETURN(const std::u32string sub, str_arg(0));
    if (m == "startswith") return boolean(s.starts_with(sub));
    if (m == "endswith") return boolean(s.ends_with(sub));
    if (m == "find") {
      const size_t p = s.find(sub);
      return integer(p == std::u32string::npos ? -1 : static_cast<long>(p));
    }
    if (sub.empty()) return integer(static_cast<long>(s.size()) + 1);
    long count = 0;
    for (size_t k = 0; (k = s.find(sub, k)) != std::u32string::npos; k += sub.size()) ++count;
    return integer(count);
  }
  return unsupported("method str." + m);
}

absl::Status Eval::clauses(const Node& n, size_t k, Items& out) {
  if (k == n.clauses.size()) {
    for (const NodeP& e : n.kids) {  // the element; a dict's key and value
      VEX_ASSIGN_OR_RETURN(Value v, eval(*e));
      VEX_RETURN_IF_ERROR(storable(v));
      out.push_back(std::move(v));
    }
    return charge(0, sizeof(Value));
  }
  const Clause& c = n.clauses[k];
  VEX_ASSIGN_OR_RETURN(const Value iter, eval(*c.iter));
  return each(iter, [&](const Value& x) -> absl::Status {
    auto& names = frames_.back().names;  // the comprehension's own scope
    if (c.targets.size() == 1) {
      names[c.targets[0]] = x;
    } else {
      if ((x.type != Type::kTuple && x.type != Type::kList) || x.items->size() != c.targets.size())
        return value_error("cannot unpack into " + std::to_string(c.targets.size()) + " names");
      for (size_t t = 0; t < c.targets.size(); ++t) names[c.targets[t]] = (*x.items)[t];
    }
    for (const NodeP& cond : c.conds) {
      VEX_ASSIGN_OR_RETURN(const Value v, eval(*cond));
      if (!truthy(v)) return absl::OkStatus();
    }
    return clauses(n, k + 1, out);
  });
}

absl::StatusOr<Value> Eval::comprehension(const Node& n) {
  // The loop names are local to the comprehension (Python 3): a scope of its own. (The first
  // iterable is read before any loop name is bound, so it sees the enclosing names, as in Python.)
  Items out;
  const size_t printed = printed_.size();
  frames_.push_back({});
  const absl::Status st = clauses(n, 0, out);
  frames_.pop_back();
  VEX_RETURN_IF_ERROR(st);
  if (n.name == "dict") return make_dict(out);
  if (n.name == "set") return make_set(out);
  // A generator expression is run here at once; CPython runs it as it is read.
  if (n.name == "gen" && printed_.size() != printed)
    return unsupported("a generator expression that prints (CPython runs it lazily)");
  return seq(n.name == "list" ? Type::kList : Type::kIter, std::move(out));
}

// The math module: functions whose results Python defines exactly (IEEE square root, integer
// functions, exactly rounded sums). The transcendental ones (exp, log, sin, pow, ...) return
// whatever the platform's C library computes, which is not correctly rounded everywhere: declined.
constexpr std::string_view kMathFunctions[] = {
    "sqrt", "isqrt", "floor", "ceil", "trunc", "fabs", "gcd", "lcm", "factorial", "comb", "perm",
    "prod", "fsum", "copysign", "isfinite", "isinf", "isnan", "degrees", "radians", "fmod"};
constexpr std::string_view kMathLibm[] = {
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "pow", "sin", "cos", "tan", "asin",
    "acos", "atan", "atan2", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "hypot", "dist",
    "erf", "erfc", "gamma", "lgamma", "cbrt", "isclose", "modf", "frexp", "ldexp", "remainder",
    "nextafter", "ulp"};

absl::StatusOr<Value> Eval::attribute(const Node& n) {
  VEX_ASSIGN_OR_RETURN(const Value obj, eval(*n.kids[0]));
  if (obj.type != Type::kModule) return unsupported("attributes other than the math module's");
  static const std::pair<std::string_view, double> kConstants[] = {
      {"pi", 3.141592653589793}, {"e", 2.718281828459045}, {"tau", 6.283185307179586},
      {"inf", INFINITY}, {"nan", NAN}};
  for (const auto& [name, x] : kConstants)
    if (n.name == name) return real(x);
  const auto known = [&](const auto& names) {
    return std::find(std::begin(names), std::end(names), n.name) != std::end(names);
  };
  if (!known(kMathFunctions) && !known(kMathLibm))
    return error("AttributeError", "module 'math' has no attribute '" + n.name + "'");
  return function("math." + n.name);
}

absl::StatusOr<Value> Eval::eval(const Node& n) {
  VEX_RETURN_IF_ERROR(charge(1));
  // Calls of def/lambda functions recurse through here: the depth is bounded so the C++ stack
  // is (CPython's recursion limit is 1000 frames; deeper programs are declined here sooner).
  struct Depth {
    explicit Depth(int& d) : d_(++d) {}
    ~Depth() { --d_; }
    int& d_;
  } depth(depth_);
  if (depth_ > 600) return unsupported("recursion too deep");
  switch (n.kind) {
    case K::kDict:
    case K::kSet: {
      Items items;
      for (const NodeP& k : n.kids) {
        VEX_ASSIGN_OR_RETURN(Value v, eval(*k));
        items.push_back(std::move(v));
      }
      return n.kind == K::kDict ? make_dict(items) : make_set(items);
    }
    case K::kAttr:
      return attribute(n);
    case K::kLambda:
      return function(n);
    case K::kLit:
      return n.lit;
    case K::kName:
      return lookup(n.name);
    case K::kList:
    case K::kTuple: {
      Items items;
      for (const NodeP& k : n.kids) {
        VEX_ASSIGN_OR_RETURN(Value v, eval(*k));
        items.push_back(std::move(v));
      }
      VEX_RETURN_IF_ERROR(charge(0, static_cast<int64_t>(items.size() * sizeof(Value))));
      for (const Value& v : items) VEX_RETURN_IF_ERROR(storable(v));
      return seq(n.kind == K::kList ? Type::kList : Type::kTuple, std::move(items));
    }
    case K::kUnary: {
      VEX_ASSIGN_OR_RETURN(const Value a, eval(*n.kids[0]));
      if (is_int(a)) return integer(n.name == "-" ? mpz_class(-a.i) : a.i);
      if (a.type == Type::kFloat) return real(n.name == "-" ? -a.f : a.f);
      return type_error("bad operand type for unary " + n.name + ": '" + type_name(a) + "'");
    }
    case K::kBinary: {
      VEX_ASSIGN_OR_RETURN(const Value a, eval(*n.kids[0]));
      VEX_ASSIGN_OR_RETURN(const Value b, eval(*n.kids[1]));
      return binary(n.name, a, b);
    }
    case K::kCompare: {
      VEX_ASSIGN_OR_RETURN(Value a, eval(*n.kids[0]));
      for (size_t k = 0; k < n.ops.size(); ++k) {
        VEX_ASSIGN_OR_RETURN(Value b, eval(*n.kids[k + 1]));
        const std::string& op = n.ops[k];
        bool r;
        if (op == "==" || op == "!=") {
          r = equal(a, b) == (op == "==");
        } else if ((op == "in" || op == "not in") && (b.type == Type::kDict || b.type == Type::kSet)) {
          VEX_RETURN_IF_ERROR(hashable(a));
          const bool found = find_key(b, a).has_value();
          if (spent()) return budget_error();
          r = found == (op == "in");
        } else if (a.type == Type::kSet && b.type == Type::kSet) {  // subset order
          bool ab = true, ba = true;
          for (const Value& x : *a.items) ab = ab && find_key(b, x).has_value();
          for (const Value& x : *b.items) ba = ba && find_key(a, x).has_value();
          if (spent()) return budget_error();
          r = op == "<=" ? ab : op == ">=" ? ba : op == "<" ? ab && !ba : ba && !ab;
        } else if (op == "in" || op == "not in") {
          bool found = false;
          if (b.type == Type::kStr) {
            if (a.type != Type::kStr) return type_error("'in <string>' requires string as left operand");
            found = b.s.find(a.s) != std::u32string::npos;
          } else {
            VEX_RETURN_IF_ERROR(each(b, [&](const Value& x) {
              found = found || equal(a, x);
              return absl::OkStatus();
            }));
          }
          r = found == (op == "in");
        } else {
          VEX_ASSIGN_OR_RETURN(const int c, order(a, b));
          r = c != 2 && (op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
        }
        if (!r) return boolean(false);  // chained: a < b < c stops at the first False
        a = std::move(b);
      }
      return boolean(true);
    }
    case K::kAnd:
    case K::kOr: {
      Value v;
      for (const NodeP& k : n.kids) {
        VEX_ASSIGN_OR_RETURN(v, eval(*k));
        if (truthy(v) == (n.kind == K::kOr)) return v;
      }
      return v;
    }
    case K::kNot: {
      VEX_ASSIGN_OR_RETURN(const Value a, eval(*n.kids[0]));
      return boolean(!truthy(a));
    }
    case K::kIf: {
      VEX_ASSIGN_OR_RETURN(const Value c, eval(*n.kids[0]));
      return eval(*n.kids[truthy(c) ? 1 : 2]);
    }
    case K::kCall:
      return call(n);
    case K::kMethod:
      return method(n);
    case K::kIndex: {
      VEX_ASSIGN_OR_RETURN(const Value obj, eval(*n.kids[0]));
      VEX_ASSIGN_OR_RETURN(const Value idx, eval(*n.kids[1]));
      return index(obj, idx);
    }
    case K::kSlice: {
      VEX_ASSIGN_OR_RETURN(const Value obj, eval(*n.kids[0]));
      Value parts[3];
      for (int k = 0; k < 3; ++k) {
        if (!n.kids[k + 1]) continue;
        VEX_ASSIGN_OR_RETURN(parts[k], eval(*n.kids[k + 1]));
      }
      return slice(obj, &parts[0], &parts[1], &parts[2]);
    }
    case K::kComp:
      return comprehension(n);
  }
  return unsupported("expression");
}

absl::StatusOr<Value> Eval::math(const std::string& f, const std::vector<Value>& args) {
  if (std::find(std::begin(kMathLibm), std::end(kMathLibm), f) != std::end(kMathLibm))
    return unsupported("math." + f + ": its value is the platform C library's");
  if (std::find(std::begin(kMathFunctions), std::end(kMathFunctions), f) == std::end(kMathFunctions))
    return error("AttributeError", "module 'math' has no attribute '" + f + "'");
  const auto want = [&](size_t lo, size_t hi) {
    if (args.size() < lo || args.size() > hi)
      return type_error(absl::StrCat("math.", f, "() takes ", lo, " to ", hi, " arguments"));
    return absl::OkStatus();
  };
  const auto whole = [&](const Value& v) -> absl::StatusOr<mpz_class> {
    if (!is_int(v)) return type_error("'" + type_name(v) + "' object cannot be interpreted as an integer");
    return v.i;
  };
  if (f == "gcd" || f == "lcm") {
    mpz_class r = f == "gcd" ? 0 : 1;
    for (const Value& v : args) {
      VEX_ASSIGN_OR_RETURN(const mpz_class n, whole(v));
      VEX_RETURN_IF_ERROR(charge(static_cast<int64_t>(mpz_size(n.get_mpz_t())) + 1,
                                 8 * static_cast<int64_t>(mpz_size(n.get_mpz_t()) + mpz_size(r.get_mpz_t()))));
      if (f == "gcd") mpz_gcd(r.get_mpz_t(), r.get_mpz_t(), n.get_mpz_t());
      else mpz_lcm(r.get_mpz_t(), r.get_mpz_t(), n.get_mpz_t());
    }
    return integer(std::move(r));
  }
  if (f == "prod" || f == "fsum") {
    VEX_RETURN_IF_ERROR(want(1, 1));
    Value total = integer(1);
    mpq_class sum = 0;
    VEX_RETURN_IF_ERROR(each(args[0], [&](const Value& x) -> absl::Status {
      if (f == "prod") {
        VEX_ASSIGN_OR_RETURN(total, binary("*", total, x));
        return absl::OkStatus();
      }
      VEX_ASSIGN_OR_RETURN(const double d, as_float(x));  // each term a float first, as CPython
      if (!std::isfinite(d)) return unsupported("math.fsum of infinities or NaNs");
      sum += mpq_class(d);
      return charge(1, 64);
    }));
    if (f == "prod") return total;
    sum.canonicalize();
    VEX_ASSIGN_OR_RETURN(const double d, divide_to_float(sum.get_num(), sum.get_den()));
    return real(d);
  }
  if (f == "comb" || f == "perm") {
    VEX_RETURN_IF_ERROR(want(f == "comb" ? 2 : 1, 2));
    VEX_ASSIGN_OR_RETURN(const mpz_class n, whole(args[0]));
    mpz_class k = n;
    if (args.size() > 1 && args[1].type != Type::kNone) {
      VEX_ASSIGN_OR_RETURN(k, whole(args[1]));
    }
    if (sgn(n) < 0 || sgn(k) < 0) return value_error("n and k must be non-negative integers");
    if (k > n) return integer(0);
    const mpz_class small = f == "comb" ? mpz_class(std::min(k, mpz_class(n - k))) : k;
    if (small > 5000 || !n.fits_ulong_p()) return unsupported("math." + f + " beyond its budget");
    VEX_RETURN_IF_ERROR(charge(small.get_si() + 1, small.get_si() * static_cast<int64_t>(mpz_size(n.get_mpz_t()) + 1) * 8));
    mpz_class r = 1;
    if (f == "comb") {
      mpz_bin_uiui(r.get_mpz_t(), n.get_ui(), small.get_ui());
    } else {
      for (mpz_class m = n - k + 1; m <= n; ++m) r *= m;
    }
    return integer(std::move(r));
  }
  VEX_RETURN_IF_ERROR(want(f == "copysign" || f == "fmod" ? 2 : 1, f == "copysign" || f == "fmod" ? 2 : 1));
  const Value& x = args[0];
  if (f == "isqrt" || f == "factorial") {
    VEX_ASSIGN_OR_RETURN(const mpz_class n, whole(x));
    if (sgn(n) < 0) return value_error(f + "() not defined for negative values");
    if (f == "isqrt") {
      VEX_RETURN_IF_ERROR(charge(static_cast<int64_t>(mpz_size(n.get_mpz_t())) + 1));
      return integer(sqrt(n));
    }
    if (n > 5000) return unsupported("math.factorial beyond its budget");
    VEX_RETURN_IF_ERROR(charge(n.get_si() + 1, n.get_si() * 2));
    mpz_class r;
    mpz_fac_ui(r.get_mpz_t(), n.get_ui());
    return integer(std::move(r));
  }
  if ((f == "floor" || f == "ceil" || f == "trunc") && is_int(x)) return integer(x.i);
  VEX_ASSIGN_OR_RETURN(const double d, as_float(x));
  if (f == "floor" || f == "ceil" || f == "trunc") {
    if (std::isnan(d)) return value_error("cannot convert float NaN to integer");
    if (std::isinf(d)) return error("OverflowError", "cannot convert float infinity to integer");
    return integer(mpz_class(f == "floor" ? std::floor(d) : f == "ceil" ? std::ceil(d) : std::trunc(d)));
  }
  if (f == "sqrt") {
    if (d < 0) return value_error("math domain error");
    return real(std::sqrt(d));
  }
  if (f == "fabs") return real(std::fabs(d));
  if (f == "isfinite") return boolean(std::isfinite(d));
  if (f == "isinf") return boolean(std::isinf(d));
  if (f == "isnan") return boolean(std::isnan(d));
  if (f == "degrees") return real(d * (180.0 / 3.141592653589793));  // CPython's radToDeg
  if (f == "radians") return real(d * (3.141592653589793 / 180.0));  // and degToRad
  VEX_ASSIGN_OR_RETURN(const double y, as_float(args[1]));
  if (f == "copysign") return real(std::copysign(d, y));
  // fmod (CPython's checks around C's fmod, which is exact).
  if (std::isnan(d) || std::isnan(y)) return real(NAN);
  if (std::isinf(y) && std::isfinite(d)) return real(d);
  const double r = std::fmod(d, y);
  if (std::isnan(r)) return value_error("math domain error");
  return real(r);
}

absl::Status Eval::import(const std::vector<Token>& t) {
  const auto name_at = [&](size_t k) { return k < t.size() && t[k].kind == Tok::kName; };
  const auto op_at = [&](size_t k, std::string_view o) { return k < t.size() && t[k].kind == Tok::kOp && t[k].text == o; };
  Value module;
  module.type = Type::kModule;
  if (t[0].text == "import") {
    if (!name_at(1)) return error("SyntaxError", "invalid import");
    if (t[1].text != "math") return unsupported("import of a module other than math");
    std::string as = "math";
    size_t k = 2;
    if (name_at(k) && t[k].text == "as") {
      if (!name_at(k + 1)) return error("SyntaxError", "invalid import");
      as = t[k + 1].text, k += 2;
    }
    if (t[k].kind != Tok::kEnd) return unsupported("importing several modules in one statement");
    env_[as] = module;
    return absl::OkStatus();
  }
  // from math import a, b as c
  if (!name_at(1) || t[1].text != "math") return unsupported("import from a module other than math");
  if (!name_at(2) || t[2].text != "import") return error("SyntaxError", "invalid import");
  size_t k = 3;
  for (;;) {
    if (!name_at(k)) return unsupported("'from math import' of anything but names");
    const std::string what = t[k].text;
    std::string as = what;
    k += 1;
    if (name_at(k) && t[k].text == "as") {
      if (!name_at(k + 1)) return error("SyntaxError", "invalid import");
      as = t[k + 1].text, k += 2;
    }
    Node attr;
    attr.kind = K::kAttr, attr.name = what;
    auto m = make_node(K::kLit);
    m->lit = module;
    attr.kids.push_back(std::move(m));
    VEX_ASSIGN_OR_RETURN(Value v, attribute(attr));
    env_[as] = std::move(v);
    if (t[k].kind == Tok::kEnd) return absl::OkStatus();
    if (!op_at(k, ",")) return error("SyntaxError", "invalid import");
    ++k;
  }
}

// One simple statement: an expression (its value), or an assignment, def or import (nullopt).
absl::StatusOr<std::optional<Value>> statement(Eval& ev, const std::vector<Token>& t) {
  if (t[0].kind == Tok::kName && (t[0].text == "import" || t[0].text == "from")) {
    VEX_RETURN_IF_ERROR(ev.import(t));
    return std::nullopt;
  }
  Parser p(t);
  if (t[0].kind == Tok::kName && t[0].text == "def") {
    p.skip();
    VEX_ASSIGN_OR_RETURN(auto def, p.def());
    VEX_ASSIGN_OR_RETURN(Value f, ev.function(*def.second));
    VEX_RETURN_IF_ERROR(ev.assign(def.first, std::move(f)));
    return std::nullopt;
  }
  const auto target = p.assignment();
  VEX_ASSIGN_OR_RETURN(const NodeP expr, p.whole());
  VEX_ASSIGN_OR_RETURN(Value v, ev.eval(*expr));
  if (!target) return v;
  const auto& [name, op] = *target;
  if (op != "=") {
    VEX_ASSIGN_OR_RETURN(const Value old, ev.lookup(name));
    VEX_ASSIGN_OR_RETURN(v, ev.binary(op.substr(0, op.size() - 1), old, v));
  }
  VEX_RETURN_IF_ERROR(ev.assign(name, std::move(v)));
  return std::nullopt;
}

// A line's simple statements ("a; b"); a def's line is one statement (its body runs to the end).
absl::StatusOr<std::vector<std::vector<Token>>> split_line(std::vector<Token> all) {
  if (all[0].kind == Tok::kName && all[0].text == "def") return std::vector<std::vector<Token>>{std::move(all)};
  std::vector<std::vector<Token>> parts(1);
  int depth = 0;
  for (Token& t : all) {
    if (t.kind == Tok::kOp) {
      depth += (t.text == "(" || t.text == "[" || t.text == "{") - (t.text == ")" || t.text == "]" || t.text == "}");
      if (t.text == ";" && depth == 0) {
        parts.back().push_back({Tok::kEnd, "", {}});
        parts.emplace_back();
        continue;
      }
    }
    parts.back().push_back(std::move(t));
  }
  if (parts.size() > 1 && parts.back().size() == 1) parts.pop_back();  // a trailing ";"
  for (const auto& p : parts)
    if (p.size() == 1) return error("SyntaxError", "invalid syntax (an empty statement)");
  return parts;
}

}  // namespace

absl::StatusOr<std::string> run(const std::vector<std::string>& statements, const Limits& limits) {
  if (statements.empty()) return absl::InvalidArgumentError("no statements");
  Eval ev(limits);
  // What the REPL shows for the last line: what its statements print and the repr of each
  // expression statement's value other than None, in order (earlier lines' output is already in
  // the transcript); a print's own final newline before the next prompt is not shown.
  std::string shown;
  for (size_t k = 0; k < statements.size(); ++k) {
    VEX_ASSIGN_OR_RETURN(std::vector<Token> toks, lex(statements[k]));
    if (toks.size() == 1) return error("SyntaxError", "an empty statement");
    VEX_ASSIGN_OR_RETURN(const auto parts, split_line(std::move(toks)));
    const bool last = k + 1 == statements.size();
    ev.take_printed();
    for (const auto& part : parts) {
      VEX_ASSIGN_OR_RETURN(const std::optional<Value> v, statement(ev, part));
      if (!last) continue;
      shown += ev.take_printed();
      if (v && v->type != Type::kNone) {
        VEX_ASSIGN_OR_RETURN(std::string r, repr(*v));
        shown += r + "\n";
      }
    }
  }
  if (ev.spent()) return budget_error();  // a walk cut short by the budget (equal_items)
  if (ev.identity()) return unsupported("a comparison CPython decides by object identity");
  if (shown.ends_with('\n')) shown.pop_back();
  if (shown.empty()) return unsupported("the line shows nothing (an assignment, None, an empty line)");
  return shown;
}

}  // namespace vex::py
