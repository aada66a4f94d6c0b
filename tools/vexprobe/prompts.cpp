#include "tools/vexprobe/prompts.h"

#include <random>

#include "absl/strings/str_format.h"
#include "experts/expert.h"

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

std::string calculator_text(Gen& g, const HostExpert* calc) {
  static const std::vector<std::string> lead = {"", "", "What is ", "Compute ", "So ",
                                                "Let me check: ", "The answer: ", "Next, "};
  static const std::vector<std::string> prose = {
      "The meeting is in room 127 on Tuesday.",
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
      "f(2) = "};
  std::string t;
  const int parts = g.num(1, 3);
  for (int i = 0; i < parts; ++i) {
    if (!t.empty()) t += " ";
    if (g.coin(0.55)) {
      const std::string e = arithmetic(g);
      t += g.pick(lead) + e + (g.coin(0.8) ? " = " : " =");
      // Mid-text, the result follows as it would in a worked answer.
      if (i + 1 < parts) {
        const auto a = calc->answer(t);
        t += a ? a->continuation + "." : " it.";
      }
    } else {
      t += g.pick(prose);
    }
  }
  return t;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> training_texts(const std::string& expert, int n,
                                                        uint64_t seed) {
  Gen g(seed);
  std::vector<std::string> out;
  if (expert != "calculator")
    return absl::InvalidArgumentError(absl::StrCat(
        "no training texts for expert '", expert, "' (known: calculator)"));
  const auto calc = make_calculator();
  for (int i = 0; i < n; ++i) out.push_back(calculator_text(g, calc.get()));
  return out;
}

}  // namespace vex
