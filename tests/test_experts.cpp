// The builtin HOST experts against independent oracles: tests/data/experts/NAME.tsv holds
// "text <TAB> expected output" and "text <TAB> DECLINE <TAB> why" rows (a newline in the text
// written "\\n"; tools/oracles/suite.py) written by tools/oracles/NAME.py, which computes
// the expected values with Python's exact arithmetic on its own expression trees (never by
// parsing the text the expert reads). Every row must match exactly: the outputs are exact.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "experts/exact.h"
#include "experts/expert.h"
#include "experts/symbolic.h"
#include "runtime/virtual_experts.h"
#include "tools/vexprobe/prompts.h"

namespace vex {
namespace {

struct Case {
  std::string text, want, why;
};

std::vector<Case> load_cases(const std::string& name) {
  std::ifstream in(std::string(VEX_TEST_DATA) + "/experts/" + name + ".tsv");
  std::vector<Case> out;
  for (std::string line; std::getline(in, line);) {
    const size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    std::string text = line.substr(0, tab);
    for (size_t p; (p = text.find("\\n")) != std::string::npos;) text.replace(p, 2, "\n");
    std::string want = line.substr(tab + 1), why;
    if (const size_t t2 = want.find('\t'); t2 != std::string::npos)
      why = want.substr(t2 + 1), want.resize(t2);
    out.push_back({text, want, why});
  }
  return out;
}

// How an answer is compared with the oracle's: exactly (the default), or as a value.
using Same = bool (*)(const std::string& got, const std::string& want);
bool same_text(const std::string& got, const std::string& want) { return got == want; }

void check_suite(const HostExpert& e, const std::string& name, size_t min_cases,
                 Same same = &same_text) {
  const std::vector<Case> cases = load_cases(name);
  ASSERT_GE(cases.size(), min_cases) << name << ".tsv";
  int declines = 0;
  for (const Case& c : cases) {
    const auto a = e.answer(c.text);
    if (c.want == "DECLINE") {
      ++declines;
      EXPECT_FALSE(c.why.empty()) << "'" << c.text << "': a DECLINE case says why";
      EXPECT_FALSE(a.has_value()) << "'" << c.text << "' should decline, got " << a->output;
    } else {
      EXPECT_TRUE(a.has_value()) << "'" << c.text << "' declined; want " << c.want;
      if (!a) continue;
      EXPECT_TRUE(same(a->output, c.want))
          << "'" << c.text << "': got " << a->output << ", want " << c.want;
      // After the text: a space (none after whitespace), or a new line or colon where the
      // question is a request ("Run this: ...", "Convert ...").
      EXPECT_TRUE(a->continuation == continue_with(c.text, a->output) ||
                  a->continuation == "\n" + a->output || a->continuation == ": " + a->output)
          << "'" << c.text << "': continuation '" << a->continuation << "'";
    }
  }
  EXPECT_GE(declines, 10) << name << ": decline cases";
}

TEST(Calculator, OracleSuite) { check_suite(*make_calculator(), "calculator", 100); }
TEST(Units, OracleSuite) { check_suite(*make_units(), "units", 100); }
TEST(Finance, OracleSuite) { check_suite(*make_finance(), "finance", 100); }

TEST(Interpreter, OracleSuite) { check_suite(*make_interpreter(), "interpreter", 100); }

// SymPy and GiNaC write equal values differently ("2*sqrt(2) + 3", "3 + 2*sqrt(2)"): the
// symbolic suite compares values. Solutions "x = a or x = b" and "x = 1, y = 2" compare name by
// name; an antiderivative's " + C" must be there on both sides.
bool same_math(const std::string& got, const std::string& want) {
  auto split = [](std::string s) {
    std::vector<std::string> out;
    for (const std::string sep : {" or ", ", "})
      for (size_t at; (at = s.find(sep)) != std::string::npos;) {
        out.push_back(s.substr(0, at));
        s = s.substr(at + sep.size());
      }
    out.push_back(s);
    return out;
  };
  const bool gc = got.ends_with(" + C"), wc = want.ends_with(" + C");
  if (gc != wc) return false;
  if (gc) return symbolic::same_value(got.substr(0, got.size() - 4), want.substr(0, want.size() - 4));
  const auto g = split(got), w = split(want);
  if (g.size() != w.size()) return false;
  for (size_t i = 0; i < g.size(); ++i) {
    const size_t ge = g[i].find(" = "), we = w[i].find(" = ");
    if ((ge == std::string::npos) != (we == std::string::npos)) return false;
    if (ge == std::string::npos) {
      if (!symbolic::same_value(g[i], w[i])) return false;
    } else if (g[i].substr(0, ge) != w[i].substr(0, we) ||
               !symbolic::same_value(g[i].substr(ge + 3), w[i].substr(we + 3))) {
      return false;
    }
  }
  return true;
}

TEST(Symbolic, OracleSuite) { check_suite(*make_symbolic(), "symbolic", 150, &same_math); }

TEST(Symbolic, ValuesCompareByValue) {
  EXPECT_TRUE(same_math("3 + 2*sqrt(2)", "2*sqrt(2) + 3"));
  EXPECT_TRUE(same_math("x = -sqrt(2) or x = sqrt(2)", "x = -sqrt(2) or x = sqrt(2)"));
  EXPECT_FALSE(same_math("x = 2 or x = 3", "x = 3 or x = 2"));  // ascending order is the answer
  EXPECT_FALSE(same_math("x^3/3", "x^3/3 + C"));
  EXPECT_FALSE(same_math("2*sqrt(2)", "sqrt(2)"));
  EXPECT_TRUE(same_math("1/x", "x^(-1)"));
}

// Expansions past the budget are declined before GiNaC starts them, denominators included
// (tests/fuzz/fuzz_expert_symbolic found a ^28 of a 199-term sum under ^-1 counted as one term,
// and GiNaC reserving 90 GB for it).
TEST(Symbolic, ExpansionsPastTheBudgetAreDeclined) {
  const auto expert = make_symbolic();
  EXPECT_FALSE(expert->answer("Expand (x+y+z+w)^3/((x+y+z+w+v+u)^28+1):").has_value());
  EXPECT_FALSE(expert->answer("Expand sin((x+y+z+w+v+u)^28):").has_value());
  EXPECT_FALSE(expert->answer("Expand 1/(x+(x*w+(x+w+v)^28+v)^28):").has_value());
  EXPECT_FALSE(symbolic::parse("(a+b+c+d+e+f+g+h+j+k)^30").has_value());
  const auto small = expert->answer("Expand (x+1)^3:");
  ASSERT_TRUE(small.has_value());
  EXPECT_EQ(small->output, "x^3 + 3*x^2 + 3*x + 1");
}

// The clock and zone of tools/oracles/dates.py: 2026-11-23 06:30 UTC, still Sunday the 22nd in
// Los Angeles (the zone decides the date).
TEST(DateTime, OracleSuite) {
  absl::TimeZone zone;
  ASSERT_TRUE(absl::LoadTimeZone("America/Los_Angeles", &zone)) << "tzdata missing";
  const auto expert = make_datetime(zone, [] { return absl::FromUnixSeconds(1795415400); });
  check_suite(*expert, "datetime", 100);
  const auto utc = make_datetime(absl::UTCTimeZone(), [] { return absl::FromUnixSeconds(1795415400); });
  const auto today = utc->answer("Today is");
  ASSERT_TRUE(today.has_value());
  EXPECT_EQ(today->output, "Monday, November 23, 2026");
  // Only punctuation before the question (found by tests/fuzz/fuzz_expert_datetime: the last
  // word of no words was read).
  const auto after_paren = utc->answer(")The day of the week today is");
  ASSERT_TRUE(after_paren.has_value());
  EXPECT_EQ(after_paren->output, "Monday");
}

// Arbitrary text never crashes an expert (they read whatever the model writes): every prefix of
// every suite text, random edits of them, random bytes, and pathological inputs. Declining is
// fine; the answers given must still be non-empty.
TEST(Experts, ArbitraryTextIsSafe) {
  const ExpertRegistry registry;
  std::vector<std::string> texts;
  for (const char* suite : {"calculator", "units", "finance", "datetime", "interpreter"})
    for (const Case& c : load_cases(suite)) texts.push_back(c.text);
  std::mt19937 rng(5);
  const size_t n_suite = texts.size();
  for (size_t i = 0; i < 2000; ++i) {
    std::string t = texts[rng() % n_suite];
    for (int e = 0; e < 3 && !t.empty(); ++e) t[rng() % t.size()] = static_cast<char>(rng() % 256);
    texts.push_back(t);
  }
  for (int i = 0; i < 300; ++i) {
    std::string t(rng() % 64, ' ');
    for (char& c : t) c = static_cast<char>(rng() % 256);
    texts.push_back(t + (i % 2 ? " =" : "\n"));
  }
  texts.push_back(">>> " + std::string(5000, '(') + "1" + std::string(5000, ')') + "\n");
  texts.push_back(">>> " + std::string(5000, '-') + "1\n");
  texts.push_back(">>> " + std::string(3000, '[') + "\n");
  texts.push_back(">>> 'x' * 10**9\n");
  texts.push_back(">>> sum(range(10**15))\n");
  std::string many;
  for (int i = 0; i < 500; ++i) many += ">>> x = [x]\n";
  texts.push_back(">>> x = 0\n" + many + ">>> x\n");
  std::string long_units;
  for (int i = 0; i < 20000; ++i) long_units += " in in";
  texts.push_back("5 km" + long_units + " miles =");
  texts.push_back("2024-01-01 + , days =");
  // Deep input for every reader: 20,000 "(" and "-" for the calculator (it crashed at ~16k "("),
  // left-deep chains for the interpreter ("1+1+...", "x[0][0]...", "s.strip().strip()...",
  // which crashed at ~8k terms in evaluation and in the tree's destruction).
  texts.push_back(std::string(20000, '(') + "1" + std::string(20000, ')') + " =");
  texts.push_back(std::string(20000, '-') + "1 =");
  std::string plus = ">>> 1", index = ">>> [[0]]", strip = ">>> 'a'";
  for (int i = 0; i < 20000; ++i) plus += "+1", index += "[0]", strip += ".strip()";
  for (const std::string& deep : {plus, index, strip}) texts.push_back(deep + "\n");
  for (const std::string& t : texts)
    for (const std::string& name : registry.names()) {
      if (t.size() < 400) {  // every prefix of the short ones
        for (size_t n = 0; n <= t.size(); ++n) {
          const auto a = registry.find(name)->answer(std::string_view(t).substr(0, n));
          if (a) {
            EXPECT_FALSE(a->output.empty()) << name << ": " << t.substr(0, n);
          }
        }
      } else {
        const auto a = registry.find(name)->answer(t);
        if (a) {
          EXPECT_FALSE(a->output.empty()) << name;
        }
      }
    }
}

// vexprobe's training texts for every builtin hold both labels: positions the expert answers and
// texts (look-alikes included) where it answers nowhere.
// The interpreter's budget (1,000,000 steps, 16 MB per call) charges walks over shared
// structure too: "[[[0]*1000]*1000]*1000" is 3,000 list cells but 10^9 elements to print or
// compare. Small, these are answered exactly (CPython's values); large, declined at the budget
// (measured: each in under 0.1 s, where str(c) grew past 3 GB and c == ... took 52 s before).
TEST(Interpreter, BudgetsChargeAllWork) {
  const auto e = make_interpreter();
  auto ask = [&](int n, const std::string& last) {
    const std::string k = std::to_string(n);
    return e->answer(">>> a = [0] * " + k + "\n>>> b = [a] * " + k + "\n>>> c = [b] * " + k +
                     "\n>>> " + last + "\n");
  };
  ASSERT_TRUE(ask(10, "len(str(c))").has_value());
  EXPECT_EQ(ask(10, "len(str(c))")->output, "3220");
  EXPECT_EQ(ask(10, "c == [b] * 10")->output, "True");
  EXPECT_EQ(ask(10, "c.count(b)")->output, "10");
  for (const char* last : {"len(str(c))", "c == [b] * 1000", "c.count(b)", "sorted(c)[0] == b",
                           "b in c", "str(c) == str(c)"})
    EXPECT_FALSE(ask(1000, last).has_value()) << last;
  // Repeating an empty sequence costs nothing, however large the count (found by
  // tests/fuzz/fuzz_expert_interpreter: it looped 8.9e18 times); counts CPython refuses
  // (OverflowError past Py_ssize_t) are declined.
  const auto empty = e->answer(">>> () * -51 * 8888888888888888888\n");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->output, "()");
  EXPECT_FALSE(e->answer(">>> [] * 2**63\n").has_value());
  // int() of a string with leading zeros is decimal (GMP's default base read it as octal and
  // threw on the 8; found by the fuzzer).
  const auto zeros = e->answer(">>> int(' 0000000000001774158856 ')\n");
  ASSERT_TRUE(zeros.has_value());
  EXPECT_EQ(zeros->output, "1774158856");
  // Dicts and sets look keys up by equality (quadratic at worst): charged per comparison, so a
  // large one declines within the budget; recursion through def is bounded by depth.
  for (const char* program :
       {">>> len({i: i for i in range(10**5)})\n", ">>> len(set(range(10**5)))\n",
        ">>> len(set(range(3000)) & set(range(3000)))\n",
        ">>> def f(n): return 0 if n == 0 else 1 + f(n - 1)\n>>> f(10**6)\n",
        ">>> def f(n): return n if n < 2 else f(n - 1) + f(n - 2)\n>>> f(40)\n",
        ">>> import math\n>>> math.factorial(10**6)\n", ">>> import math\n>>> math.comb(10**9, 10**5)\n"})
    EXPECT_FALSE(e->answer(program).has_value()) << program;
  const auto fib = e->answer(">>> def f(n): return n if n < 2 else f(n - 1) + f(n - 2)\n>>> f(15)\n");
  ASSERT_TRUE(fib.has_value());
  EXPECT_EQ(fib->output, "610");
}

// One table names the builtins (experts/registry.cpp): each name makes an expert of that name,
// and the registry holds exactly them.
TEST(Registry, BuiltinsFromOneTable) {
  const std::vector<std::string> names = builtin_expert_names();
  EXPECT_EQ(names, (std::vector<std::string>{"calculator", "units", "finance", "datetime",
                                             "interpreter", "symbolic"}));
  for (const std::string& n : names) EXPECT_EQ(make_builtin_expert(n)->name(), n);
  EXPECT_EQ(make_builtin_expert("abacus"), nullptr);
  EXPECT_EQ(ExpertRegistry().names(), names);
}

TEST(TrainingTexts, EveryBuiltinHasPositivesAndNegatives) {
  const ExpertRegistry registry;
  for (const std::string& name : registry.names()) {
    const auto texts = training_texts(name, 60, 7);
    ASSERT_TRUE(texts.ok()) << texts.status();
    int with_answer = 0, without = 0, chats = 0;
    for (const std::string& t : *texts) {
      bool answered = false;
      for (size_t n = 1; n <= t.size() && !answered; ++n) {
        const auto read = expert_reads(t.substr(0, n));
        answered = read && registry.find(name)->answer(*read).has_value();
      }
      ++(answered ? with_answer : without);
      chats += t.find("<|channel|>final<|message|>") != std::string::npos;
    }
    EXPECT_GE(with_answer, 20) << name;
    EXPECT_GE(without, 5) << name;
    EXPECT_GE(chats, 10) << name;  // the row must also learn where a chat answer is due
    EXPECT_LE(chats, 40) << name;
  }
  EXPECT_FALSE(training_texts("abacus", 1, 0).ok());
}

// In chat, an expert reads the open message's content, and nothing in headers.
TEST(TrainingTexts, ExpertReadsMessageContent) {
  EXPECT_EQ(expert_reads("127 * 89 ="), "127 * 89 =");
  EXPECT_EQ(expert_reads("<|start|>user<|message|>hi<|end|><|start|>assistant<|channel|>final"
                         "<|message|>127 * 89 ="),
            "127 * 89 =");
  EXPECT_EQ(expert_reads("<|start|>user<|message|>127 * 89 =<|end|><|start|>assistant"),
            std::nullopt);
  // Raw text in which the model writes a chat: its user's words are not answered for it.
  EXPECT_EQ(expert_reads("The capital of France is<|end|><|start|>user<|message|>What is 5% of 4?"),
            std::nullopt);
  EXPECT_EQ(expert_reads("<|start|>assistant<|channel|>final<|message|>5% of 4 ="), "5% of 4 =");
  // At the start of a reply, the user's request.
  const std::string chat = "<|start|>user<|message|>Run this: sorted([3,1,2])<|end|><|start|>assistant"
                           "<|channel|>final<|message|>";
  EXPECT_EQ(expert_request(chat), "Run this: sorted([3,1,2])");
  EXPECT_EQ(expert_request(chat + "["), std::nullopt);
  EXPECT_EQ(expert_request("<|start|>assistant<|channel|>final<|message|>"), std::nullopt);
  EXPECT_EQ(expert_request("Run this: sorted([3,1,2])"), std::nullopt);
}

TEST(Exact, Format) {
  EXPECT_EQ(format_exact(mpq_class(11303)), "11303");
  EXPECT_EQ(format_exact(mpq_class(-1, 8)), "-0.125");
  EXPECT_EQ(format_exact(mpq_class(1, 3)), "0.333333333333333");
  EXPECT_EQ(format_exact(mpq_class(2, 3)), "0.666666666666667");
  EXPECT_EQ(format_exact(mpq_class("99999999999999999/100000000000000000")), "0.99999999999999999");
  EXPECT_EQ(format_exact(mpq_class(-1, 3000000)), "-0.000000333333333333333");
  EXPECT_EQ(format_fixed(mpq_class(12345, 1000), 2), "12.35");  // half away from zero
  EXPECT_EQ(format_fixed(mpq_class(-5, 1000), 2), "-0.01");
  EXPECT_EQ(format_fixed(mpq_class(1, 1000), 2), "0.00");
  ASSERT_TRUE(parse_decimal("1,234.5").has_value());
  EXPECT_EQ(*parse_decimal("1,234.5"), mpq_class(2469, 2));
  EXPECT_FALSE(parse_decimal("1,23").has_value());
  EXPECT_FALSE(parse_decimal("12a").has_value());
}

}  // namespace
}  // namespace vex
