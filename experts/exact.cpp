#include "experts/exact.h"

#include <cctype>

namespace vex {
namespace {

constexpr long kMinPlaces = 3;

bool digit(char c) { return c >= '0' && c <= '9'; }

// |n| rounded to an integer: half to even, or half away from zero.
mpz_class round_int(const mpq_class& x, bool half_even) {
  mpz_class q, r;
  mpz_fdiv_qr(q.get_mpz_t(), r.get_mpz_t(), x.get_num_mpz_t(), x.get_den_mpz_t());  // x >= 0
  const int c = cmp(mpz_class(2 * r), x.get_den());
  if (c > 0 || (c == 0 && (!half_even || mpz_odd_p(q.get_mpz_t())))) ++q;
  return q;
}

// Digits of the non-negative integer n with a decimal point `decimals` places from the right.
std::string place_point(const mpz_class& n, long decimals) {
  std::string s = n.get_str();
  if (decimals <= 0) return s + std::string(-decimals, '0');
  if (static_cast<long>(s.size()) <= decimals) s = std::string(decimals - s.size() + 1, '0') + s;
  const size_t point = s.size() - decimals;
  return s.substr(0, point) + "." + s.substr(point);
}

}  // namespace

mpq_class pow10q(long e) {
  mpz_class p;
  mpz_ui_pow_ui(p.get_mpz_t(), 10, static_cast<unsigned long>(e < 0 ? -e : e));
  return e < 0 ? mpq_class(mpz_class(1), p) : mpq_class(p);
}

size_t decimal_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && digit(s[i])) ++i;
  const size_t lead = i;
  // Thousands groups: ",ddd" not followed by another digit, only after 1-3 leading digits.
  if (lead >= 1 && lead <= 3) {
    size_t j = i;
    while (j + 3 < s.size() + 0 && s[j] == ',' && digit(s[j + 1]) && digit(s[j + 2]) &&
           digit(s[j + 3]) && (j + 4 >= s.size() || !digit(s[j + 4])))
      j += 4;
    i = j;
  }
  if (i < s.size() && s[i] == '.' && i + 1 < s.size() && digit(s[i + 1])) {
    ++i;
    while (i < s.size() && digit(s[i])) ++i;
  } else if (lead == 0) {
    return 0;
  }
  return i;
}

std::optional<mpq_class> parse_decimal(std::string_view s) {
  if (s.empty() || decimal_prefix(s) != s.size()) return std::nullopt;
  std::string digits;
  long decimals = 0;
  bool after_point = false;
  for (char c : s) {
    if (c == ',') continue;
    if (c == '.') {
      after_point = true;
      continue;
    }
    digits += c;
    decimals += after_point;
  }
  mpq_class q(mpz_class(digits, 10), 1);
  q *= pow10q(-decimals);
  q.canonicalize();
  return q;
}

std::string format_exact(const mpq_class& q, int significant) {
  const bool neg = sgn(q) < 0;
  mpq_class a = abs(q);
  a.canonicalize();  // a rational built from (num, den) unreduced would print as "0.0"
  std::string body;
  mpz_class den = a.get_den();
  // Terminating iff the denominator has no prime factors but 2 and 5.
  long twos = mpz_scan1(den.get_mpz_t(), 0);
  mpz_fdiv_q_2exp(den.get_mpz_t(), den.get_mpz_t(), twos);
  // mpz_remove divides by squared powers of 5: one division at a time would be quadratic in the
  // size of a denominator of 10^-30000's kind.
  const long fives =
      static_cast<long>(mpz_remove(den.get_mpz_t(), den.get_mpz_t(), mpz_class(5).get_mpz_t()));
  if (den == 1) {
    const long places = std::max(twos, fives);
    body = place_point(mpz_class(a * pow10q(places)), places);
  } else {
    // e: the power of ten of the leading digit, 10^e <= a < 10^(e+1).
    long e = static_cast<long>(a.get_num().get_str().size()) -
             static_cast<long>(a.get_den().get_str().size());
    while (a < pow10q(e)) --e;
    while (a >= pow10q(e + 1)) ++e;
    // 15 significant digits, but never fewer than kMinPlaces decimals: a large quotient keeps
    // every digit of its integer part.
    long places = std::max<long>(significant - 1 - e, kMinPlaces);
    mpz_class n = round_int(a * pow10q(places), /*half_even=*/true);
    if (places > kMinPlaces && n == mpz_class(pow10q(significant)))
      n /= 10, --places;  // 9.99..95 rounded up to a new leading digit
    body = place_point(n, places);
    if (body.find('.') != std::string::npos) {
      while (body.back() == '0') body.pop_back();
      if (body.back() == '.') body.pop_back();
    }
  }
  return neg && body != "0" ? "-" + body : body;
}

std::string format_fixed(const mpq_class& q, int decimals) {
  const mpz_class n = round_int(abs(q) * pow10q(decimals), /*half_even=*/false);
  const std::string body = place_point(n, decimals);
  return sgn(q) < 0 && n != 0 ? "-" + body : body;
}

}  // namespace vex
