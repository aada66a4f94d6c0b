// Many requests on one model (continuous batching): a queue, a fixed number of slots (each a
// Session on one sequence of an engine), and one thread that advances every admitted request a
// step at a time. Each round, the requests still reading their prompts run a chunk of it
// together (Engine::prefill, up to prefill_tokens in all), HOST experts' answers run as chunks
// of their sequence, and every request that chose a token runs it as one row of a single decode
// step (Engine::decode): requests share passes over the weights, and a long prompt holds up the
// others for one chunk at a time.
// Requests carry their own sampling (drawn on the GPU where the engine can), stop tokens, token
// limit, HOST-expert handler, virtual-expert switch and routing overrides and observer; a request can be cancelled from any
// thread, queued or running; a slot keeps its cache between requests, and a new request goes to
// the free slot whose cache shares the longest prefix with its prompt.
//
// On the GPU the slots are the sequences of one CudaEngine (the weights uploaded once); the CPU
// engine holds one sequence, so there each slot has its own engine over the shared mapped
// weights and a decode step runs one row per engine.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/model.h"
#include "runtime/session.h"

namespace vex {

struct Request {
  std::vector<int32_t> prompt;
  // Sampling, max_tokens, stop tokens, and the HOST-expert handler (null: triggers ignored). The
  // handler is called on the scheduler's thread and must outlive the request.
  GenerateOptions options;
  bool virtual_experts = true;  // off: the model runs as if no manifest had attached any
  // Routing research: overrides for this request's passes (requests with different ones run in
  // separate passes), and an observer of its routing (on the scheduler's thread; events of its
  // sequence only). Without an observer on any running request, capture is off (and free).
  RoutingOverride routing;
  RoutingObserver on_routing;
  // On the scheduler's thread, with each token; returning false stops the request.
  std::function<bool(int32_t token)> on_token;
  // On the scheduler's thread, once: the result, or why the request could not run. A cancelled
  // request ends with StopReason::kCancelled (and on_token never called when it had not started).
  std::function<void(const absl::StatusOr<GenerateResult>&)> on_done;
};

class Scheduler {
 public:
  struct Options {
    int parallel = 1;    // slots: requests generated at once
    int max_queue = 64;  // requests waiting for a slot; beyond it submit() refuses
    int max_ctx = 4096;  // context size of every slot
    Device device = Device::kAuto;
    // Prompt tokens run per round, across the requests reading their prompts (in one pass
    // where the engine can): a long prompt takes several rounds, each followed by a decode step
    // of the other requests.
    int prefill_tokens = 2048;
    Parallel split = {};  // over the GPUs of a group (Group::launch), by default all of them
  };
  using Id = uint64_t;

  static absl::StatusOr<std::unique_ptr<Scheduler>> create(const Model& model,
                                                           const Options& options);
  // Cancels what is queued or running (each gets its on_done) and joins the thread.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. InvalidArgument for an empty prompt or one longer than the context;
  // ResourceExhausted when max_queue requests are already waiting.
  absl::StatusOr<Id> submit(Request request);
  // Stops a request from any thread; unknown or finished ids are ignored.
  void cancel(Id id);
  // Stops every request queued or running now.
  void cancel_all();
  // Asks every running request to stop after its current token (StopReason::kCancelled) with
  // atomic stores only: callable from a signal handler. Queued requests are not touched.
  void interrupt();
  // Blocks until nothing is queued or running.
  void wait_idle();
  // Slot i's session (its cache and last logits): only while the scheduler is idle, for callers
  // that also run a sequence directly (the C API's vex_context_set_tokens).
  // The slot's engine then routes as the model does, unobserved.
  Session& session(int slot) {
    plain_routing(slots_.at(slot).engine);
    (void)slots_.at(slot).session->routed_as({});  // in range: cannot fail
    return *slots_.at(slot).session;
  }
  const Session& session(int slot) const { return *slots_.at(slot).session; }

  struct Stats {
    int running = 0, queued = 0;
    uint64_t submitted = 0, finished = 0, generated_tokens = 0;
    uint64_t decode_steps = 0, decode_rows = 0;  // decode steps run and their rows (batch sizes)
    uint64_t prompt_tokens = 0;   // prompt tokens run (not reused from a cache)
    uint64_t prefill_passes = 0;  // Engine::prefill calls that ran them
  };
  Stats stats() const;
  const Options& options() const { return options_; }
  const char* device() const;

 private:
  struct Job {
    Id id = 0;
    Request request;
    std::atomic<bool> cancelled{false};
    std::unique_ptr<Generation> generation;  // set once running
  };
  struct Slot {
    std::unique_ptr<Session> session;
    int engine = 0;            // index in engines_
    std::shared_ptr<Job> job;  // null: free
  };

  explicit Scheduler(const Options& options) : options_(options) {}
  void run();
  // Places queued jobs in free slots (lock held).
  void admit();
  // The slot's job up to its next tokens to run: a prompt chunk (kPrefill) or a chosen token
  // (kDecode). Starts the job, runs experts' answers, finishes it when it stops or fails (kDone).
  Generation::Next advance(Slot& slot);
  // One Engine::prefill of the given slots' prompt chunks (all on one engine), `budget` tokens
  // at most; returns the budget left.
  int prefill(const std::vector<Slot*>& slots, int budget);
  // One decode step of the given slots (all on one engine).
  void decode(const std::vector<Slot*>& slots);
  void finish(Slot& slot, const absl::StatusOr<GenerateResult>& result);
  // Sets the slot's engine to route as its request asks (nothing when it already does).
  absl::Status route(const Slot& slot);
  // Each engine observes routing while one of its running requests has an observer.
  absl::Status observe();
  // Engine e without overrides or observer.
  void plain_routing(int e);
  // Runs f over groups of `slots` that share routing overrides, the engine routing as each
  // group's requests ask; on failure, the group's requests finish with the error.
  void by_routing(const std::vector<Slot*>& slots,
                  const std::function<void(const std::vector<Slot*>&)>& f);
  // The result of a request cancelled before it started.
  static GenerateResult cancelled(const Request& request);
  // A token reported to the job's callback; false stops the job.
  bool report(Job& job, int32_t token);

  const Options options_;
  std::vector<std::shared_ptr<Engine>> engines_;
  std::vector<Slot> slots_;  // touched by the worker thread only (and admit(), under mu_)
  std::vector<float> logits_;                  // [parallel, vocab] host logits of a decode step
  std::vector<DecodeRow> rows_;                // a decode step's rows
  std::vector<PrefillChunk> chunks_;           // a prefill's chunks
  std::vector<DecodeChoice> chosen_;
  std::vector<RoutingOverride> routing_;  // per engine: the overrides it runs with now
  std::vector<char> observing_;           // per engine: its observer is set
  mutable std::mutex mu_;
  std::condition_variable wake_, idle_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<Id, std::shared_ptr<Job>> jobs_;  // queued and running, for cancel()
  Id next_id_ = 1;
  int running_ = 0;
  bool stop_ = false;
  Stats stats_;
  std::thread worker_;
};

}  // namespace vex
