// vexrun: chat with a model, complete raw text, or run token ids.
//   vexrun [--weights DIR] -p "What is 127 * 89?"      one chat turn, the answer streamed
//   vexrun [--weights DIR]                             interactive chat on a terminal
//   vexrun --weights DIR --raw -p "text"               plain completion, no chat format
//   vexrun --weights DIR --tokens 1,2,3 --logits l.npy the token-level interface
// Without --weights it runs the demo model committed in models/vex-demo (tools/vexrun/demo.h).
// The answer goes to stdout; everything else (progress, timings, errors) to stderr.
#include <unistd.h>

#include <editline/readline.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "kernels/cpu/parallel.h"
#include "loader/file.h"
#include "runtime/harmony.h"
#include "runtime/model.h"
#include "runtime/npy.h"
#include "runtime/perplexity.h"
#include "runtime/scheduler.h"
#include "runtime/session.h"
#include "tools/args.h"
#include "tools/vexrun/demo.h"

namespace vex {
namespace {

using Clock = std::chrono::steady_clock;
using Ms = std::chrono::duration<double, std::milli>;

struct Options {
  std::string weights, prompt, prompt_file, system, reasoning = "medium", date;
  std::string logits_path, device = "auto", experts;
  std::vector<int32_t> tokens;
  int max_tokens = -1, ctx = 0, threads = 0;
  SamplingParams sampling;
  bool seed_set = false, raw = false, show_analysis = false, json = false, tokenize = false;
  bool perplexity = false;
  RoutingOverride routing;  // --ablate, --topk, --force
  GpuFlags gpu;             // --gpus, --tp, --ep
  bool verbose = false, quiet = false, help = false, version = false, trace_experts = false, no_virtual = false;
  // Sampling flags given on the command line (they override generation_config.json).
  bool temp_set = false, top_k_set = false, top_p_set = false, min_p_set = false;
};

std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_at_prompt{false};  // interactive, waiting for a line: Ctrl-C exits (130)

int fail(const absl::Status& st) {
  fprintf(stderr, "vexrun: %s\n", std::string(st.message()).c_str());
  return 1;
}

void out(absl::string_view s) {
  fwrite(s.data(), 1, s.size(), stdout);
  fflush(stdout);
}

double per_second(int n, double ms) {
  return ms > 0 ? n / (ms / 1e3) : 0;
}

// The token-level interface of issue #2: runs ids, prints the last position's top 5, writes the
// logits of every position.
int run_tokens(const Model& model, const Options& o) {
  const Config& c = model.config();
  const int n = static_cast<int>(o.tokens.size());
  auto engine = make_engine(model, n, *parse_device(o.device), 1, o.gpu.split);
  if (!engine.ok()) return fail(engine.status());
  if (absl::Status st = (*engine)->set_routing_override(o.routing); !st.ok()) return fail(st);
  // Every position's logits only when they are written out: [n, vocab] floats can be tens of GB.
  const bool all = !o.logits_path.empty();
  std::vector<float> logits(static_cast<size_t>(all ? n : 1) * c.vocab_size);
  const auto t0 = Clock::now();
  if (absl::Status st = (*engine)->forward(o.tokens, logits.data(), /*last_only=*/!all); !st.ok())
    return fail(st);
  const double ms = Ms(Clock::now() - t0).count();
  const float* last = logits.data() + static_cast<size_t>(all ? n - 1 : 0) * c.vocab_size;
  std::vector<int> order(c.vocab_size);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + 5, order.end(),
                    [&](int a, int b) { return last[a] > last[b]; });
  // Ids with their logits, and the tokens' text (escaped, quoted) when there is a tokenizer.
  printf("position %d top-5:", n - 1);
  for (int i = 0; i < 5; ++i) {
    printf(" %d (%.4f)", order[i], last[order[i]]);
    if (model.tokenizer)
      printf(" %s", nlohmann::json(sanitize_utf8(model.tokenizer->token_bytes(order[i]))).dump().c_str());
  }
  printf("\n");
  if (!o.logits_path.empty()) {
    if (absl::Status st = write_npy_f32(o.logits_path, logits.data(), {n, c.vocab_size}); !st.ok())
      return fail(st);
  }
  if (o.verbose)
    fprintf(stderr, "vexrun: forward %d tokens in %.1f ms (%.1f tok/s)\n", n, ms,
            per_second(n, ms));
  return 0;
}

// --perplexity: the text's perplexity in chunks (runtime/perplexity.h), per chunk and overall.
int run_perplexity(const Model& model, const Tokenizer& tok, const Options& o) {
  const std::vector<int32_t> ids = tok.encode(o.prompt, /*allow_special=*/false);
  const int ctx = o.ctx ? o.ctx : std::min(512, model.config().max_position);
  auto engine = make_engine(model, ctx, *parse_device(o.device), 1, o.gpu.split);
  if (!engine.ok()) return fail(engine.status());
  if (o.no_virtual) {
    if (absl::Status st = (*engine)->set_virtual_experts(false); !st.ok()) return fail(st);
  }
  if (absl::Status st = (*engine)->set_routing_override(o.routing); !st.ok()) return fail(st);
  const auto t0 = Clock::now();
  auto r = measure_perplexity(**engine, ids, ctx, [&](int c, double ppl) {
    if (!o.quiet && !o.json) fprintf(stderr, "vexrun: chunk %d: %.4f\n", c + 1, ppl);
  });
  if (!r.ok()) return fail(r.status());
  const double ms = Ms(Clock::now() - t0).count();
  const std::string source = o.prompt_file.empty() ? "the prompt" : o.prompt_file;
  if (o.json) {
    nlohmann::json j = {{"text", source},          {"tokens", ids.size()},
                        {"ctx", ctx},              {"chunks", r->chunks},
                        {"mean", r->mean},         {"stderr", r->stderr_mean},
                        {"overall", r->overall},   {"scored", r->scored},
                        {"device", (*engine)->device()}, {"ms", ms}};
    out(j.dump() + "\n");
    return 0;
  }
  out(absl::StrFormat(
      "perplexity of %s: %d chunks of %d tokens (%d tokens; the second half of each chunk scored: "
      "%d tokens)\n",
      source, r->chunks.size(), ctx, ids.size(), r->scored));
  out(absl::StrFormat("mean of the chunks: %.4f +/- %.4f (standard error); over every scored token: %.4f\n",
                      r->mean, r->stderr_mean, r->overall));
  if (o.verbose)
    fprintf(stderr, "vexrun: %s engine, %.1f ms (%.1f tok/s)\n", (*engine)->device(), ms,
            per_second(static_cast<int>(r->chunks.size()) * ctx, ms));
  return 0;
}

// Why generation stopped, in words for people (--json keeps stop_reason_name's).
const char* why_stopped(StopReason r) {
  switch (r) {
    case StopReason::kStopToken:
      return "the model ended its answer";
    case StopReason::kMaxTokens:
      return "stopped at the token limit (-n)";
    case StopReason::kContextFull:
      return "stopped: the context is full (-c)";
    case StopReason::kCallback:
      return "stopped (Ctrl-C)";
    case StopReason::kCancelled:
      return "cancelled";
  }
  return "stopped";
}

// One chat turn or raw completion: generates, streams the answer, reports.
class Runner {
 public:
  Runner(const Model& m, const Tokenizer& tok, Scheduler& s, const Options& o, double load_ms,
         VirtualExperts* experts)
      : m_(m), tok_(tok), s_(s), o_(o), load_ms_(load_ms), experts_(experts),
        tty_err_(isatty(STDERR_FILENO)) {
    // Declines (the expert read nothing it could answer) are shown with -v only: a router row
    // that fires often would otherwise flood stderr.
    if (experts_ && o_.trace_experts)
      experts_->on_firing = [verbose = o_.verbose](const ExpertFiring& f) {
        if (!f.answered && !verbose) return;
        fprintf(stderr, "vexrun: expert %s fired at layer %d, position %d (weight %.3f): %s\n",
                f.expert.c_str(), f.layer, f.pos, f.weight,
                f.answered ? absl::StrCat(f.inputs, " -> ", f.output).c_str() : "declined");
      };
  }

  // Renders the conversation with the new user message, generates, and appends the reply.
  absl::Status chat_turn(harmony::Conversation& conv, const std::string& user) {
    conv.messages.push_back({.role = "user", .content = user});
    const auto prompt = harmony::render(tok_, conv, /*for_completion=*/true).tokens;
    harmony::StreamParser parser(tok_);
    // Experts write only inside a message's content, and read that message.
    if (experts_) experts_->read_message_content(parser);
    std::string shown_channel;  // channel of the text printed last (for --show-analysis)
    bool printed_final = false;
    // On a terminal, while the hidden analysis channel runs: "thinking... N tokens" on stderr,
    // cleared when the answer starts (colours and \r only where stderr is a terminal).
    const bool indicate = tty_err_ && !o_.show_analysis && !o_.json && !o_.quiet;
    int thinking = 0;
    auto end_thinking = [&] {
      if (thinking > 0) fprintf(stderr, "\r\033[K"), thinking = 0;
    };
    auto on_token = [&](int32_t t) {
      const std::string channel = parser.open() ? parser.open()->channel : "";
      const auto step = parser.feed(t);
      raw_ += tok_.token_bytes(t);
      if (indicate && channel == "analysis") {
        if (++thinking % 8 == 1)
          fprintf(stderr, "\r\033[2mthinking... %d tokens\033[0m", thinking), fflush(stderr);
      } else if (indicate && channel == "final") {
        end_thinking();
      }
      const bool show = channel == "final" || (o_.show_analysis && !channel.empty());
      if (!o_.json && show && !step.content.empty()) {
        if (o_.show_analysis && channel != shown_channel)
          out(absl::StrCat(shown_channel.empty() ? "" : "\n", "[", channel, "] "));
        shown_channel = channel;
        out(step.content);
        printed_final |= channel == "final";
      }
      return !g_interrupted.load();
    };
    const auto generated = generate(prompt, on_token);
    end_thinking();
    VEX_ASSIGN_OR_RETURN(const GenerateResult r, generated);
    conv.messages.insert(conv.messages.end(), parser.messages().begin(), parser.messages().end());
    std::string final_text;
    nlohmann::ordered_json channels = nlohmann::ordered_json::object(),
                           messages = nlohmann::ordered_json::array();
    for (const auto& msg : parser.messages()) {
      if (msg.channel == "final") final_text += msg.content;
      if (!msg.channel.empty())
        channels[msg.channel] = channels.value(msg.channel, std::string()) + msg.content;
      messages.push_back({{"role", msg.role},
                          {"channel", msg.channel},
                          {"recipient", msg.recipient},
                          {"content_type", msg.content_type},
                          {"content", msg.content}});
    }
    if (!o_.json) {
      if (!printed_final) {
        // A model that never opens a final message (a small model gone astray, or one cut off by -n
        // while thinking) still shows what it wrote.
        if (!o_.quiet)
          fprintf(stderr, "vexrun: no final answer (%s); the generated text follows\n",
                  why_stopped(r.reason));
        out(sanitize_utf8(raw_));
      }
      out("\n");
    }
    report(r, prompt.size(),
           {{"text", final_text}, {"channels", channels}, {"messages", messages}});
    return absl::OkStatus();
  }

  // The prompt as text with special tokens recognized, no chat format; every token is shown.
  absl::Status raw_completion(const std::string& text) {
    const auto prompt = tok_.encode(text, /*allow_special=*/true);
    if (experts_) experts_->text = nullptr;  // raw mode: the whole text
    StreamDecoder dec(tok_);
    auto on_token = [&](int32_t t) {
      const std::string piece = dec.feed(t);
      raw_ += piece;
      if (!o_.json) out(piece);
      return !g_interrupted.load();
    };
    VEX_ASSIGN_OR_RETURN(const GenerateResult r, generate(prompt, on_token));
    raw_ += dec.flush();
    if (!o_.json) out("\n");
    report(r, prompt.size(), {{"text", sanitize_utf8(raw_)}});
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<GenerateResult> generate(const std::vector<int32_t>& prompt,
                                          const Session::TokenCallback& on_token) {
    raw_.clear();
    g_interrupted.store(false);
    GenerateOptions opt{.max_tokens = o_.max_tokens,
                        .sampling = o_.sampling,
                        .stop_tokens = m_.stop_tokens,
                        .experts = experts_};
    if (experts_) experts_->clear();
    // The request path every front end shares (runtime/scheduler.h): one slot here, whose cache
    // carries a chat's earlier turns; the callbacks run on the scheduler's thread while this
    // one waits.
    Request request{.prompt = prompt,
                    .options = opt,
                    .virtual_experts = !o_.no_virtual,
                    .routing = o_.routing,
                    .on_routing = {},
                    .on_token = on_token,
                    .on_done = {}};
    std::promise<absl::StatusOr<GenerateResult>> done;
    request.on_done = [&done](const absl::StatusOr<GenerateResult>& r) { done.set_value(r); };
    VEX_RETURN_IF_ERROR(s_.submit(std::move(request)).status());
    return done.get_future().get();
  }

  void report(const GenerateResult& r, size_t prompt_tokens, nlohmann::ordered_json answer) {
    const int computed = r.prompt_tokens - r.reused_tokens;
    if (o_.verbose)
      fprintf(stderr,
              "vexrun: prompt %zu tokens (%d reused) in %.1f ms (%.1f tok/s); generated %d tokens "
              "in %.1f ms (%.1f tok/s); %s\n",
              prompt_tokens, r.reused_tokens, r.prompt_ms, per_second(computed, r.prompt_ms),
              r.generated, r.generate_ms, per_second(r.generated, r.generate_ms),
              why_stopped(r.reason));
    if (!o_.json) return;
    answer["stop_reason"] = stop_reason_name(r.reason);
    answer["tokens"] = {
        {"prompt", r.prompt_tokens}, {"reused", r.reused_tokens}, {"generated", r.generated}};
    answer["timings"] = {{"load_ms", load_ms_},
                         {"prompt_ms", r.prompt_ms},
                         {"prompt_tok_s", per_second(computed, r.prompt_ms)},
                         {"generate_ms", r.generate_ms},
                         {"generate_tok_s", per_second(r.generated, r.generate_ms)}};
    answer["seed"] = o_.sampling.seed;
    answer["experts"] = nlohmann::ordered_json::array();
    for (const ExpertFiring& f : experts_ ? experts_->firings() : std::vector<ExpertFiring>{}) {
      nlohmann::ordered_json j = {{"expert", f.expert},   {"layer", f.layer},
                                  {"position", f.pos},    {"weight", f.weight},
                                  {"answered", f.answered}};
      if (f.answered) j["inputs"] = f.inputs, j["output"] = f.output;
      answer["experts"].push_back(j);
    }
    answer["tokens"]["injected"] = r.injected;
    out(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  }

  const Model& m_;
  const Tokenizer& tok_;
  Scheduler& s_;
  const Options& o_;
  double load_ms_;
  VirtualExperts* experts_;  // null: no HOST experts attached, or --no-virtual
  const bool tty_err_;
  std::string raw_;          // the generated text of the current answer
};

absl::Status parse_args(int argc, char** argv, Options& o, std::string* usage) {
  Args a;
  a.text({"--weights", "-m"}, "checkpoint directory (default: the embedded demo model)",
         &o.weights);
  a.text({"-p", "--prompt"}, "the prompt (a user message, or raw text with --raw)", &o.prompt);
  a.text({"-f", "--file"}, "read the prompt from a file", &o.prompt_file);
  a.text({"--system"}, "instructions for the model (Harmony developer message)", &o.system);
  a.value({"--reasoning"}, "reasoning effort: low | medium | high (default medium)",
          [&](const std::string& v) {
            o.reasoning = v;
            return harmony::check_reasoning(v);
          });
  a.text({"--date"}, "current date for the system message (YYYY-MM-DD; default none)", &o.date);
  a.integer({"-n", "--max-tokens"},
            "sampled tokens at most (default: until done; an expert's answer is whole and not "
            "counted)",
            -1, 1 << 30, &o.max_tokens);
  a.integer({"-c", "--ctx-size"}, "context size in tokens (default min(4096, model's))", 1, 1 << 24,
            &o.ctx);
  a.value({"--temp"}, "temperature; 0 = greedy (default: generation_config.json, else 1)",
          [&](const std::string& v) {
            o.temp_set = true;
            return parse_float("--temp", v, 0, 100, &o.sampling.temperature);
          });
  a.value({"--top-k"}, "keep the k most likely tokens; 0 = off", [&](const std::string& v) {
    int64_t k;
    VEX_RETURN_IF_ERROR(parse_int("--top-k", v, 0, 1 << 24, &k));
    o.top_k_set = true, o.sampling.top_k = static_cast<int>(k);
    return absl::OkStatus();
  });
  a.value({"--top-p"}, "nucleus sampling mass in (0, 1]; 1 = off", [&](const std::string& v) {
    o.top_p_set = true;
    VEX_RETURN_IF_ERROR(parse_float("--top-p", v, 0, 1, &o.sampling.top_p));
    if (o.sampling.top_p == 0) return absl::InvalidArgumentError("--top-p: must be above 0");
    return absl::OkStatus();
  });
  a.value({"--min-p"}, "drop tokens below min-p x the best one's probability; 0 = off",
          [&](const std::string& v) {
            o.min_p_set = true;
            return parse_float("--min-p", v, 0, 1, &o.sampling.min_p);
          });
  a.value({"-s", "--seed"}, "sampling seed (default: random, shown by -v and --json)",
          [&](const std::string& v) {
            int64_t s;
            VEX_RETURN_IF_ERROR(parse_int("--seed", v, 0, INT64_MAX, &s));
            o.seed_set = true, o.sampling.seed = static_cast<uint64_t>(s);
            return absl::OkStatus();
          });
  a.flag({"--raw"}, "no chat format: complete the prompt text as is", &o.raw);
  a.flag({"--show-analysis"}, "also print the analysis (reasoning) channel", &o.show_analysis);
  a.flag({"--json"}, "print one JSON object per answer instead of streaming text", &o.json);
  a.flag({"--tokenize"}, "print the prompt's token ids and exit", &o.tokenize);
  add_routing_flags(a, &o.routing);
  a.flag({"--perplexity"},
         "perplexity of the text (-f FILE or -p), llama-perplexity style: chunks of -c tokens "
         "(default 512), the second half of each scored",
         &o.perplexity);
  a.value({"--tokens"}, "run these comma-separated token ids instead of a prompt",
          [&](const std::string& v) { return parse_int_list("--tokens", v, &o.tokens); });
  a.text({"--logits"}, "with --tokens: write every position's logits (.npy float32 [n, vocab])",
         &o.logits_path);
  a.value({"--device"}, "auto | cpu | cuda (default auto: the GPU when there is one)",
          [&](const std::string& v) {
            o.device = v;
            return parse_device(v).status();
          });
  a.text({"--experts"}, "expert manifest (TOML): pruned experts and virtual experts",
         &o.experts);
  a.integer({"-t", "--threads"}, "CPU engine threads (default: every hardware thread)", 1, 1024,
            &o.threads);
  a.flag({"--trace-experts"}, "print every virtual-expert firing to stderr", &o.trace_experts);
  a.flag({"--no-virtual"}, "switch the manifest's virtual experts off for this run",
         &o.no_virtual);
  a.flag({"-v", "--verbose"}, "print load and generation timings", &o.verbose);
  a.flag({"-q", "--quiet"}, "no notes on stderr (loading, thinking, the interactive banner)",
         &o.quiet);
  a.flag({"--version"}, "print the version and exit", &o.version);
  add_gpu_flags(a, &o.gpu);
  a.flag({"--help", "-h"}, "show this help", &o.help);
  *usage = a.usage();
  VEX_RETURN_IF_ERROR(a.parse(argc, argv));
  if (!o.prompt.empty() && !o.prompt_file.empty())
    return absl::InvalidArgumentError("give the prompt with -p or -f, not both");
  if (!o.logits_path.empty() && o.tokens.empty())
    return absl::InvalidArgumentError("--logits needs --tokens");
  return absl::OkStatus();
}


int run(int argc, char** argv) {
  Options o;
  std::string usage;
  if (absl::Status st = parse_args(argc, argv, o, &usage); st.ok() && o.version) {
    printf("vexrun %s\n", VEX_VERSION);
    return 0;
  } else if (!st.ok() || o.help) {
    if (!st.ok()) fprintf(stderr, "vexrun: %s\n", std::string(st.message()).c_str());
    fprintf(o.help ? stdout : stderr, "usage: vexrun [--weights DIR] [-p PROMPT] [options]\n%s",
            usage.c_str());
    return o.help ? 0 : 2;
  }
  const bool tty_in = isatty(STDIN_FILENO), tty_err = isatty(STDERR_FILENO);
  if (absl::Status st = start_gpus(o.gpu); !st.ok()) return fail(st);

  if (o.weights.empty()) {
    auto demo = demo_model_dir();
    if (!demo.ok()) return fail(demo.status());
    o.weights = *demo;
  }
  const auto t0 = Clock::now();
  LoadOptions load;
  load.experts = o.experts;
  load.progress = [&](float f) {
    if (tty_err && !o.quiet)
      fprintf(stderr, "\rvexrun: loading %s %3.0f%%", o.weights.c_str(), 100 * f);
    return true;
  };
  cpu_threads() = o.threads;  // 0: every hardware thread
  auto model = load_model(o.weights, load);
  if (tty_err && !o.quiet) fprintf(stderr, "\r\033[K");
  if (!model.ok()) return fail(model.status());
  const Model& m = **model;
  const double load_ms = Ms(Clock::now() - t0).count();
  if (o.verbose) {
    fprintf(stderr, "vexrun: loaded %s in %.1f ms (%.1f MB of weights)\n", o.weights.c_str(),
            load_ms, m.weight_bytes / 1e6);
    if (!m.manifest_path.empty())
      fprintf(stderr, "vexrun: %s: %d experts pruned, %zu host experts attached%s\n",
              m.manifest_path.c_str(), m.pruned_experts, m.host_experts.size(),
              o.no_virtual ? " (switched off)" : "");
  }
  if (o.trace_experts && (m.host_experts.empty() || o.no_virtual) && !o.quiet)
    fprintf(stderr, "vexrun: --trace-experts: %s\n",
            o.no_virtual ? "the virtual experts are switched off (--no-virtual)"
                         : "no virtual experts are attached (give a manifest with --experts)");
  // HOST experts bound by name before anything runs: an unknown name fails here.
  ExpertRegistry registry;
  std::unique_ptr<VirtualExperts> experts;
  if (!m.host_experts.empty() && !o.no_virtual) {
    auto v = VirtualExperts::bind(m, registry);
    if (!v.ok()) return fail(v.status());
    experts = std::move(*v);
  }
  if (!o.tokens.empty()) return run_tokens(m, o);

  auto tok = m.require_tokenizer();
  if (!tok.ok()) return fail(tok.status());
  // Sampling: generation_config.json, then the flags given.
  SamplingParams s = m.sampling;
  if (o.temp_set) s.temperature = o.sampling.temperature;
  if (o.top_k_set) s.top_k = o.sampling.top_k;
  if (o.top_p_set) s.top_p = o.sampling.top_p;
  if (o.min_p_set) s.min_p = o.sampling.min_p;
  s.seed = o.seed_set ? o.sampling.seed : std::random_device{}();
  o.sampling = s;
  if (o.verbose)
    fprintf(stderr, "vexrun: sampling temp %g top-k %d top-p %g min-p %g seed %llu\n",
            s.temperature, s.top_k, s.top_p, s.min_p, static_cast<unsigned long long>(s.seed));

  if (!o.prompt_file.empty()) {
    auto text = read_regular_file(o.prompt_file, 64 << 20, "the prompt file");
    if (!text.ok()) return fail(text.status());
    o.prompt = std::move(*text);
  } else if (o.prompt.empty() && !tty_in) {
    o.prompt.assign(std::istreambuf_iterator<char>(std::cin), {});  // piped prompt
  }
  if (o.perplexity) {
    if (o.prompt.empty()) return fail(absl::InvalidArgumentError("--perplexity needs a text (-f FILE or -p)"));
    return run_perplexity(m, **tok, o);
  }
  const bool interactive = o.prompt.empty() && tty_in && !o.tokenize;
  if (o.prompt.empty() && !interactive)
    return fail(absl::InvalidArgumentError("the prompt is empty"));

  harmony::Conversation conv;
  conv.system.reasoning = o.reasoning;
  conv.system.current_date = o.date;
  conv.developer = o.system;
  if (o.tokenize) {
    std::vector<int32_t> ids;
    if (o.raw) {
      ids = (*tok)->encode(o.prompt, /*allow_special=*/true);
    } else {
      conv.messages.push_back({.role = "user", .content = o.prompt});
      ids = harmony::render(**tok, conv, /*for_completion=*/true).tokens;
    }
    if (o.json) {
      out(nlohmann::json(ids).dump() + "\n");
    } else {
      std::string line;
      for (size_t i = 0; i < ids.size(); ++i) absl::StrAppend(&line, i ? "," : "", ids[i]);
      out(line + "\n");
    }
    return 0;
  }

  const int ctx = o.ctx ? o.ctx : std::min(4096, m.config().max_position);
  auto sched = Scheduler::create(
      m, {.parallel = 1,
          .max_queue = 1,
          .max_ctx = ctx,
          .device = *parse_device(o.device),
          .split = o.gpu.split});
  if (!sched.ok()) return fail(sched.status());
  if (o.verbose) fprintf(stderr, "vexrun: %s engine, context %d tokens\n", (*sched)->device(), ctx);
  Runner runner(m, **tok, **sched, o, load_ms, experts.get());
  // Ctrl-C stops an answer; at the interactive prompt it exits with 130, as shells expect.
  std::signal(SIGINT, [](int) {
    if (g_at_prompt.load()) {
      (void)!write(STDERR_FILENO, "\n", 1);
      _exit(130);
    }
    g_interrupted.store(true);
  });

  if (!interactive) {
    absl::Status st = o.raw ? runner.raw_completion(o.prompt) : runner.chat_turn(conv, o.prompt);
    return st.ok() ? 0 : fail(st);
  }
  if (!o.quiet)
    fprintf(stderr,
            "vexrun: interactive chat; /reset clears the conversation, /exit or Ctrl-D "
            "ends, Ctrl-C stops an answer\n");
  // The prompt line with editing and history (libedit's readline interface) on stderr, so that
  // stdout holds only the answers.
  rl_instream = stdin;
  rl_outstream = stderr;
  std::string line;
  for (;;) {
    g_interrupted.store(false);
    g_at_prompt.store(true);
    char* read = readline("> ");
    g_at_prompt.store(false);
    const bool got = read != nullptr;
    line = got ? read : "";
    free(read);
    if (!line.empty()) add_history(line.c_str());
    if (!got || line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      conv.messages.clear();
      fprintf(stderr, "vexrun: conversation cleared\n");
      continue;
    }
    if (line.empty()) continue;
    absl::Status st = o.raw ? runner.raw_completion(line) : runner.chat_turn(conv, line);
    if (!st.ok()) fail(st);
  }
  fprintf(stderr, "\n");
  return 0;
}

}  // namespace
}  // namespace vex

int main(int argc, char** argv) {
  try {
    return vex::run(argc, argv);
  } catch (const std::bad_alloc&) {  // a size the checks let through but memory does not hold
    fprintf(stderr, "vexrun: out of memory (try a smaller -c / --ctx-size)\n");
    return 1;
  }
}
