// The C API (runtime/include/vex/vex.h) over the C++ core: Model, the Scheduler every request
// runs through (as vexrun's and vexserve's do), harmony. Each function turns absl::Status into
// vex_status and keeps the message for vex_last_error().
#include "vex/vex.h"

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>

#include "experts/expert.h"
#include "runtime/harmony.h"
#include "runtime/model.h"
#include "runtime/routing.h"
#include "runtime/scheduler.h"
#include "runtime/session.h"

// A magic word in each handle (cleared when it is freed): a freed, foreign or garbage pointer is
// refused with an error where that is cheap to tell, instead of being used.
constexpr uint32_t kContextMagic = 0x76784358;  // "vxCX"
constexpr int kMaxRequests = 1 << 16;  // requests one vex_generate_many call may pass

struct vex_model {
  std::unique_ptr<vex::Model> m;
};

struct vex_context {
  vex_model* model;
  // n_parallel slots; slot 0 is also the sequence vex_context_set_tokens runs directly.
  std::unique_ptr<vex::Scheduler> scheduler;
  bool has_logits = false;
  vex::ExpertRegistry experts;  // builtins + vex_expert_register
  uint32_t magic = kContextMagic;
  // Inside vex_generate(_many): a call from one of its callbacks (on the scheduler's thread) is
  // refused.
  std::atomic<bool> busy{false};
};

namespace {

thread_local std::string t_last_error;

struct Log {
  std::mutex mu;
  vex_log_callback cb = nullptr;
  vex_log_level min = VEX_LOG_INFO;
  void* user = nullptr;
};
Log& log_state() {
  static Log l;
  return l;
}

void log(vex_log_level level, const std::string& msg) {
  Log& l = log_state();
  std::lock_guard<std::mutex> lock(l.mu);
  if (l.cb && level >= l.min) l.cb(level, msg.c_str(), l.user);
}

vex_status fail(vex_status code, std::string msg) {
  t_last_error = std::move(msg);
  return code;
}

vex_status to_status(const absl::Status& st) {
  if (st.ok()) return VEX_STATUS_OK;
  vex_status code;
  switch (st.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
      code = VEX_STATUS_INVALID_ARGUMENT;
      break;
    case absl::StatusCode::kNotFound:
      code = VEX_STATUS_NOT_FOUND;
      break;
    case absl::StatusCode::kUnimplemented:
      code = VEX_STATUS_UNSUPPORTED;
      break;
    case absl::StatusCode::kOutOfRange:
      code = VEX_STATUS_OUT_OF_RANGE;
      break;
    case absl::StatusCode::kCancelled:
      code = VEX_STATUS_CANCELLED;
      break;
    case absl::StatusCode::kResourceExhausted:
      code = VEX_STATUS_OUT_OF_MEMORY;
      break;
    default:
      code = VEX_STATUS_INTERNAL;
      break;
  }
  log(VEX_LOG_ERROR, std::string(st.message()));
  return fail(code, std::string(st.message()));
}

// Runs f(), turning exceptions (allocation failures, bugs) into codes: nothing escapes into C.
template <typename F>
vex_status guard(F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return fail(VEX_STATUS_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(VEX_STATUS_INTERNAL, std::string("internal error: ") + e.what());
  }
}

vex_status null_arg(const char* fn, const char* name) {
  return fail(VEX_STATUS_INVALID_ARGUMENT, std::string(fn) + ": " + name + " is NULL");
}

// The checks every function taking a context makes before it acts.
vex_status check_context(const vex_context* context, const char* fn) {
  if (!context) return null_arg(fn, "context");
  if (context->magic != kContextMagic)
    return fail(VEX_STATUS_INVALID_ARGUMENT,
                std::string(fn) + ": context is not a live vex_context (freed, or not one)");
  if (context->busy)
    return fail(VEX_STATUS_INVALID_ARGUMENT,
                std::string(fn) + ": the context is generating (called from one of its callbacks?)");
  return VEX_STATUS_OK;
}

// A caller's params struct over the defaults: only the bytes its struct_size covers, so an
// older caller's shorter struct keeps the newer fields at their defaults.
template <typename T>
bool read_params(const T* given, T* out, const char* fn) {
  if (!given) return true;
  const size_t size = given->struct_size;
  if (size < sizeof(size_t) || size > (1u << 16)) {
    fail(VEX_STATUS_INVALID_ARGUMENT,
         std::string(fn) + ": params.struct_size is not set (use the *_default_params function)");
    return false;
  }
  memcpy(out, given, std::min(sizeof(T), size));
  out->struct_size = sizeof(T);
  return true;
}

// Copies `n` items into a caller's buffer, or reports the size needed (two-call pattern).
template <typename T>
vex_status to_buffer(const T* data, size_t n, T* buf, size_t capacity, size_t* out_count) {
  if (out_count) *out_count = n;
  if (n > capacity || (n > 0 && !buf))
    return fail(VEX_STATUS_BUFFER_TOO_SMALL, "output buffer holds " + std::to_string(capacity) +
                                                 ", " + std::to_string(n) + " needed");
  if (n) memcpy(buf, data, n * sizeof(T));
  return VEX_STATUS_OK;
}

absl::StatusOr<const vex::Tokenizer*> tokenizer(const vex_model* model) {
  return model->m->require_tokenizer();
}

}  // namespace

extern "C" {

vex_status vex_gpus_start(int32_t n_gpus) {
  return guard([&] {
    if (n_gpus < 1)
      return fail(VEX_STATUS_INVALID_ARGUMENT,
                  "vex_gpus_start: n_gpus must be >= 1, got " + std::to_string(n_gpus));
    return to_status(vex::Group::begin(n_gpus));
  });
}

const char* vex_version(void) {
  return "0.1.0";
}

const char* vex_last_error(void) {
  return t_last_error.c_str();
}

const char* vex_status_name(vex_status status) {
  switch (status) {
    case VEX_STATUS_OK:
      return "VEX_STATUS_OK";
    case VEX_STATUS_INVALID_ARGUMENT:
      return "VEX_STATUS_INVALID_ARGUMENT";
    case VEX_STATUS_NOT_FOUND:
      return "VEX_STATUS_NOT_FOUND";
    case VEX_STATUS_UNSUPPORTED:
      return "VEX_STATUS_UNSUPPORTED";
    case VEX_STATUS_OUT_OF_RANGE:
      return "VEX_STATUS_OUT_OF_RANGE";
    case VEX_STATUS_BUFFER_TOO_SMALL:
      return "VEX_STATUS_BUFFER_TOO_SMALL";
    case VEX_STATUS_CANCELLED:
      return "VEX_STATUS_CANCELLED";
    case VEX_STATUS_OUT_OF_MEMORY:
      return "VEX_STATUS_OUT_OF_MEMORY";
    case VEX_STATUS_INTERNAL:
      return "VEX_STATUS_INTERNAL";
  }
  return "VEX_STATUS_UNKNOWN";
}

void vex_log_set(vex_log_callback callback, vex_log_level min_level, void* user_data) {
  Log& l = log_state();
  std::lock_guard<std::mutex> lock(l.mu);
  l.cb = callback, l.min = min_level, l.user = user_data;
}

vex_model_params vex_model_default_params(void) {
  vex_model_params p{};
  p.struct_size = sizeof p;
  return p;
}

vex_status vex_model_load(const char* dir, const vex_model_params* params, vex_model** out_model) {
  if (!dir) return null_arg("vex_model_load", "dir");
  if (!out_model) return null_arg("vex_model_load", "out_model");
  *out_model = nullptr;
  vex_model_params p = vex_model_default_params();
  if (!read_params(params, &p, "vex_model_load")) return VEX_STATUS_INVALID_ARGUMENT;
  return guard([&] {
    log(VEX_LOG_INFO, std::string("loading ") + dir);
    vex::LoadProgress progress;
    if (p.on_progress) progress = [&](float f) { return p.on_progress(f, p.progress_user_data); };
    vex::LoadOptions load;
    load.progress = progress;
    if (p.experts) load.experts = p.experts;
    auto m = vex::load_model(dir, load);
    if (!m.ok()) return to_status(m.status());
    *out_model = new vex_model{std::move(*m)};
    return VEX_STATUS_OK;
  });
}

void vex_model_free(vex_model* model) {
  delete model;
}

int32_t vex_model_vocab_size(const vex_model* model) {
  return model ? model->m->config().vocab_size : 0;
}

int32_t vex_model_max_context(const vex_model* model) {
  return model ? model->m->config().max_position : 0;
}

bool vex_model_has_tokenizer(const vex_model* model) {
  return model && model->m->tokenizer != nullptr;
}

vex_status vex_tokenize(const vex_model* model, const char* text, size_t len, bool parse_special,
                        int32_t* tokens, size_t capacity, size_t* out_count) {
  if (!model) return null_arg("vex_tokenize", "model");
  if (!text && len) return null_arg("vex_tokenize", "text");
  return guard([&] {
    auto tok = tokenizer(model);
    if (!tok.ok()) return to_status(tok.status());
    const auto ids = (*tok)->encode(absl::string_view(text ? text : "", len), parse_special);
    return to_buffer(ids.data(), ids.size(), tokens, capacity, out_count);
  });
}

vex_status vex_detokenize(const vex_model* model, const int32_t* tokens, size_t count, char* text,
                          size_t capacity, size_t* out_len) {
  if (!model) return null_arg("vex_detokenize", "model");
  if (!tokens && count) return null_arg("vex_detokenize", "tokens");
  return guard([&] {
    auto tok = tokenizer(model);
    if (!tok.ok()) return to_status(tok.status());
    const int32_t V = model->m->config().vocab_size;
    for (size_t i = 0; i < count; ++i)
      if (tokens[i] < 0 || tokens[i] >= V)
        return fail(VEX_STATUS_INVALID_ARGUMENT,
                    "vex_detokenize: token id " + std::to_string(tokens[i]) + " at index " +
                        std::to_string(i) + " is outside [0, " + std::to_string(V) + ")");
    const std::string s = (*tok)->decode(std::span(tokens, count));
    return to_buffer(s.data(), s.size(), text, capacity, out_len);
  });
}

vex_chat_params vex_chat_default_params(void) {
  vex_chat_params p{};
  p.struct_size = sizeof p;
  p.reasoning = "medium";
  p.for_completion = true;
  return p;
}

vex_status vex_chat_render(const vex_model* model, const vex_chat_params* params,
                           const vex_chat_message* messages, size_t n_messages, int32_t* tokens,
                           size_t capacity, size_t* out_count) {
  if (!model) return null_arg("vex_chat_render", "model");
  if (!messages && n_messages) return null_arg("vex_chat_render", "messages");
  vex_chat_params p = vex_chat_default_params();
  if (!read_params(params, &p, "vex_chat_render")) return VEX_STATUS_INVALID_ARGUMENT;
  return guard([&] {
    auto tok = tokenizer(model);
    if (!tok.ok()) return to_status(tok.status());
    vex::harmony::Conversation conv;
    if (p.reasoning) {
      if (absl::Status st = vex::harmony::check_reasoning(p.reasoning); !st.ok())
        return to_status(st);
      conv.system.reasoning = p.reasoning;
    }
    if (p.current_date) conv.system.current_date = p.current_date;
    if (p.instructions) conv.developer = p.instructions;
    for (size_t i = 0; i < n_messages; ++i) {
      const vex_chat_message& m = messages[i];
      if (!m.role || !*m.role || !m.content)
        return fail(VEX_STATUS_INVALID_ARGUMENT, "vex_chat_render: messages[" + std::to_string(i) +
                                                     "] needs a role and content");
      const bool assistant = std::strcmp(m.role, "assistant") == 0;
      conv.messages.push_back(
          {.role = m.role,
           .channel = m.channel ? m.channel : "",
           .content = m.content,
           .end = assistant ? vex::harmony::End::kEnd : vex::harmony::End::kNone});
    }
    const auto r = vex::harmony::render(**tok, conv, p.for_completion);
    return to_buffer(r.tokens.data(), r.tokens.size(), tokens, capacity, out_count);
  });
}

vex_context_params vex_context_default_params(void) {
  vex_context_params p{};
  p.struct_size = sizeof p;
  return p;
}

vex_status vex_context_init(vex_model* model, const vex_context_params* params,
                            vex_context** out_context) {
  if (!model) return null_arg("vex_context_init", "model");
  if (!out_context) return null_arg("vex_context_init", "out_context");
  *out_context = nullptr;
  vex_context_params p = vex_context_default_params();
  if (!read_params(params, &p, "vex_context_init")) return VEX_STATUS_INVALID_ARGUMENT;
  return guard([&] {
    const vex::Config& c = model->m->config();
    if (p.n_ctx < 0 || p.n_ctx > c.max_position)
      return fail(VEX_STATUS_INVALID_ARGUMENT, "vex_context_init: n_ctx " +
                                                   std::to_string(p.n_ctx) + " is outside [0, " +
                                                   std::to_string(c.max_position) + "]");
    const int n_ctx = p.n_ctx ? p.n_ctx : std::min(4096, c.max_position);
    // A C caller may store any int in the enum field; reading it as the C++ enum is undefined
    // outside the enumerators, so the value is read as the int it is.
    static_assert(sizeof(vex_device) == sizeof(int));
    int device_value;
    std::memcpy(&device_value, &p.device, sizeof device_value);
    if (device_value < VEX_DEVICE_AUTO || device_value > VEX_DEVICE_CUDA)
      return fail(VEX_STATUS_INVALID_ARGUMENT,
                  "vex_context_init: unknown device " + std::to_string(device_value));
    const vex::Device device = p.device == VEX_DEVICE_CPU    ? vex::Device::kCpu
                               : p.device == VEX_DEVICE_CUDA ? vex::Device::kCuda
                                                             : vex::Device::kAuto;
    const int parallel = p.n_parallel ? p.n_parallel : 1;
    if (parallel < 1 || parallel > 256)
      return fail(VEX_STATUS_INVALID_ARGUMENT, "vex_context_init: n_parallel " +
                                                   std::to_string(p.n_parallel) +
                                                   " is outside [0, 256]");
    auto sched = vex::Scheduler::create(
        *model->m,
        {.parallel = parallel, .max_queue = kMaxRequests, .max_ctx = n_ctx, .device = device});
    if (!sched.ok()) return to_status(sched.status());
    *out_context = new vex_context{model, std::move(*sched), false, vex::ExpertRegistry()};
    return VEX_STATUS_OK;
  });
}

void vex_context_free(vex_context* context) {
  if (context) context->magic = 0;
  delete context;
}

const char* vex_context_device(const vex_context* context) {
  return context ? context->scheduler->device() : "";
}

int32_t vex_context_size(const vex_context* context) {
  return context ? context->scheduler->options().max_ctx : 0;
}

int32_t vex_context_length(const vex_context* context) {
  return context ? static_cast<int32_t>(context->scheduler->session(0).tokens().size()) : 0;
}

vex_status vex_context_set_tokens(vex_context* context, const int32_t* tokens, size_t count) {
  if (vex_status st = check_context(context, "vex_context_set_tokens")) return st;
  if (!context) return null_arg("vex_context_set_tokens", "context");
  if (!tokens && count) return null_arg("vex_context_set_tokens", "tokens");
  return guard([&] {
    absl::Status st = context->scheduler->session(0).set_tokens(std::span(tokens, count));
    context->has_logits = st.ok();
    return to_status(st);
  });
}

const float* vex_context_logits(const vex_context* context) {
  return context && context->has_logits ? context->scheduler->session(0).logits().data()
                                         : nullptr;
}

void vex_context_cancel(vex_context* context) {
  if (context) context->scheduler->interrupt();  // atomic stores only
}

vex_sampling_params vex_sampling_default_params(const vex_model* model) {
  const vex::SamplingParams s = model ? model->m->sampling : vex::SamplingParams{};
  return {s.temperature, s.top_k, s.top_p, s.min_p, s.seed};
}

vex_generate_params vex_generate_default_params(const vex_model* model) {
  vex_generate_params p{};
  p.struct_size = sizeof p;
  p.max_tokens = -1;
  p.sampling = vex_sampling_default_params(model);
  p.chat = true;
  p.virtual_experts = true;
  return p;
}

namespace {

// One request of vex_generate(_many): its parameters, the parser or decoder that turns its
// tokens into text for the callback (and tells its experts where message content is), its
// experts, and its result.
struct Call {
  vex_generate_params p;
  std::optional<vex::harmony::StreamParser> parser;
  std::optional<vex::StreamDecoder> decoder;
  std::unique_ptr<vex::VirtualExperts> experts;
  vex::Request request;
  absl::StatusOr<vex::GenerateResult> result = absl::UnknownError("not run");
  vex_generate_result* out = nullptr;
};

// Checks one request's arguments and builds its Call; fn names the function in errors.
vex_status prepare(vex_context* context, const int32_t* prompt, size_t n_prompt,
                   const vex_generate_params* params, vex_generate_result* result,
                   const std::string& fn, Call* call) {
  if (!prompt && n_prompt) return null_arg(fn.c_str(), "prompt");
  if (!params) return null_arg(fn.c_str(), "params");
  vex_generate_params& p = call->p;
  p = vex_generate_default_params(context->model);
  if (!read_params(params, &p, fn.c_str())) return VEX_STATUS_INVALID_ARGUMENT;
  if (p.n_stop_tokens && !p.stop_tokens) return null_arg(fn.c_str(), "params.stop_tokens");
  if (p.max_tokens < -1)
    return fail(VEX_STATUS_INVALID_ARGUMENT,
                fn + ": params.max_tokens must be -1 (no limit) or >= 0, got " +
                    std::to_string(p.max_tokens));
  if (result && (result->struct_size < sizeof(size_t) || result->struct_size > (1u << 16)))
    return fail(VEX_STATUS_INVALID_ARGUMENT,
                fn + ": result.struct_size is not set (sizeof(vex_generate_result))");
  const vex::SamplingParams sampling{p.sampling.temperature, p.sampling.top_k, p.sampling.top_p,
                                     p.sampling.min_p, p.sampling.seed};
  if (absl::Status st = vex::validate(sampling); !st.ok())
    return fail(VEX_STATUS_INVALID_ARGUMENT, absl::StrCat(fn, ": ", st.message()));
  const int ctx = context->scheduler->options().max_ctx;
  if (n_prompt == 0) return fail(VEX_STATUS_INVALID_ARGUMENT, fn + ": the prompt is empty");
  if (n_prompt > static_cast<size_t>(ctx))
    return fail(VEX_STATUS_OUT_OF_RANGE, absl::StrCat(fn, ": the prompt is ", n_prompt,
                                                      " tokens but the context size is ", ctx));
  call->out = result;
  const vex::Model& m = *context->model->m;
  vex::Request& r = call->request;
  r.prompt.assign(prompt, prompt + n_prompt);
  r.virtual_experts = p.virtual_experts;
  if (p.n_ablate_experts && !p.ablate_experts) return null_arg(fn.c_str(), "params.ablate_experts");
  if (p.n_force_experts && !p.force_experts) return null_arg(fn.c_str(), "params.force_experts");
  r.routing.k = p.experts_per_token;
  for (size_t i = 0; i < p.n_ablate_experts; ++i)
    r.routing.ablate.push_back({p.ablate_experts[2 * i], p.ablate_experts[2 * i + 1]});
  for (size_t i = 0; i < p.n_force_experts; ++i)
    r.routing.force.push_back({p.force_experts[2 * i], p.force_experts[2 * i + 1]});
  if (auto plan = vex::plan_routing(r.routing, m.weights.layers, m.config().n_experts_active,
                                    /*max_k=*/16);
      !plan.ok())
    return fail(VEX_STATUS_INVALID_ARGUMENT, absl::StrCat(fn, ": ", plan.status().message()));
  if (p.on_routing)
    r.on_routing = [call, hidden = m.config().d_model](const vex::RoutingEvent& ev) {
      const vex_routing_event out{ev.layer, ev.pos, ev.n_slots, ev.k, ev.router_logits,
                                  ev.slots, ev.weights, ev.xn, hidden};
      call->p.on_routing(&out, call->p.user_data);
    };
  r.options.max_tokens = p.max_tokens;
  r.options.sampling = sampling;
  r.options.stop_tokens = m.stop_tokens;
  r.options.stop_tokens.insert(r.options.stop_tokens.end(), p.stop_tokens,
                               p.stop_tokens + p.n_stop_tokens);
  // Text for the callback: through the Harmony parser in chat mode, else a UTF-8-safe decoder.
  // Chat mode parses even without a callback when virtual experts need to know where the
  // message content is.
  const vex::Tokenizer* tok = m.tokenizer.get();
  const bool experts_on = p.virtual_experts && !m.host_experts.empty();
  if ((p.on_token || experts_on) && tok) {
    if (p.chat)
      call->parser.emplace(*tok);
    else
      call->decoder.emplace(*tok);
  }
  if (experts_on) {
    auto v = vex::VirtualExperts::bind(m, context->experts);
    if (!v.ok()) return to_status(v.status());
    call->experts = std::move(*v);
    if (call->parser) call->experts->read_message_content(*call->parser);
    if (p.on_expert)
      call->experts->on_firing = [call](const vex::ExpertFiring& f) {
        const vex_expert_event ev{f.expert.c_str(), f.layer,         f.pos,         f.weight,
                                  f.answered,       f.inputs.c_str(), f.output.c_str()};
        call->p.on_expert(&ev, call->p.user_data);
      };
    r.options.experts = call->experts.get();
  }
  r.on_token = [call](int32_t t) {
    const vex_generate_params& gp = call->p;
    if (!gp.on_token) {
      if (call->parser) call->parser->feed(t);
      return true;
    }
    vex_token_event ev{};
    ev.token = t;
    std::string text, channel;
    if (call->parser) {
      if (call->parser->open()) channel = call->parser->open()->channel;
      text = call->parser->feed(t).content;
      ev.channel = channel.c_str();
      ev.is_content = !text.empty();
    } else {
      if (call->decoder) text = call->decoder->feed(t);
      ev.is_content = true;
    }
    ev.text = text.c_str();
    ev.text_len = text.size();
    return gp.on_token(&ev, gp.user_data);
  };
  return VEX_STATUS_OK;
}

// Runs the calls through the context's scheduler and waits for all of them. The callbacks run
// on the scheduler's thread, one at a time. Returns the first request's failure, if any.
vex_status run(vex_context* context, std::span<Call> calls) {
  context->busy = true;
  struct Idle {
    vex_context* c;
    ~Idle() { c->busy = false; }
  } idle{context};
  std::mutex mu;
  std::condition_variable cv;
  size_t left = calls.size();
  for (Call& call : calls) {
    call.request.on_done = [&, c = &call](const absl::StatusOr<vex::GenerateResult>& r) {
      c->result = r;
      std::lock_guard lock(mu);
      if (--left == 0) cv.notify_all();
    };
    auto id = context->scheduler->submit(std::move(call.request));
    if (!id.ok()) {  // checked before: only a shutting-down scheduler refuses
      call.result = id.status();
      std::lock_guard lock(mu);
      --left;
    }
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return left == 0; });
  }
  // vex_context_logits shows slot 0's, the sequence of every request when n_parallel is 1,
  // when the engine copied them (tokens drawn on the GPU come back without their logits).
  context->has_logits = context->scheduler->options().parallel == 1 &&
                        context->scheduler->session(0).logits_current();
  vex_status first = VEX_STATUS_OK;
  for (Call& call : calls) {
    if (!call.result.ok()) {
      const vex_status st = to_status(call.result.status());
      if (first == VEX_STATUS_OK) first = st;
      continue;
    }
    if (call.out) {
      const vex::GenerateResult& r = *call.result;
      vex_generate_result out{};
      out.struct_size = call.out->struct_size;
      out.stop_reason = static_cast<vex_stop_reason>(r.reason);
      out.n_prompt = r.prompt_tokens;
      out.n_reused = r.reused_tokens;
      out.n_generated = r.generated;
      out.prompt_ms = r.prompt_ms;
      out.generate_ms = r.generate_ms;
      out.n_injected = r.injected;
      memcpy(call.out, &out, std::min(sizeof out, call.out->struct_size));
    }
  }
  return first;
}

}  // namespace

vex_status vex_generate(vex_context* context, const int32_t* prompt, size_t n_prompt,
                        const vex_generate_params* params, vex_generate_result* result) {
  // Every argument is checked before any state changes.
  if (vex_status st = check_context(context, "vex_generate")) return st;
  return guard([&] {
    Call call;
    if (vex_status st = prepare(context, prompt, n_prompt, params, result, "vex_generate", &call))
      return st;
    return run(context, std::span(&call, 1));
  });
}

vex_status vex_generate_many(vex_context* context, vex_request* requests, size_t n) {
  if (vex_status st = check_context(context, "vex_generate_many")) return st;
  if (!requests && n) return null_arg("vex_generate_many", "requests");
  if (n > static_cast<size_t>(kMaxRequests))
    return fail(VEX_STATUS_INVALID_ARGUMENT, absl::StrCat("vex_generate_many: ", n,
                                                          " requests; at most ", kMaxRequests));
  return guard([&] {
    std::vector<Call> calls(n);
    for (size_t i = 0; i < n; ++i) {
      requests[i].status = VEX_STATUS_OK;
      const std::string fn = absl::StrCat("vex_generate_many: requests[", i, "]");
      if (vex_status st = prepare(context, requests[i].prompt, requests[i].n_prompt,
                                  requests[i].params, requests[i].result, fn, &calls[i]))
        return st;
    }
    const vex_status st = run(context, calls);
    for (size_t i = 0; i < n; ++i)
      if (!calls[i].result.ok()) requests[i].status = to_status(calls[i].result.status());
    if (st != VEX_STATUS_OK) {  // the message of the first failure, for vex_last_error
      for (size_t i = 0; i < n; ++i)
        if (!calls[i].result.ok()) return to_status(calls[i].result.status());
    }
    return st;
  });
}

namespace {

// A HOST expert an embedder registered: its callback behind the HostExpert interface.
class CallbackExpert final : public vex::HostExpert {
 public:
  CallbackExpert(std::string name, vex_expert_callback cb, void* user)
      : name_(std::move(name)), cb_(cb), user_(user) {}
  const std::string& name() const override { return name_; }
  std::optional<vex::ExpertAnswer> answer(std::string_view text) const override {
    char buf[4096];
    const size_t n = cb_(text.data(), text.size(), buf, sizeof buf, user_);
    if (n == 0) return std::nullopt;
    const std::string out(buf, std::min(n, sizeof buf));
    return vex::ExpertAnswer{"", out, vex::continue_with(text, out)};
  }

 private:
  std::string name_;
  vex_expert_callback cb_;
  void* user_;
};

}  // namespace

vex_status vex_expert_register(vex_context* context, const char* name,
                               vex_expert_callback callback, void* user_data) {
  if (vex_status st = check_context(context, "vex_expert_register")) return st;
  if (!context) return null_arg("vex_expert_register", "context");
  if (!name) return null_arg("vex_expert_register", "name");
  if (!callback) return null_arg("vex_expert_register", "callback");
  if (!*name)
    return fail(VEX_STATUS_INVALID_ARGUMENT, "vex_expert_register: the name is empty");
  return guard([&] {
    context->experts.add(std::make_unique<CallbackExpert>(name, callback, user_data));
    return VEX_STATUS_OK;
  });
}

}  // extern "C"
