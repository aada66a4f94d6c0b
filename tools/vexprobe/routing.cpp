// vexprobe trace | weights | entropy | taxonomy: what the routers choose, captured from the
// engine (Engine::set_routing_observer) over one prompt (-p) or a file of prompts, one per line
// (-f), raw text or rendered as a chat's user message (--chat), with routing overrides
// (--ablate, --topk, --force) and a manifest (--experts) applied as the runtime applies them.
//   trace     the chosen slots and weights per token and layer
//   weights   the full router distribution per token at one layer (softmax over every slot's
//             logit), the chosen slots marked
//   entropy   per layer: the mean entropy of that distribution (nats, and as a share of ln S),
//             the mean top-1 probability, and the top-1 weight among the k chosen
//   taxonomy  per expert at a layer (or every layer): tokens taken, share, mean weight, the token
//             contexts it takes (sequence start, after a number, word, operator, punctuation,
//             space or newline), unused experts, concentration (top-3 share, Gini)
//   collab    pairs of experts chosen together for a token at a layer: counts and lift
//             (P(a and b) / (P(a) P(b)))
//   divergence  per layer, the Jensen-Shannon divergence (nats) between the mean router
//             distributions of two prompt sets (-f A --vs B)
//   context-test  the routing of each prompt's last token: one token in many contexts
//   router-probe  per layer, how many of the k experts the token embedding alone would get
//             (the layer's norm and router applied to it) agree with the full residual's, and
//             the norm of what the layers added to the embedding (relative to it)
// Text tables by default, --json for scripts.
#include "tools/vexprobe/routing.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/dtype.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/router.h"
#include "runtime/harmony.h"
#include "runtime/model.h"
#include "tools/args.h"
#include "tools/vexprobe/eval.h"
#include "tools/vexprobe/svg.h"

namespace vex {
namespace {

// One token's routing at one layer, copied out of the observer's event.
struct Route {
  int layer, pos;
  std::vector<float> logits;  // every slot's
  std::vector<int> slots;     // chosen
  std::vector<float> weights;
  double added = 0;           // |residual - embedding| / |embedding| (router-probe)
  int agree = 0;              // chosen slots the embedding alone would also get (router-probe)
};

// The context a token is read in: what precedes it.
const char* kContexts[] = {"start", "after number", "after word", "after operator",
                           "after punctuation", "after space"};
int context_of(const Tokenizer& tok, std::span<const int32_t> ids, int pos) {
  if (pos == 0) return 0;
  const std::string& prev = tok.token_bytes(ids[pos - 1]);
  if (prev.empty()) return 4;
  const unsigned char last = prev.back();
  if (std::isdigit(last)) return 1;
  if (std::isalpha(last) || last >= 0x80) return 2;
  if (std::string_view("+-*/=^%<>&|").find(static_cast<char>(last)) != std::string_view::npos) return 3;
  if (std::isspace(last)) return 5;
  return 4;
}

double gini(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  double sum = 0, weighted = 0;
  const double n = static_cast<double>(x.size());
  for (size_t i = 0; i < x.size(); ++i) sum += x[i], weighted += (i + 1) * x[i];
  return sum == 0 ? 0 : (2 * weighted) / (n * sum) - (n + 1) / n;
}

// The softmax over every slot's logit (masked slots: 0).
std::vector<double> distribution(const std::vector<float>& logits) {
  const double m = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double z = 0;
  for (size_t e = 0; e < logits.size(); ++e) z += p[e] = std::isfinite(logits[e]) ? std::exp(logits[e] - m) : 0;
  for (double& v : p) v /= z;
  return p;
}

std::string shown(const Tokenizer& tok, int32_t id) {
  return nlohmann::json(sanitize_utf8(tok.token_bytes(id))).dump();
}

// What a routing run captured (every prompt's tokens and routes) and how to report it: one
// method per subcommand, each printing its table or JSON (and picture); returns the exit status.
struct Report {
  const Model& m;
  const Tokenizer& tok;
  std::string cmd, file, versus, svg;
  std::vector<std::string> prompts;
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::vector<Route>> routes;
  size_t first_set = 0;  // divergence: prompts [0, first_set) are set A
  int layer = -1, top = 10, L = 0;
  bool json = false;
  bool in_layer(int l) const { return layer < 0 || l == layer; }
  int trace();  // and weights
  int entropy();
  int taxonomy();
  int collab();
  int divergence();
  int context_test();
  int router_probe();
};

int Report::trace() {
  nlohmann::json out = nlohmann::json::array();
  for (size_t p = 0; p < routes.size(); ++p) {
    if (!json) printf("%s%s\n", p ? "\n" : "", nlohmann::json(prompts[p]).dump().c_str());
    // Routes come layer by layer within each chunk of positions: ordered by (pos, layer).
    std::vector<Route>& r = routes[p];
    std::stable_sort(r.begin(), r.end(), [](const Route& x, const Route& y) {
      return x.pos != y.pos ? x.pos < y.pos : x.layer < y.layer;
    });
    int pos = -1;
    std::string line;
    for (const Route& x : r) {
      if (!in_layer(x.layer)) continue;
      if (x.pos != pos) {
        if (!line.empty() && !json) printf("%s\n", line.c_str());
        pos = x.pos;
        line = absl::StrFormat("%4d %-14s", pos, shown(tok, ids[p][pos]));
      }
      if (cmd == "trace") {
        absl::StrAppend(&line, " | L", x.layer, ":");
        for (size_t j = 0; j < x.slots.size(); ++j)
          absl::StrAppendFormat(&line, " %d %.2f", x.slots[j], x.weights[j]);
        if (json)
          out.push_back({{"prompt", p}, {"pos", x.pos}, {"token", ids[p][x.pos]}, {"layer", x.layer},
                         {"slots", x.slots}, {"weights", x.weights}});
      } else {
        const std::vector<double> d = distribution(x.logits);
        for (size_t e = 0; e < d.size(); ++e) {
          const bool chosen = std::find(x.slots.begin(), x.slots.end(), static_cast<int>(e)) != x.slots.end();
          absl::StrAppendFormat(&line, " %.2f%s", d[e], chosen ? "*" : " ");
        }
        if (json)
          out.push_back({{"prompt", p}, {"pos", x.pos}, {"token", ids[p][x.pos]}, {"layer", x.layer},
                         {"probabilities", d}, {"slots", x.slots}});
      }
    }
    if (!line.empty() && !json) printf("%s\n", line.c_str());
  }
  if (json) printf("%s\n", out.dump().c_str());
  if (!json && cmd == "weights")
    printf("(softmax over every slot's router logit at layer %d; * = chosen)\n", layer);
  if (!svg.empty() && !routes.empty()) {
    // The first prompt: tokens down; layers across (trace: the top-1 slot written, shaded by
    // its weight) or slots across (weights: the probabilities, the chosen outlined).
    Heatmap h;
    h.row_axis = "token";
    int cols = 0;
    for (const Route& x : routes[0])
      if (in_layer(x.layer)) cols = std::max(cols, cmd == "trace" ? x.layer + 1 : static_cast<int>(x.logits.size()));
    const int P = static_cast<int>(ids[0].size());
    for (int i = 0; i < P; ++i) h.rows.push_back(absl::StrCat(i, " ", sanitize_utf8(tok.token_bytes(ids[0][i]))));
    for (int c = 0; c < cols; ++c) h.cols.push_back(absl::StrCat(cmd == "trace" ? "L" : "", c));
    h.values.assign(size_t(P) * cols, 0);
    if (cmd == "trace") {
      h.title = absl::StrCat("top-1 expert per token and layer: ", prompts[0]);
      h.col_axis = "layer", h.legend = "top-1 routing weight (the slot id written)";
      h.text.assign(h.values.size(), "");
    } else {
      h.title = absl::StrCat("router distribution at layer ", layer, ": ", prompts[0]);
      h.col_axis = "slot", h.legend = "probability (softmax over every slot; chosen outlined)";
      h.marked.assign(h.values.size(), 0);
    }
    for (const Route& x : routes[0]) {
      if (!in_layer(x.layer)) continue;
      const size_t row = size_t(x.pos) * cols;
      if (cmd == "trace") {
        h.values[row + x.layer] = x.weights[0];
        h.text[row + x.layer] = std::to_string(x.slots[0]);
      } else {
        const std::vector<double> d = distribution(x.logits);
        for (size_t e = 0; e < d.size(); ++e) h.values[row + e] = d[e];
        for (int e : x.slots) h.marked[row + e] = 1;
      }
    }
    if (absl::Status st = write_heatmap(h, svg); !st.ok())
      return fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str()), 1;
  }
  return 0;

}

int Report::entropy() {
  std::vector<double> h(L), top1(L), top_w(L);
  std::vector<int> n(L);
  for (const auto& r : routes)
    for (const Route& x : r) {
      const std::vector<double> d = distribution(x.logits);
      double e = 0;
      for (double v : d)
        if (v > 0) e -= v * std::log(v);
      h[x.layer] += e, top1[x.layer] += *std::max_element(d.begin(), d.end());
      top_w[x.layer] += x.weights[0], ++n[x.layer];
    }
  nlohmann::json out = nlohmann::json::array();
  if (!json)
    printf("%zu prompts, %d tokens\n| layer | entropy (nats) | / ln S | top-1 probability | top-1 weight among the k chosen |\n|---|---|---|---|---|\n",
           routes.size(), n.empty() ? 0 : n[0]);
  for (int l = 0; l < L; ++l) {
    if (!in_layer(l) || n[l] == 0) continue;
    const double s = static_cast<double>(m.weights.layers[l].n_slots());
    const double he = h[l] / n[l], t1 = top1[l] / n[l], tw = top_w[l] / n[l];
    if (json)
      out.push_back({{"layer", l}, {"entropy", he}, {"entropy_share", he / std::log(s)},
                     {"top1_probability", t1}, {"top1_weight", tw}, {"tokens", n[l]}});
    else
      printf("| %d | %.3f | %.3f | %.3f | %.3f |\n", l, he, he / std::log(s), t1, tw);
  }
  if (json) printf("%s\n", out.dump().c_str());
  if (!svg.empty() && !routes.empty()) {  // the first prompt's entropy per token and layer
    Heatmap hm;
    hm.title = absl::StrCat("routing entropy per token and layer: ", prompts[0]);
    hm.row_axis = "token", hm.col_axis = "layer";
    hm.legend = "entropy of the router distribution (nats; ln S when uniform)";
    const int P = static_cast<int>(ids[0].size());
    for (int i = 0; i < P; ++i)
      hm.rows.push_back(absl::StrCat(i, " ", sanitize_utf8(tok.token_bytes(ids[0][i]))));
    for (int l = 0; l < L; ++l) hm.cols.push_back(absl::StrCat("L", l));
    hm.values.assign(size_t(P) * L, 0);
    hm.text.assign(hm.values.size(), "");
    for (const Route& x : routes[0]) {
      if (!in_layer(x.layer)) continue;
      double e = 0;
      for (double v : distribution(x.logits))
        if (v > 0) e -= v * std::log(v);
      hm.values[size_t(x.pos) * L + x.layer] = e;
      hm.text[size_t(x.pos) * L + x.layer] = absl::StrFormat("%.1f", e);
    }
    if (absl::Status st = write_heatmap(hm, svg); !st.ok())
      return fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str()), 1;
  }
  return 0;

}

int Report::taxonomy() {
  nlohmann::json out = nlohmann::json::array();
  Heatmap h;
  h.title = absl::StrFormat("expert usage per layer: %zu prompts", routes.size());
  h.row_axis = "layer", h.col_axis = "slot";
  h.legend = "share of the layer's expert choices (percent written)";
  int max_slots = 0;
  for (const LayerWeights& lw : m.weights.layers) max_slots = std::max(max_slots, lw.n_slots());
  for (int e = 0; e < max_slots; ++e) h.cols.push_back(std::to_string(e));
  for (int l = 0; l < L; ++l) {
    if (!in_layer(l)) continue;
    const int S = m.weights.layers[l].n_slots();
    std::vector<double> count(S), weight(S);
    std::vector<std::array<int, 6>> ctx(S, std::array<int, 6>{});
    int tokens = 0;
    for (size_t p = 0; p < routes.size(); ++p)
      for (const Route& x : routes[p]) {
        if (x.layer != l) continue;
        ++tokens;
        const int c = context_of(tok, ids[p], x.pos);
        for (size_t j = 0; j < x.slots.size(); ++j) {
          count[x.slots[j]] += 1, weight[x.slots[j]] += x.weights[j];
          ctx[x.slots[j]][c]++;
        }
      }
    double total = 0;
    for (double c : count) total += c;
    std::vector<double> sorted = count;
    std::sort(sorted.rbegin(), sorted.rend());
    const double top3 = total > 0 ? (sorted[0] + (S > 1 ? sorted[1] : 0) + (S > 2 ? sorted[2] : 0)) / total : 0;
    int unused = 0;
    for (double c : count) unused += c == 0;
    const double g = gini(count);
    h.rows.push_back(absl::StrCat("L", l));
    for (int e = 0; e < max_slots; ++e) {
      const double share = e < S && total > 0 ? count[e] / total : 0;
      h.values.push_back(share);
      h.text.push_back(e < S ? absl::StrFormat("%.0f", 100 * share) : "");
    }
    nlohmann::json experts_json = nlohmann::json::array();
    if (!json)
      printf("%slayer %d: %d tokens, %d slots, %d unused, top-3 share %.3f, Gini %.3f\n"
             "| slot | tokens | share | mean weight | contexts (share of its tokens) |\n|---|---|---|---|---|\n",
             l ? "\n" : "", l, tokens, S, unused, top3, g);
    for (int e = 0; e < S; ++e) {
      std::vector<std::pair<int, int>> by;  // (count, context)
      for (int c = 0; c < 6; ++c)
        if (ctx[e][c]) by.push_back({ctx[e][c], c});
      std::sort(by.rbegin(), by.rend());
      std::string contexts;
      nlohmann::json cj = nlohmann::json::object();
      for (const auto& [k, c] : by) {
        absl::StrAppendFormat(&contexts, "%s%s %.0f%%", contexts.empty() ? "" : ", ", kContexts[c],
                              100.0 * k / count[e]);
        cj[kContexts[c]] = k;
      }
      if (json) {
        experts_json.push_back({{"slot", e}, {"tokens", count[e]}, {"share", total ? count[e] / total : 0},
                                {"mean_weight", count[e] ? weight[e] / count[e] : 0}, {"contexts", cj}});
      } else {
        printf("| %d | %.0f | %.3f | %.3f | %s |\n", e, count[e], total ? count[e] / total : 0,
               count[e] ? weight[e] / count[e] : 0, count[e] ? contexts.c_str() : "unused");
      }
    }
    if (json)
      out.push_back({{"layer", l}, {"tokens", tokens}, {"unused", unused}, {"top3_share", top3},
                     {"gini", g}, {"experts", experts_json}});
  }
  if (json) printf("%s\n", out.dump().c_str());
  if (!svg.empty())
    if (absl::Status st = write_heatmap(h, svg); !st.ok())
      return fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str()), 1;
  return 0;

}

int Report::collab() {
  nlohmann::json out = nlohmann::json::array();
  for (int l = 0; l < L; ++l) {
    if (!in_layer(l)) continue;
    const int S = m.weights.layers[l].n_slots();
    std::vector<double> single(S);
    std::map<std::pair<int, int>, double> pairs;
    int tokens = 0;
    for (const auto& r : routes)
      for (const Route& x : r) {
        if (x.layer != l) continue;
        ++tokens;
        for (size_t i = 0; i < x.slots.size(); ++i) {
          single[x.slots[i]] += 1;
          for (size_t j = i + 1; j < x.slots.size(); ++j)
            pairs[{std::min(x.slots[i], x.slots[j]), std::max(x.slots[i], x.slots[j])}] += 1;
        }
      }
    std::vector<std::pair<double, std::pair<int, int>>> by;
    for (const auto& [p, c] : pairs) by.push_back({c, p});
    std::sort(by.begin(), by.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    if (!json) printf("%slayer %d: %d tokens\n| pair | together | lift |\n|---|---|---|\n", l ? "\n" : "", l, tokens);
    nlohmann::json lj = nlohmann::json::array();
    for (size_t i = 0; i < by.size() && static_cast<int>(i) < top; ++i) {
      const auto [c, p] = by[i];
      const double lift = c * tokens / (single[p.first] * single[p.second]);
      if (json) lj.push_back({{"a", p.first}, {"b", p.second}, {"together", c}, {"lift", lift}});
      else printf("| %d + %d | %.0f | %.2f |\n", p.first, p.second, c, lift);
    }
    if (json) out.push_back({{"layer", l}, {"tokens", tokens}, {"pairs", lj}});
  }
  if (json) printf("%s\n", out.dump().c_str());
  return 0;

}

int Report::divergence() {
  // Mean router distribution of each set, per layer; JS divergence between them.
  nlohmann::json out = nlohmann::json::array();
  if (!json) printf("A: %s (%zu prompts), B: %s (%zu prompts)\n| layer | JS divergence (nats) |\n|---|---|\n",
                    file.c_str(), first_set, versus.c_str(), prompts.size() - first_set);
  for (int l = 0; l < L; ++l) {
    if (!in_layer(l)) continue;
    const int S = m.weights.layers[l].n_slots();
    std::vector<double> pa(S), pb(S);
    double na = 0, nb = 0;
    for (size_t p = 0; p < routes.size(); ++p)
      for (const Route& x : routes[p]) {
        if (x.layer != l) continue;
        const std::vector<double> d = distribution(x.logits);
        auto& acc = p < first_set ? pa : pb;
        (p < first_set ? na : nb) += 1;
        for (int e = 0; e < S; ++e) acc[e] += d[e];
      }
    double js = 0;
    for (int e = 0; e < S; ++e) {
      const double a_ = pa[e] / na, b_ = pb[e] / nb, mid = (a_ + b_) / 2;
      if (a_ > 0) js += 0.5 * a_ * std::log(a_ / mid);
      if (b_ > 0) js += 0.5 * b_ * std::log(b_ / mid);
    }
    if (json) out.push_back({{"layer", l}, {"js", js}});
    else printf("| %d | %.4f |\n", l, js);
  }
  if (json) printf("%s\n", out.dump().c_str());
  return 0;

}

int Report::context_test() {
  nlohmann::json out = nlohmann::json::array();
  for (size_t p = 0; p < routes.size(); ++p) {
    const int last = static_cast<int>(ids[p].size()) - 1;
    std::string line = absl::StrFormat("%-40s %s", nlohmann::json(prompts[p]).dump(), shown(tok, ids[p][last]));
    for (const Route& x : routes[p]) {
      if (x.pos != last || !in_layer(x.layer)) continue;
      absl::StrAppend(&line, " | L", x.layer, ":");
      for (size_t j = 0; j < x.slots.size(); ++j) absl::StrAppendFormat(&line, " %d %.2f", x.slots[j], x.weights[j]);
      if (json)
        out.push_back({{"prompt", p}, {"token", ids[p][last]}, {"layer", x.layer}, {"slots", x.slots},
                       {"weights", x.weights}});
    }
    if (!json) printf("%s\n", line.c_str());
  }
  if (json) printf("%s\n", out.dump().c_str());
  return 0;

}

int Report::router_probe() {
  std::vector<double> agree(L), added(L);
  std::vector<int> n(L);
  int k = 0;
  for (const auto& r : routes)
    for (const Route& x : r) agree[x.layer] += x.agree, added[x.layer] += x.added, ++n[x.layer], k = static_cast<int>(x.slots.size());
  nlohmann::json out = nlohmann::json::array();
  if (!json)
    printf("| layer | experts the embedding alone would also get (of %d) | |residual - embedding| / |embedding| |\n|---|---|---|\n", k);
  for (int l = 0; l < L; ++l) {
    if (!in_layer(l) || n[l] == 0) continue;
    if (json) out.push_back({{"layer", l}, {"agree", agree[l] / n[l]}, {"k", k}, {"added", added[l] / n[l]}});
    else printf("| %d | %.2f | %.2f |\n", l, agree[l] / n[l], added[l] / n[l]);
  }
  if (json) printf("%s\n", out.dump().c_str());
  return 0;

}

}  // namespace

int routing(const std::string& cmd, int argc, char** argv) {
  std::string weights, experts, prompt, file, versus, device = "auto";
  int layer = -1, top = 10;
  bool chat = false, json = false, help = false;
  RoutingOverride over;
  Args a;
  a.text({"--weights", "-m"}, "checkpoint directory (default: the embedded demo model)", &weights);
  a.text({"--experts"}, "expert manifest (pruning, virtual experts) applied first", &experts);
  a.text({"-p", "--prompt"}, "one prompt", &prompt);
  a.text({"-f", "--file"}, "prompts, one per line", &file);
  a.flag({"--chat"}, "render each prompt as a chat's user message (Harmony), not raw text", &chat);
  a.integer({"--layer"}, "one layer (weights: required; taxonomy: default every layer)", 0, 1 << 20,
            &layer);
  add_routing_flags(a, &over);
  a.text({"--vs"}, "divergence: the second prompt file", &versus);
  a.integer({"--top"}, "collab: pairs shown per layer (default 10)", 1, 1 << 20, &top);
  a.text({"--device"}, "auto | cpu | cuda (default auto)", &device);
  a.flag({"--json"}, "JSON instead of text tables", &json);
  std::string svg;
  a.text({"--svg"}, "trace, weights, entropy, taxonomy: also draw a heat map to this SVG file "
         "(trace, weights, entropy: the first prompt, per token)", &svg);
  a.flag({"--help", "-h"}, "show this help", &help);
  const std::string usage = absl::StrFormat(
      "usage: vexprobe %s (-p PROMPT | -f FILE) [--layer L] [--chat] [--json] [options]\n%s",
      cmd, a.usage());
  if (absl::Status st = a.parse(argc - 1, argv + 1); !st.ok() || help) {
    if (!st.ok()) fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str());
    fprintf(help ? stdout : stderr, "%s", usage.c_str());
    return help ? 0 : 2;
  }
  if (prompt.empty() == file.empty())
    return fprintf(stderr, "vexprobe: %s needs one of -p PROMPT, -f FILE\n%s", cmd.c_str(), usage.c_str()), 2;
  if (cmd == "weights" && layer < 0)
    return fprintf(stderr, "vexprobe: weights needs --layer\n"), 2;
  if (!svg.empty() && cmd != "trace" && cmd != "weights" && cmd != "taxonomy" && cmd != "entropy")
    return fprintf(stderr, "vexprobe: --svg is for trace, weights, entropy and taxonomy\n"), 2;
  if ((cmd == "divergence") == versus.empty())
    return fprintf(stderr, "vexprobe: --vs FILE is for divergence (and divergence needs it)\n"), 2;
  auto dev = parse_device(device);
  if (!dev.ok()) return fprintf(stderr, "vexprobe: %s\n", std::string(dev.status().message()).c_str()), 2;
  std::vector<std::string> prompts;
  size_t first_set = 0, kept_first = 0;  // divergence: prompts [0, first_set) are set A
  auto read_prompts = [&](const std::string& path) -> bool {
    std::ifstream in(path);
    if (!in) return fprintf(stderr, "vexprobe: %s: cannot be read\n", path.c_str()), false;
    const size_t before = prompts.size();
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) prompts.push_back(line);
    if (prompts.size() == before) return fprintf(stderr, "vexprobe: %s: no prompts\n", path.c_str()), false;
    return true;
  };
  if (!file.empty()) {
    if (!read_prompts(file)) return 1;
  } else {
    prompts.push_back(prompt);
  }
  first_set = prompts.size();
  if (!versus.empty() && !read_prompts(versus)) return 1;
  auto model = load_probe_model(&weights, experts);
  if (!model.ok()) return fprintf(stderr, "vexprobe: %s\n", std::string(model.status().message()).c_str()), 1;
  const Model& m = **model;
  auto tok = m.require_tokenizer();
  if (!tok.ok()) return fprintf(stderr, "vexprobe: %s\n", std::string(tok.status().message()).c_str()), 1;
  const int L = m.config().n_layers;
  if (layer >= L) return fprintf(stderr, "vexprobe: --layer %d: the model has layers 0 .. %d\n", layer, L - 1), 2;

  // Every prompt through one engine (rewound between prompts); the routes of each kept with
  // its tokens.
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::vector<Route>> routes;
  std::vector<std::string> kept;  // the prompts that tokenize to something
  size_t longest = 1;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int32_t> t;
    if (chat) {
      harmony::Conversation conv;
      conv.messages.push_back({.role = "user", .content = prompts[i]});
      t = harmony::render(**tok, conv, /*for_completion=*/true).tokens;
    } else {
      t = (*tok)->encode(prompts[i], /*allow_special=*/true);
    }
    if (t.empty()) continue;
    if (i < first_set) ++kept_first;
    longest = std::max(longest, t.size());
    ids.push_back(std::move(t));
    kept.push_back(prompts[i]);
  }
  prompts = std::move(kept), first_set = kept_first;
  // The GPU runs many prompts per pass, each its own sequence (Engine::prefill); the CPU engine
  // holds one sequence and runs them one by one.
  constexpr int kBatch = 64;
  auto engine = make_engine(m, static_cast<int>(longest), *dev, kBatch);
  if (!engine.ok() && engine.status().code() == absl::StatusCode::kUnimplemented)
    engine = make_engine(m, static_cast<int>(longest), *dev);
  if (!engine.ok()) return fprintf(stderr, "vexprobe: %s\n", std::string(engine.status().message()).c_str()), 1;
  const int seqs = (*engine)->n_seqs();
  std::vector<size_t> prompt_of(seqs);  // the prompt each sequence runs
  const int D = m.config().d_model;
  std::vector<float> emb(D), en(D), el;
  absl::Status st = (*engine)->set_routing_observer([&](const RoutingEvent& ev) {
    std::vector<Route>* r = &routes[prompt_of[ev.seq]];
    const std::vector<int32_t>* t = &ids[prompt_of[ev.seq]];
    r->push_back({ev.layer, ev.pos, std::vector<float>(ev.router_logits, ev.router_logits + ev.n_slots),
                  std::vector<int>(ev.slots, ev.slots + ev.k), std::vector<float>(ev.weights, ev.weights + ev.k)});
    if (cmd != "router-probe") return;
    // The token's embedding through this layer's MoE norm and router: the routing it would
    // get if no layer had written to the residual.
    const LayerWeights& lw = m.weights.layers[ev.layer];
    const int32_t id = (*t)[ev.pos];
    double e2 = 0, d2 = 0;
    for (int i = 0; i < D; ++i) {
      emb[i] = bf16_to_f32(m.weights.embedding[static_cast<int64_t>(id) * D + i]);
      e2 += double(emb[i]) * emb[i], d2 += double(ev.residual[i] - emb[i]) * (ev.residual[i] - emb[i]);
    }
    rmsnorm(emb.data(), lw.mlp_norm, en.data(), 1, D, m.config().rms_eps);
    el.resize(ev.n_slots);
    linear_bf16(en.data(), lw.router_w, lw.router_b, el.data(), 1, D, ev.n_slots);
    for (int e = 0; e < ev.n_slots; ++e)
      if (!std::isfinite(ev.router_logits[e])) el[e] = -INFINITY;  // masked as the engine masked it
    int idx[16];
    float wt[16];
    router_topk_softmax(el.data(), ev.n_slots, ev.k, idx, wt);
    int agree = 0;
    for (int j = 0; j < ev.k; ++j)
      agree += std::find(ev.slots, ev.slots + ev.k, idx[j]) != ev.slots + ev.k;
    r->back().agree = agree, r->back().added = std::sqrt(d2 / std::max(e2, 1e-30));
  }, /*hidden=*/cmd == "router-probe");  // the residual is read by router-probe only
  if (st.ok()) st = (*engine)->set_routing_override(over);
  const absl::Time start = absl::Now();
  size_t tokens = 0;
  routes.resize(ids.size());
  std::vector<PrefillChunk> chunks;
  std::vector<DecodeChoice> chosen(seqs);
  for (size_t p = 0; p < ids.size() && st.ok();) {
    chunks.clear();
    for (int q = 0; q < seqs && p < ids.size(); ++q, ++p) {
      prompt_of[q] = p;
      tokens += ids[p].size();
      if (st.ok()) st = (*engine)->set_sequence(q);
      (*engine)->truncate(0);
      chunks.push_back({.seq = q, .tokens = ids[p], .host_logits = false});
    }
    if (!st.ok()) break;
    st = seqs == 1 ? (*engine)->forward(chunks[0].tokens, nullptr)
                   : (*engine)->prefill(chunks, nullptr, chosen.data());
  }
  if (!st.ok()) return fprintf(stderr, "vexprobe: %s\n", std::string(st.message()).c_str()), 1;
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  fprintf(stderr, "vexprobe: %zu prompts, %zu tokens through the %s engine in %.2f s\n", ids.size(),
          tokens, (*engine)->device(), secs);
  Report rep{m, **tok, cmd, file, versus, svg, std::move(prompts), std::move(ids), std::move(routes),
             first_set, layer, top, L, json};
  if (cmd == "trace" || cmd == "weights") return rep.trace();
  if (cmd == "entropy") return rep.entropy();
  if (cmd == "taxonomy") return rep.taxonomy();
  if (cmd == "collab") return rep.collab();
  if (cmd == "divergence") return rep.divergence();
  if (cmd == "context-test") return rep.context_test();
  if (cmd == "router-probe") return rep.router_probe();
  fprintf(stderr, "vexprobe: unknown subcommand '%s'\n", cmd.c_str());
  return 2;
}

}  // namespace vex
