#include "tools/vexprobe/prompts.h"

#include <functional>
#include <random>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "experts/expert.h"
#include "runtime/harmony.h"

namespace vex {
namespace {

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  int num(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[num(0, static_cast<int>(v.size()) - 1)];
  }
  bool coin(double p = 0.5) { return std::bernoulli_distribution(p)(rng_); }
  std::string number() {
    switch (num(0, 4)) {
      case 0:
        return std::to_string(num(0, 9));
      case 1:
        return std::to_string(num(10, 999));
      case 2:
        return absl::StrFormat("%d,%03d", num(1, 99), num(0, 999));
      case 3:
        return absl::StrFormat("%d.%d", num(0, 99), num(1, 99));
      default:
        return std::to_string(num(1000, 99999));
    }
  }

 private:
  std::mt19937_64 rng_;
};

std::string arithmetic(Gen& g) {
  static const std::vector<std::string> ops = {" + ", " - ", " * ", " × ", " / ", " ÷ ", "^"};
  std::string e = g.number();
  const int terms = g.num(1, 3);
  for (int i = 0; i < terms; ++i) {
    const std::string& op = g.pick(ops);
    e += op + (op == "^" ? std::to_string(g.num(2, 5)) : g.number());
  }
  if (g.coin(0.2)) e = "(" + e + ")" + g.pick(ops) + g.number();
  if (g.coin(0.1)) e = std::to_string(g.num(1, 99)) + "% of " + g.number();
  return e;
}

// What a builtin's training texts are made of: questions it answers (their answers follow
// mid-text, as in a worked answer) and prose with look-alikes it must not answer.
struct Recipe {
  std::function<std::string(Gen&)> question;
  std::vector<std::string> prose;
  std::string after_answer;  // written after an answer mid-text
  // Requests a user types that the expert answers at the start of the reply (expert_request).
  std::function<std::string(Gen&)> request = nullptr;
};

std::string mixed_text(Gen& g, const HostExpert& expert, const Recipe& r) {
  std::string t;
  const int parts = g.num(1, 3);
  for (int i = 0; i < parts; ++i) {
    if (!t.empty() && !t.ends_with('\n')) t += " ";
    if (g.coin(0.55)) {
      t += r.question(g);
      if (i + 1 < parts) {
        const auto a = expert.answer(t);
        t += a ? a->continuation + r.after_answer : " it" + r.after_answer;
      }
    } else {
      t += g.pick(r.prose);
    }
  }
  return t;
}

Recipe calculator_recipe() {
  static const std::vector<std::string> lead = {"", "", "What is ", "Compute ", "So ",
                                                "Let me check: ", "The answer: ", "Next, "};
  // Each draw in its own statement: the order of draws (and so the texts) is fixed.
  static const std::vector<std::string> ask = {"What is ", "What's ", "what is ", "How much is "};
  static const std::vector<std::string> word = {" times ", " plus ", " minus ", " divided by ", " x "};
  return {[](Gen& g) {
            const std::string e = arithmetic(g);
            switch (g.num(0, 9)) {
              case 0:  // questions, as people type them (the answer after the "?")
                return g.pick(ask) + e + "?";
              case 1: {
                const std::string a = std::to_string(g.num(1, 999));
                const std::string& w = g.pick(word);
                return g.pick(ask) + a + w + std::to_string(g.num(1, 99)) + (g.coin() ? "?" : " =");
              }
              case 2: {
                const std::string p = std::to_string(g.num(1, 99));
                return g.pick(ask) + p + "% of " + std::to_string(g.num(1, 5000)) + "?";
              }
              case 3: {  // amounts of money
                const std::string a = "$" + std::to_string(g.num(1, 5000));
                const std::string b = std::to_string(g.num(1, 900));
                return g.pick(lead) + a + (g.coin() ? " + $" + b : " * " + b) + " =";
              }
              default: {
                const std::string end = g.coin(0.8) ? " = " : " =";
                return g.pick(lead) + e + end;
              }
            }
          },
          {"The meeting is in room 127 on Tuesday.",
           "She was born in 1987 and moved here in 2004.",
           "Call 555 1234 after 6 pm.",
           "Let x = 5 and y = x + 2.",
           "The ratio was roughly 3 to 4.",
           "In Python, a == b compares values.",
           "We need approximately 3 × 4 = ",
           "room 127 = ",
           "x = ",
           "The total cost = price + tax, where tax = ",
           "Chapter 12 covers 3 topics.",
           "He scored 98 out of 100 on the test.",
           "Version 2.4.1 fixes 17 bugs.",
           "about 12 + 7 = ",
           "f(2) = ",
           "What is the capital of France?",
           "What is your name?",
           "What's the weather like today?",
           "How much is a ticket?",
           "What is 5 km in miles?"},
          "."};
}

Recipe units_recipe() {
  static const std::vector<std::vector<std::string>> kinds = {
      {"km", "miles", "m", "feet", "inches", "cm", "yards"},
      {"kg", "pounds", "lb", "ounces", "g", "stone"},
      {"liters", "gallons", "mL", "cups", "fl oz", "quarts"},
      {"°C", "°F", "kelvin"},
      {"km/h", "mph", "m/s", "knots"},
      {"GB", "MB", "GiB", "MiB", "bytes", "bits"},
      {"kWh", "J", "kcal", "BTU"},
      {"hours", "minutes", "seconds", "days", "weeks"},
      {"acres", "hectares", "square feet", "m²"}};
  static const std::vector<std::string> lead = {"", "", "Convert ", "So ", "That is, "};
  static const std::vector<std::string> conn = {" in ", " to ", " into "};
  static const std::vector<std::string> mark = {" =", " = ", ":", " is"};
  return {[](Gen& g) {
            const auto& k = g.pick(kinds);
            const std::string& a = g.pick(k);
            std::string b = g.pick(k);
            while (b == a) b = g.pick(k);
            const std::string l = g.pick(lead);
            const std::string n = g.number();
            const std::string c = g.pick(conn);
            switch (g.num(0, 5)) {
              case 0:  // "Convert 100 meters to feet": the request itself, no marker
                return "Convert " + n + " " + a + " to " + b;
              case 1:
                return "How many " + b + " in " + n + " " + a + "?";
              default:
                return l + n + " " + a + c + b + g.pick(mark);
            }
          },
          {"The trail is about 5 km in the hills.", "It weighs 3 kg in total.",
           "Room 12 in building 4 is", "Add 2 cups of flour to the bowl.",
           "approximately 5 km in miles =", "The year 2020 in review:",
           "5 kg in meters =", "We drove 300 miles to Denver.", "3 KB in bytes =",
           "Set the oven to 180 °C and wait.", "x in range(10) is"},
          "."};
}

Recipe finance_recipe() {
  static const std::vector<std::string> metric = {"the DSCR is", "DSCR =", "the LTV is",
                                                  "the cap rate is", "the debt yield is",
                                                  "the monthly payment is"};
  return {[](Gen& g) {
            const std::string noi = absl::StrFormat("$%d,000", g.num(100, 2000));
            const std::string big = absl::StrFormat("$%d,000,000", g.num(2, 40));
            const int a = g.num(50, 1500), b = g.num(2, 9), c = g.num(0, 9), years = 5 * g.num(1, 6);
            switch (g.num(0, 4)) {
              case 0:
                return "NOI is " + noi + " and annual debt service is " +
                       absl::StrFormat("$%d,000", a) + ", so the DSCR is";
              case 1:
                return "The loan is " + big + " and the property value is " +
                       absl::StrFormat("$%d,000,000", a / 20 + 3) + ". LTV =";
              case 2:
                return "NOI of " + noi + " and a purchase price of " + big + ": the cap rate is";
              case 3:
                return "A " + big + " loan against " + noi + " NOI has a debt yield of";
              default:
                return absl::StrFormat(
                    "A $%d,000 loan at %d.%d%% for %d years. The monthly payment is", a, b, c, years);
            }
          },
          {"The building has 40 units and a pool.", "Rates rose 0.25% in March.",
           "NOI is $1,200,000, so the DSCR is", "The cap rate is 5%.",
           "NOI is about $900,000 and debt service is $700,000, so the DSCR is",
           "Our lender quoted a 30-year term.", "The property is worth more than we paid.",
           "The IRR is", "A $300,000 loan at 6%. The monthly payment is"},
          "."};
}

Recipe datetime_recipe() {
  static const std::vector<std::string> month = {"January", "March", "May", "July",
                                                 "September", "November"};
  return {[](Gen& g) {
            const int y = g.num(1900, 2100), m = g.num(1, 12), day = g.num(1, 28);
            const std::string iso = absl::StrFormat("%04d-%02d-%02d", y, m, day);
            const std::string& name = g.pick(month);
            const int y2 = g.num(1900, 2100), day2 = g.num(1, 28), n = g.num(1, 400);
            const std::string words = absl::StrFormat("%s %d, %d", name, day2, y2);
            const std::string d = g.coin() ? iso : words;
            switch (g.num(0, 6)) {
              case 5: {
                static const std::vector<std::string> asks = {
                    "What day is today?", "What is today's date?", "What's the date today?",
                    "What time is it?", "Tomorrow is", "Yesterday was"};
                return g.pick(asks);
              }
              case 6:
                return absl::StrFormat("Is %d a leap year?", y);
              case 0:
                return std::string(n % 2 ? "Today is" : "Today's date is");
              case 1:
                return d + " was a";
              case 2:
                return "The number of days between " + iso + " and " + d + " is";
              case 3:
                return d + " + " + std::to_string(n) + " days =";
              default:
                return std::to_string(n % 20 + 1) + " weeks after " + d + " is";
            }
          },
          {"The weather today is", "The answer today is", "03/04/2024 was a",
           "What day did you arrive?", "What time is the meeting?", "Tomorrow we leave.",
           "Sixon: United States writer (born in 1937)", "an English poet (1795-1821)",
           "The bridge was finished in 1932 and rebuilt in 1960.", "Ada (born 10 December 1815)",
           "We met on a Tuesday.", "The deadline is next week.", "2023-02-29 was a",
           "In 1999 the company was founded.", "about 30 days after 2024-01-01 is"},
          "."};
}

Recipe interpreter_recipe() {
  static const std::vector<std::string> fns = {"sorted", "sum", "len", "max", "min"};
  return {[](Gen& g) {
            std::string xs = "[";
            for (int i = 0, n = g.num(1, 6); i < n; ++i)
              xs += (i ? ", " : "") + std::to_string(g.num(-20, 99));
            xs += "]";
            const std::string& fn = g.pick(fns);
            switch (g.num(0, 4)) {
              case 4: {  // "Run this: sorted([3,1,4,1,5,9])", spaces or none after the commas
                std::string tight = xs;
                if (g.coin()) std::erase(tight, ' ');
                return std::string(g.coin() ? "Run this: " : "Run: ") + fn + "(" + tight + ")";
              }
              case 0:
                return ">>> " + fn + "(" + xs + ")\n";
              case 1:
                return ">>> [x * " + std::to_string(g.num(2, 9)) + " for x in " + xs + "]\n";
              case 2:
                return "`" + fn + "(" + xs + ")` returns";
              default: {
                std::string e = arithmetic(g);
                std::erase(e, ',');  // "7,959" is a tuple in Python (and "* 3084" repeats it)
                return ">>> " + e + "\n";
              }
            }
          },
          {">>> x = 5\n", "x = 5", "Use sorted() to sort a list.", ">>> import os\n",
           "In Python, `len` returns the length.", ">>> print('hi')\n", "def f(x): return x\n",
           "The function `sum` is built in.", "Run the tests before merging.",
           "Run this command: make"},
          "\n",
          [](Gen& g) {
            std::string xs = "[";
            for (int i = 0, n = g.num(2, 7); i < n; ++i)
              xs += (i ? (g.coin() ? "," : ", ") : "") + std::to_string(g.num(0, 99));
            xs += "]";
            const std::string& fn = g.pick(fns);
            return std::string(g.coin() ? "Run this: " : "Run: ") + fn + "(" + xs + ")";
          }};
}

Recipe symbolic_recipe() {
  return {[](Gen& g) {
            // A polynomial in x of degree 1 to 3 with small coefficients.
            auto poly = [&g] {
              std::string p;
              for (int d = g.num(1, 3); d >= 0; --d) {
                const int c = g.num(-9, 9);
                if (c == 0 && d > 0) continue;
                p += p.empty() ? (c < 0 ? "-" : "") : (c < 0 ? " - " : " + ");
                p += std::to_string(std::abs(c)) + (d == 0 ? "" : d == 1 ? "x" : "x^" + std::to_string(d));
              }
              return p.empty() ? std::string("x") : p;
            };
            switch (g.num(0, 5)) {
              case 0:
                return "The derivative of " + poly() + " is";
              case 1:
                return "d/dx (" + poly() + ") =";
              case 2:
                return "Expand (x + " + std::to_string(g.num(1, 9)) + ")^" +
                       std::to_string(g.num(2, 4)) + ":";
              case 3:
                return "Solve " + std::to_string(g.num(1, 9)) + "x + " + std::to_string(g.num(1, 20)) +
                       " = " + std::to_string(g.num(-20, 40)) + ":";
              case 4:
                return "The integral of " + poly() + " from 0 to " + std::to_string(g.num(1, 5)) +
                       " is";
              default:
                return "sqrt(" + std::to_string(g.num(2, 30) * 4) + ") =";
            }
          },
          {"The derivative measures change.", "Solve the puzzle:", "x = 5",
           "The integral was approximated numerically.", "Expand your horizons:",
           "sqrt(2) =", "approximately the derivative of x^2 is", "The limit is"},
          "."};
}

// The text as the final answer of a Harmony chat, rendered as vexrun renders one (default system
// message): the row must fire where the assistant writes the question out, not only in raw text.
// `ask`: the user's message (a generic one when empty).
std::string in_chat(Gen& g, const std::string& answer, std::string ask = {}) {
  static const std::vector<std::string> asks = {"Please work this out.", "Can you help?",
                                                "Quick question.", "What is the answer?",
                                                "Tell me."};
  if (ask.empty()) ask = g.pick(asks);
  return "<|start|>system<|message|>" + harmony::system_text({}) +
         "<|end|><|start|>user<|message|>" + ask +
         "<|end|><|start|>assistant<|channel|>final<|message|>" + answer;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> training_texts(const std::string& expert, int n,
                                                        uint64_t seed) {
  const ExpertRegistry registry;
  const HostExpert* e = registry.find(expert);
  // The recipes by builtin name (the names themselves: experts/registry.cpp).
  static const std::pair<std::string_view, Recipe (*)()> kRecipes[] = {
      {"calculator", &calculator_recipe}, {"units", &units_recipe},
      {"finance", &finance_recipe},       {"datetime", &datetime_recipe},
      {"interpreter", &interpreter_recipe}, {"symbolic", &symbolic_recipe}};
  Recipe recipe;
  for (const auto& [name, make] : kRecipes)
    if (name == expert) recipe = make();
  if (!e || !recipe.question)
    return absl::InvalidArgumentError(
        absl::StrCat("no training texts for expert '", expert, "' (known: ",
                     absl::StrJoin(builtin_expert_names(), ", "), ")"));
  Gen g(seed);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    if (recipe.request && g.coin(0.25)) {  // a request in the user's message, answered first
      const std::string ask = recipe.request(g);
      const auto a = e->answer(ask);
      const size_t lead = a ? a->continuation.find_first_not_of(" \n") : std::string::npos;
      const std::string reply = lead == std::string::npos ? "" : a->continuation.substr(lead);
      out.push_back(in_chat(g, reply, ask));
      continue;
    }
    std::string t = mixed_text(g, *e, recipe);
    out.push_back(g.coin(0.4) ? in_chat(g, t) : t);
  }
  return out;
}

}  // namespace vex
