/*
 * vex.h — the C API of vex, an inference runtime for Mixture-of-Experts language models
 * (gpt-oss-20b and gpt-oss-120b).
 *
 * Link with libvex.so (-lvex) or libvex.a. Every function is C-callable; only the symbols
 * declared here are exported from the shared library.
 *
 * Objects:
 *   vex_model    weights, tokenizer and defaults loaded from a checkpoint directory. Immutable
 *                after loading; may be shared by several contexts and threads (on the GPU its
 *                contexts share one upload of the weights).
 *   vex_context  n_parallel sequences being generated (one by default): KV caches, tokens and
 *                logits, and the worker thread that runs them. Use one context from one thread
 *                at a time (vex_context_cancel is the exception).
 *
 * Errors: functions return vex_status. VEX_STATUS_OK is 0; on any other value,
 * vex_last_error() returns a message naming the file, key, flag or argument at fault. No
 * function aborts the process on bad input.
 *
 * Parameter structs begin with `struct_size`: fill them with the matching
 * vex_*_default_params() function, then change the fields you need. The library reads only the
 * fields that exist in the caller's version of the struct, so programs built against an older
 * header keep working with a newer library.
 *
 * Minimal use:
 *
 *   vex_model* model;
 *   vex_model_params mp = vex_model_default_params();
 *   if (vex_model_load("./gpt-oss-20b", &mp, &model) != VEX_STATUS_OK) {
 *     fprintf(stderr, "%s\n", vex_last_error());
 *     return 1;
 *   }
 *   vex_context* ctx;
 *   vex_context_params cp = vex_context_default_params();
 *   vex_context_init(model, &cp, &ctx);
 *   vex_chat_message msg = {"user", NULL, "What is 127 * 89?"};
 *   ... vex_chat_render() the prompt, vex_generate() it with an on_token callback ...
 *   vex_context_free(ctx);
 *   vex_model_free(model);
 */
#ifndef VEX_VEX_H
#define VEX_VEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define VEX_API __declspec(dllexport)
#elif defined(__GNUC__)
#define VEX_API __attribute__((visibility("default")))
#else
#define VEX_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------------------------ */

#define VEX_VERSION_MAJOR 0
#define VEX_VERSION_MINOR 1
#define VEX_VERSION_PATCH 0
/* The version as one comparable integer: major * 10000 + minor * 100 + patch. */
#define VEX_VERSION (VEX_VERSION_MAJOR * 10000 + VEX_VERSION_MINOR * 100 + VEX_VERSION_PATCH)

/* The library's version as "MAJOR.MINOR.PATCH" (may differ from the header's macros when a
 * program runs against a newer shared library). */
VEX_API const char* vex_version(void);

/* ---------------------------------------------------------------------------------------------
 * Errors and logging
 * ------------------------------------------------------------------------------------------ */

typedef enum vex_status {
  VEX_STATUS_OK = 0,
  VEX_STATUS_INVALID_ARGUMENT = 1, /* a bad parameter, flag value, token id, or malformed file */
  VEX_STATUS_NOT_FOUND = 2,        /* a file or directory does not exist */
  VEX_STATUS_UNSUPPORTED = 3,      /* a model or feature this build does not run */
  VEX_STATUS_OUT_OF_RANGE = 4,     /* the tokens do not fit in the context */
  VEX_STATUS_BUFFER_TOO_SMALL = 5, /* an output buffer is too small; the needed size is returned */
  VEX_STATUS_CANCELLED = 6,        /* a progress callback returned false */
  VEX_STATUS_OUT_OF_MEMORY = 7,    /* host or device memory ran out */
  VEX_STATUS_INTERNAL = 8          /* a bug in vex: please report it with vex_last_error() */
} vex_status;

/* The message of the last error returned on the calling thread ("" if none yet). The pointer is
 * valid until the thread's next failing vex call. */
VEX_API const char* vex_last_error(void);

/* A short name for a status code, e.g. "VEX_STATUS_NOT_FOUND". */
VEX_API const char* vex_status_name(vex_status status);

typedef enum vex_log_level {
  VEX_LOG_DEBUG = 0,
  VEX_LOG_INFO = 1,
  VEX_LOG_WARN = 2,
  VEX_LOG_ERROR = 3
} vex_log_level;

/* Receives the library's log lines (one line, no trailing newline). `user_data` is the pointer
 * given to vex_log_set. May be called from any thread that calls into vex. */
typedef void (*vex_log_callback)(vex_log_level level, const char* message, void* user_data);

/* Routes log lines at `min_level` or above to `callback`; NULL silences the library (the
 * default: vex prints nothing unless asked). */
VEX_API void vex_log_set(vex_log_callback callback, vex_log_level min_level, void* user_data);

/* ---------------------------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------------------------ */

typedef struct vex_model vex_model;

/* Load progress in [0, 1]. Return false to cancel the load (vex_model_load then returns
 * VEX_STATUS_CANCELLED). */
typedef bool (*vex_progress_callback)(float progress, void* user_data);

typedef struct vex_model_params {
  size_t struct_size;                /* sizeof(vex_model_params), set by the default function */
  vex_progress_callback on_progress; /* NULL: no progress reports */
  void* progress_user_data;          /* passed to on_progress */
  const char* experts;               /* expert manifest (TOML): pruned experts are never loaded,
                                        virtual experts are attached (NULL: none) */
} vex_model_params;

VEX_API vex_model_params vex_model_default_params(void);

/* Loads a checkpoint directory: a Hugging Face gpt-oss directory (config.json, safetensors
 * shards, tokenizer.json, generation_config.json) or its original/ folder. Weights are
 * memory-mapped, not copied. On success *out_model owns everything; free it with
 * vex_model_free. `params` may be NULL for the defaults. */
VEX_API vex_status vex_model_load(const char* dir, const vex_model_params* params,
                                  vex_model** out_model);

/* Frees a model. Free its contexts first. NULL is ignored. */
VEX_API void vex_model_free(vex_model* model);

/* The vocabulary size of the model's embedding and output (201088 for gpt-oss). */
VEX_API int32_t vex_model_vocab_size(const vex_model* model);

/* The longest context the model was configured for (config.json max_position_embeddings). */
VEX_API int32_t vex_model_max_context(const vex_model* model);

/* Whether the directory had a tokenizer.json (text functions need one). */
VEX_API bool vex_model_has_tokenizer(const vex_model* model);

/* ---------------------------------------------------------------------------------------------
 * Tokens and text
 *
 * Output buffers follow a two-call pattern: call with the buffer you have (or NULL and 0); if it
 * is too small the function returns VEX_STATUS_BUFFER_TOO_SMALL and stores the needed count in
 * *out_count; call again with a buffer that large.
 * ------------------------------------------------------------------------------------------ */

/* Encodes `len` bytes of UTF-8 text into token ids. With `parse_special`, text such as
 * "<|start|>" becomes its special token; without, it is ordinary text. Invalid UTF-8 is
 * replaced by U+FFFD before encoding. Writes up to `capacity` ids to `tokens` and the count (or
 * the needed count) to *out_count. */
VEX_API vex_status vex_tokenize(const vex_model* model, const char* text, size_t len,
                                bool parse_special, int32_t* tokens, size_t capacity,
                                size_t* out_count);

/* Decodes token ids into their bytes (UTF-8 when the ids form whole characters), special tokens
 * spelled out. Writes up to `capacity` bytes (not NUL-terminated) to `text` and the byte count
 * (or the needed count) to *out_len. Ids outside the vocabulary are VEX_STATUS_INVALID_ARGUMENT. */
VEX_API vex_status vex_detokenize(const vex_model* model, const int32_t* tokens, size_t count,
                                  char* text, size_t capacity, size_t* out_len);

/* ---------------------------------------------------------------------------------------------
 * Chat format (Harmony)
 * ------------------------------------------------------------------------------------------ */

typedef struct vex_chat_message {
  const char* role;    /* "user", "assistant", or a tool's name ("functions.get_weather") */
  const char* channel; /* "analysis", "commentary", "final", or NULL (user and tool messages) */
  const char* content; /* UTF-8, NUL-terminated; text, never special tokens */
} vex_chat_message;

typedef struct vex_chat_params {
  size_t struct_size;       /* sizeof(vex_chat_params), set by the default function */
  const char* instructions; /* developer instructions, or NULL for none */
  const char* reasoning;    /* "low", "medium" (default) or "high" */
  const char* current_date; /* "YYYY-MM-DD" for the system message, or NULL (default) */
  bool for_completion;      /* end with "<|start|>assistant" for the model to answer (default) */
} vex_chat_params;

VEX_API vex_chat_params vex_chat_default_params(void);

/* Renders a conversation (system message, developer instructions, then `messages`) into token
 * ids with the history rules of Harmony: earlier assistant analysis is dropped once a final
 * answer follows it. Output buffer: two-call pattern as vex_tokenize. */
VEX_API vex_status vex_chat_render(const vex_model* model, const vex_chat_params* params,
                                   const vex_chat_message* messages, size_t n_messages,
                                   int32_t* tokens, size_t capacity, size_t* out_count);

/* ---------------------------------------------------------------------------------------------
 * Several GPUs (docs/multi-gpu.md)
 * ------------------------------------------------------------------------------------------ */

/* Splits the CUDA contexts made afterwards over n_gpus GPUs of this host, one process per GPU
 * joined by NCCL (attention heads and the vocabulary, and each layer's experts, over all of
 * them): forks n_gpus - 1 worker processes that mirror this one's contexts. A program started by
 * a launcher (torchrun --no-python, mpirun: WORLD_SIZE > 1) joins the launcher's processes
 * instead, and n_gpus must be 1 or WORLD_SIZE. Call it first: before any vex call that touches a
 * GPU and before the program starts threads. In a worker process it does not return (the process
 * exits when this one does). 1 does nothing. VEX_STATUS_UNSUPPORTED in a build without CUDA,
 * VEX_STATUS_INVALID_ARGUMENT when the GPUs are not there (the message says how many are). */
VEX_API vex_status vex_gpus_start(int32_t n_gpus);

/* ---------------------------------------------------------------------------------------------
 * Contexts and generation
 * ------------------------------------------------------------------------------------------ */

typedef struct vex_context vex_context;

typedef enum vex_device {
  VEX_DEVICE_AUTO = 0, /* the GPU when this build has CUDA and one is present, else the CPU */
  VEX_DEVICE_CPU = 1,  /* the fp32 reference engine */
  VEX_DEVICE_CUDA = 2  /* the CUDA engine; VEX_STATUS_UNSUPPORTED without one */
} vex_device;

typedef struct vex_context_params {
  size_t struct_size; /* sizeof(vex_context_params), set by the default function */
  int32_t n_ctx;      /* context size in tokens; 0 (default) = min(4096, model's maximum) */
  vex_device device;  /* which engine runs the context (default VEX_DEVICE_AUTO) */
  int32_t n_parallel; /* requests generated at once by vex_generate_many, each with its own
                         sequence of n_ctx tokens (on the GPU: sequences of one engine, the
                         weights uploaded once, decoded together); 0 (default) = 1 */
} vex_context_params;

VEX_API vex_context_params vex_context_default_params(void);

/* Creates a context (KV cache and buffers allocated once, here) for `model`, which must outlive
 * it. `params` may be NULL for the defaults. */
VEX_API vex_status vex_context_init(vex_model* model, const vex_context_params* params,
                                    vex_context** out_context);

/* Frees a context. NULL is ignored. */
VEX_API void vex_context_free(vex_context* context);

/* The engine running the context: "cpu" or "cuda". */
VEX_API const char* vex_context_device(const vex_context* context);

/* The context size in tokens, and how many tokens its first sequence holds now (the one
 * vex_generate uses when n_parallel is 1). */
VEX_API int32_t vex_context_size(const vex_context* context);
VEX_API int32_t vex_context_length(const vex_context* context);

/* Makes the context's first sequence hold exactly `tokens` (reusing the longest prefix it
 * already holds) and computes the logits of the last one. */
VEX_API vex_status vex_context_set_tokens(vex_context* context, const int32_t* tokens,
                                          size_t count);

/* The logits [vocab] of the last token run in the context's first sequence (by
 * vex_context_set_tokens, or by vex_generate when n_parallel is 1), or NULL if none was run yet,
 * after vex_generate_many, or when the engine drew the next token on the GPU without copying the
 * logits back (the CUDA engine does, unless a virtual expert's answer needed them). Valid until
 * the next call on the context. */
VEX_API const float* vex_context_logits(const vex_context* context);

/* Asks a running vex_generate (or every running request of vex_generate_many) on this context
 * to stop after its current token. The one function that may be called from another thread (or
 * a signal handler) while the context is in use. */
VEX_API void vex_context_cancel(vex_context* context);

typedef struct vex_sampling_params {
  float temperature; /* 0 = greedy (largest logit) */
  int32_t top_k;     /* keep the k most likely tokens; 0 = off */
  float top_p;       /* keep the smallest set of tokens with this much mass; 1 = off */
  float min_p;       /* drop tokens below min_p x the best one's probability; 0 = off */
  uint64_t seed;     /* the same seed and inputs give the same tokens */
} vex_sampling_params;

/* The model's sampling defaults: its generation_config.json over vex's own (temperature 1, no
 * top-k, top-p 1, min-p 0, seed 0). */
VEX_API vex_sampling_params vex_sampling_default_params(const vex_model* model);

/* Where a token was generated, for chat output (vex_generate_params.chat). */
typedef struct vex_token_event {
  int32_t token;       /* the token id */
  const char* text;    /* the UTF-8 text it completes (may be empty: a character split across
                          tokens is given whole with its last token); not NUL-terminated */
  size_t text_len;     /* bytes of text */
  const char* channel; /* chat mode: channel of the message the text belongs to ("analysis",
                          "final", ...; "" for none); raw mode: NULL */
  bool is_content;     /* chat mode: the text is message content (not a header or a special
                          token); raw mode: always true */
} vex_token_event;

/* Called for every generated token. Return false to stop generation after this token. */
typedef bool (*vex_token_callback)(const vex_token_event* event, void* user_data);

typedef enum vex_stop_reason {
  VEX_STOP_TOKEN = 0,        /* a stop token (<|return|>, <|call|>, the model's EOS ids) */
  VEX_STOP_MAX_TOKENS = 1,   /* max_tokens generated */
  VEX_STOP_CONTEXT_FULL = 2, /* the context is full */
  VEX_STOP_CALLBACK = 3,     /* the token callback returned false */
  VEX_STOP_CANCELLED = 4     /* vex_context_cancel */
} vex_stop_reason;

/* A virtual (HOST) expert firing, reported to vex_generate_params.on_expert. */
typedef struct vex_expert_event {
  const char* expert; /* the expert's name */
  int32_t layer;      /* the MoE layer whose router chose it */
  int32_t position;   /* the position whose router chose it */
  float weight;       /* its routing weight */
  bool answered;      /* false: it declined (nothing parsed) and generation went on untouched */
  const char* inputs; /* what it parsed (answered only; may be "") */
  const char* output; /* its exact answer (answered only) */
} vex_expert_event;

typedef void (*vex_expert_event_callback)(const vex_expert_event* event, void* user_data);

/* One MoE router's choice for one token (vex_generate_params.on_routing; routing research, as
 * `vexprobe` does it). The pointers are valid during the call only. */
typedef struct vex_routing_event {
  int32_t layer;              /* the MoE layer */
  int32_t position;           /* the token's position in the sequence */
  int32_t n_slots;            /* the layer's router rows (its experts, then virtual slots) */
  int32_t k;                  /* slots chosen per token */
  const float* router_logits; /* [n_slots]; slots that cannot be chosen (pruned, ablated) -inf */
  const int32_t* slots;       /* [k] the chosen slots: forced ones first, then by logit */
  const float* weights;       /* [k] their routing weights (softmax over the chosen logits) */
  const float* hidden;        /* [hidden_size] the normed MoE input the router read */
  int32_t hidden_size;
} vex_routing_event;

typedef void (*vex_routing_callback)(const vex_routing_event* event, void* user_data);

typedef struct vex_generate_params {
  size_t struct_size;           /* sizeof(vex_generate_params), set by the default function */
  int32_t max_tokens;           /* sampled tokens at most; -1 (default): until a stop token or
                                   the context is full */
  vex_sampling_params sampling; /* default: vex_sampling_default_params(model) */
  bool chat;                    /* parse output as Harmony (default true): events carry the
                                   channel; generation stops at <|return|> or <|call|> */
  const int32_t* stop_tokens;   /* extra stop tokens, or NULL */
  size_t n_stop_tokens;         /* count of stop_tokens */
  vex_token_callback on_token;  /* NULL: no streaming */
  void* user_data;              /* passed to on_token and on_expert */
  bool virtual_experts;         /* the model's virtual experts take part (default true); false:
                                   the model runs as if the manifest attached none */
  vex_expert_event_callback on_expert; /* every virtual-expert firing, or NULL */
  /* Routing research, for this request only (requests routed differently run in separate
   * passes; nothing is reloaded). An ablated slot is masked out of its layer's routing and the
   * chosen ones renormalized, exactly as a manifest that prunes it; a forced slot is chosen for
   * every token at its layer, first, the rest by logit. Pairs are (layer, slot), 2 ints each.
   * A pair outside the model, a pruned slot, a slot both ablated and forced, more slots forced
   * at a layer than k, or fewer experts left than k is VEX_STATUS_INVALID_ARGUMENT. */
  vex_routing_callback on_routing; /* every token's routing at every MoE layer (the prompt's new
                                      tokens and the generated ones), or NULL: off, and free */
  int32_t experts_per_token;       /* k: 0 (default) the model's; 1 .. 16 (the CUDA engine: 8) */
  const int32_t* ablate_experts;   /* [2 * n_ablate_experts] or NULL */
  size_t n_ablate_experts;
  const int32_t* force_experts; /* [2 * n_force_experts] or NULL */
  size_t n_force_experts;
} vex_generate_params;

VEX_API vex_generate_params vex_generate_default_params(const vex_model* model);

typedef struct vex_generate_result {
  size_t struct_size;          /* set by the caller: sizeof(vex_generate_result) */
  vex_stop_reason stop_reason; /* why generation ended */
  int32_t n_prompt;            /* prompt tokens */
  int32_t n_reused;            /* prompt tokens already in the context (not recomputed) */
  int32_t n_generated;         /* tokens passed to on_token, a stop token included */
  double prompt_ms;            /* time to run the prompt's new tokens */
  double generate_ms;          /* time of the generation loop */
  int32_t n_injected;          /* of n_generated, tokens virtual experts wrote (their answers are
                                  whole: max_tokens counts only sampled tokens) */
} vex_generate_result;

/* Runs `prompt` (reusing the prefix the context already holds, so a chat re-renders its whole
 * history cheaply) and samples tokens until a stop condition, streaming each to on_token.
 * `result` may be NULL. A prompt longer than the context is VEX_STATUS_OUT_OF_RANGE; filling
 * the context while generating is a normal stop (VEX_STOP_CONTEXT_FULL). The call blocks; the
 * callbacks run on the context's worker thread (the scheduler vexrun and vexserve also use). */
VEX_API vex_status vex_generate(vex_context* context, const int32_t* prompt, size_t n_prompt,
                                const vex_generate_params* params, vex_generate_result* result);

/* One request of vex_generate_many. */
typedef struct vex_request {
  const int32_t* prompt;             /* the prompt's tokens */
  size_t n_prompt;
  const vex_generate_params* params; /* as vex_generate's (not NULL); user_data tells the
                                        requests' callbacks apart */
  vex_generate_result* result;       /* may be NULL */
  vex_status status;                 /* set: how this request ended (VEX_STATUS_OK, or why not) */
} vex_request;

/* Runs n requests at once: up to the context's n_parallel generate together (continuous
 * batching: each decode step advances all of them in one pass), the rest wait for a free
 * sequence; a new request goes to the sequence whose cache shares the longest prefix with its
 * prompt. Blocks until every request has ended. Callbacks run on the context's worker thread,
 * one at a time. Arguments are checked first (a bad request fails the call before any runs);
 * then each request's own outcome is in requests[i].status, and the call returns the first
 * failure's status (VEX_STATUS_OK when all succeeded). */
VEX_API vex_status vex_generate_many(vex_context* context, vex_request* requests, size_t n);

/* ---------------------------------------------------------------------------------------------
 * Virtual experts
 * ------------------------------------------------------------------------------------------ */

/* An embedder's HOST expert. Called when its slot fires, with the text written so far (the open
 * message's content in chat mode, the whole text in raw mode; UTF-8, not NUL-terminated). To
 * answer, write the exact answer (e.g. "11303") into `answer` (at most `capacity` bytes) and
 * return its length; return 0 to decline (generation goes on untouched). The runtime appends the
 * answer to the sequence, after a space unless the text ends in one. */
typedef size_t (*vex_expert_callback)(const char* text, size_t text_len, char* answer,
                                      size_t capacity, void* user_data);

/* Registers an expert under `name` on this context: a manifest's [[virtual]] entry of kind
 * "host" with that name (loaded with the model) binds to it, like a builtin (calculator, ...);
 * registering a builtin's name replaces it for this context. The name is copied. */
VEX_API vex_status vex_expert_register(vex_context* context, const char* name,
                                       vex_expert_callback callback, void* user_data);

#ifdef __cplusplus
}
#endif

#endif /* VEX_VEX_H */
