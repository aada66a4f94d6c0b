// The units expert: converts the quantity the question ends with, written
// "NUMBER UNIT in|to|into|as UNIT" before the end marker ("=", ":", "is", ...):
//   "5 km in miles =" -> "3.10685596118667 miles"      "100 °F to °C:" -> "37.7777777777778 °C"
//   "Convert 100 meters to feet" (no marker after it) -> ": 328.083989501312 feet"
// Factors are exact by definition (the international yard and pound of 1959, US customary
// volumes from the 231 in³ gallon, the imperial gallon of 4.54609 L, the thermochemical calorie,
// the IT Btu, the 2019 SI electronvolt), kept as rationals; temperature is affine (through
// kelvin). The result is printed with format_exact (experts/exact.h) followed by the target unit
// as the question wrote it.
//
// Declines: units of different kinds ("5 kg in meters"), names that are ambiguous in practice
// and so not listed (KB, ton without short/long/metric, month, year, bare C and F), a hedge
// before the number, a number glued to a word ("x5 km"), or anything else that does not read.
#include <array>

#include "experts/exact.h"
#include "experts/expert.h"
#include "experts/text.h"

namespace vex {
namespace {

enum class Kind {
  kLength, kMass, kVolume, kArea, kSpeed, kTime, kData, kEnergy, kPower, kTemperature
};

struct Unit {
  std::string_view names;  // '|'-separated spellings; all-lowercase words also match any case
  Kind kind;
  std::string_view factor;  // in the kind's base unit: "a", "a/b", "aEk" (a decimal, k exponent)
};

// Temperature factors are unused: each scale has its own affine map (to_kelvin).
constexpr Unit kUnits[] = {
    {"m|meter|meters|metre|metres", Kind::kLength, "1"},
    {"km|kilometer|kilometers|kilometre|kilometres", Kind::kLength, "1000"},
    {"cm|centimeter|centimeters|centimetre|centimetres", Kind::kLength, "0.01"},
    {"mm|millimeter|millimeters|millimetre|millimetres", Kind::kLength, "0.001"},
    {"µm|um|micrometer|micrometers|micron|microns", Kind::kLength, "1E-6"},
    {"nm|nanometer|nanometers", Kind::kLength, "1E-9"},
    {"in|inch|inches", Kind::kLength, "0.0254"},
    {"ft|foot|feet", Kind::kLength, "0.3048"},
    {"yd|yard|yards", Kind::kLength, "0.9144"},
    {"mi|mile|miles", Kind::kLength, "1609.344"},
    {"nmi|nautical mile|nautical miles", Kind::kLength, "1852"},
    {"kg|kilogram|kilograms|kilo|kilos", Kind::kMass, "1"},
    {"g|gram|grams", Kind::kMass, "0.001"},
    {"mg|milligram|milligrams", Kind::kMass, "1E-6"},
    {"µg|mcg|microgram|micrograms", Kind::kMass, "1E-9"},
    {"lb|lbs|pound|pounds", Kind::kMass, "0.45359237"},
    {"oz|ounce|ounces", Kind::kMass, "0.45359237/16"},
    {"st|stone|stones", Kind::kMass, "6.35029318"},
    {"ozt|troy ounce|troy ounces", Kind::kMass, "0.0311034768"},
    {"t|tonne|tonnes|metric ton|metric tons", Kind::kMass, "1000"},
    {"short ton|short tons", Kind::kMass, "907.18474"},
    {"long ton|long tons", Kind::kMass, "1016.0469088"},
    {"m³|m3|cubic meter|cubic meters|cubic metre|cubic metres", Kind::kVolume, "1"},
    {"L|l|liter|liters|litre|litres", Kind::kVolume, "0.001"},
    {"mL|ml|milliliter|milliliters|millilitre|millilitres", Kind::kVolume, "1E-6"},
    {"cm³|cm3|cc|cubic centimeter|cubic centimeters", Kind::kVolume, "1E-6"},
    {"gal|gallon|gallons|US gallon|US gallons", Kind::kVolume, "0.003785411784"},
    {"imperial gallon|imperial gallons", Kind::kVolume, "0.00454609"},
    {"qt|quart|quarts", Kind::kVolume, "0.003785411784/4"},
    {"pt|pint|pints", Kind::kVolume, "0.003785411784/8"},
    {"cup|cups", Kind::kVolume, "0.003785411784/16"},
    {"fl oz|fluid ounce|fluid ounces", Kind::kVolume, "0.003785411784/128"},
    {"tbsp|tablespoon|tablespoons", Kind::kVolume, "0.003785411784/256"},
    {"tsp|teaspoon|teaspoons", Kind::kVolume, "0.003785411784/768"},
    {"ft³|ft3|cubic foot|cubic feet", Kind::kVolume, "0.028316846592"},
    {"in³|in3|cubic inch|cubic inches", Kind::kVolume, "0.000016387064"},
    {"m²|m2|sq m|square meter|square meters|square metre|square metres", Kind::kArea, "1"},
    {"km²|km2|sq km|square kilometer|square kilometers|square kilometre|square kilometres",
     Kind::kArea, "1000000"},
    {"cm²|cm2|square centimeter|square centimeters", Kind::kArea, "0.0001"},
    {"ft²|ft2|sq ft|square foot|square feet", Kind::kArea, "0.09290304"},
    {"in²|in2|sq in|square inch|square inches", Kind::kArea, "0.00064516"},
    {"yd²|yd2|sq yd|square yard|square yards", Kind::kArea, "0.83612736"},
    {"mi²|mi2|sq mi|square mile|square miles", Kind::kArea, "2589988.110336"},
    {"acre|acres", Kind::kArea, "4046.8564224"},
    {"ha|hectare|hectares", Kind::kArea, "10000"},
    {"m/s|meters per second|metres per second", Kind::kSpeed, "1"},
    {"km/h|kph|kmh|kilometers per hour|kilometres per hour", Kind::kSpeed, "1000/3600"},
    {"mph|miles per hour", Kind::kSpeed, "1609.344/3600"},
    {"kn|kt|knot|knots", Kind::kSpeed, "1852/3600"},
    {"ft/s|fps|feet per second", Kind::kSpeed, "0.3048"},
    {"s|sec|secs|second|seconds", Kind::kTime, "1"},
    {"ms|millisecond|milliseconds", Kind::kTime, "0.001"},
    {"µs|us|microsecond|microseconds", Kind::kTime, "1E-6"},
    {"ns|nanosecond|nanoseconds", Kind::kTime, "1E-9"},
    {"min|mins|minute|minutes", Kind::kTime, "60"},
    {"h|hr|hrs|hour|hours", Kind::kTime, "3600"},
    {"day|days", Kind::kTime, "86400"},
    {"wk|week|weeks", Kind::kTime, "604800"},
    {"B|byte|bytes", Kind::kData, "1"},
    {"bit|bits", Kind::kData, "1/8"},
    {"kB|kilobyte|kilobytes", Kind::kData, "1000"},
    {"MB|megabyte|megabytes", Kind::kData, "1E6"},
    {"GB|gigabyte|gigabytes", Kind::kData, "1E9"},
    {"TB|terabyte|terabytes", Kind::kData, "1E12"},
    {"PB|petabyte|petabytes", Kind::kData, "1E15"},
    {"KiB|kibibyte|kibibytes", Kind::kData, "1024"},
    {"MiB|mebibyte|mebibytes", Kind::kData, "1048576"},
    {"GiB|gibibyte|gibibytes", Kind::kData, "1073741824"},
    {"TiB|tebibyte|tebibytes", Kind::kData, "1099511627776"},
    {"kbit|kb|kilobit|kilobits", Kind::kData, "125"},
    {"Mbit|Mb|megabit|megabits", Kind::kData, "125000"},
    {"Gbit|Gb|gigabit|gigabits", Kind::kData, "125000000"},
    {"J|joule|joules", Kind::kEnergy, "1"},
    {"kJ|kilojoule|kilojoules", Kind::kEnergy, "1000"},
    {"MJ|megajoule|megajoules", Kind::kEnergy, "1000000"},
    // The small calorie in lowercase only: "Calorie" and "Cal" are the food Calorie (a kcal).
    {"=cal|=calorie|=calories", Kind::kEnergy, "4.184"},
    {"kcal|kilocalorie|kilocalories|Cal|Calorie|Calories", Kind::kEnergy, "4184"},
    {"Wh|watt-hour|watt-hours|watt hour|watt hours", Kind::kEnergy, "3600"},
    {"kWh|kilowatt-hour|kilowatt-hours|kilowatt hour|kilowatt hours", Kind::kEnergy, "3600000"},
    {"MWh|megawatt-hour|megawatt-hours", Kind::kEnergy, "3600000000"},
    {"eV|electronvolt|electronvolts", Kind::kEnergy, "1.602176634E-19"},
    {"BTU|Btu|btu|British thermal unit|British thermal units", Kind::kEnergy, "1055.05585262"},
    {"W|watt|watts", Kind::kPower, "1"},
    {"kW|kilowatt|kilowatts", Kind::kPower, "1000"},
    {"MW|megawatt|megawatts", Kind::kPower, "1000000"},
    // hp is the mechanical horsepower, 550 ft·lbf/s; the metric one (PS) is named as such.
    {"hp|horsepower|mechanical horsepower", Kind::kPower, "745.69987158227022"},
    {"PS|metric horsepower", Kind::kPower, "735.49875"},
    {"°C|℃|degC|celsius|degrees celsius|degree celsius", Kind::kTemperature, "C"},
    {"°F|℉|degF|fahrenheit|degrees fahrenheit|degree fahrenheit", Kind::kTemperature, "F"},
    {"K|kelvin|kelvins", Kind::kTemperature, "K"},
};

mpq_class factor_value(std::string_view f) {
  if (const size_t slash = f.find('/'); slash != std::string_view::npos)
    return factor_value(f.substr(0, slash)) / factor_value(f.substr(slash + 1));
  long exponent = 0;
  if (const size_t e = f.find('E'); e != std::string_view::npos) {
    exponent = std::stol(std::string(f.substr(e + 1)));
    f = f.substr(0, e);
  }
  return *parse_decimal(f) * pow10q(exponent);
}

// exact: the spelling's case matters even in lowercase ("calorie" is not "Calorie").
bool matches(std::string_view spelling, std::string_view s, bool exact) {
  if (spelling.size() != s.size()) return false;
  if (spelling == s) return true;
  if (exact) return false;
  // Spellings written all in lowercase letters (and spaces, hyphens) are words: any case.
  for (char c : spelling)
    if (!(std::islower(static_cast<unsigned char>(c)) || c == ' ' || c == '-')) return false;
  return spelling.size() > 2 && lower(s) == spelling;
}

// Calls f(unit, spelling, exact) for every spelling of every unit; a spelling written with a
// leading '=' in the table matches in its case only.
template <typename F>
void for_each_spelling(F&& f) {
  for (const Unit& u : kUnits) {
    std::string_view names = u.names;
    while (!names.empty()) {
      const size_t bar = names.find('|');
      std::string_view sp = names.substr(0, bar);
      const bool exact = sp.starts_with('=');
      if (exact) sp.remove_prefix(1);
      f(u, sp, exact);
      names = bar == std::string_view::npos ? std::string_view() : names.substr(bar + 1);
    }
  }
}

const Unit* find_unit(std::string_view s) {
  const Unit* found = nullptr;
  for_each_spelling([&](const Unit& u, std::string_view sp, bool exact) {
    if (!found && matches(sp, s, exact)) found = &u;
  });
  return found;
}

// The unit `left` ends with (the longest spelling) and its length in bytes.
std::pair<const Unit*, size_t> unit_suffix(std::string_view left) {
  std::pair<const Unit*, size_t> best{nullptr, 0};
  for_each_spelling([&](const Unit& u, std::string_view sp, bool exact) {
    if (sp.size() > left.size() || sp.size() <= best.second) return;
    if (matches(sp, left.substr(left.size() - sp.size()), exact)) best = {&u, sp.size()};
  });
  return best;
}

// 0 °C in kelvin, 273.15 in lowest terms (GMP's operations expect canonical rationals, and
// mpq_class(27315, 100) is not: 273.15 K came out as "0.0 °C").
const mpq_class kIce{5463, 20};

mpq_class to_kelvin(std::string_view scale, const mpq_class& v) {
  if (scale == "C") return v + kIce;
  if (scale == "F") return (v - 32) * mpq_class(5, 9) + kIce;
  return v;
}

mpq_class from_kelvin(std::string_view scale, const mpq_class& k) {
  if (scale == "C") return k - kIce;
  if (scale == "F") return (k - kIce) * mpq_class(9, 5) + 32;
  return k;
}

bool digit(char c) { return c >= '0' && c <= '9'; }

struct Quantity {
  mpq_class value;
  const Unit* unit;
  size_t begin;  // where the number starts in the text read
};

// The quantity "NUMBER UNIT" that `left` ends with.
std::optional<Quantity> quantity(std::string_view left) {
  const auto [unit, len] = unit_suffix(left);
  if (!unit) return std::nullopt;
  std::string_view rest = left.substr(0, left.size() - len);
  // A unit written right after the number ("5km") or after a space, never glued to a word.
  if (rest.ends_with(' ')) rest = trim_end(rest);
  size_t start = rest.size();
  while (start > 0 && (digit(rest[start - 1]) || rest[start - 1] == ',' || rest[start - 1] == '.'))
    --start;
  std::optional<mpq_class> v = parse_decimal(rest.substr(start));
  if (!v) return std::nullopt;
  if (start > 0 && (rest[start - 1] == '-' || rest.substr(0, start).ends_with("−"))) {
    *v = -*v;
    start -= rest[start - 1] == '-' ? 1 : std::string_view("−").size();
  }
  const std::string_view before = rest.substr(0, start);
  if (!before.empty() && before.back() != ' ' && before.back() != '(' && before.back() != ':' &&
      before.back() != '"')
    return std::nullopt;
  const std::vector<std::string_view> w = words(before);
  if (!w.empty() && is_hedge(w.back())) return std::nullopt;
  return Quantity{*v, unit, start};
}

class Units final : public HostExpert {
 public:
  const std::string& name() const override { return name_; }

  std::optional<ExpertAnswer> answer(std::string_view text) const override {
    if (auto a = how_many(text)) return a;
    auto line = question_line(text);
    // "Convert 100 meters to feet" with no "=" or ":" after it: the answer follows a colon.
    bool request = false;
    if (!line) {
      std::string_view last = trim_end(text);
      if (const size_t nl = last.rfind('\n'); nl != std::string_view::npos)
        last = last.substr(nl + 1);
      if (last.size() > 8 && lower(last.substr(0, 8)) == "convert ") line = last, request = true;
    }
    if (!line) return std::nullopt;
    std::string_view q = *line;
    if (q.ends_with('?')) q.remove_suffix(1);
    // The last connector whose right side is exactly a unit.
    for (size_t p = q.size(); p-- > 0;) {
      if (q[p] != ' ') continue;
      std::string_view conn;
      for (std::string_view c : {" in ", " to ", " into ", " as "})
        if (q.substr(p).starts_with(c)) conn = c;
      if (conn.empty()) continue;
      const std::string_view right = q.substr(p + conn.size());
      const Unit* to = find_unit(right);
      if (!to) continue;
      const auto from = quantity(trim_end(q.substr(0, p)));
      if (!from || from->unit->kind != to->kind) return std::nullopt;
      const mpq_class& v = from->value;
      const Unit* unit = from->unit;
      mpq_class out;
      if (to->kind == Kind::kTemperature) {
        out = from_kelvin(to->factor, to_kelvin(unit->factor, v));
        if (sgn(to_kelvin(unit->factor, v)) < 0) return std::nullopt;  // below absolute zero
      } else {
        out = v * factor_value(unit->factor) / factor_value(to->factor);
      }
      const std::string result = format_exact(out) + " " + std::string(right);
      const std::string inputs(q.substr(from->begin));
      const std::string cont = request ? ": " + result : continue_with(text, result);
      return ExpertAnswer{inputs, result, cont};
    }
    return std::nullopt;
  }

 private:
  // "How many feet in a mile?", "How many grams are in 3 pounds?": the count of the first
  // unit in the quantity (a, an, one, or a number), written with the first unit.
  static std::optional<ExpertAnswer> how_many(std::string_view text) {
    std::string_view q = trim_end(text);
    if (!q.ends_with('?')) return std::nullopt;
    q.remove_suffix(1);
    if (const size_t nl = q.rfind('\n'); nl != std::string_view::npos) q = q.substr(nl + 1);
    std::string l = lower(q);
    const size_t at = l.rfind("how many ");
    if (at == std::string::npos || (at > 0 && l[at - 1] != ' ')) return std::nullopt;
    std::string_view rest = q.substr(at + 9);
    std::string_view sep;
    for (std::string_view c : {" are there in ", " are in ", " is in ", " in "})
      if (lower(rest).find(c) != std::string::npos) {
        sep = c;
        break;
      }
    if (sep.empty()) return std::nullopt;
    const size_t cut = lower(rest).find(sep);
    const Unit* to = find_unit(rest.substr(0, cut));
    std::string_view amount = rest.substr(cut + sep.size());
    std::string a = lower(amount);
    mpq_class n = 1;
    std::optional<Quantity> from;
    for (std::string_view art : {"a ", "an ", "one "})
      if (a.starts_with(art)) {
        const Unit* u = find_unit(amount.substr(art.size()));
        if (u) from = Quantity{1, u, 0};
      }
    if (!from) from = quantity(trim_end(amount));
    if (!to || !from || from->unit->kind != to->kind || to->kind == Kind::kTemperature)
      return std::nullopt;
    n = from->value * factor_value(from->unit->factor) / factor_value(to->factor);
    const std::string result = format_exact(n) + " " + std::string(rest.substr(0, cut));
    return ExpertAnswer{std::string(amount), result, continue_with(text, result)};
  }

  std::string name_ = "units";
};

}  // namespace

std::unique_ptr<HostExpert> make_units() { return std::make_unique<Units>(); }

}  // namespace vex
