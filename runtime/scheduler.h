// Many requests on one model: a queue, a fixed number of slots (each a Session with its own
// sequence), and one thread that runs the slots' generations a step at a time, so that every
// admitted request makes progress while the others do (a long answer does not hold up a short
// one). Requests carry their own sampling, stop tokens, token limit, HOST-expert handler and
// virtual-expert switch; a request can be cancelled from any thread, queued or running; a slot
// keeps its cache between requests, and a new request goes to the free slot whose cache shares
// the longest prefix with its prompt.
//
// Each slot's engine is made by make_engine: on the CPU the slots share the model's mapped
// weights; on the GPU each slot's engine uploads its own copy and steps one sequence at a time
// (batched decode across slots on one engine is not done here yet).
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
  // Blocks until nothing is queued or running.
  void wait_idle();

  struct Stats {
    int running = 0, queued = 0;
    uint64_t submitted = 0, finished = 0, generated_tokens = 0;
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
    std::shared_ptr<Job> job;  // null: free
  };

  explicit Scheduler(const Options& options) : options_(options) {}
  void run();
  // Places queued jobs in free slots (lock held).
  void admit();
  // One step of the slot's job; finishes it when it stops or fails.
  void step(Slot& slot);
  void finish(Slot& slot, const absl::StatusOr<GenerateResult>& result);

  const Options options_;
  std::vector<Slot> slots_;  // touched by the worker thread only (and admit(), under mu_)
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
