#include "tools/vexprobe/eval.h"

#include <cmath>
#include <cstdio>
#include <random>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "experts/expert.h"
#include "loader/file.h"
#include "runtime/harmony.h"
#include "runtime/model.h"
#include "runtime/session.h"
#include "runtime/virtual_experts.h"
#include "tools/vexrun/demo.h"

namespace vex {
namespace {

// The answer a text gives: what follows the last `marker` (chat answers read
// "127 * 89 = 11303." and "2024-02-29 was a Thursday."), a number (digits with at most one sign,
// ',' and '.' inside; commas dropped) when `want` is one, else a word; "" when there is none.
std::string answer_after(std::string_view text, std::string_view marker, std::string_view want) {
  size_t at = text.rfind(marker);
  if (at == std::string_view::npos) return "";
  at += marker.size();
  while (at < text.size() && text[at] == ' ') ++at;
  auto digit = [&](size_t i) { return i < text.size() && isdigit(static_cast<unsigned char>(text[i])); };
  size_t end = at;
  if (!want.empty() && (isdigit(static_cast<unsigned char>(want[0])) || want[0] == '-')) {
    end += at < text.size() && text[at] == '-';
    while (digit(end) || ((text[end] == ',' || text[end] == '.') && digit(end + 1))) ++end;
  } else {
    while (end < text.size() && isalpha(static_cast<unsigned char>(text[end]))) ++end;
  }
  std::string a(text.substr(at, end - at));
  std::erase(a, ',');
  return a;
}

// The expert's exact answer to `raw`, without the unit it names ("328.083989501312 feet" ->
// "328.083989501312").
std::string expert_answer(const HostExpert& e, const std::string& raw) {
  const auto a = e.answer(raw);
  if (!a) return "";
  return a->output.substr(0, a->output.find(' '));
}

}  // namespace

std::vector<EvalItem> arithmetic_items(int n, uint64_t seed) {
  static const std::pair<int, int> kSizes[] = {{1, 1}, {2, 1}, {2, 2}, {3, 2}, {3, 3}, {4, 3}};
  std::mt19937_64 rng(seed);
  auto digits = [&](int d) {
    const int64_t lo = d == 1 ? 0 : static_cast<int64_t>(std::pow(10, d - 1));
    return std::uniform_int_distribution<int64_t>(lo, static_cast<int64_t>(std::pow(10, d)) - 1)(rng);
  };
  std::vector<EvalItem> items;
  for (char op : {'*', '+', '/'})
    for (auto [da, db] : kSizes)
      for (int i = 0; i < n; ++i) {
        int64_t a = digits(da), b = digits(db), want;
        if (op == '/') {  // a da-digit multiple of a db-digit divisor: the quotient is exact
          const int64_t lo = da == 1 ? 1 : static_cast<int64_t>(std::pow(10, da - 1));
          const int64_t hi = static_cast<int64_t>(std::pow(10, da)) - 1;
          do b = std::max<int64_t>(digits(db), 1);
          while ((lo + b - 1) / b > hi / b);
          want = std::uniform_int_distribution<int64_t>((lo + b - 1) / b, hi / b)(rng);
          a = want * b;
        } else {
          want = op == '*' ? a * b : a + b;
        }
        const std::string e = absl::StrFormat("%d %c %d", a, op, b);
        items.push_back({absl::StrFormat("%c %dx%d", op, da, db), e + " = ",
                         "What is " + e + "?", std::to_string(want)});
      }
  return items;
}

std::vector<EvalItem> units_items(int n, uint64_t seed) {
  static const std::pair<const char*, const char*> kPairs[] = {
      {"meters", "feet"}, {"km", "miles"}, {"kg", "pounds"}, {"°C", "°F"},
      {"liters", "gallons"}, {"hours", "minutes"}, {"inches", "cm"}, {"mph", "km/h"}};
  std::mt19937_64 rng(seed);
  ExpertRegistry registry;
  const HostExpert& units = *registry.find("units");
  std::vector<EvalItem> items;
  for (int i = 0; i < n; ++i) {
    const auto [a, b] = kPairs[rng() % std::size(kPairs)];
    const std::string v = std::to_string(1 + rng() % 500);
    const std::string raw = absl::StrCat(v, " ", a, " in ", b, " = ");
    items.push_back({"units", raw, absl::StrCat("Convert ", v, " ", a, " to ", b),
                     expert_answer(units, raw)});
  }
  return items;
}

std::vector<EvalItem> weekday_items(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  ExpertRegistry registry;
  const HostExpert& dt = *registry.find("datetime");
  std::vector<EvalItem> items;
  for (int i = 0; i < n; ++i) {
    const std::string d = absl::StrFormat("%04d-%02d-%02d", 1900 + rng() % 200, 1 + rng() % 12,
                                          1 + rng() % 28);
    const std::string raw = d + " was a";
    items.push_back({"weekday", raw, absl::StrCat("What day of the week was ", d, "?"),
                     expert_answer(dt, raw), " was a "});
  }
  return items;
}

absl::StatusOr<std::vector<EvalItem>> read_eval_set(const std::string& path) {
  VEX_ASSIGN_OR_RETURN(const std::string content, read_regular_file(path, 64 << 20, "the eval set"));
  std::vector<EvalItem> items;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto where = [&](const std::string& what) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": ", what));
    };
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return where("not a JSON object");
    EvalItem item;
    item.cell = "all";
    for (const auto& [key, value] : j.items()) {
      std::string* field = key == "cell" ? &item.cell : key == "raw" ? &item.raw
                         : key == "question" ? &item.question : key == "answer" ? &item.want
                         : key == "marker" ? &item.marker : nullptr;
      if (!field) return where(absl::StrCat("unknown key \"", key, "\" (cell, raw, question, answer, marker)"));
      if (!value.is_string()) return where(absl::StrCat("\"", key, "\" is not a string"));
      *field = value.get<std::string>();
    }
    if (item.want.empty()) return where("no \"answer\"");
    if (item.raw.empty() || item.question.empty()) return where("needs both \"raw\" and \"question\"");
    items.push_back(std::move(item));
  }
  if (items.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no items"));
  // Rows of one cell together, in the order cells first appear.
  std::stable_sort(items.begin(), items.end(), [&](const EvalItem& a, const EvalItem& b) {
    auto first = [&](const std::string& c) {
      return std::find_if(items.begin(), items.end(), [&](const EvalItem& i) { return i.cell == c; }) - items.begin();
    };
    return first(a.cell) < first(b.cell);
  });
  return items;
}

absl::StatusOr<std::vector<EvalItem>> task_items(const std::string& task, int n, uint64_t seed) {
  if (task == "arith") return arithmetic_items(n, seed);
  if (task == "units") return units_items(n, seed);
  if (task == "weekday") return weekday_items(n, seed);
  if (task.ends_with(".jsonl")) return read_eval_set(task);
  return absl::InvalidArgumentError("--task must be arith, units, weekday or an eval set FILE.jsonl");
}

std::string eval_set_line(const EvalItem& item) {
  return nlohmann::json{{"cell", item.cell}, {"raw", item.raw}, {"question", item.question},
                        {"answer", item.want}, {"marker", item.marker}}
      .dump();
}

absl::StatusOr<std::string> weights_or_demo(const std::string& weights) {
  if (!weights.empty()) return weights;
  return demo_model_dir();
}

absl::StatusOr<std::unique_ptr<Model>> load_probe_model(std::string* weights,
                                                        const std::string& experts) {
  VEX_ASSIGN_OR_RETURN(*weights, weights_or_demo(*weights));
  LoadOptions load;
  load.experts = experts;
  return load_model(*weights, load);
}

absl::StatusOr<std::vector<EvalResult>> run_eval(const Model& m, const std::vector<EvalItem>& items,
                                                 bool chat, const std::string& device,
                                                 const RoutingOverride& routing) {
  VEX_ASSIGN_OR_RETURN(const Tokenizer* tok, m.require_tokenizer());
  VEX_ASSIGN_OR_RETURN(Device dev, parse_device(device));
  VEX_ASSIGN_OR_RETURN(auto engine, make_engine(m, 1024, dev));
  VEX_RETURN_IF_ERROR(engine->set_routing_override(routing));
  Session session(std::move(engine));
  ExpertRegistry registry;
  std::unique_ptr<VirtualExperts> experts;
  if (!m.host_experts.empty()) {
    VEX_ASSIGN_OR_RETURN(experts, VirtualExperts::bind(m, registry));
  }
  GenerateOptions opt;
  opt.sampling.temperature = 0;  // greedy: the model's most likely answer
  opt.stop_tokens = m.stop_tokens;
  opt.max_tokens = chat ? 64 : 12;
  std::vector<EvalResult> out(items.size());
  // One pass with the experts off, one on: the cache is reused between items of a pass (the chat
  // system prompt); switching drops it (Session::set_virtual_experts).
  for (bool on : {false, true}) {
    if (on && !experts) break;
    VEX_RETURN_IF_ERROR(session.set_virtual_experts(on));
    opt.experts = on ? experts.get() : nullptr;
    for (size_t i = 0; i < items.size(); ++i) {
      const EvalItem& item = items[i];
      EvalResult& r = out[i];
      if (experts) experts->clear();
      std::string text;
      harmony::StreamParser parser(*tok);
      std::vector<int32_t> prompt;
      if (chat) {
        harmony::Conversation conv;
        conv.messages.push_back({.role = "user", .content = item.question});
        prompt = harmony::render(*tok, conv, /*for_completion=*/true).tokens;
        if (experts) experts->read_message_content(parser);
      } else {
        prompt = tok->encode(item.raw, false);
        if (experts) experts->text = nullptr;
      }
      auto on_token = [&](int32_t t) {
        if (chat) parser.feed(t);
        else text += tok->token_bytes(t);
        return chat || text.find('\n') == std::string::npos;  // a raw answer ends at the line
      };
      VEX_RETURN_IF_ERROR(session.generate(prompt, opt, on_token).status());
      if (chat)
        for (const auto& msg : parser.messages())
          if (msg.channel == "final") text = msg.content;
      const bool exact =
          answer_after(chat ? text : item.raw + text, item.marker, item.want) == item.want;
      if (on) {
        r.with_experts = text, r.exact_with_experts = exact;
        for (const ExpertFiring& f : experts->firings()) r.fired |= f.answered;
      } else {
        r.model = text, r.exact = exact;
      }
    }
  }
  return out;
}

}  // namespace vex
