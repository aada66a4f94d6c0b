// vexserve: an OpenAI-compatible HTTP server over the scheduler (runtime/scheduler.h), with
// cpp-httplib. Endpoints: POST /v1/chat/completions (Harmony underneath; the analysis channel
// returned as `reasoning` and `reasoning_content`, never in `content`; `stream` as server-sent
// events), POST /v1/completions (raw text), GET /v1/models, GET /health, GET /metrics
// (Prometheus text). Virtual-expert firings come back in `vex_experts`; `virtual_experts: false`
// switches them off for one request. Errors are OpenAI error objects with their status codes;
// --api-key is checked on every endpoint but /health. SIGTERM or SIGINT stops accepting, cancels
// what runs, and exits 0.
//
// POST /v1/responses is the Responses API's stateless core (input, instructions,
// reasoning.effort, max_output_tokens, streamed as named events). `stop` strings end the text
// before the first one found; logprobs (chat: logprobs, top_logprobs; completions: logprobs)
// are the log-softmax of the raw logits. Function tools (chat and responses forms) become
// Harmony's functions namespace (tools/vexserve/request.cpp reads them). Not yet: n > 1
// (refused with a 400 naming the field).
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"

#include "experts/expert.h"
#include "kernels/cpu/parallel.h"
#include "loader/json_util.h"
#include "runtime/harmony.h"
#include "runtime/model.h"
#include "runtime/scheduler.h"
#include "runtime/virtual_experts.h"
#include "tools/args.h"
#include "tools/vexrun/demo.h"
#include "tools/vexserve/request.h"

namespace vex {
namespace {

using json = nlohmann::json;
using serve::dump;
using serve::HttpError;

struct Options {
  std::string weights, experts, host = "127.0.0.1", api_key, device = "auto";
  int port = 8080, parallel = 4, ctx = 4096, max_queue = 64, threads = 0;
};

void send_error(httplib::Response& res, const HttpError& e) {
  res.status = e.status;
  json err = {{"message", e.message}, {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  res.set_content(json{{"error", err}}.dump(), "application/json");
}

HttpError from_status(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kResourceExhausted:
      return {429, std::string(st.message()), "rate_limit_error", "", "queue_full"};
    case absl::StatusCode::kUnavailable:
      return {503, std::string(st.message()), "server_error", "", "unavailable"};
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return {400, std::string(st.message()), "invalid_request_error", "", ""};
    default:
      return {500, std::string(st.message()), "server_error", "", ""};
  }
}

// What one request shares between the HTTP thread that answers it and the scheduler's thread
// that generates it.
struct Stream {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> events;  // SSE payloads not yet written
  bool done = false;
  absl::StatusOr<GenerateResult> result = absl::UnknownError("not finished");
  std::optional<harmony::StreamParser> parser;  // chat
  std::optional<StreamDecoder> decoder;         // completions
  std::string text, reasoning;                  // what was generated, by kind
  // `stop` strings: the text ends before the first one found; a streamed delta holds back the
  // bytes that may begin one (up to its length - 1) until the next token decides.
  std::vector<std::string> stops;
  size_t longest_stop = 0, emitted = 0;
  bool stop_hit = false;
  // logprobs: -1 off, else how many alternatives per token (top_logprobs). The sampled token's
  // log-probability (log-softmax of the raw logits) waits in `sampled` for its token callback;
  // tokens a HOST expert appended were not sampled and count as certain (logprob 0).
  int top_n = -1;
  struct Sampled {
    int32_t token = -1;
    float logprob = 0;
    std::vector<std::pair<int32_t, float>> top;
  } sampled;
  json logprobs = json::array();       // chat: one entry per content token
  json step_logprobs = json::array();  // chat, streaming: the entries not yet sent
  std::unique_ptr<VirtualExperts> experts;
  json firings = json::array();
  // A function call the model wrote (a commentary message to "functions.NAME"; generation
  // stops at its <|call|>, so there is at most one).
  struct Call {
    std::string id, name, arguments;
    bool started = false;
  } call;
};

class Server {
 public:
  Server(const Model& m, Scheduler& s, Options o, std::string id)
      : model_(m), sched_(s), opt_(std::move(o)), id_(std::move(id)) {}

  void routes(httplib::Server& http) {
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      ++requests_;
      if (req.path == "/health" || opt_.api_key.empty()) return httplib::Server::HandlerResponse::Unhandled;
      if (req.get_header_value("Authorization") != "Bearer " + opt_.api_key) {
        send_error(res, {401, "invalid or missing API key (Authorization: Bearer ...)",
                         "invalid_request_error", "", "invalid_api_key"});
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(json{{"object", "list"}, {"data", json::array({model_json()})}}.dump(),
                      "application/json");
    });
    http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.matches[1] != id_)
        return send_error(res, {404, "model '" + std::string(req.matches[1]) + "' not found",
                                "invalid_request_error", "model", "model_not_found"});
      res.set_content(model_json().dump(), "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics(), "text/plain; version=0.0.4");
    });
    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      handle(req, res, Api::kChat);
    });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      handle(req, res, Api::kCompletions);
    });
    http.Post("/v1/responses", [this](const httplib::Request& req, httplib::Response& res) {
      handle(req, res, Api::kResponses);
    });
    http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.status == 404 && res.body.empty())
        send_error(res, {404, "no such endpoint", "invalid_request_error", "", "not_found"});
    });
  }

 private:
  json model_json() const {
    return {{"id", id_}, {"object", "model"}, {"created", 0}, {"owned_by", "vex"}};
  }

  std::string metrics() const {
    const Scheduler::Stats s = sched_.stats();
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, double v) {
      out += absl::StrFormat("# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
                             name, v);
    };
    metric("vex_http_requests_total", "counter", "HTTP requests received", requests_.load());
    metric("vex_requests_submitted_total", "counter", "generation requests accepted",
           static_cast<double>(s.submitted));
    metric("vex_requests_finished_total", "counter", "generation requests finished",
           static_cast<double>(s.finished));
    metric("vex_generated_tokens_total", "counter", "tokens generated",
           static_cast<double>(s.generated_tokens));
    metric("vex_prompt_tokens_total", "counter", "prompt tokens run (not reused from a cache)",
           static_cast<double>(s.prompt_tokens));
    metric("vex_prefill_passes_total", "counter", "prefill calls that ran those prompt tokens",
           static_cast<double>(s.prefill_passes));
    metric("vex_decode_steps_total", "counter", "batched decode steps run",
           static_cast<double>(s.decode_steps));
    metric("vex_decode_rows_total", "counter",
           "requests advanced by those steps (rows / steps = mean batch size)",
           static_cast<double>(s.decode_rows));
    metric("vex_requests_running", "gauge", "requests generating now", s.running);
    metric("vex_requests_queued", "gauge", "requests waiting for a slot", s.queued);
    metric("vex_slots", "gauge", "requests generated at once at most", sched_.options().parallel);
    metric("vex_expert_firings_total", "counter", "virtual-expert firings", firings_.load());
    return out;
  }

  // Parses the body and the fields both endpoints share into `r`; throws HttpError.
  json parse_body(const httplib::Request& req, Request* r) {
    auto body = parse_json_text(req.body, "the request body");
    if (!body.ok()) throw HttpError{400, std::string(body.status().message())};
    json& j = *body;
    if (!j.is_object()) throw HttpError{400, "the request body is not a JSON object"};
    if (!j.contains("model") || !j["model"].is_string())
      throw HttpError{400, "'model' is required (a string)", "invalid_request_error", "model"};
    if (j["model"] != id_)
      throw HttpError{404, "model '" + j["model"].get<std::string>() + "' not found (this server has '" + id_ + "')",
                      "invalid_request_error", "model", "model_not_found"};
    if (j.contains("functions") && !j["functions"].is_null())
      throw HttpError{400, "'functions' (the legacy form) is not supported; use 'tools'",
                      "invalid_request_error", "functions", "unsupported"};
    if (j.contains("n") && j["n"] != 1)
      throw HttpError{400, "only n = 1 is supported", "invalid_request_error", "n"};
    SamplingParams& s = r->options.sampling;
    s = model_.sampling;
    s.seed = std::random_device{}();
    auto number = [&](const char* key, double lo, double hi) -> std::optional<double> {
      if (!j.contains(key) || j[key].is_null()) return std::nullopt;
      if (!j[key].is_number() || j[key].get<double>() < lo || j[key].get<double>() > hi)
        throw HttpError{400, absl::StrFormat("'%s' must be a number in [%g, %g]", key, lo, hi),
                        "invalid_request_error", key};
      return j[key].get<double>();
    };
    if (auto t = number("temperature", 0, 2)) s.temperature = static_cast<float>(*t);
    if (auto p = number("top_p", 1e-9, 1)) s.top_p = static_cast<float>(*p);
    // An integer of either sign (a negative double cast to uint64_t was undefined behaviour).
    if (j.contains("seed") && !j["seed"].is_null()) {
      const json& v = j["seed"];
      if (v.is_number_unsigned())
        s.seed = v.get<uint64_t>();
      else if (v.is_number_integer())
        s.seed = static_cast<uint64_t>(v.get<int64_t>());
      else
        throw HttpError{400, "'seed' must be an integer", "invalid_request_error", "seed"};
    }
    for (const char* key : {"max_tokens", "max_completion_tokens", "max_output_tokens"})
      if (auto n = number(key, 1, 1 << 30)) r->options.max_tokens = static_cast<int>(*n);
    r->options.stop_tokens = model_.stop_tokens;
    // vLLM's extension, for benchmarks: the model's end tokens do not end the answer; only
    // max_tokens, a stop string or the context do.
    if (j.contains("ignore_eos") && !j["ignore_eos"].is_null()) {
      if (!j["ignore_eos"].is_boolean())
        throw HttpError{400, "'ignore_eos' must be true or false", "invalid_request_error",
                        "ignore_eos"};
      if (j["ignore_eos"].get<bool>()) r->options.stop_tokens.clear();
    }
    if (j.contains("virtual_experts")) {
      if (!j["virtual_experts"].is_boolean())
        throw HttpError{400, "'virtual_experts' must be true or false", "invalid_request_error",
                        "virtual_experts"};
      r->virtual_experts = j["virtual_experts"].get<bool>();
    }
    return j;
  }

  // Renders the conversation for completion; a forced function call's header follows
  // "<|start|>assistant", and goes to `header` too (the parser reads it before the answer).
  std::vector<int32_t> render(const harmony::Conversation& conv, const std::string& forced,
                              std::vector<int32_t>* header) const {
    std::vector<int32_t> prompt = harmony::render(*model_.tokenizer, conv, true).tokens;
    if (!forced.empty()) {
      *header = model_.tokenizer->encode(
          "<|channel|>commentary to=functions." + forced + " <|constrain|>json<|message|>", true);
      prompt.insert(prompt.end(), header->begin(), header->end());
    }
    return prompt;
  }

  std::vector<int32_t> chat_prompt(const json& j, std::vector<int32_t>* header) const {
    std::string forced;
    const harmony::Conversation conv = serve::chat_conversation(j, &forced);
    return render(conv, forced, header);
  }

  std::vector<int32_t> responses_prompt(const json& j, std::vector<int32_t>* header) const {
    std::string forced;
    const harmony::Conversation conv = serve::responses_conversation(j, &forced);
    return render(conv, forced, header);
  }

  enum class Api { kChat, kCompletions, kResponses };

  void handle(const httplib::Request& req, httplib::Response& res, Api api) {
    const bool chat = api != Api::kCompletions;  // Harmony underneath
    const bool responses = api == Api::kResponses;
    auto st = std::make_shared<Stream>();
    Request r;
    bool stream = false;
    std::vector<int32_t> prompt, forced_header;
    try {
      const json j = parse_body(req, &r);
      if (j.contains("stream") && !j["stream"].is_null()) {
        if (!j["stream"].is_boolean())
          throw HttpError{400, "'stream' must be true or false", "invalid_request_error", "stream"};
        stream = j["stream"].get<bool>();
      }
      if (j.contains("stop") && !j["stop"].is_null()) {
        const json stop = j["stop"].is_string() ? json::array({j["stop"]}) : j["stop"];
        if (!stop.is_array() || stop.size() > 4)
          throw HttpError{400, "'stop' must be a string or an array of at most 4 strings",
                          "invalid_request_error", "stop"};
        for (const json& x : stop) {
          if (!x.is_string() || x.get<std::string>().empty())
            throw HttpError{400, "'stop' strings must be non-empty strings",
                            "invalid_request_error", "stop"};
          st->stops.push_back(x.get<std::string>());
          st->longest_stop = std::max(st->longest_stop, st->stops.back().size());
        }
      }
      // logprobs: chat takes logprobs (bool) and top_logprobs (0-20); completions logprobs (0-5).
      if (!responses && j.contains("logprobs") && !j["logprobs"].is_null()) {
        const json& lp = j["logprobs"];
        if (chat) {
          if (!lp.is_boolean())
            throw HttpError{400, "'logprobs' must be true or false", "invalid_request_error", "logprobs"};
          if (lp.get<bool>()) st->top_n = 0;
          if (j.contains("top_logprobs") && !j["top_logprobs"].is_null()) {
            const std::optional<int32_t> t = json_int32(j["top_logprobs"]);  // no wrapping
            if (!t || *t < 0 || *t > 20 || st->top_n < 0)
              throw HttpError{400, "'top_logprobs' must be an integer in [0, 20], with logprobs: true",
                              "invalid_request_error", "top_logprobs"};
            st->top_n = *t;
          }
        } else {
          const std::optional<int32_t> n = json_int32(lp);
          if (!n || *n < 0 || *n > 5)
            throw HttpError{400, "'logprobs' must be an integer in [0, 5]", "invalid_request_error",
                            "logprobs"};
          st->top_n = *n;
        }
      }
      if (chat && st->top_n < 0 && j.contains("top_logprobs") && !j["top_logprobs"].is_null())
        throw HttpError{400, "'top_logprobs' needs logprobs: true", "invalid_request_error",
                        "top_logprobs"};
      if (responses) {
        prompt = responses_prompt(j, &forced_header);
      } else if (chat) {
        prompt = chat_prompt(j, &forced_header);
      } else {
        if (!j.contains("prompt") || !j["prompt"].is_string())
          throw HttpError{400, "'prompt' must be a string", "invalid_request_error", "prompt"};
        prompt = model_.tokenizer->encode(j["prompt"].get<std::string>(), false);
        if (prompt.empty()) throw HttpError{400, "the prompt is empty", "invalid_request_error", "prompt"};
      }
      if (static_cast<int>(prompt.size()) >= sched_.options().max_ctx)
        throw HttpError{400,
                        absl::StrFormat("the prompt is %d tokens; the context size is %d",
                                        prompt.size(), sched_.options().max_ctx),
                        "invalid_request_error", "messages", "context_length_exceeded"};
    } catch (const HttpError& e) {
      return send_error(res, e);
    } catch (const json::exception& e) {
      // A field of another JSON type than the request's reading of it expects (a message's
      // "type" a number, say): the client's error, not a 500.
      return send_error(res,
                        HttpError{400, std::string("a field has the wrong JSON type: ") + e.what(),
                                  "invalid_request_error"});
    }
    if (chat) {
      st->parser.emplace(*model_.tokenizer);
      for (int32_t t : forced_header) st->parser->feed(t);  // a forced call's header: in the prompt
    } else {
      st->decoder.emplace(*model_.tokenizer);
    }
    if (!model_.host_experts.empty() && r.virtual_experts) {
      auto v = VirtualExperts::bind(model_, registry_);
      if (!v.ok()) return send_error(res, from_status(v.status()));
      st->experts = std::move(*v);
      if (chat) st->experts->read_message_content(*st->parser);
      st->experts->on_firing = [this, s = st.get()](const ExpertFiring& f) {
        ++firings_;
        s->firings.push_back({{"expert", f.expert}, {"layer", f.layer}, {"position", f.pos},
                              {"weight", f.weight}, {"answered", f.answered},
                              {"inputs", f.inputs}, {"output", f.output}});
      };
      r.options.experts = st->experts.get();
    }
    // One random suffix names the object and, for responses, its output items.
    const std::string suffix =
        absl::StrFormat("%016x", std::random_device{}() * 0x9E3779B97F4A7C15ull);
    const std::string object_id = (responses ? "resp_" : chat ? "chatcmpl-" : "cmpl-") + suffix;
    const std::string message_id = "msg_" + suffix, reasoning_id = "rs_" + suffix;
    const std::string call_id = "call_" + suffix, function_call_id = "fc_" + suffix;
    const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch()).count();
    auto chunk = [=, this](const json& delta_or_text, const json& finish) {
      json choice = chat ? json{{"index", 0}, {"delta", delta_or_text}, {"finish_reason", finish}}
                         : json{{"index", 0}, {"text", delta_or_text}, {"finish_reason", finish}};
      return json{{"id", object_id}, {"object", chat ? "chat.completion.chunk" : "text_completion"},
                  {"created", created}, {"model", id_}, {"choices", json::array({choice})}};
    };
    // Server-sent events: chat and completions send data lines (then [DONE]); responses send
    // named events.
    auto sse = [](const json& j) { return "data: " + dump(j) + "\n\n"; };
    auto event = [](const json& j) {
      return "event: " + j["type"].get<std::string>() + "\ndata: " + dump(j) + "\n\n";
    };
    auto response_json = [=, this](const Stream& s, const GenerateResult* result) {
      json output = json::array();
      if (!s.reasoning.empty())
        output.push_back({{"type", "reasoning"}, {"id", reasoning_id},
                          {"summary", json::array()},
                          {"content", json::array({{{"type", "reasoning_text"}, {"text", s.reasoning}}})}});
      output.push_back({{"type", "message"}, {"id", message_id},
                        {"status", result ? "completed" : "in_progress"}, {"role", "assistant"},
                        {"content", json::array({{{"type", "output_text"}, {"text", s.text},
                                                  {"annotations", json::array()}}})}});
      if (s.call.started)
        output.push_back({{"type", "function_call"}, {"id", function_call_id},
                          {"call_id", s.call.id}, {"name", s.call.name},
                          {"arguments", s.call.arguments},
                          {"status", result ? "completed" : "in_progress"}});
      const bool complete = result && finish_reason(s, *result) != "length";
      json j = {{"id", object_id}, {"object", "response"}, {"created_at", created},
                {"status", !result ? "in_progress" : complete ? "completed" : "incomplete"},
                {"incomplete_details", !result || complete ? json(nullptr)
                                                           : json{{"reason", "max_output_tokens"}}},
                {"model", id_}, {"output", result ? output : json::array()}};
      if (result)
        j["usage"] = {{"input_tokens", result->prompt_tokens},
                      {"output_tokens", result->generated},
                      {"total_tokens", result->prompt_tokens + result->generated}};
      if (!s.firings.empty()) j["vex_experts"] = s.firings;
      return j;
    };
    r.prompt = prompt;
    if (stream && responses)
      st->events.push_back(event({{"type", "response.created"}, {"response", response_json(*st, nullptr)}}));
    else if (stream && chat)
      st->events.push_back(sse(chunk(json{{"role", "assistant"}, {"content", ""}}, nullptr)));
    auto text_delta = [=](const std::string& text, bool reasoning) {
      return event({{"type", reasoning ? "response.reasoning_text.delta" : "response.output_text.delta"},
                    {"item_id", reasoning ? reasoning_id : message_id}, {"output_index", 0},
                    {"content_index", 0}, {"delta", text}});
    };
    // A chat or completions chunk of shown text and reasoning, with the log-probabilities of
    // the tokens not yet sent (chat); lock held.
    auto text_chunk = [chat, chunk, sse](Stream& s, const std::string& shown,
                                         const std::string& thought) {
      json delta = json::object();
      if (chat) {
        if (!shown.empty()) delta["content"] = shown;
        if (!thought.empty()) delta["reasoning"] = thought, delta["reasoning_content"] = thought;
      }
      json c = chunk(chat ? delta : json(shown), nullptr);
      if (chat && !s.step_logprobs.empty()) {
        c["choices"][0]["logprobs"] = {{"content", s.step_logprobs}};
        s.step_logprobs = json::array();
      }
      return sse(c);
    };
    if (st->top_n >= 0)
      r.options.on_sample = [st](std::span<const float> logits, int32_t token) {
        float mx = -INFINITY;
        for (float l : logits) mx = std::max(mx, l);
        double sum = 0;
        for (float l : logits) sum += std::exp(static_cast<double>(l - mx));
        const float log_z = mx + static_cast<float>(std::log(sum));
        std::lock_guard lock(st->mu);
        st->sampled.token = token;
        st->sampled.logprob = logits[token] - log_z;
        st->sampled.top.clear();
        if (st->top_n > 0) {
          std::vector<int32_t> ids(logits.size());
          std::iota(ids.begin(), ids.end(), 0);
          const size_t n = std::min<size_t>(st->top_n, ids.size());
          std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
            return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
          });
          for (size_t i = 0; i < n; ++i) st->sampled.top.push_back({ids[i], logits[ids[i]] - log_z});
        }
      };
    auto token_json = [tok = model_.tokenizer.get()](int32_t id, float logprob) {
      const std::string& b = tok->token_bytes(id);
      return json{{"token", sanitize_utf8(b)}, {"logprob", logprob},
                  {"bytes", std::vector<int>(b.begin(), b.end())}};
    };
    // A function call's start and argument text, as a chat chunk or responses events; lock held.
    auto call_delta = [=](Stream& s, const std::string& args, bool start) {
      if (responses) {
        std::string out;
        if (start)
          out = event({{"type", "response.output_item.added"}, {"output_index", 1},
                       {"item", {{"type", "function_call"}, {"id", function_call_id},
                                 {"call_id", s.call.id}, {"name", s.call.name},
                                 {"arguments", ""}, {"status", "in_progress"}}}});
        if (!args.empty())
          out += event({{"type", "response.function_call_arguments.delta"},
                        {"item_id", function_call_id}, {"output_index", 1}, {"delta", args}});
        return out;
      }
      json call = {{"index", 0}, {"function", {{"arguments", args}}}};
      if (start) call["id"] = s.call.id, call["type"] = "function", call["function"]["name"] = s.call.name;
      return sse(chunk(json{{"tool_calls", json::array({call})}}, nullptr));
    };
    r.on_token = [st, chat, responses, stream, text_delta, text_chunk, token_json, call_delta,
                  call_id](int32_t token) {
      std::lock_guard lock(st->mu);
      std::string piece, thought;
      if (chat) {
        const harmony::StreamParser::Step step = st->parser->feed(token);
        const harmony::Message* open = st->parser->open();
        const harmony::Message* m =
            open ? open : st->parser->messages().empty() ? nullptr : &st->parser->messages().back();
        const bool to_tool = m && !m->recipient.empty() && m->recipient != "assistant";
        if (to_tool && absl::StartsWith(m->recipient, "functions.") &&
            (st->parser->in_content() || step.message_done)) {
          const bool start = !st->call.started;
          if (start) {
            st->call.started = true;
            st->call.id = call_id;
            st->call.name = m->recipient.substr(std::strlen("functions."));
          }
          st->call.arguments += step.content;
          if (stream && (start || !step.content.empty())) {
            st->events.push_back(call_delta(*st, step.content, start));
            st->cv.notify_all();
          }
        } else if (!to_tool) {  // what a message to another recipient says is not shown
          (m && m->channel == "analysis" ? thought : piece) = step.content;
        }
      } else {
        piece = st->decoder->feed(token);
      }
      st->text += piece, st->reasoning += thought;
      if (st->top_n >= 0 && !st->stop_hit && (!chat || !piece.empty())) {
        const bool sampled = st->sampled.token == token;
        json entry = token_json(token, sampled ? st->sampled.logprob : 0.0f);
        json top = json::array();
        if (sampled)
          for (const auto& [id, lp] : st->sampled.top) top.push_back(token_json(id, lp));
        entry["top_logprobs"] = top;
        st->logprobs.push_back(entry);
        if (chat) st->step_logprobs.push_back(entry);
      }
      st->sampled.token = -1;
      bool go_on = true;
      if (!piece.empty() && !st->stops.empty()) {
        // A stop string ends within what was held back or this piece.
        const size_t from = st->emitted;
        size_t cut = std::string::npos;
        for (const std::string& stop : st->stops) cut = std::min(cut, st->text.find(stop, from));
        if (cut != std::string::npos) st->text.resize(cut), st->stop_hit = true, go_on = false;
      }
      // Shown now: everything but what may begin a stop string, cut at a character boundary.
      size_t safe = st->text.size();
      if (!st->stop_hit && st->longest_stop > 1)
        safe = st->text.size() > st->longest_stop - 1 ? st->text.size() - (st->longest_stop - 1) : 0;
      while (safe > st->emitted && safe < st->text.size() &&
             (static_cast<unsigned char>(st->text[safe]) & 0xC0) == 0x80)
        --safe;
      safe = std::max(safe, st->emitted);
      const std::string shown = st->text.substr(st->emitted, safe - st->emitted);
      st->emitted = safe;
      if (stream && responses) {
        if (!thought.empty()) st->events.push_back(text_delta(thought, true));
        if (!shown.empty()) st->events.push_back(text_delta(shown, false));
        st->cv.notify_all();
      } else if (stream && (!shown.empty() || !thought.empty())) {
        st->events.push_back(text_chunk(*st, shown, thought));
        st->cv.notify_all();
      }
      return go_on;
    };
    r.on_done = [st, chat, responses, stream, chunk, sse, event, text_delta, text_chunk,
                 response_json, function_call_id, n_prompt = prompt.size()](
                    const absl::StatusOr<GenerateResult>& result) {
      std::lock_guard lock(st->mu);
      if (!chat && !st->stop_hit) st->text += st->decoder->flush();
      // What was held back for the stop strings, with the log-probabilities still pending.
      if (stream && (st->emitted < st->text.size() || !st->step_logprobs.empty())) {
        const std::string rest = st->text.substr(st->emitted);
        if (responses)
          st->events.push_back(text_delta(rest, false));
        else
          st->events.push_back(text_chunk(*st, rest, ""));
      }
      st->emitted = st->text.size();
      st->result = result;
      if (stream && result.ok() && responses) {
        const json out = response_json(*st, &*result);
        if (st->call.started) {
          st->events.push_back(event({{"type", "response.function_call_arguments.done"},
                                      {"item_id", function_call_id}, {"output_index", 1},
                                      {"arguments", st->call.arguments}}));
          st->events.push_back(event({{"type", "response.output_item.done"}, {"output_index", 1},
                                      {"item", out["output"].back()}}));
        }
        st->events.push_back(event({{"type", "response.completed"}, {"response", out}}));
      } else if (stream && result.ok()) {
        json last = chunk(chat ? json::object() : json(""), finish_reason(*st, *result));
        last["usage"] = usage(n_prompt, *result);
        if (!st->firings.empty()) last["vex_experts"] = st->firings;
        st->events.push_back(sse(last));
      }
      st->done = true;
      st->cv.notify_all();
    };
    auto id = sched_.submit(std::move(r));
    if (!id.ok()) return send_error(res, from_status(id.status()));
    Scheduler& sched = sched_;
    const Scheduler::Id request = *id;

    if (stream) {
      res.set_chunked_content_provider(
          "text/event-stream",
          [st, &sched, request, responses](size_t, httplib::DataSink& sink) {
            std::unique_lock lock(st->mu);
            st->cv.wait(lock, [&] { return st->done || !st->events.empty(); });
            while (!st->events.empty()) {
              const std::string ev = st->events.front();
              st->events.pop_front();
              if (!sink.write(ev.data(), ev.size())) {  // the client went away
                sched.cancel(request);
                return false;
              }
            }
            if (st->done) {
              if (!st->result.ok()) {
                const json err = {{"type", "error"}, {"message", std::string(st->result.status().message())}};
                const std::string ev = responses ? "event: error\ndata: " + dump(err) + "\n\n"
                                                 : "data: " + dump(json{{"error", err}}) + "\n\n";
                sink.write(ev.data(), ev.size());
              }
              static constexpr char kDone[] = "data: [DONE]\n\n";
              if (!responses) sink.write(kDone, sizeof kDone - 1);
              sink.done();
            }
            return true;
          },
          [st, &sched, request](bool success) {
            if (!success) sched.cancel(request);
          });
      return;
    }
    std::unique_lock lock(st->mu);
    st->cv.wait(lock, [&] { return st->done; });
    if (!st->result.ok()) return send_error(res, from_status(st->result.status()));
    if (responses) return res.set_content(dump(response_json(*st, &*st->result)), "application/json");
    json body = {{"id", object_id}, {"created", created}, {"model", id_},
                 {"usage", usage(prompt.size(), *st->result)}};
    if (chat) {
      json message = {{"role", "assistant"}, {"content", st->text}};
      if (st->call.started) {
        if (st->text.empty()) message["content"] = nullptr;
        message["tool_calls"] = json::array(
            {{{"id", st->call.id}, {"type", "function"},
              {"function", {{"name", st->call.name}, {"arguments", st->call.arguments}}}}});
      }
      if (!st->reasoning.empty())
        message["reasoning"] = st->reasoning, message["reasoning_content"] = st->reasoning;
      body["object"] = "chat.completion";
      body["choices"] = json::array({{{"index", 0}, {"message", message},
                                      {"finish_reason", finish_reason(*st, *st->result)},
                                      {"logprobs", st->top_n >= 0 ? json{{"content", st->logprobs}}
                                                                  : json(nullptr)}}});
    } else {
      body["object"] = "text_completion";
      json logprobs = nullptr;
      if (st->top_n >= 0) {  // the legacy completions layout
        logprobs = {{"tokens", json::array()}, {"token_logprobs", json::array()},
                    {"top_logprobs", json::array()}, {"text_offset", json::array()}};
        size_t offset = 0;
        for (const json& e : st->logprobs) {
          logprobs["tokens"].push_back(e["token"]);
          logprobs["token_logprobs"].push_back(e["logprob"]);
          json top = json::object();
          for (const json& t : e["top_logprobs"]) top[t["token"].get<std::string>()] = t["logprob"];
          logprobs["top_logprobs"].push_back(top);
          logprobs["text_offset"].push_back(offset);
          offset += e["bytes"].size();
        }
      }
      body["choices"] = json::array({{{"index", 0}, {"text", st->text},
                                      {"finish_reason", finish_reason(*st, *st->result)},
                                      {"logprobs", logprobs}}});
    }
    if (!st->firings.empty()) body["vex_experts"] = st->firings;
    res.set_content(dump(body), "application/json");
  }

  // "tool_calls" when the answer is a function call that ended at its <|call|>.
  static json finish_reason(const Stream& s, const GenerateResult& r) {
    if (s.call.started && r.reason == StopReason::kStopToken && !s.stop_hit) return "tool_calls";
    return r.reason == StopReason::kStopToken || s.stop_hit ? "stop" : "length";
  }
  // completion_tokens counts every token of the answer; of them, vex_injected_tokens were
  // written by virtual experts (whole answers: max_tokens limits the sampled ones only).
  static json usage(size_t prompt, const GenerateResult& r) {
    return {{"prompt_tokens", prompt}, {"completion_tokens", r.generated},
            {"total_tokens", prompt + r.generated}, {"vex_injected_tokens", r.injected}};
  }

  const Model& model_;
  Scheduler& sched_;
  const Options opt_;
  const std::string id_;
  const ExpertRegistry registry_;
  std::atomic<uint64_t> requests_{0}, firings_{0};
};

int run(int argc, char** argv) {
  Options o;
  bool help = false;
  Args args;
  args.text({"--weights", "-m"}, "model directory (default: the demo model, models/vex-demo)", &o.weights);
  args.text({"--experts"}, "expert manifest (TOML) to attach", &o.experts);
  args.text({"--host"}, "address to listen on (default 127.0.0.1)", &o.host);
  args.integer({"--port"}, "port (default 8080; 0: any free port, printed)", 0, 65535, &o.port);
  args.integer({"--parallel", "-np"}, "requests generated at once (default 4)", 1, 256, &o.parallel);
  args.integer({"--ctx-size", "-c"}, "context size of each request (default 4096)", 16, 1 << 20, &o.ctx);
  args.integer({"--max-queue"}, "requests waiting beyond which new ones get 429 (default 64)", 0, 1 << 20, &o.max_queue);
  args.text({"--api-key"}, "require 'Authorization: Bearer KEY' (all endpoints but /health)", &o.api_key);
  args.text({"--device"}, "auto, cpu or cuda (default auto)", &o.device);
  args.integer({"-t", "--threads"}, "CPU engine threads (default: every hardware thread)", 1, 1024, &o.threads);
  GpuFlags gpu;
  add_gpu_flags(args, &gpu);
  args.flag({"--help", "-h"}, "show this help", &help);
  if (absl::Status st = args.parse(argc, argv); !st.ok() || help) {
    if (!st.ok()) fprintf(stderr, "vexserve: %s\n", std::string(st.message()).c_str());
    fprintf(help ? stdout : stderr, "usage: vexserve [options]\n%s", args.usage().c_str());
    return help ? 0 : 2;
  }
  auto fail = [](const absl::Status& st) {
    fprintf(stderr, "vexserve: %s\n", std::string(st.message()).c_str());
    return 1;
  };
  // SIGTERM / SIGINT are taken by one thread (below), blocked in every other: blocked here,
  // before the scheduler and NCCL start their threads, so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // Workers for the other GPUs, forked before anything touches CUDA or starts a thread (they
  // end when this process closes their pipe or dies).
  if (absl::Status st = start_gpus(gpu); !st.ok()) return fail(st);
  auto device = parse_device(o.device);
  if (!device.ok()) return fail(device.status());
  if (o.weights.empty()) {
    auto demo = demo_model_dir();
    if (!demo.ok()) return fail(demo.status());
    o.weights = *demo;
  }
  LoadOptions load;
  load.experts = o.experts;
  cpu_threads() = o.threads;  // 0: every hardware thread
  auto model = load_model(o.weights, load);
  if (!model.ok()) return fail(model.status());
  if (!(*model)->tokenizer)
    return fail((*model)->require_tokenizer().status());
  auto sched = Scheduler::create(**model, {.parallel = o.parallel, .max_queue = o.max_queue,
                                           .max_ctx = std::min(o.ctx, (*model)->config().max_position),
                                           .device = *device,
                                           .split = gpu.split});
  if (!sched.ok()) return fail(sched.status());
  std::string id = std::filesystem::path(o.weights).lexically_normal().filename().string();
  if (id.empty()) id = std::filesystem::path(o.weights).lexically_normal().parent_path().filename().string();


  httplib::Server http;
  Server server(**model, **sched, o, id);
  server.routes(http);
  http.set_payload_max_length(16 << 20);
  // A request holds an HTTP thread until it ends (streams included), and queued requests wait
  // in theirs: enough threads for every slot and the queue, so none waits for a thread instead.
  const size_t threads = std::clamp<size_t>(o.parallel + o.max_queue + 4, 8, 1024);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  int port = o.port;
  if (port == 0) {
    port = http.bind_to_any_port(o.host);
  } else if (!http.bind_to_port(o.host, port)) {
    port = -1;
  }
  if (port < 0) return fail(absl::UnavailableError(absl::StrFormat("cannot listen on %s:%d", o.host, o.port)));
  fprintf(stderr, "vexserve: %s (%s, %d slots) listening on http://%s:%d\n", id.c_str(),
          (*sched)->device(), o.parallel, o.host.c_str(), port);
  fflush(stderr);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    (*sched)->cancel_all();  // what runs ends now (streams get their last event), then stop
    http.stop();
  });
  const bool listened = http.listen_after_bind();
  if (waiter.joinable()) {
    pthread_kill(waiter.native_handle(), SIGTERM);  // if listening ended another way
    waiter.join();
  }
  sched->reset();
  fprintf(stderr, "vexserve: stopped\n");
  return listened ? 0 : 1;
}

}  // namespace
}  // namespace vex

int main(int argc, char** argv) { return vex::run(argc, argv); }
