// vexprobe: look inside the routing.
//   vexprobe train-router --expert calculator --layer 2|--sweep [--weights DIR] [--out FILE]
// learns the router row of a virtual expert (docs/architecture.md §4): runs labelled texts through the CPU
// engine, collects the normed MoE inputs at the layer, fits a logistic regression (positive: the
// expert answers the text up to that token), scales the row so that it competes with the neural
// rows in the model's own top-k, reports precision and recall of the routing decision on
// held-out texts, and writes the sidecar a manifest names.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>
#include <tuple>

#include "experts/expert.h"
#include "kernels/cpu/router.h"
#include "loader/safetensors_writer.h"
#include "runtime/forward_cpu.h"
#include "loader/file.h"
#include "runtime/model.h"
#include "runtime/perplexity.h"
#include "runtime/virtual_experts.h"
#include "tools/args.h"
#include "tools/vexprobe/eval.h"
#include "tools/vexprobe/routing.h"
#include "tools/vexprobe/steer.h"
#include "tools/vexprobe/prompts.h"

namespace vex {
namespace {

struct Options {
  std::string command, weights, expert, out;
  std::vector<std::string> probes;
  int layer = -1, texts = 600;
  int seed = 1;
  float threshold = 0.5f;
  bool sweep = false, help = false;
};

struct Sample {
  std::vector<float> x;       // normed MoE input at the layer [D]
  std::vector<float> router;  // the layer's neural router logits [E]
  bool positive;
  bool held_out;
};

struct Counts {
  int tp = 0, fp = 0, fn = 0, tn = 0;
  void add(bool predicted, bool actual) {
    (predicted ? (actual ? tp : fp) : (actual ? fn : tn))++;
  }
  double precision() const { return tp + fp ? double(tp) / (tp + fp) : 0; }
  double recall() const { return tp + fn ? double(tp) / (tp + fn) : 0; }
  double f1() const {
    const double p = precision(), r = recall();
    return p + r > 0 ? 2 * p * r / (p + r) : 0;
  }
};

// The normed MoE input and the router logits at every layer for every position of `ids`:
// out[layer][position].
absl::StatusOr<std::vector<std::vector<Sample>>> layer_samples(const Model& m,
                                                               std::span<const int32_t> ids) {
  const int D = m.config().d_model;
  CpuEngine engine(m.config(), m.weights, static_cast<int>(ids.size()));
  std::vector<std::vector<Sample>> out(m.config().n_layers);
  (void)engine.set_routing_observer([&](const RoutingEvent& ev) {
    const int S = m.weights.layers[ev.layer].n_slots();
    out[ev.layer].push_back({std::vector<float>(ev.xn, ev.xn + D),
                             std::vector<float>(ev.router_logits, ev.router_logits + S), false,
                             false});
  });
  VEX_RETURN_IF_ERROR(engine.forward(ids, nullptr));
  return out;
}

// Logistic regression by full-batch gradient descent (Adam) on standardized features, classes
// weighted to balance, small L2; returns w [D] and b for the raw features.
std::pair<std::vector<double>, double> fit(const std::vector<const Sample*>& train, int D) {
  const size_t n = train.size();
  std::vector<double> mean(D, 0), sd(D, 0);
  for (const Sample* s : train)
    for (int i = 0; i < D; ++i) mean[i] += s->x[i] / n;
  for (const Sample* s : train)
    for (int i = 0; i < D; ++i) sd[i] += (s->x[i] - mean[i]) * (s->x[i] - mean[i]) / n;
  for (double& v : sd) v = std::sqrt(v) + 1e-6;
  size_t pos = 0;
  for (const Sample* s : train) pos += s->positive;
  const double wp = pos ? 0.5 * n / pos : 1, wn = pos < n ? 0.5 * n / (n - pos) : 1;
  std::vector<double> w(D + 1, 0), m(D + 1, 0), v(D + 1, 0), g(D + 1);
  const double lr = 0.05, l2 = 1e-3;
  for (int step = 1; step <= 800; ++step) {
    std::fill(g.begin(), g.end(), 0.0);
    for (const Sample* s : train) {
      double z = w[D];
      for (int i = 0; i < D; ++i) z += w[i] * (s->x[i] - mean[i]) / sd[i];
      const double p = 1 / (1 + std::exp(-z)), err = (p - s->positive) * (s->positive ? wp : wn);
      for (int i = 0; i < D; ++i) g[i] += err * (s->x[i] - mean[i]) / sd[i] / n;
      g[D] += err / n;
    }
    for (int i = 0; i < D; ++i) g[i] += l2 * w[i];
    for (int i = 0; i <= D; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      const double mh = m[i] / (1 - std::pow(0.9, step)), vh = v[i] / (1 - std::pow(0.999, step));
      w[i] -= lr * mh / (std::sqrt(vh) + 1e-8);
    }
  }
  std::vector<double> raw(D);
  double b = w[D];
  for (int i = 0; i < D; ++i) raw[i] = w[i] / sd[i], b -= w[i] * mean[i] / sd[i];
  return {raw, b};
}

// The routing decision the engines make: the virtual row (logit z) among the neural ones, top-k,
// softmax over the k chosen, counted at or above the threshold.
bool fires(const Sample& s, double z, int k, float threshold) {
  std::vector<float> logits = s.router;
  logits.push_back(static_cast<float>(z));
  int idx[16];
  float wt[16];
  router_topk_softmax(logits.data(), static_cast<int>(logits.size()), k, idx, wt);
  for (int j = 0; j < k; ++j)
    if (idx[j] == static_cast<int>(s.router.size())) return wt[j] >= threshold;
  return false;
}

// A row learned at one layer, calibrated, and measured.
struct LayerFit {
  std::vector<double> w;  // [D], the logistic regression's
  double b = 0, scale = 1, shift = 0;
  Counts lr_test, route_train, route_test;
  double logit(const Sample& s) const {  // the calibrated row's router logit
    double z = b;
    for (size_t i = 0; i < w.size(); ++i) z += w[i] * s.x[i];
    return scale * z;
  }
};

LayerFit fit_layer(const std::vector<Sample>& samples, int D, int k, float threshold) {
  std::vector<const Sample*> train, test;
  for (const Sample& s : samples) (s.held_out ? test : train).push_back(&s);
  LayerFit f;
  std::tie(f.w, f.b) = fit(train, D);
  // Calibrate the row against the neural rows it competes with: a power-of-two scale and a
  // bias shift (the class weights favour recall), chosen for the best F1 of the routing
  // decision on the training texts.
  const double b0 = f.b;
  double best_f1 = -1, best_a = 1, best_shift = 0;
  for (double a = 1; a <= 256; a *= 2)
    for (double shift = -6; shift <= 2; shift += 0.5) {
      f.b = b0 + shift, f.scale = a;
      Counts cnt;
      for (const Sample* s : train) cnt.add(fires(*s, f.logit(*s), k, threshold), s->positive);
      if (cnt.f1() > best_f1 + 1e-9) best_f1 = cnt.f1(), best_a = a, best_shift = shift;
    }
  f.b = b0 + best_shift, f.scale = best_a, f.shift = best_shift;
  for (const Sample* s : train) f.route_train.add(fires(*s, f.logit(*s), k, threshold), s->positive);
  for (const Sample* s : test) {
    f.lr_test.add(f.logit(*s) / f.scale - best_shift > 0, s->positive);
    f.route_test.add(fires(*s, f.logit(*s), k, threshold), s->positive);
  }
  return f;
}

int train_router(const Options& o) {
  std::string weights = o.weights;
  auto model = load_probe_model(&weights);
  if (!model.ok()) return fprintf(stderr, "vexprobe: %s\n", model.status().ToString().c_str()), 1;
  const Model& m = **model;
  const Config& c = m.config();
  auto tok = m.require_tokenizer();
  if (!tok.ok()) return fprintf(stderr, "vexprobe: %s\n", tok.status().ToString().c_str()), 1;
  if (!o.sweep && o.layer >= c.n_layers)
    return fprintf(stderr, "vexprobe: --layer %d is not a layer of this model [0, %d)\n", o.layer,
                   c.n_layers),
           2;
  ExpertRegistry registry;
  const HostExpert* expert = registry.find(o.expert);
  if (!expert)
    return fprintf(stderr, "vexprobe: --expert %s is not a builtin expert\n", o.expert.c_str()), 2;
  auto texts = training_texts(o.expert, o.texts, static_cast<uint64_t>(o.seed));
  if (!texts.ok()) return fprintf(stderr, "vexprobe: %s\n", texts.status().ToString().c_str()), 2;

  // Hidden states and labels at every position of every text, for every layer (one forward).
  const int D = c.d_model, k = c.n_experts_active;
  std::vector<std::vector<Sample>> samples(c.n_layers);
  int positions = 0, positives = 0, held_positions = 0, held_positives = 0;
  for (size_t ti = 0; ti < texts->size(); ++ti) {
    const std::vector<int32_t> ids = (*tok)->encode((*texts)[ti], /*allow_special=*/true);
    auto got = layer_samples(m, ids);
    if (!got.ok()) return fprintf(stderr, "vexprobe: %s\n", got.status().ToString().c_str()), 1;
    for (size_t i = 0; i < ids.size(); ++i) {
      const std::string decoded = (*tok)->decode(std::span(ids).first(i + 1));
      auto read = expert_reads(decoded);
      if (read && read->empty()) read = expert_request(decoded);  // the start of a reply
      const bool positive = read && expert->answer(*read).has_value();
      const bool held_out = ti % 5 == 0;
      positions++, positives += positive;
      held_positions += held_out, held_positives += held_out && positive;
      for (int l = 0; l < c.n_layers; ++l) {
        Sample& s = (*got)[l][i];
        s.positive = positive, s.held_out = held_out;
        samples[l].push_back(std::move(s));
      }
    }
  }
  printf("expert %s: %d positions (%d positive) from %d texts; held out: every 5th text (%d "
         "positions, %d positive)\n",
         o.expert.c_str(), positions, positives, o.texts, held_positions, held_positives);

  // One row per layer asked for; with --sweep the layer whose routing decision has the best
  // held-out F1 is kept.
  int layer = o.sweep ? -1 : o.layer;
  LayerFit best;
  if (o.sweep)
    printf("layer  LR precision  LR recall  routing precision  routing recall  F1   (held out)\n");
  for (int l = 0; l < c.n_layers; ++l) {
    if (!o.sweep && l != o.layer) continue;
    LayerFit f = fit_layer(samples[l], D, k, o.threshold);
    if (o.sweep)
      printf("%5d  %12.3f  %9.3f  %17.3f  %14.3f  %.3f\n", l, f.lr_test.precision(),
             f.lr_test.recall(), f.route_test.precision(), f.route_test.recall(),
             f.route_test.f1());
    if (layer < 0 || f.route_test.f1() > best.route_test.f1()) layer = l, best = std::move(f);
  }
  printf("layer %d: logistic regression, held out:  precision %.3f  recall %.3f\n", layer,
         best.lr_test.precision(), best.lr_test.recall());
  printf("routing (top-%d, threshold %.2f, row scale %g, bias shift %g), train: precision %.3f  "
         "recall %.3f\n",
         k, o.threshold, best.scale, best.shift, best.route_train.precision(),
         best.route_train.recall());
  printf("routing, held out:              precision %.3f  recall %.3f  (tp %d fp %d fn %d)\n",
         best.route_test.precision(), best.route_test.recall(), best.route_test.tp,
         best.route_test.fp, best.route_test.fn);

  // The routing weight the learned row gets at the last position of each probe text.
  for (const std::string& text : o.probes) {
    auto got = layer_samples(m, (*tok)->encode(text, false));
    if (!got.ok() || (*got)[layer].empty()) continue;
    const Sample& s = (*got)[layer].back();
    std::vector<float> logits = s.router;
    logits.push_back(static_cast<float>(best.logit(s)));
    int idx[16];
    float wt[16];
    router_topk_softmax(logits.data(), static_cast<int>(logits.size()), k, idx, wt);
    float weight = 0;
    for (int j = 0; j < k; ++j)
      if (idx[j] == static_cast<int>(s.router.size())) weight = wt[j];
    printf("probe \"%s\": routing weight %.3f (%s); the expert %s\n", text.c_str(), weight,
           weight >= o.threshold ? "fires" : "silent",
           expert->answer(text) ? "answers" : "declines");
  }
  const std::string out =
      o.out.empty() ? absl::StrCat(o.expert, "-l", layer, ".safetensors") : o.out;
  std::vector<float> row(D);
  for (int i = 0; i < D; ++i) row[i] = static_cast<float>(best.scale * best.w[i]);
  const float bias = static_cast<float>(best.scale * best.b);
  absl::Status st = write_safetensors(
      out, {{"weight", DType::kF32, {1, D}}, {"bias", DType::kF32, {1}}}, {row.data(), &bias},
      {{"expert", o.expert},
       {"layer", std::to_string(layer)},
       {"held_out_precision", absl::StrFormat("%.4f", best.route_test.precision())},
       {"held_out_recall", absl::StrFormat("%.4f", best.route_test.recall())}});
  if (!st.ok()) return fprintf(stderr, "vexprobe: %s\n", st.ToString().c_str()), 1;
  printf("wrote %s; attach it with:\n\n[[virtual]]\nname = \"%s\"\nkind = \"host\"\nlayers = "
         "[%d]\nrouter = \"%s\"\nthreshold = %.2f\n",
         out.c_str(), o.expert.c_str(), layer,
         std::filesystem::path(out).filename().c_str(), o.threshold);
  return 0;
}

// vexprobe ablate: the model with experts ablated (or k changed, or experts forced) next to the
// model as it is: perplexity of a text and exact answers of an eval task, the same questions.
int ablate(int argc, char** argv) {
  std::string weights, text, task = "arith", device = "auto";
  int n = 10, ctx = 512;
  bool chat = false, help = false;
  RoutingOverride routing;
  Args a;
  a.text({"--weights", "-m"}, "checkpoint directory (default: the embedded demo model)", &weights);
  add_routing_flags(a, &routing);
  a.text({"--text"}, "text whose perplexity is measured (default: the demo model's held-out text)", &text);
  a.integer({"-c", "--ctx"}, "perplexity chunk size (default 512)", 4, 1 << 20, &ctx);
  a.text({"--task"}, "eval task: arith, units, weekday, or an eval set FILE.jsonl (default arith)", &task);
  a.integer({"--n"}, "questions per eval row (default 10)", 1, 100000, &n);
  a.flag({"--chat"}, "eval questions in chat", &chat);
  a.text({"--device"}, "auto | cpu | cuda (default auto)", &device);
  a.flag({"--help", "-h"}, "show this help", &help);
  const std::string usage = "usage: vexprobe ablate --ablate L:E,...|--topk K|--force L:E,... [options]\n" + a.usage();
  if (absl::Status st = a.parse(argc - 1, argv + 1); !st.ok() || help || routing.empty()) {
    if (!st.ok()) fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str());
    else if (!help) fprintf(stderr, "vexprobe: ablate needs --ablate, --topk or --force\n");
    fprintf(help ? stdout : stderr, "%s", usage.c_str());
    return help ? 0 : 2;
  }
  const auto task_list = task_items(task, n, 1);
  if (!task_list.ok()) return fprintf(stderr, "vexprobe: %s\n", std::string(task_list.status().message()).c_str()), 2;
  const std::vector<EvalItem>& items = *task_list;
  if (weights.empty() && text.empty()) {  // the demo model's held-out text
    const auto demo = weights_or_demo("");
    if (!demo.ok()) return fprintf(stderr, "vexprobe: %s\n", demo.status().ToString().c_str()), 1;
    weights = *demo, text = weights + "/eval/heldout-brown.txt";
  }
  if (text.empty()) return fprintf(stderr, "vexprobe: give --text FILE for the perplexity\n"), 2;
  auto model = load_probe_model(&weights);
  if (!model.ok()) return fprintf(stderr, "vexprobe: %s\n", std::string(model.status().message()).c_str()), 1;
  const Model& m = **model;
  auto content = read_regular_file(text, 64 << 20, "the text");
  auto tok = m.require_tokenizer();
  auto dev = parse_device(device);
  if (!content.ok() || !tok.ok() || !dev.ok()) {
    const absl::Status st = !content.ok() ? content.status() : !tok.ok() ? tok.status() : dev.status();
    return fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str()), 1;
  }
  const std::vector<int32_t> ids = (*tok)->encode(*content, /*allow_special=*/false);
  double ppl[2];
  std::vector<EvalResult> results[2];
  for (int after = 0; after < 2; ++after) {
    const RoutingOverride none;
    const RoutingOverride& o = after ? routing : none;
    auto engine = make_engine(m, ctx, *dev);
    absl::Status st = engine.ok() ? (*engine)->set_routing_override(o) : engine.status();
    if (!st.ok()) return fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str()), 1;
    auto p = measure_perplexity(**engine, ids, ctx);
    if (!p.ok()) return fprintf(stderr, "vexprobe: %s: %s\n", text.c_str(), std::string(p.status().message()).c_str()), 1;
    ppl[after] = p->overall;
    auto r = run_eval(m, items, chat, device, o);
    if (!r.ok()) return fprintf(stderr, "vexprobe: %s\n", std::string(r.status().message()).c_str()), 1;
    results[after] = std::move(*r);
  }
  printf("%s\n\n| measure | the model | with the change |\n|---|---|---|\n", weights.c_str());
  printf("| perplexity of %s (-c %d, over every scored token) | %.3f | %.3f |\n", text.c_str(), ctx, ppl[0], ppl[1]);
  for (size_t i = 0; i < items.size();) {
    size_t j = i;
    int exact[2] = {0, 0};
    for (; j < items.size() && items[j].cell == items[i].cell; ++j)
      exact[0] += results[0][j].exact, exact[1] += results[1][j].exact;
    const double k = static_cast<double>(j - i);
    printf("| %s%s exact (n = %zu) | %.0f %% | %.0f %% |\n", task == "arith" ? "arith " : "", items[i].cell.c_str(),
           j - i, 100 * exact[0] / k, 100 * exact[1] / k);
    i = j;
  }
  return 0;
}

// vexprobe eval: the model's own answers next to the answers with the experts, per cell.
int eval(int argc, char** argv) {
  std::string weights, experts, task = "arith", device = "auto";
  int n = 20, seed = 1, show = 3;
  bool chat = false, help = false;
  RoutingOverride routing;
  Args a;
  add_routing_flags(a, &routing);  // both passes
  a.text({"--weights", "-m"}, "checkpoint directory (default: the embedded demo model)", &weights);
  a.text({"--experts"}, "expert manifest whose virtual experts are compared with the model alone",
         &experts);
  a.text({"--task"}, "arith (multiplication, addition, division by operand size), units, "
         "weekday, or an eval set FILE.jsonl", &task);
  a.flag({"--chat"}, "ask in Harmony chat (the answer is in the final message), not raw text",
         &chat);
  a.integer({"--n"}, "questions per table row (default 20)", 1, 100000, &n);
  a.integer({"--seed"}, "seed of the questions (default 1)", 0, 1 << 30, &seed);
  a.integer({"--show"}, "examples printed per row (default 3)", 0, 1000, &show);
  bool dump = false;
  a.flag({"--dump"}, "print the task's questions as an eval set (JSONL) instead of running them",
         &dump);
  a.text({"--device"}, "auto | cpu | cuda", &device);
  a.flag({"--help", "-h"}, "show this help", &help);
  const std::string usage =
      "usage: vexprobe eval [--task arith|units|weekday|FILE.jsonl] [--chat] [--experts FILE] [options]\n" +
      a.usage();
  if (absl::Status st = a.parse(argc - 1, argv + 1); !st.ok() || help) {
    if (!st.ok()) fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str());
    fprintf(help ? stdout : stderr, "%s", usage.c_str());
    return help ? 0 : 2;
  }
  const auto task_list = task_items(task, n, seed);
  if (!task_list.ok()) return fprintf(stderr, "vexprobe: %s\n", std::string(task_list.status().message()).c_str()), 2;
  const std::vector<EvalItem>& items = *task_list;
  if (dump) {
    for (const EvalItem& item : items) printf("%s\n", eval_set_line(item).c_str());
    return 0;
  }
  auto model = load_probe_model(&weights, experts);
  if (!model.ok()) return fprintf(stderr, "vexprobe: %s\n", model.status().ToString().c_str()), 1;
  auto results = run_eval(**model, items, chat, device, routing);
  if (!results.ok())
    return fprintf(stderr, "vexprobe: %s\n", results.status().ToString().c_str()), 1;
  const bool with = !(*model)->host_experts.empty();
  printf("%s, %s, greedy, %s\n\n| question | n | model exact |%s\n|---|---|---|%s\n",
         weights.c_str(), chat ? "chat" : "raw", with ? experts.c_str() : "no experts attached",
         with ? " with experts exact | expert answered |" : "", with ? "---|---|" : "");
  std::string examples;
  for (size_t i = 0; i < items.size();) {
    size_t j = i;
    int exact = 0, exact_with = 0, fired = 0;
    for (; j < items.size() && items[j].cell == items[i].cell; ++j) {
      const EvalResult& r = (*results)[j];
      exact += r.exact, exact_with += r.exact_with_experts, fired += r.fired;
      if (static_cast<int>(j - i) < show)
        absl::StrAppend(&examples, chat ? items[j].question : items[j].raw, " -> ",
                        (chat ? "" : items[j].raw), r.model, with ? " | with experts: " : "",
                        with ? (chat ? "" : items[j].raw) + r.with_experts : "", "  (exact: ",
                        items[j].want, ")\n");
    }
    const double m = j - i;
    printf("| %s | %d | %.0f %% |", items[i].cell.c_str(), static_cast<int>(m), 100 * exact / m);
    if (with) printf(" %.0f %% | %.0f %% |", 100 * exact_with / m, 100 * fired / m);
    printf("\n");
    i = j;
  }
  printf("\nexamples:\n%s", examples.c_str());
  return 0;
}

int run(int argc, char** argv) {
  Options o;
  Args a;
  a.text({"--weights", "-m"}, "checkpoint directory (default: the embedded demo model)",
         &o.weights);
  a.text({"--expert"}, "the builtin expert whose router row is learned", &o.expert);
  a.integer({"--layer"}, "the MoE layer the row is attached to", 0, 1 << 20, &o.layer);
  a.flag({"--sweep"}, "fit a row at every layer, report each, keep the best (held-out F1)",
         &o.sweep);
  a.integer({"--texts"}, "labelled texts to run (default 600; every 5th is held out)", 10,
            1 << 20, &o.texts);
  a.integer({"--seed"}, "seed of the text generator (default 1)", 0, 1 << 30, &o.seed);
  a.number({"--threshold"}, "routing weight the slot must reach (default 0.5)", 0, 1,
           &o.threshold);
  a.text({"--out", "-o"}, "sidecar to write (default EXPERT-lLAYER.safetensors)", &o.out);
  a.value({"--probe"}, "after training, show the row's routing weight at the end of this text "
          "(repeatable)",
          [&](const std::string& v) { return o.probes.push_back(v), absl::OkStatus(); });
  a.flag({"--help", "-h"}, "show this help", &o.help);
  const std::string usage =
      "usage: vexprobe train-router --expert NAME --layer L|--sweep [--weights DIR] [options]\n" +
      a.usage();
  if (argc >= 2 && std::string(argv[1]) == "eval") return eval(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "ablate") return ablate(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "topk") return topk(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "force") return force(argc, argv);
  for (const char* cmd : {"trace", "weights", "entropy", "taxonomy", "collab", "divergence",
                          "context-test", "router-probe"})
    if (argc >= 2 && std::string(argv[1]) == cmd) return routing(cmd, argc, argv);
  if (argc < 2 || std::string(argv[1]) != "train-router") {
    fprintf(stderr, "%s", usage.c_str());
    return 2;
  }
  if (absl::Status st = a.parse(argc - 1, argv + 1); !st.ok() || o.help) {
    if (!st.ok()) fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str());
    fprintf(o.help ? stdout : stderr, "%s", usage.c_str());
    return o.help ? 0 : 2;
  }
  if (o.expert.empty() || (o.layer < 0) == !o.sweep) {
    fprintf(stderr, "vexprobe: train-router needs --expert and one of --layer, --sweep\n%s",
            usage.c_str());
    return 2;
  }
  return train_router(o);
}

}  // namespace
}  // namespace vex

int main(int argc, char** argv) { return vex::run(argc, argv); }
