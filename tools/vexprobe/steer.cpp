// vexprobe topk: the model at several k (experts per token): perplexity of a text, exact answers
// of an eval task, and the greedy continuation of a prompt, one row per k.
// vexprobe force: the greedy continuation of a prompt with given experts forced into every
// token's choice at their layers, next to the model's own, and where the two first differ.
#include "tools/vexprobe/steer.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "loader/file.h"
#include "runtime/harmony.h"
#include "runtime/model.h"
#include "runtime/perplexity.h"
#include "runtime/session.h"
#include "runtime/tokenizer.h"
#include "tools/args.h"
#include "tools/vexprobe/eval.h"

namespace vex {
namespace {

int fail(const absl::Status& st) {
  fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str());
  return 1;
}

// The greedy continuation of `prompt` (chat: rendered as a user message, the reply's content)
// on an engine routing with `o`: its tokens and its text.
struct Continuation {
  std::vector<int32_t> tokens;
  std::string text;
};
absl::StatusOr<Continuation> continue_prompt(const Model& m, Device dev, const RoutingOverride& o,
                                             const std::string& prompt, bool chat, int n) {
  VEX_ASSIGN_OR_RETURN(const Tokenizer* tok, m.require_tokenizer());
  std::vector<int32_t> ids;
  if (chat) {
    harmony::Conversation conv;
    conv.messages.push_back({.role = "user", .content = prompt});
    ids = harmony::render(*tok, conv, /*for_completion=*/true).tokens;
  } else {
    ids = tok->encode(prompt, /*allow_special=*/false);
  }
  if (ids.empty()) return absl::InvalidArgumentError("the prompt is empty");
  VEX_ASSIGN_OR_RETURN(auto engine, make_engine(m, static_cast<int>(ids.size()) + n + 1, dev));
  VEX_RETURN_IF_ERROR(engine->set_routing_override(o));
  Session session(std::move(engine));
  GenerateOptions opt;
  opt.sampling.temperature = 0;
  opt.stop_tokens = m.stop_tokens;
  opt.max_tokens = n;
  Continuation out;
  harmony::StreamParser parser(*tok);
  VEX_RETURN_IF_ERROR(session
                          .generate(ids, opt,
                                    [&](int32_t t) {
                                      out.tokens.push_back(t);
                                      if (chat) out.text += parser.feed(t).content;
                                      else out.text += tok->token_bytes(t);
                                      return true;
                                    })
                          .status());
  out.text = sanitize_utf8(out.text);
  return out;
}

// The flags both commands take.
struct Common {
  std::string weights, prompt, device = "auto";
  int tokens = 24;
  bool chat = false, help = false;
  void add(Args& a) {
    a.text({"--weights", "-m"}, "checkpoint directory (default: the embedded demo model)", &weights);
    a.text({"-p", "--prompt"}, "the prompt continued", &prompt);
    a.integer({"-n", "--n-predict"}, "tokens generated (default 24)", 1, 1 << 16, &tokens);
    a.flag({"--chat"}, "the prompt as a chat's user message (Harmony); the reply is shown", &chat);
    a.text({"--device"}, "auto | cpu | cuda (default auto)", &device);
    a.flag({"--help", "-h"}, "show this help", &help);
  }
};

// Parses; returns -1 to go on, else the exit status.
int parse(Args& a, const Common& c, const std::string& usage, int argc, char** argv) {
  const absl::Status st = a.parse(argc - 1, argv + 1);
  if (st.ok() && !c.help) return -1;
  if (!st.ok()) fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str());
  fprintf(c.help ? stdout : stderr, "%s", usage.c_str());
  return c.help ? 0 : 2;
}

std::string one_line(const std::string& s) {
  std::string out;
  for (char ch : s) out += ch == '\n' ? std::string("\\n") : ch == '|' ? std::string("\\|") : std::string(1, ch);
  return out;
}

}  // namespace

int topk(int argc, char** argv) {
  Common c;
  c.prompt = "The capital of France is";
  std::string ks_flag = "1,2,4,8", text, task = "arith";
  int ctx = 512, n = 10;
  Args a;
  c.add(a);
  a.text({"--ks"}, "the k to compare, comma-separated (default 1,2,4,8)", &ks_flag);
  a.text({"--text"}, "text whose perplexity is measured (default: the demo model's held-out text)", &text);
  a.integer({"-c", "--ctx"}, "perplexity chunk size (default 512)", 4, 1 << 20, &ctx);
  a.text({"--task"}, "eval task: arith, units, weekday, or a .jsonl eval set (default arith)", &task);
  a.integer({"--n"}, "questions per eval row (default 10)", 1, 100000, &n);
  const std::string usage = "usage: vexprobe topk [--ks 1,2,4,8] [-p PROMPT] [--text FILE] [--task T] [options]\n" + a.usage();
  if (const int r = parse(a, c, usage, argc, argv); r >= 0) return r;
  std::vector<int32_t> ks;
  if (absl::Status st = parse_int_list("--ks", ks_flag, &ks); !st.ok()) return fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str()), 2;
  const auto items = task_items(task, n, 1);
  if (!items.ok()) return fprintf(stderr, "vexprobe: %s\n", std::string(items.status().message()).c_str()), 2;
  if (c.weights.empty() && text.empty()) {  // the demo model's held-out text
    const auto demo = weights_or_demo("");
    if (!demo.ok()) return fail(demo.status());
    text = *demo + "/eval/heldout-brown.txt";
  }
  if (text.empty()) return fprintf(stderr, "vexprobe: give --text FILE for the perplexity\n"), 2;
  std::string dir = c.weights;
  auto model = load_probe_model(&dir);
  if (!model.ok()) return fail(model.status());
  const Model& m = **model;
  auto content = read_regular_file(text, 64 << 20, "the text");
  if (!content.ok()) return fail(content.status());
  auto tok = m.require_tokenizer();
  auto dev = parse_device(c.device);
  if (!tok.ok() || !dev.ok()) return fail(!tok.ok() ? tok.status() : dev.status());
  const std::vector<int32_t> ids = (*tok)->encode(*content, /*allow_special=*/false);
  printf("%s, model k = %d; perplexity of %s (-c %d); %s exact (n = %zu); greedy continuation of %s\n\n",
         dir.c_str(), m.config().n_experts_active, text.c_str(), ctx, task.c_str(), items->size(),
         c.prompt.c_str());
  printf("| k | perplexity | exact | continuation |\n|---|---|---|---|\n");
  for (int32_t k : ks) {
    RoutingOverride o;
    o.k = k;
    auto engine = make_engine(m, ctx, *dev);
    absl::Status st = engine.ok() ? (*engine)->set_routing_override(o) : engine.status();
    if (!st.ok()) return fail(st);
    auto ppl = measure_perplexity(**engine, ids, ctx);
    if (!ppl.ok()) return fail(ppl.status());
    auto r = run_eval(m, *items, c.chat, c.device, o);
    if (!r.ok()) return fail(r.status());
    int exact = 0;
    for (const EvalResult& e : *r) exact += e.exact;
    auto cont = continue_prompt(m, *dev, o, c.prompt, c.chat, c.tokens);
    if (!cont.ok()) return fail(cont.status());
    printf("| %d%s | %.3f | %.0f %% | %s |\n", k, k == m.config().n_experts_active ? " (the model's)" : "",
           ppl->overall, 100.0 * exact / r->size(), one_line(cont->text).c_str());
  }
  return 0;
}

int force(int argc, char** argv) {
  Common c;
  RoutingOverride o;
  Args a;
  c.add(a);
  add_routing_flags(a, &o);
  const std::string usage = "usage: vexprobe force --force L:E,... -p PROMPT [-n N] [--chat] [options]\n" + a.usage();
  if (const int r = parse(a, c, usage, argc, argv); r >= 0) return r;
  if (o.force.empty() || c.prompt.empty())
    return fprintf(stderr, "vexprobe: force needs --force L:E,... and -p PROMPT\n%s", usage.c_str()), 2;
  std::string dir = c.weights;
  auto model = load_probe_model(&dir);
  if (!model.ok()) return fail(model.status());
  auto dev = parse_device(c.device);
  if (!dev.ok()) return fail(dev.status());
  auto plain = continue_prompt(**model, *dev, {}, c.prompt, c.chat, c.tokens);
  if (!plain.ok()) return fail(plain.status());
  auto forced = continue_prompt(**model, *dev, o, c.prompt, c.chat, c.tokens);
  if (!forced.ok()) return fail(forced.status());
  size_t same = 0;
  while (same < plain->tokens.size() && same < forced->tokens.size() &&
         plain->tokens[same] == forced->tokens[same])
    ++same;
  std::string pairs;
  for (const auto& [l, e] : o.force) absl::StrAppendFormat(&pairs, "%s%d:%d", pairs.empty() ? "" : ",", l, e);
  printf("prompt: %s\nthe model:     %s\nforced %s: %s\n", c.prompt.c_str(),
         one_line(plain->text).c_str(), pairs.c_str(), one_line(forced->text).c_str());
  if (same == plain->tokens.size() && same == forced->tokens.size())
    printf("the same %zu tokens\n", same);
  else
    printf("the same first %zu tokens, then different\n", same);
  return 0;
}

}  // namespace vex
