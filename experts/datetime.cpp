// The datetime expert: calendar facts in the proleptic Gregorian calendar (abseil civil time),
// for questions the text ends with:
//   today          "Today is" / "Today's date is" / "The current date is"  -> "Monday, November 23, 2026"
//                  "The day of the week today is" / "Today's weekday is"   -> "Monday"
//                  (from the clock, in the configured time zone: TZ, as abseil's LocalTimeZone)
//   asked          "What day is today?", "What's the date?", "What day of the week is it?",
//                  "What day is tomorrow?", "What time is it?" -> "06:30" (24-hour clock),
//                  "Is 2100 a leap year?" -> "No"; "Tomorrow is", "Yesterday was"
//   weekday        "2024-02-29 was a" / "The weekday of March 14, 2015 is"  -> "Thursday"
//   days between   "The number of days between 2024-01-01 and 2024-12-25 is" -> "359"
//                  (between: the absolute count; "from A to B": B - A, negative if B is earlier)
//   date ± span    "2024-01-31 + 30 days =", "90 days after March 1, 2024 is",
//                  "2 weeks before 2024-01-10 is", "2023-05-31 plus 3 months =" -> a date written
//                  like the one in the question (ISO stays ISO)
// Dates: "2024-02-29", "February 29, 2024", "Feb 29, 2024", "29 February 2024", ordinals
// ("March 1st, 2024"); years 1 to 9999 (ISO with four digits, "May 2, 995" in words).
//
// A month or year step landing on a day the month lacks is clamped to the month's last day
// ("2024-01-31 + 1 month" is 2024-02-29). Days until a holiday with a fixed date: "How many days
// until Christmas?" (Christmas, Christmas Eve, New Year's Day, New Year's Eve, Halloween,
// Valentine's Day; 0 on the day itself).
// Declines: numeric dates with slashes or dots ("03/04/2024": day and month order is ambiguous),
// dates that do not exist ("2023-02-29"), results outside years 1-9999, holidays whose date
// depends on the country or year (Independence Day, Easter, Thanksgiving), a hedge, anything
// else unread.
#include <algorithm>
#include <array>
#include <functional>

#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "experts/expert.h"
#include "experts/text.h"

namespace vex {
namespace {

constexpr std::array<std::string_view, 12> kMonths = {
    "january", "february", "march",     "april",   "may",      "june",
    "july",    "august",   "september", "october", "november", "december"};
constexpr std::array<std::string_view, 7> kWeekdays = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                       "Friday", "Saturday", "Sunday"};

enum class Style { kIso, kMonthFirst, kDayFirst };

struct Date {
  absl::CivilDay day;
  Style style;
  size_t begin;  // offset of the date in the text it was read from
};

bool digit(char c) { return c >= '0' && c <= '9'; }
bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

std::string weekday_name(absl::CivilDay d) {
  // absl::Weekday counts from Monday = 0.
  return std::string(kWeekdays[static_cast<int>(absl::GetWeekday(d))]);
}

std::string month_name(int m) {
  std::string s(kMonths[m - 1]);
  s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

std::string format_date(absl::CivilDay d, Style style) {
  switch (style) {
    case Style::kIso:
      return absl::StrFormat("%04d-%02d-%02d", d.year(), d.month(), d.day());
    case Style::kMonthFirst:
      return absl::StrFormat("%s %d, %d", month_name(d.month()), d.day(), d.year());
    case Style::kDayFirst:
      return absl::StrFormat("%d %s %d", d.day(), month_name(d.month()), d.year());
  }
  return {};
}

// The civil day for y-m-d, or nullopt if it does not exist (abseil would normalise it).
std::optional<absl::CivilDay> make_day(long y, long m, long d) {
  if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31) return std::nullopt;
  const absl::CivilDay day(y, m, d);
  if (day.year() != y || day.month() != m || day.day() != d) return std::nullopt;
  return day;
}

// The month named by `w` ("March", "mar", "Sept."), 1-12, or 0.
int month_of(std::string_view w) {
  std::string s = lower(w);
  if (s.ends_with('.')) s.pop_back();
  if (s.size() < 3) return 0;
  for (size_t i = 0; i < kMonths.size(); ++i)
    if (s == kMonths[i] || s == kMonths[i].substr(0, 3) || (i == 8 && s == "sept"))
      return static_cast<int>(i) + 1;
  return 0;
}

// Reads a run of digits ending at `end` in s; returns its start.
size_t digits_before(std::string_view s, size_t end) {
  size_t b = end;
  while (b > 0 && digit(s[b - 1])) --b;
  return b;
}

long to_long(std::string_view s) { return s.empty() || s.size() > 6 ? -1 : std::stol(std::string(s)); }

// `s` without an ordinal suffix after its last digit ("1st" -> "1").
std::string_view strip_ordinal(std::string_view s) {
  for (std::string_view ord : {"st", "nd", "rd", "th"})
    if (s.ends_with(ord) && s.size() > 2 && digit(s[s.size() - 3])) return s.substr(0, s.size() - 2);
  return s;
}

// Where the month name that `s` ends with starts ("... Sept." -> its offset), and the month
// (1-12, or 0 when the last word is not a month).
std::pair<size_t, int> month_suffix(std::string_view s) {
  size_t b = s.size();
  while (b > 0 && (std::isalpha(static_cast<unsigned char>(s[b - 1])) || s[b - 1] == '.')) --b;
  return {b, month_of(s.substr(b))};
}

// The date `s` ends with, if any (preceded by a start, a space or punctuation, never a word).
std::optional<Date> date_suffix(std::string_view s) {
  const auto standalone = [&](size_t begin) { return begin == 0 || !word_char(s[begin - 1]); };
  // ISO: YYYY-MM-DD.
  if (s.size() >= 10) {
    const std::string_view t = s.substr(s.size() - 10);
    if (digit(t[0]) && digit(t[1]) && digit(t[2]) && digit(t[3]) && t[4] == '-' && digit(t[5]) &&
        digit(t[6]) && t[7] == '-' && digit(t[8]) && digit(t[9])) {
      const size_t begin = s.size() - 10;
      if (!standalone(begin) || (begin > 0 && (s[begin - 1] == '-' || s[begin - 1] == '/')))
        return std::nullopt;
      const auto d = make_day(to_long(t.substr(0, 4)), to_long(t.substr(5, 2)),
                              to_long(t.substr(8, 2)));
      if (!d) return std::nullopt;
      return Date{*d, Style::kIso, begin};
    }
  }
  // "... Y" with the year (1 to 4 digits) as the last word.
  const size_t ystart = digits_before(s, s.size());
  if (s.size() == ystart || s.size() - ystart > 4 || ystart < 2) return std::nullopt;
  const long year = to_long(s.substr(ystart));
  std::string_view head = s.substr(0, ystart);
  if (head.ends_with(", ")) {
    // "Month D, YYYY" / "Month Dth, YYYY".
    head.remove_suffix(2);
    head = strip_ordinal(head);
    const size_t dstart = digits_before(head, head.size());
    if (dstart == head.size() || head.size() - dstart > 2 || dstart < 2 || head[dstart - 1] != ' ')
      return std::nullopt;
    const long day = to_long(head.substr(dstart));
    const std::string_view before = head.substr(0, dstart - 1);
    const auto [mstart, month] = month_suffix(before);
    if (!month || !standalone(mstart)) return std::nullopt;
    const auto d = make_day(year, month, day);
    if (!d) return std::nullopt;
    return Date{*d, Style::kMonthFirst, mstart};
  }
  if (!head.ends_with(' ')) return std::nullopt;
  // "D Month YYYY".
  head.remove_suffix(1);
  const auto [mstart, month] = month_suffix(head);
  if (!month || mstart < 2 || head[mstart - 1] != ' ') return std::nullopt;
  const std::string_view dpart = strip_ordinal(head.substr(0, mstart - 1));
  const size_t dstart = digits_before(dpart, dpart.size());
  if (dstart == dpart.size() || dpart.size() - dstart > 2 || !standalone(dstart))
    return std::nullopt;
  const auto d = make_day(year, month, to_long(dpart.substr(dstart)));
  if (!d) return std::nullopt;
  return Date{*d, Style::kDayFirst, dstart};
}

// `s` without a trailing lowercase phrase, or nullopt when it does not end with it.
std::optional<std::string_view> strip_suffix(std::string_view s, std::string_view phrase) {
  if (s.size() < phrase.size() || lower(s.substr(s.size() - phrase.size())) != phrase)
    return std::nullopt;
  return trim_end(s.substr(0, s.size() - phrase.size()));
}

// `s` ends with the whole words of `phrase` (not "midweekday of").
bool ends_with_phrase(std::string_view s, std::string_view phrase) {
  if (!strip_suffix(s, phrase)) return false;
  return s.size() == phrase.size() || !word_char(s[s.size() - phrase.size() - 1]);
}

// `s` is `phrase` as a clause of its own: nothing before it but a sentence or clause break, or
// "so" / "and" / "then" ("So today is", not "The weather today is").
bool clause_is(std::string_view s, std::string_view phrase) {
  if (!ends_with_phrase(s, phrase)) return false;
  const auto r = strip_suffix(s, phrase);
  if (r->empty() || std::string_view(".!?;:,").find(r->back()) != std::string_view::npos)
    return true;
  const std::vector<std::string_view> w = words(*r);
  if (w.empty()) return true;  // only punctuation before it (")The day today is")
  const std::string last = lower(w.back());
  return last == "so" || last == "and" || last == "then";
}

struct Step {
  std::string_view word;
  int sign;
};
constexpr Step kOperators[] = {{" +", 1}, {" plus", 1}, {" -", -1}, {" minus", -1}, {" −", -1}};
constexpr Step kRelations[] = {{" after", 1}, {" from", 1}, {" later than", 1}, {" before", -1}};

struct Span {
  long count;
  std::string unit;  // "day", "week", "month", "year"
};

// "N days" / "N weeks" / "N months" / "N years" at the end of `s` (N a whole number).
std::optional<std::pair<Span, size_t>> span_suffix(std::string_view s) {
  static constexpr std::string_view kUnits[] = {"days", "day", "weeks", "week",
                                                "months", "month", "years", "year"};
  for (std::string_view u : kUnits) {
    const auto head = strip_suffix(s, u);
    if (!head || head->size() == s.size() - u.size()) continue;  // needs a space before the unit
    std::string_view h = *head;
    size_t b = h.size();
    while (b > 0 && (digit(h[b - 1]) || h[b - 1] == ',')) --b;
    if (b == h.size() || (b > 0 && word_char(h[b - 1]))) return std::nullopt;
    std::string n;
    for (char c : h.substr(b))
      if (c != ',') n += c;
    if (n.empty() || n.size() > 7) return std::nullopt;
    std::string unit(u);
    if (unit.ends_with('s')) unit.pop_back();
    return std::make_pair(Span{std::stol(n), unit}, b);
  }
  return std::nullopt;
}

std::optional<absl::CivilDay> shift(absl::CivilDay d, const Span& span, int sign) {
  const long n = sign * span.count;
  if (span.unit == "day" || span.unit == "week") {
    const absl::CivilDay r = d + n * (span.unit == "week" ? 7 : 1);
    if (r.year() < 1 || r.year() > 9999) return std::nullopt;
    return r;
  }
  const absl::CivilMonth m = absl::CivilMonth(d) + n * (span.unit == "year" ? 12 : 1);
  if (m.year() < 1 || m.year() > 9999) return std::nullopt;
  // A day the month lacks is clamped to its last day (2024-01-31 + 1 month = 2024-02-29), the
  // rule of spreadsheets' EDATE and of most date libraries; README says so.
  const absl::CivilDay last = absl::CivilDay(absl::CivilMonth(m) + 1) - 1;
  return make_day(m.year(), m.month(), std::min<long>(d.day(), last.day()));
}

class DateTime final : public HostExpert {
 public:
  DateTime(absl::TimeZone zone, std::function<absl::Time()> now)
      : zone_(zone), now_(std::move(now)) {}

  const std::string& name() const override { return name_; }

  std::optional<ExpertAnswer> answer(std::string_view text) const override {
    std::optional<std::pair<std::string, std::string>> r = weekday_question(trim_end(text));
    if (!r) r = asked(trim_end(text));
    if (!r) {
      const auto line = question_line(text);
      if (!line) return std::nullopt;
      std::string_view q = *line;
      if (q.ends_with('?')) q.remove_suffix(1);
      for (std::string_view w : words(q))
        if (is_hedge(w)) return std::nullopt;
      r = today(q);
      if (!r) r = relative_day(q);
      if (!r) r = weekday_of(q);
      if (!r) r = days_between(q);
      if (!r) r = plus_span(q);
      if (!r) return std::nullopt;
    }
    return ExpertAnswer{r->first, r->second, continue_with(text, r->second)};
  }

 private:
  using Result = std::optional<std::pair<std::string, std::string>>;  // inputs, output

  // The clock is read only once the question is known to ask for today.
  Result today(std::string_view q) const {
    bool date = false, weekday = false;
    for (std::string_view p : {"today", "today's date", "the date today", "the current date",
                               "the date"})
      date = date || clause_is(q, p);
    for (std::string_view p : {"the day of the week today", "today's weekday", "the weekday today",
                               "the day today"})
      weekday = weekday || clause_is(q, p);
    if (!date && !weekday) return std::nullopt;
    const absl::CivilDay d = absl::ToCivilDay(now_(), zone_);
    return std::make_pair("today in " + zone_.name(),
                          date ? weekday_name(d) + ", " + format_date(d, Style::kMonthFirst)
                               : weekday_name(d));
  }

  // Questions that end in "?": "What day is today?", "What's the date?", "What day of the week
  // is it?", "What day is tomorrow?", "What time is it?" (hours and minutes on the clock, 24-hour),
  // "Is 2100 a leap year?" ("Yes" or "No").
  Result asked(std::string_view s) const {
    if (!s.ends_with('?')) return std::nullopt;
    s.remove_suffix(1);
    const size_t cut = s.find_last_of(".!?\n");
    std::string q = lower(trim_end(cut == std::string_view::npos ? s : s.substr(cut + 1)));
    while (!q.empty() && q.front() == ' ') q.erase(0, 1);
    for (std::string_view lead : {"so ", "and ", "ok, ", "okay, "})
      if (q.starts_with(lead)) q.erase(0, lead.size());
    if (q.find("what's") == 0) q.replace(0, 6, "what is");
    const absl::CivilDay d = absl::ToCivilDay(now_(), zone_);
    auto full = [](absl::CivilDay x) {
      return weekday_name(x) + ", " + format_date(x, Style::kMonthFirst);
    };
    static constexpr std::string_view kDate[] = {
        "what day is today", "what day is it today", "what is today's date", "what is the date",
        "what is the date today", "what date is it", "what date is it today", "what date is today",
        "what is the current date", "what is today"};
    static constexpr std::string_view kWeekday[] = {
        "what day of the week is it", "what day of the week is today", "what weekday is it",
        "what weekday is today", "what is the day of the week"};
    for (std::string_view p : kDate)
      if (q == p) return std::make_pair("today in " + zone_.name(), full(d));
    for (std::string_view p : kWeekday)
      if (q == p) return std::make_pair("today in " + zone_.name(), weekday_name(d));
    for (const auto& [p, n] : {std::pair<std::string_view, int>{"what day is tomorrow", 1},
                               {"what is tomorrow's date", 1}, {"what day was yesterday", -1},
                               {"what was yesterday's date", -1}})
      if (q == p)
        return std::make_pair(std::string(n > 0 ? "tomorrow" : "yesterday") + " in " +
                                  zone_.name(), full(d + n));
    if (q == "what time is it" || q == "what is the time" || q == "what time is it now") {
      const absl::CivilMinute m = absl::ToCivilMinute(now_(), zone_);
      return std::make_pair("the time in " + zone_.name(),
                            absl::StrFormat("%02d:%02d", m.hour(), m.minute()));
    }
    // "how many days until|till|to HOLIDAY"
    for (std::string_view lead : {"how many days until ", "how many days till ",
                                  "how many days are left until ", "how many days to "})
      if (q.starts_with(lead)) {
        const auto md = holiday(q.substr(lead.size()));
        if (!md) return std::nullopt;
        absl::CivilDay h(d.year(), md->first, md->second);
        if (h < d) h = absl::CivilDay(d.year() + 1, md->first, md->second);
        return std::make_pair(q.substr(lead.size()) + " from today in " + zone_.name(),
                              std::to_string(h - d));
      }
    // "is YEAR a leap year"
    if (q.starts_with("is ") && q.ends_with(" a leap year")) {
      const std::string y = q.substr(3, q.size() - 3 - 12);
      if (y.empty() || y.size() > 4 || !std::all_of(y.begin(), y.end(), digit)) return std::nullopt;
      const long year = std::stol(y);
      if (year < 1 || year > 9999) return std::nullopt;
      const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
      return std::make_pair("leap year " + y, std::string(leap ? "Yes" : "No"));
    }
    return std::nullopt;
  }

  // A holiday with one date in every year and country that names it: (month, day).
  static std::optional<std::pair<int, int>> holiday(std::string name) {
    if (name.starts_with("the ")) name.erase(0, 4);
    static constexpr std::pair<std::string_view, std::pair<int, int>> kHolidays[] = {
        {"christmas", {12, 25}},        {"christmas day", {12, 25}},  {"christmas eve", {12, 24}},
        {"new year's day", {1, 1}},     {"new year", {1, 1}},         {"new year's", {1, 1}},
        {"new year's eve", {12, 31}},   {"halloween", {10, 31}},      {"valentine's day", {2, 14}},
        {"valentines day", {2, 14}}};
    for (const auto& [n, md] : kHolidays)
      if (name == n) return md;
    return std::nullopt;
  }

  // "Tomorrow is" / "Tomorrow's date is" / "Yesterday was" (a clause of its own).
  Result relative_day(std::string_view q) const {
    int n = 0;
    for (std::string_view p : {"tomorrow", "tomorrow's date", "the date tomorrow"})
      if (clause_is(q, p)) n = 1;
    for (std::string_view p : {"yesterday", "yesterday's date", "the date yesterday"})
      if (clause_is(q, p)) n = -1;
    if (n == 0) return std::nullopt;
    const absl::CivilDay d = absl::ToCivilDay(now_(), zone_) + n;
    return std::make_pair(std::string(n > 0 ? "tomorrow" : "yesterday") + " in " + zone_.name(),
                          weekday_name(d) + ", " + format_date(d, Style::kMonthFirst));
  }

  // "DATE was a" / "DATE is a" / "DATE fell on a" / "DATE falls on a" / "DATE will be a".
  static Result weekday_question(std::string_view s) {
    for (std::string_view p : {" was a", " is a", " fell on a", " falls on a", " will be a"})
      if (const auto head = strip_suffix(s, p))
        if (const auto d = date_suffix(*head)) {
          const std::vector<std::string_view> w = words(head->substr(0, d->begin));
          if (!w.empty() && is_hedge(w.back())) return std::nullopt;
          return std::make_pair(std::string(head->substr(d->begin)), weekday_name(d->day));
        }
    return std::nullopt;
  }

  // "the weekday of DATE" / "the day of the week of|for|on DATE".
  static Result weekday_of(std::string_view q) {
    const auto d = date_suffix(q);
    if (!d) return std::nullopt;
    const std::string_view head = trim_end(q.substr(0, d->begin));
    for (std::string_view p : {"weekday of", "day of the week of", "day of the week for",
                               "day of the week on", "weekday for", "weekday on"})
      if (ends_with_phrase(head, p))
        return std::make_pair(std::string(q.substr(d->begin)), weekday_name(d->day));
    return std::nullopt;
  }

  // "days between A and B" (absolute) / "days from A to|until B" (B - A).
  static Result days_between(std::string_view q) {
    const auto b = date_suffix(q);
    if (!b) return std::nullopt;
    std::string_view head = trim_end(q.substr(0, b->begin));
    bool between = false;
    std::optional<std::string_view> rest;
    if ((rest = strip_suffix(head, " and"))) between = true;
    else if (!(rest = strip_suffix(head, " to")) && !(rest = strip_suffix(head, " until")))
      return std::nullopt;
    const auto a = date_suffix(*rest);
    if (!a) return std::nullopt;
    head = trim_end(rest->substr(0, a->begin));
    if (!ends_with_phrase(head, between ? "days between" : "days from")) return std::nullopt;
    long n = b->day - a->day;
    if (between && n < 0) n = -n;
    return std::make_pair(std::string(q.substr(a->begin)), std::to_string(n));
  }

  // "DATE + SPAN" / "DATE plus|minus SPAN" / "DATE - SPAN" / "SPAN after|before|from DATE".
  static Result plus_span(std::string_view q) {
    if (const auto s = span_suffix(q)) {
      const std::string_view head = trim_end(q.substr(0, s->second));
      for (const auto& [op, sign] : kOperators) {
        const auto rest = strip_suffix(head, op);
        if (!rest) continue;
        const auto d = date_suffix(*rest);
        if (!d) return std::nullopt;
        const auto r = shift(d->day, s->first, sign);
        if (!r) return std::nullopt;
        return std::make_pair(std::string(q.substr(d->begin)), format_date(*r, d->style));
      }
      return std::nullopt;
    }
    const auto d = date_suffix(q);
    if (!d) return std::nullopt;
    const std::string_view head = trim_end(q.substr(0, d->begin));
    for (const auto& [word, sign] : kRelations) {
      const auto rest = strip_suffix(head, word);
      if (!rest) continue;
      const auto s = span_suffix(*rest);
      if (!s) return std::nullopt;
      const auto r = shift(d->day, s->first, sign);
      if (!r) return std::nullopt;
      return std::make_pair(std::string(q.substr(s->second)), format_date(*r, d->style));
    }
    return std::nullopt;
  }

  std::string name_ = "datetime";
  absl::TimeZone zone_;
  std::function<absl::Time()> now_;
};

}  // namespace

std::unique_ptr<HostExpert> make_datetime(absl::TimeZone zone, std::function<absl::Time()> now) {
  return std::make_unique<DateTime>(zone, std::move(now));
}

std::unique_ptr<HostExpert> make_datetime() {
  return make_datetime(absl::LocalTimeZone(), [] { return absl::Now(); });
}

}  // namespace vex
