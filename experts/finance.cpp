// The finance expert: commercial real-estate ratios and the loan payment, from the numbers the
// paragraph states, when the text ends by naming the quantity before the end marker:
//   "NOI is $1,200,000 and annual debt service is $950,000, so the DSCR is"  -> "1.26315789473684"
//   DSCR        = NOI / annual debt service                 (format_exact)
//   LTV         = loan / value × 100                         (format_exact, "%")
//   cap rate    = NOI / price × 100 (the value if no price)  (format_exact, "%")
//   debt yield  = NOI / loan × 100                           (format_exact, "%")
//   monthly payment = P·r / (1 − (1 + r)^−n), r = annual rate / 12, n = months (exact rational,
//                     then rounded to the cent, half away from zero: "$18,960.48")
// Operands are labelled amounts in the same paragraph (after the last blank line): "NOI of $1.2M",
// "a $3,000,000 loan", "debt service: 950,000", "monthly debt service $10,000" (× 12), "at 6.5%",
// "30-year", "for 360 months". Amounts take $ € £, thousands separators, and k / M / million /
// thousand / billion scales.
//
// Declines: an operand missing, stated twice with different values, or hedged ("about $1M"); a
// zero divisor; a quantity not in the list above; a growth (1 + r)^n past 2,000,000 bits exact
// (a rate written to ~10 significant digits or more, compounded daily for a century);
// anything else that does not read.
#include <array>

#include "experts/exact.h"
#include "experts/expert.h"
#include "experts/text.h"

namespace vex {
namespace {

// g^k exactly, or nullopt past kMaxGrowthBits: the exact power of a rate written to many digits
// ("at 5.777...7%" with 200 sevens, compounded daily for 100 years) would take seconds (GMP's
// gcd on 50-Mbit numbers) before its rounding to the cent.
constexpr size_t kMaxGrowthBits = 2000000;
std::optional<mpq_class> power(const mpq_class& g, unsigned long k) {
  const size_t bits = mpz_sizeinbase(g.get_num_mpz_t(), 2) + mpz_sizeinbase(g.get_den_mpz_t(), 2);
  if (bits * k > kMaxGrowthBits) return std::nullopt;
  mpz_class num, den;
  mpz_pow_ui(num.get_mpz_t(), g.get_num_mpz_t(), k);
  mpz_pow_ui(den.get_mpz_t(), g.get_den_mpz_t(), k);
  mpq_class out(num, den);
  out.canonicalize();
  return out;
}

enum Field { kNoi, kDebtService, kLoan, kValue, kPrice, kRate, kMonths, kFieldCount };

struct Label {
  std::string_view words;  // lowercase, space-separated
  Field field;
  int scale;
};

constexpr Label kLabels[] = {
    {"net operating income", kNoi, 1},  {"noi", kNoi, 1},
    {"annual debt service", kDebtService, 1}, {"yearly debt service", kDebtService, 1},
    {"monthly debt service", kDebtService, 12}, {"debt service", kDebtService, 1},
    {"loan amount", kLoan, 1},          {"loan balance", kLoan, 1},
    {"loan", kLoan, 1},                 {"mortgage", kLoan, 1},
    {"principal", kLoan, 1},            {"property value", kValue, 1},
    {"appraised value", kValue, 1},     {"market value", kValue, 1},
    {"value", kValue, 1},               {"valued", kValue, 1},
    {"purchase price", kPrice, 1},      {"sale price", kPrice, 1},
    {"asking price", kPrice, 1},        {"price", kPrice, 1},
    {"interest rate", kRate, 1},        {"annual rate", kRate, 1},
    {"rate", kRate, 1},                 {"term", kMonths, 1},
};

// Words between a label and its amount: "NOI of", "price is", "loan: ", "valued at".
constexpr std::array<std::string_view, 13> kLinks = {"of", "is", "was", "=", ":", "at", "are",
                                                     "totals", "totaling", "totalling", "equals",
                                                     "about", "approximately"};

enum class Metric { kDscr, kLtv, kCapRate, kDebtYield, kPayment };

struct Question {
  std::string_view words;
  Metric metric;
};

constexpr Question kQuestions[] = {
    {"dscr", Metric::kDscr},
    {"debt service coverage ratio", Metric::kDscr},
    {"debt-service coverage ratio", Metric::kDscr},
    {"debt service coverage", Metric::kDscr},
    {"ltv", Metric::kLtv},
    {"ltv ratio", Metric::kLtv},
    {"loan-to-value", Metric::kLtv},
    {"loan-to-value ratio", Metric::kLtv},
    {"loan to value", Metric::kLtv},
    {"loan to value ratio", Metric::kLtv},
    {"cap rate", Metric::kCapRate},
    {"capitalization rate", Metric::kCapRate},
    {"debt yield", Metric::kDebtYield},
    {"monthly payment", Metric::kPayment},
    {"monthly mortgage payment", Metric::kPayment},
    {"monthly loan payment", Metric::kPayment},
    {"payment", Metric::kPayment},
};

struct Amount {
  mpq_class value;
  bool percent = false;
  std::string currency;
  size_t used = 1;  // words read
};

std::optional<Amount> amount(const std::vector<std::string>& w, size_t i) {
  if (i >= w.size()) return std::nullopt;
  std::string_view s = w[i];
  Amount a;
  for (std::string_view c : {"$", "€", "£"})
    if (s.starts_with(c)) a.currency = c, s.remove_prefix(c.size());
  const size_t n = decimal_prefix(s);
  if (n == 0) return std::nullopt;
  a.value = *parse_decimal(s.substr(0, n));
  const std::string_view unit = s.substr(n);
  if (unit == "%") {
    if (!a.currency.empty()) return std::nullopt;
    a.percent = true;
  } else if (unit == "k") {
    a.value *= 1000;
  } else if (unit == "m" || unit == "mm") {
    a.value *= 1000000;
  } else if (unit == "bn" || unit == "b") {
    a.value *= 1000000000;
  } else if (!unit.empty()) {
    return std::nullopt;
  }
  if (unit.empty() && i + 1 < w.size()) {
    const std::string_view next = w[i + 1];
    const long scale = next == "thousand" ? 1000 : next == "million" ? 1000000
                       : next == "billion"    ? 1000000000
                                              : 0;
    if (scale) a.value *= scale, a.used = 2;
  }
  return a;
}

// The label starting at word i (the longest), or nullptr.
const Label* label_at(const std::vector<std::string>& w, size_t i, size_t* len) {
  static const std::vector<std::vector<std::string_view>> kLabelWords = [] {
    std::vector<std::vector<std::string_view>> out;
    for (const Label& l : kLabels) out.push_back(words(l.words));
    return out;
  }();
  const Label* best = nullptr;
  *len = 0;
  for (size_t n = 0; n < std::size(kLabels); ++n) {
    const Label& l = kLabels[n];
    const std::vector<std::string_view>& lw = kLabelWords[n];
    if (lw.size() <= *len || i + lw.size() > w.size()) continue;
    bool ok = true;
    for (size_t k = 0; k < lw.size() && ok; ++k) ok = w[i + k] == lw[k];
    if (ok) best = &l, *len = lw.size();
  }
  return best;
}

struct Fact {
  std::optional<mpq_class> value;
  bool bad = false;  // conflicting or hedged
  std::string currency;
};

class Facts {
 public:
  void set(Field f, const mpq_class& v, bool hedged, const std::string& currency = "") {
    Fact& x = facts_[f];
    if (hedged || (x.value && *x.value != v)) x.bad = true;
    x.value = v;
    if (!currency.empty()) x.currency = currency;
  }
  // The operand, or nullopt when missing or unusable.
  std::optional<mpq_class> get(Field f) const {
    if (facts_[f].bad || !facts_[f].value) return std::nullopt;
    return facts_[f].value;
  }
  bool has(Field f) const { return facts_[f].value.has_value(); }
  const std::string& currency(Field f) const { return facts_[f].currency; }

 private:
  std::array<Fact, kFieldCount> facts_;
};

// Terms written "30-year" / "360-month" or "30 years" / "360 months".
std::optional<mpq_class> term_months(const std::vector<std::string>& w, size_t i, size_t* used) {
  std::string_view s = w[i];
  std::string_view unit;
  *used = 1;
  if (const size_t dash = s.find('-'); dash != std::string_view::npos) {
    unit = s.substr(dash + 1);
    s = s.substr(0, dash);
  } else if (i + 1 < w.size()) {
    unit = w[i + 1];
    *used = 2;
  }
  const auto n = parse_decimal(s);
  if (!n || n->get_den() != 1) return std::nullopt;
  if (unit == "year" || unit == "years") return *n * 12;
  if (unit == "month" || unit == "months") return *n;
  return std::nullopt;
}

Facts read_facts(std::string_view paragraph) {
  std::vector<std::string> w;
  for (std::string_view x : words(paragraph)) w.push_back(lower(x));
  Facts facts;
  for (size_t i = 0; i < w.size();) {
    size_t len = 0, used = 0;
    if (const Label* l = label_at(w, i, &len)) {
      size_t j = i + len;
      bool hedged = false;
      while (j < w.size() && std::find(kLinks.begin(), kLinks.end(), w[j]) != kLinks.end())
        hedged |= is_hedge(w[j]), ++j;
      if (l->field == kMonths) {
        if (j < w.size())
          if (const auto m = term_months(w, j, &used)) {
            facts.set(kMonths, *m, hedged);
            i = j + used;
            continue;
          }
      } else if (const auto a = amount(w, j); a && a->percent == (l->field == kRate)) {
        facts.set(l->field, a->value * l->scale, hedged, a->currency);
        i = j + a->used;
        continue;
      }
      i += len;
      continue;
    }
    const bool hedged = i > 0 && is_hedge(w[i - 1]);
    if (const auto m = term_months(w, i, &used)) {
      facts.set(kMonths, *m, hedged);
      i += used;
      continue;
    }
    if (const auto a = amount(w, i)) {
      if (a->percent) {
        // "at 6.5%", "6.5% interest", "6.5% rate", "6.5% APR".
        const std::string_view next = i + 1 < w.size() ? std::string_view(w[i + 1]) : "";
        if ((i > 0 && w[i - 1] == "at") || next == "interest" || next == "rate" || next == "apr")
          facts.set(kRate, a->value, hedged);
      } else if (const Label* l = label_at(w, i + a->used, &len); l && l->field != kRate &&
                                                                   l->field != kMonths) {
        facts.set(l->field, a->value * l->scale, hedged, a->currency);  // "a $3,000,000 loan"
        i += a->used + len;
        continue;
      }
      i += a->used;
      continue;
    }
    ++i;
  }
  return facts;
}

std::string money(const std::string& currency, const mpq_class& v) {
  std::string s = format_fixed(v, 2);
  const bool neg = s.starts_with('-');
  if (neg) s.erase(0, 1);
  for (long p = static_cast<long>(s.find('.')) - 3; p > 0; p -= 3) s.insert(p, ",");
  return (neg ? "-" : "") + currency + s;
}

std::string ratio_inputs(std::string_view a, const mpq_class& x, std::string_view b,
                         const mpq_class& y) {
  return std::string(a) + " " + format_exact(x) + " / " + std::string(b) + " " + format_exact(y);
}

class Finance final : public HostExpert {
 public:
  const std::string& name() const override { return name_; }

  std::optional<ExpertAnswer> answer(std::string_view text) const override {
    std::optional<std::pair<std::string, std::string>> r = label_first(trim_end(text));
    if (!r) r = compound(text);
    if (!r) r = label_last(text);
    if (!r) return std::nullopt;
    return ExpertAnswer{r->first, r->second, continue_with(text, r->second)};
  }

 private:
  using Result = std::optional<std::pair<std::string, std::string>>;  // inputs, output

  // The question named at the end of q (the longest name), or null.
  static const Question* asked_at_end(const std::string& q) {
    const Question* asked = nullptr;
    for (const Question& k : kQuestions)
      if ((q == k.words || q.ends_with(" " + std::string(k.words))) &&
          (!asked || k.words.size() > asked->words.size()))
        asked = &k;
    return asked;
  }

  // "... the DSCR is" / "LTV =": the facts are the paragraph before the question.
  static Result label_last(std::string_view text) {
    const auto line = question_line(text);
    if (!line) return std::nullopt;
    std::string q = lower(*line);
    if (q.ends_with(" of")) q.resize(q.size() - 3);  // "a loan-to-value ratio of:"
    const Question* asked = asked_at_end(q);
    if (!asked || other_period(q, *asked)) return std::nullopt;
    // The facts: the paragraph up to the question's name for the quantity.
    const size_t end = static_cast<size_t>(line->data() - text.data()) + q.size() -
                       asked->words.size();
    size_t begin = text.substr(0, end).rfind("\n\n");
    begin = begin == std::string_view::npos ? 0 : begin + 2;
    return compute(asked->metric, read_facts(text.substr(begin, end - begin)));
  }

  // "What is the DSCR if NOI is $1.2M and debt service is $950k?": the question first, its
  // facts after "if", "when", "given", "with" or "for", up to the "?".
  static Result label_first(std::string_view s) {
    if (!s.ends_with('?')) return std::nullopt;
    s.remove_suffix(1);
    if (const size_t nl = s.rfind('\n'); nl != std::string_view::npos) s = s.substr(nl + 1);
    std::string q = lower(s);
    for (std::string_view lead : {"so ", "and "})
      if (q.starts_with(lead)) q.erase(0, lead.size()), s.remove_prefix(lead.size());
    size_t at = 0;
    for (std::string_view p : {"what is the ", "what's the ", "what is ", "what's ",
                               "calculate the ", "compute the "})
      if (q.starts_with(p)) {
        at = p.size();
        break;
      }
    if (at == 0) return std::nullopt;
    for (std::string_view link : {" if ", " when ", " given ", " with ", " for "}) {
      const size_t l = q.find(link, at);
      if (l == std::string::npos) continue;
      const std::string name = q.substr(at, l - at);
      const Question* asked = asked_at_end(name);
      if (!asked || asked->words != name || other_period(name, *asked)) continue;
      return compute(asked->metric, read_facts(s.substr(l + link.size())));
    }
    return std::nullopt;
  }

  // Compound interest: "$1,000 at 5% compounded annually for 10 years grows to",
  // "$5,000 invested at 4% interest compounded monthly for 3 years is worth": the future value
  // P (1 + r/n)^(n t), to the cent. n: annually 1, semiannually 2, quarterly 4, monthly 12,
  // weekly 52, daily 365; t whole years (or months).
  static Result compound(std::string_view text) {
    const auto line = question_line(text);
    std::string_view q = line ? *line : std::string_view();
    if (!line) {  // "... grows to" / "... is worth"
      const std::string l = lower(trim_end(text));
      for (std::string_view m : {" grows to", " is worth", " will be worth", " becomes"})
        if (l.ends_with(m)) {
          q = trim_end(text).substr(0, trim_end(text).size() - m.size());
          break;
        }
      if (q.empty()) return std::nullopt;
    }
    if (const size_t nl = q.rfind('\n'); nl != std::string_view::npos) q = q.substr(nl + 1);
    std::vector<std::string> w;
    for (std::string_view x : words(q)) w.push_back(lower(x));
    const auto c = std::find(w.begin(), w.end(), "compounded");
    if (c == w.end() || c + 1 == w.end()) return std::nullopt;
    static constexpr std::pair<std::string_view, int> kPeriods[] = {
        {"annually", 1}, {"yearly", 1},  {"semiannually", 2}, {"semi-annually", 2},
        {"quarterly", 4}, {"monthly", 12}, {"weekly", 52},      {"daily", 365}};
    int per_year = 0;
    for (const auto& [word, n] : kPeriods)
      if (*(c + 1) == word) per_year = n;
    if (per_year == 0) return std::nullopt;  // "continuously": not a rational answer
    std::optional<Amount> principal, rate;
    std::optional<mpq_class> months;
    for (size_t i = 0; i < w.size(); ++i) {
      if (is_hedge(w[i])) return std::nullopt;
      size_t used = 0;
      if (w[i] == "for" && i + 1 < w.size())
        if (const auto m = term_months(w, i + 1, &used)) {
          if (months) return std::nullopt;
          months = *m;
          continue;
        }
      const auto a = amount(w, i);
      if (!a) continue;
      if (a->percent) {
        if (rate) return std::nullopt;
        rate = a;
      } else if (!a->currency.empty()) {
        if (principal) return std::nullopt;
        principal = a;
      }
    }
    if (!principal || !rate || !months || sgn(*months) <= 0) return std::nullopt;
    const mpq_class periods = *months * per_year / 12;
    if (periods.get_den() != 1 || periods > 36500) return std::nullopt;  // whole periods only
    const auto growth = power(1 + rate->value / 100 / per_year, periods.get_num().get_ui());
    if (!growth) return std::nullopt;
    return std::make_pair(format_exact(principal->value) + " at " + format_exact(rate->value) +
                              "% compounded " + *(c + 1) + " for " + format_exact(*months) +
                              " months",
                          money(principal->currency, principal->value * *growth));
  }

  // The payment computed is the monthly one: "the annual payment", "biweekly payment" and the
  // like ask for another, so they are declined.
  static bool other_period(const std::string& q, const Question& asked) {
    if (asked.metric != Metric::kPayment || asked.words != "payment") return false;
    const std::vector<std::string_view> w = words(q);
    static constexpr std::string_view kOther[] = {
        "annual",    "annually",     "yearly",       "quarterly", "weekly",  "biweekly",
        "bi-weekly", "semi-monthly", "semimonthly",  "daily",     "semi-annual", "semiannual",
        "fortnightly", "twice-monthly", "bimonthly", "bi-monthly", "total",   "balloon",
        "final",     "first",        "last",         "down",      "extra",   "interest-only"};
    return w.size() >= 2 &&
           std::find(std::begin(kOther), std::end(kOther), w[w.size() - 2]) != std::end(kOther);
  }

  static Result compute(Metric metric, const Facts& f) {
    const auto noi = f.get(kNoi);
    std::string out, inputs;
    switch (metric) {
      case Metric::kDscr: {
        const auto ds = f.get(kDebtService);
        if (!noi || !ds || sgn(*ds) == 0) return std::nullopt;
        out = format_exact(*noi / *ds);
        inputs = ratio_inputs("NOI", *noi, "debt service", *ds);
        break;
      }
      case Metric::kLtv:
      case Metric::kCapRate:
      case Metric::kDebtYield: {
        const bool ltv = metric == Metric::kLtv;
        const auto num = ltv ? f.get(kLoan) : noi;
        Field den_field = metric == Metric::kDebtYield ? kLoan : kValue;
        if (metric == Metric::kCapRate && f.has(kPrice)) den_field = kPrice;
        const auto den = f.get(den_field);
        if (!num || !den || sgn(*den) == 0) return std::nullopt;
        out = format_exact(*num / *den * 100) + "%";
        static constexpr std::array<std::string_view, kFieldCount> kNames = {
            "NOI", "debt service", "loan", "value", "price", "rate", "months"};
        inputs = ratio_inputs(ltv ? "loan" : "NOI", *num, kNames[den_field], *den);
        break;
      }
      case Metric::kPayment: {
        const auto p = f.get(kLoan);
        const auto rate = f.get(kRate);
        const auto n = f.get(kMonths);
        if (!p || !rate || !n || sgn(*n) <= 0 || sgn(*rate) < 0 || *n > 1200) return std::nullopt;
        const unsigned long months = n->get_num().get_ui();
        mpq_class payment;
        if (sgn(*rate) == 0) {
          payment = *p / *n;
        } else {
          const mpq_class r = *rate / 1200;
          const auto growth = power(1 + r, months);
          if (!growth) return std::nullopt;
          payment = *p * r * *growth / (*growth - 1);
        }
        out = money(f.currency(kLoan), payment);
        inputs = "loan " + format_exact(*p) + " at " + format_exact(*rate) + "% for " +
                 format_exact(*n) + " months";
        break;
      }
    }
    return std::make_pair(inputs, out);
  }

  std::string name_ = "finance";
};

}  // namespace

std::unique_ptr<HostExpert> make_finance() { return std::make_unique<Finance>(); }

}  // namespace vex
