// vexprobe: look inside the routing.
//   vexprobe train-router --expert calculator --layer 2 [--weights DIR] [--out FILE]
// learns the router row of a virtual expert (DESIGN.md §5): runs labelled texts through the CPU
// engine, collects the normed MoE inputs at the layer, fits a logistic regression (positive: the
// expert answers the text up to that token), scales the row so that it competes with the neural
// rows in the model's own top-k, reports precision and recall of the routing decision on
// held-out texts, and writes the sidecar a manifest names.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>

#include "experts/expert.h"
#include "kernels/cpu/router.h"
#include "loader/safetensors_writer.h"
#include "runtime/forward_cpu.h"
#include "runtime/model.h"
#include "tools/args.h"
#include "tools/vexprobe/prompts.h"
#include "tools/vexrun/demo.h"

namespace vex {
namespace {

struct Options {
  std::string command, weights, expert, out;
  std::vector<std::string> probes;
  int layer = -1, texts = 600;
  int seed = 1;
  float threshold = 0.5f;
  bool help = false;
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

// The normed MoE input and the router logits at `layer` for every position of `ids`.
absl::StatusOr<std::vector<Sample>> layer_samples(const Model& m, std::span<const int32_t> ids,
                                                  int layer) {
  const int D = m.config().d_model, S = m.weights.layers[layer].n_slots();
  CpuEngine engine(m.config(), m.weights, static_cast<int>(ids.size()));
  std::vector<Sample> out;
  engine.set_moe_observer([&](const CpuEngine::MoeEvent& ev) {
    if (ev.layer != layer) return;
    out.push_back({std::vector<float>(ev.xn, ev.xn + D),
                   std::vector<float>(ev.router_logits, ev.router_logits + S), false, false});
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

int train_router(const Options& o) {
  std::string dir = o.weights;
  if (dir.empty()) {
    auto demo = demo_model_dir();
    if (!demo.ok()) return fprintf(stderr, "vexprobe: %s\n", demo.status().ToString().c_str()), 1;
    dir = *demo;
  }
  auto model = load_model(dir);
  if (!model.ok()) return fprintf(stderr, "vexprobe: %s\n", model.status().ToString().c_str()), 1;
  const Model& m = **model;
  const Config& c = m.config();
  auto tok = m.require_tokenizer();
  if (!tok.ok()) return fprintf(stderr, "vexprobe: %s\n", tok.status().ToString().c_str()), 1;
  if (o.layer < 0 || o.layer >= c.n_layers)
    return fprintf(stderr, "vexprobe: --layer %d is not a layer of this model [0, %d)\n", o.layer,
                   c.n_layers),
           2;
  ExpertRegistry registry;
  const HostExpert* expert = registry.find(o.expert);
  if (!expert)
    return fprintf(stderr, "vexprobe: --expert %s is not a builtin expert\n", o.expert.c_str()), 2;
  auto texts = training_texts(o.expert, o.texts, static_cast<uint64_t>(o.seed));
  if (!texts.ok()) return fprintf(stderr, "vexprobe: %s\n", texts.status().ToString().c_str()), 2;

  // Hidden states and labels at every position of every text.
  const int D = c.d_model;
  std::vector<Sample> samples;
  for (size_t ti = 0; ti < texts->size(); ++ti) {
    const std::vector<int32_t> ids = (*tok)->encode((*texts)[ti], false);
    auto got = layer_samples(m, ids, o.layer);
    if (!got.ok()) return fprintf(stderr, "vexprobe: %s\n", got.status().ToString().c_str()), 1;
    for (size_t i = 0; i < ids.size(); ++i) {
      Sample& s = (*got)[i];
      s.positive = expert->answer((*tok)->decode(std::span(ids).first(i + 1))).has_value();
      s.held_out = ti % 5 == 0;
      samples.push_back(std::move(s));
    }
  }
  std::vector<const Sample*> train, test;
  for (const Sample& s : samples) (s.held_out ? test : train).push_back(&s);
  auto [w, b] = fit(train, D);

  // Calibrate the row against the neural rows it competes with: a power-of-two scale and a
  // bias shift (the class weights favour recall), chosen for the best F1 of the routing
  // decision on the training texts.
  double shift = 0;
  auto logit = [&](const Sample& s, double a) {
    double z = b + shift;
    for (int i = 0; i < D; ++i) z += w[i] * s.x[i];
    return a * z;
  };
  double best_a = 1, best_shift = 0, best_f1 = -1;
  for (double a = 1; a <= 256; a *= 2)
    for (shift = -6; shift <= 2; shift += 0.5) {
      Counts cnt;
      for (const Sample* s : train)
        cnt.add(fires(*s, logit(*s, a), c.n_experts_active, o.threshold), s->positive);
      if (cnt.f1() > best_f1 + 1e-9) best_f1 = cnt.f1(), best_a = a, best_shift = shift;
    }
  shift = best_shift;
  b += shift, shift = 0;
  Counts lr_test, route_train, route_test;
  for (const Sample* s : train)
    route_train.add(fires(*s, logit(*s, best_a), c.n_experts_active, o.threshold), s->positive);
  for (const Sample* s : test) {
    lr_test.add(logit(*s, 1) - best_shift > 0, s->positive);
    route_test.add(fires(*s, logit(*s, best_a), c.n_experts_active, o.threshold), s->positive);
  }
  printf("expert %s, layer %d: %zu positions (%d positive) from %d texts; held out: every 5th "
         "text (%zu positions, %d positive)\n",
         o.expert.c_str(), o.layer, samples.size(), route_train.tp + route_train.fn +
         route_test.tp + route_test.fn, o.texts, test.size(), route_test.tp + route_test.fn);
  printf("logistic regression, held out:  precision %.3f  recall %.3f\n", lr_test.precision(),
         lr_test.recall());
  printf("routing (top-%d, threshold %.2f, row scale %g, bias shift %g), train: precision %.3f  "
         "recall %.3f\n",
         c.n_experts_active, o.threshold, best_a, best_shift, route_train.precision(),
         route_train.recall());
  printf("routing, held out:              precision %.3f  recall %.3f  (tp %d fp %d fn %d)\n",
         route_test.precision(), route_test.recall(), route_test.tp, route_test.fp, route_test.fn);

  // The routing weight the learned row gets at the last position of each probe text.
  for (const std::string& text : o.probes) {
    auto got = layer_samples(m, (*tok)->encode(text, false), o.layer);
    if (!got.ok() || got->empty()) continue;
    const Sample& s = got->back();
    std::vector<float> logits = s.router;
    logits.push_back(static_cast<float>(logit(s, best_a)));
    int idx[16];
    float wt[16];
    router_topk_softmax(logits.data(), static_cast<int>(logits.size()), c.n_experts_active, idx,
                        wt);
    float weight = 0;
    for (int j = 0; j < c.n_experts_active; ++j)
      if (idx[j] == static_cast<int>(s.router.size())) weight = wt[j];
    printf("probe \"%s\": routing weight %.3f (%s); the expert %s\n", text.c_str(), weight,
           weight >= o.threshold ? "fires" : "silent",
           expert->answer(text) ? "answers" : "declines");
  }
  const std::string out =
      o.out.empty() ? absl::StrCat(o.expert, "-l", o.layer, ".safetensors") : o.out;
  std::vector<float> row(D);
  for (int i = 0; i < D; ++i) row[i] = static_cast<float>(best_a * w[i]);
  const float bias = static_cast<float>(best_a * b);
  absl::Status st = write_safetensors(
      out, {{"weight", DType::kF32, {1, D}}, {"bias", DType::kF32, {1}}}, {row.data(), &bias},
      {{"expert", o.expert},
       {"layer", std::to_string(o.layer)},
       {"held_out_precision", absl::StrFormat("%.4f", route_test.precision())},
       {"held_out_recall", absl::StrFormat("%.4f", route_test.recall())}});
  if (!st.ok()) return fprintf(stderr, "vexprobe: %s\n", st.ToString().c_str()), 1;
  printf("wrote %s; attach it with:\n\n[[virtual]]\nname = \"%s\"\nkind = \"host\"\nlayers = "
         "[%d]\nrouter = \"%s\"\nthreshold = %.2f\n",
         out.c_str(), o.expert.c_str(), o.layer,
         std::filesystem::path(out).filename().c_str(), o.threshold);
  return 0;
}

int run(int argc, char** argv) {
  Options o;
  Args a;
  a.text({"--weights", "-m"}, "checkpoint directory (default: the embedded demo model)",
         &o.weights);
  a.text({"--expert"}, "the builtin expert whose router row is learned", &o.expert);
  a.integer({"--layer"}, "the MoE layer the row is attached to", 0, 1 << 20, &o.layer);
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
      "usage: vexprobe train-router --expert NAME --layer L [--weights DIR] [options]\n" +
      a.usage();
  if (argc < 2 || std::string(argv[1]) != "train-router") {
    fprintf(stderr, "%s", usage.c_str());
    return 2;
  }
  if (absl::Status st = a.parse(argc - 1, argv + 1); !st.ok() || o.help) {
    if (!st.ok()) fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str());
    fprintf(o.help ? stdout : stderr, "%s", usage.c_str());
    return o.help ? 0 : 2;
  }
  if (o.expert.empty() || o.layer < 0) {
    fprintf(stderr, "vexprobe: train-router needs --expert and --layer\n%s", usage.c_str());
    return 2;
  }
  return train_router(o);
}

}  // namespace
}  // namespace vex

int main(int argc, char** argv) { return vex::run(argc, argv); }
