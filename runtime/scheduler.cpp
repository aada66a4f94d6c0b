#include "runtime/scheduler.h"

#include <algorithm>

namespace vex {

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::create(const Model& model,
                                                             const Options& options) {
  if (options.parallel < 1 || options.parallel > 256)
    return absl::InvalidArgumentError(
        absl::StrCat("parallel must be in [1, 256], got ", options.parallel));
  if (options.max_queue < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue must be >= 0, got ", options.max_queue));
  if (options.prefill_tokens < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("prefill_tokens must be >= 1, got ", options.prefill_tokens));
  auto s = std::unique_ptr<Scheduler>(new Scheduler(options));
  // One engine holding every slot's sequence where the engine can (the GPU); else an engine per
  // slot (the CPU engine holds one sequence).
  auto shared =
      make_engine(model, options.max_ctx, options.device, options.parallel, options.split);
  if (shared.ok()) {
    s->engines_.push_back(std::move(*shared));
  } else if (options.parallel > 1 && shared.status().code() == absl::StatusCode::kUnimplemented) {
    for (int i = 0; i < options.parallel; ++i) {
      VEX_ASSIGN_OR_RETURN(auto engine, make_engine(model, options.max_ctx, options.device));
      s->engines_.push_back(std::move(engine));
    }
  } else {
    return shared.status();
  }
  for (int i = 0; i < options.parallel; ++i) {
    const int e = s->engines_.size() == 1 ? 0 : i;
    const int seq = s->engines_.size() == 1 ? i : 0;
    s->slots_.push_back(Slot{std::make_unique<Session>(s->engines_[e], seq), e, nullptr});
  }
  s->logits_.resize(size_t(options.parallel) * model.config().vocab_size);
  s->routing_.resize(s->engines_.size());
  s->observing_.assign(s->engines_.size(), 0);
  s->worker_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();  // not started when create() failed part way
}

const char* Scheduler::device() const { return engines_.front()->device(); }

absl::StatusOr<Scheduler::Id> Scheduler::submit(Request request) {
  if (request.prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  if (static_cast<int64_t>(request.prompt.size()) > options_.max_ctx)
    return absl::InvalidArgumentError(absl::StrCat("the prompt is ", request.prompt.size(),
                                                   " tokens but the context size is ",
                                                   options_.max_ctx));
  VEX_RETURN_IF_ERROR(validate(request.options.sampling));
  std::lock_guard lock(mu_);
  if (stop_) return absl::UnavailableError("the scheduler is shutting down");
  if (static_cast<int>(queue_.size()) >= options_.max_queue)
    return absl::ResourceExhaustedError(
        absl::StrCat("the queue is full (", options_.max_queue, " requests waiting)"));
  auto job = std::make_shared<Job>();
  job->id = next_id_++;
  job->request = std::move(request);
  jobs_[job->id] = job;
  queue_.push_back(job);
  ++stats_.submitted;
  wake_.notify_all();
  return job->id;
}

void Scheduler::cancel(Id id) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  it->second->cancelled.store(true);
  wake_.notify_all();
}

void Scheduler::cancel_all() {
  std::lock_guard lock(mu_);
  for (auto& [id, job] : jobs_) job->cancelled.store(true);
  wake_.notify_all();
}

void Scheduler::interrupt() {
  for (Slot& s : slots_) s.session->cancel();
}

void Scheduler::wait_idle() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [&] { return queue_.empty() && running_ == 0; });
}

Scheduler::Stats Scheduler::stats() const {
  std::lock_guard lock(mu_);
  Stats s = stats_;
  s.running = running_;
  s.queued = static_cast<int>(queue_.size());
  return s;
}

void Scheduler::admit() {
  while (!queue_.empty()) {
    // The free slot whose cache shares the longest prefix with the prompt.
    Slot* best = nullptr;
    size_t best_len = 0;
    const std::vector<int32_t>& prompt = queue_.front()->request.prompt;
    for (Slot& s : slots_) {
      if (s.job) continue;
      const std::vector<int32_t>& cached = s.session->tokens();
      const size_t len =
          std::mismatch(cached.begin(), cached.end(), prompt.begin(), prompt.end()).first -
          cached.begin();
      if (!best || len > best_len) best = &s, best_len = len;
    }
    if (!best) return;
    best->job = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
  }
}

void Scheduler::run() {
  std::vector<std::vector<Slot*>> prefilling(engines_.size()), decoding(engines_.size());
  for (;;) {
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stop_ || !queue_.empty() || running_ > 0; });
      if (stop_) {
        for (auto& job : queue_) job->cancelled.store(true);
        for (Slot& s : slots_)
          if (s.job) s.job->cancelled.store(true);
      }
      admit();
      if (stop_ && running_ == 0) break;
    }
    for (auto& d : decoding) d.clear();
    for (auto& p : prefilling) p.clear();
    if (absl::Status st = observe(); !st.ok())
      for (Slot& s : slots_)
        if (s.job) finish(s, st);
    for (Slot& s : slots_) {
      if (!s.job) continue;
      // An expert's answer may run through the engine here: routed as the request asks.
      if (absl::Status st = route(s); !st.ok()) {
        finish(s, st);
        continue;
      }
      const Generation::Next next = advance(s);
      if (next == Generation::Next::kPrefill) prefilling[s.engine].push_back(&s);
      if (next == Generation::Next::kDecode) decoding[s.engine].push_back(&s);
    }
    for (const auto& p : prefilling) {
      int budget = options_.prefill_tokens;  // per engine
      by_routing(p, [&](const std::vector<Slot*>& group) { budget = prefill(group, budget); });
    }
    for (const auto& d : decoding) by_routing(d, [&](const std::vector<Slot*>& g) { decode(g); });
  }
  // Requests still queued at shutdown (no free slot was left for them) end cancelled.
  std::deque<std::shared_ptr<Job>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(queue_);
  }
  for (auto& job : left)
    if (job->request.on_done) job->request.on_done(cancelled(job->request));
}

bool Scheduler::report(Job& job, int32_t token) {
  {
    std::lock_guard lock(mu_);
    ++stats_.generated_tokens;
  }
  const bool go_on = !job.request.on_token || job.request.on_token(token);
  return go_on && !job.cancelled.load();
}

GenerateResult Scheduler::cancelled(const Request& request) {
  GenerateResult r;
  r.reason = StopReason::kCancelled;
  r.prompt_tokens = static_cast<int>(request.prompt.size());
  return r;
}

Generation::Next Scheduler::advance(Slot& slot) {
  using Next = Generation::Next;
  Job& job = *slot.job;
  if (job.cancelled.load()) {  // at once, even in the middle of a prompt
    GenerateResult r = job.generation ? job.generation->result() : cancelled(job.request);
    r.reason = StopReason::kCancelled;
    finish(slot, r);
    return Next::kDone;
  }
  if (!job.generation) {
    absl::Status st = slot.session->set_virtual_experts(job.request.virtual_experts);
    if (st.ok()) st = slot.session->routed_as(job.request.routing);
    if (!st.ok()) {
      finish(slot, st);
      return Next::kDone;
    }
    auto g = Generation::start(*slot.session, job.request.prompt, job.request.options);
    if (!g.ok()) {
      finish(slot, g.status());
      return Next::kDone;
    }
    job.generation = std::make_unique<Generation>(std::move(*g));
  }
  const auto next = job.generation->next([&](int32_t token) { return report(job, token); });
  if (!next.ok()) {
    finish(slot, next.status());
    return Next::kDone;
  }
  if (*next == Next::kDone) {
    GenerateResult r = job.generation->result();
    if (job.cancelled.load()) r.reason = StopReason::kCancelled;
    finish(slot, r);
  }
  return *next;
}

absl::Status Scheduler::route(const Slot& slot) {
  const RoutingOverride& want = slot.job->request.routing;
  if (routing_[slot.engine] == want) return absl::OkStatus();
  VEX_RETURN_IF_ERROR(engines_[slot.engine]->set_routing_override(want));
  routing_[slot.engine] = want;
  return absl::OkStatus();
}

absl::Status Scheduler::observe() {
  for (size_t e = 0; e < engines_.size(); ++e) {
    bool want = false;
    for (const Slot& s : slots_)
      want |= s.engine == static_cast<int>(e) && s.job && s.job->request.on_routing;
    if (want == bool(observing_[e])) continue;
    RoutingObserver dispatch;
    if (want)
      dispatch = [this, e](const RoutingEvent& ev) {
        for (const Slot& s : slots_)
          if (s.engine == static_cast<int>(e) && s.session->seq() == ev.seq && s.job &&
              s.job->request.on_routing)
            s.job->request.on_routing(ev);
      };
    VEX_RETURN_IF_ERROR(engines_[e]->set_routing_observer(std::move(dispatch)));
    observing_[e] = want;
  }
  return absl::OkStatus();
}

void Scheduler::plain_routing(int e) {
  // Neither can fail: no override and no observer are always accepted.
  if (!routing_[e].empty()) (void)engines_[e]->set_routing_override({}), routing_[e] = {};
  if (observing_[e]) (void)engines_[e]->set_routing_observer(nullptr), observing_[e] = 0;
}

void Scheduler::by_routing(const std::vector<Slot*>& slots,
                           const std::function<void(const std::vector<Slot*>&)>& f) {
  std::vector<Slot*> left = slots;
  while (!left.empty()) {
    // The requests routed as the first one left, in one group (their order kept).
    const RoutingOverride& o = left.front()->job->request.routing;
    std::vector<Slot*> group, rest;
    for (Slot* s : left) (s->job->request.routing == o ? group : rest).push_back(s);
    if (absl::Status st = route(*group.front()); !st.ok()) {
      for (Slot* s : group) finish(*s, st);
    } else {
      f(group);
    }
    left = std::move(rest);
  }
}

int Scheduler::prefill(const std::vector<Slot*>& slots, int budget) {
  const size_t V = logits_.size() / slots_.size();
  std::vector<Slot*> run;
  chunks_.clear();
  for (Slot* s : slots) {
    if (budget <= 0) break;  // the rest wait for the next round
    chunks_.push_back(s->job->generation->prefill_chunk(budget));
    budget -= static_cast<int>(chunks_.back().tokens.size());
    run.push_back(s);
  }
  if (run.empty()) return budget;
  chosen_.assign(run.size(), {});
  Engine& engine = *engines_[run.front()->engine];
  if (absl::Status st = engine.prefill(chunks_, logits_.data(), chosen_.data()); !st.ok()) {
    for (Slot* s : run) finish(*s, st);
    return budget;
  }
  size_t tokens = 0;
  for (size_t i = 0; i < run.size(); ++i) {
    const bool host = chosen_[i].token < 0 || chunks_[i].host_logits;
    run[i]->session->ran(chunks_[i].tokens, host ? logits_.data() + i * V : nullptr, chosen_[i],
                         engine.triggers());
    run[i]->job->generation->prefilled(chunks_[i].tokens.size());
    tokens += chunks_[i].tokens.size();
  }
  std::lock_guard lock(mu_);
  stats_.prompt_tokens += tokens;
  ++stats_.prefill_passes;
  return budget;
}

void Scheduler::decode(const std::vector<Slot*>& slots) {
  const size_t n = slots.size(), V = logits_.size() / slots_.size();
  rows_.clear();
  for (Slot* s : slots) rows_.push_back(s->job->generation->decode_row());
  chosen_.assign(n, {});
  Engine& engine = *engines_[slots.front()->engine];
  if (absl::Status st = engine.decode(rows_, logits_.data(), chosen_.data()); !st.ok()) {
    for (Slot* s : slots) finish(*s, st);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const bool host = chosen_[i].token < 0 || rows_[i].host_logits;
    slots[i]->session->ran(std::span(&rows_[i].token, 1),
                           host ? logits_.data() + i * V : nullptr, chosen_[i], engine.triggers());
  }
  std::lock_guard lock(mu_);
  ++stats_.decode_steps;
  stats_.decode_rows += n;
}

void Scheduler::finish(Slot& slot, const absl::StatusOr<GenerateResult>& result) {
  std::shared_ptr<Job> job = std::move(slot.job);
  if (job->request.on_done) job->request.on_done(result);
  std::lock_guard lock(mu_);
  jobs_.erase(job->id);
  --running_;
  ++stats_.finished;
  if (queue_.empty() && running_ == 0) idle_.notify_all();
}

}  // namespace vex
