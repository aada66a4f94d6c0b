// The scheduler on the demo model (CPU): requests interleaved on a few slots produce exactly what
// each produces alone through Session::generate; cancellation, a full queue, bad requests and
// shutdown end requests cleanly.
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>

#include "runtime/model.h"
#include "runtime/scheduler.h"
#include "tests/fixtures.h"

namespace vex {
namespace {

const Model& demo() {
  static const std::unique_ptr<Model> m = [] {
    auto r = load_model(testing::demo_model());
    EXPECT_TRUE(r.ok()) << r.status();
    return std::move(r).value();
  }();
  return *m;
}

std::vector<int32_t> encode(const std::string& text) {
  return demo().tokenizer->encode(text, /*allow_special=*/false);
}

GenerateOptions options(float temperature, uint64_t seed, int max_tokens) {
  GenerateOptions o;
  o.sampling = demo().sampling;
  o.sampling.temperature = temperature;
  o.sampling.seed = seed;
  o.max_tokens = max_tokens;
  o.stop_tokens = demo().stop_tokens;
  return o;
}

// What one request gives alone, on a fresh session.
std::vector<int32_t> alone(const std::vector<int32_t>& prompt, const GenerateOptions& o) {
  auto engine = make_engine(demo(), 256, Device::kCpu);
  EXPECT_TRUE(engine.ok()) << engine.status();
  Session s(std::move(*engine));
  std::vector<int32_t> out;
  auto r = s.generate(prompt, o, [&](int32_t t) { return out.push_back(t), true; });
  EXPECT_TRUE(r.ok()) << r.status();
  return out;
}

std::unique_ptr<Scheduler> make(int parallel, int max_queue = 64) {
  auto s = Scheduler::create(demo(), {.parallel = parallel, .max_queue = max_queue,
                                      .max_ctx = 256, .device = Device::kCpu});
  EXPECT_TRUE(s.ok()) << s.status();
  return std::move(s).value();
}

TEST(Scheduler, InterleavedRequestsEqualEachAlone) {
  const std::vector<std::string> prompts = {"127 * 89 = ", "Once upon a time, in a land far away,",
                                            "The capital of France is", "def f(x):\n    return",
                                            "Convert 100 meters to feet:", "What day is today?"};
  auto sched = make(/*parallel=*/3);
  testing::Collected out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r;
    r.prompt = encode(prompts[i]);
    r.options = options(i % 2 ? 0.0f : 0.8f, 100 + i, 10 + static_cast<int>(i));
    out.collect(i, r);
    ASSERT_TRUE(sched->submit(std::move(r)).ok());
  }
  sched->wait_idle();
  ASSERT_EQ(out.results.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto o = options(i % 2 ? 0.0f : 0.8f, 100 + i, 10 + static_cast<int>(i));
    EXPECT_EQ(out.tokens[i], alone(encode(prompts[i]), o)) << prompts[i];
    EXPECT_EQ(out.results[i].generated, static_cast<int>(out.tokens[i].size()));
  }
  const auto st = sched->stats();
  EXPECT_EQ(st.submitted, prompts.size());
  EXPECT_EQ(st.finished, prompts.size());
  EXPECT_EQ(st.running + st.queued, 0);
}

// Routing overrides and observers per request (vexprobe, the C API): each request runs as it
// runs alone on an engine with its overrides; only the observed request's routing is reported,
// all of it, with the ablated experts never chosen.
TEST(Scheduler, RoutingPerRequest) {
  const std::vector<std::string> prompts = {"127 * 89 = ", "The capital of France is",
                                            "Once upon a time,"};
  std::vector<RoutingOverride> routing(3);
  for (int l = 0; l < demo().config().n_layers; ++l)  // half of every layer's experts
    for (int e = 0; e < 8; ++e) routing[0].ablate.push_back({l, e});
  routing[2].k = 2, routing[2].force = {{0, 5}};
  auto sched = make(/*parallel=*/2);
  testing::Collected out;
  std::vector<std::pair<int, int>> seen;  // (layer, pos) of request 0
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r;
    r.prompt = encode(prompts[i]);
    r.options = options(0.0f, 1, 8);
    r.routing = routing[i];
    if (i == 0)
      r.on_routing = [&](const RoutingEvent& ev) {
        seen.push_back({ev.layer, ev.pos});
        for (int j = 0; j < ev.k; ++j) EXPECT_GE(ev.slots[j], 8);
      };
    out.collect(i, r);
    ASSERT_TRUE(sched->submit(std::move(r)).ok());
  }
  sched->wait_idle();
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto engine = make_engine(demo(), 256, Device::kCpu);
    ASSERT_TRUE(engine.ok());
    ASSERT_TRUE((*engine)->set_routing_override(routing[i]).ok());
    Session s(std::move(*engine));
    std::vector<int32_t> want;
    ASSERT_TRUE(s.generate(encode(prompts[i]), options(0.0f, 1, 8), [&](int32_t t) {
                   return want.push_back(t), true;
                 }).ok());
    EXPECT_EQ(out.tokens[i], want) << prompts[i];
  }
  EXPECT_NE(out.tokens[0], alone(encode(prompts[0]), options(0.0f, 1, 8)));  // it took effect
  const size_t ran = encode(prompts[0]).size() + out.tokens[0].size() - 1;
  EXPECT_EQ(seen.size(), ran * demo().config().n_layers);

  // An override the model cannot take fails its request, naming it.
  Request bad;
  bad.prompt = encode("x");
  bad.options = options(0.0f, 1, 2);
  bad.routing.ablate = {{99, 0}};
  std::promise<absl::Status> done;
  bad.on_done = [&](const absl::StatusOr<GenerateResult>& r) { done.set_value(r.status()); };
  ASSERT_TRUE(sched->submit(std::move(bad)).ok());
  const absl::Status st = done.get_future().get();
  EXPECT_NE(st.message().find("ablate 99:0"), std::string::npos) << st;
}

TEST(Scheduler, CancelQueuedAndRunning) {
  auto sched = make(/*parallel=*/1);
  std::promise<void> first_token, cancels_sent;
  std::shared_future<void> sent = cancels_sent.get_future().share();
  std::promise<StopReason> running_done, queued_done;
  bool queued_ran = false;
  Scheduler::Id running_id = 0;
  Request a;
  a.prompt = encode("Once upon a time,");
  a.options = options(0, 1, 200);
  a.options.stop_tokens.clear();  // only the cancellation (or 200 tokens) ends it
  bool told = false;
  a.on_token = [&](int32_t) {
    if (!told) told = true, first_token.set_value(), sent.wait();
    return true;
  };
  a.on_done = [&](const absl::StatusOr<GenerateResult>& r) { running_done.set_value(r->reason); };
  running_id = *sched->submit(std::move(a));
  Request b;
  b.prompt = encode("127 * 89 = ");
  b.options = options(0, 1, 5);
  b.on_token = [&](int32_t) { return queued_ran = true; };
  b.on_done = [&](const absl::StatusOr<GenerateResult>& r) { queued_done.set_value(r->reason); };
  const Scheduler::Id queued_id = *sched->submit(std::move(b));
  first_token.get_future().wait();
  sched->cancel(queued_id);
  sched->cancel(running_id);
  cancels_sent.set_value();
  EXPECT_EQ(running_done.get_future().get(), StopReason::kCancelled);
  EXPECT_EQ(queued_done.get_future().get(), StopReason::kCancelled);
  EXPECT_FALSE(queued_ran);
  sched->cancel(12345);  // unknown: ignored
}

TEST(Scheduler, FullQueueAndBadRequestsAreRefused) {
  auto sched = make(/*parallel=*/1, /*max_queue=*/1);
  std::promise<void> hold, started;
  std::shared_future<void> release = hold.get_future().share();
  Request a;
  a.prompt = encode("Once upon a time,");
  a.options = options(0, 1, 3);
  bool first = true;
  a.on_token = [&](int32_t) {
    if (first) first = false, started.set_value(), release.wait();
    return true;
  };
  ASSERT_TRUE(sched->submit(std::move(a)).ok());
  started.get_future().wait();  // the worker is inside request a
  Request b;
  b.prompt = encode("hello");
  b.options = options(0, 1, 3);
  ASSERT_TRUE(sched->submit(b).ok());  // queued
  const auto full = sched->submit(b);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted) << full.status();
  hold.set_value();

  Request empty;
  EXPECT_EQ(sched->submit(empty).status().code(), absl::StatusCode::kInvalidArgument);
  Request long_prompt;
  long_prompt.prompt.assign(300, 1);
  EXPECT_NE(sched->submit(long_prompt).status().message().find("context size is 256"),
            std::string::npos);
  Request bad_sampling = b;
  bad_sampling.options.sampling.top_p = 0;
  EXPECT_EQ(sched->submit(bad_sampling).status().code(), absl::StatusCode::kInvalidArgument);
  sched->wait_idle();
}

// A scheduler whose slots cannot be made is an error, not a crash (its thread never started).
TEST(Scheduler, CreateFailsCleanly) {
  auto s = Scheduler::create(demo(), {.parallel = 2, .max_queue = 1, .max_ctx = 1 << 30,
                                      .device = Device::kCpu});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("exceeds the model's"), std::string::npos) << s.status();
  EXPECT_FALSE(Scheduler::create(demo(), {.parallel = 0}).ok());
}

TEST(Scheduler, ShutdownEndsEveryRequest) {
  std::mutex mu;
  std::vector<StopReason> reasons;
  {
    auto sched = make(/*parallel=*/1);
    for (int i = 0; i < 3; ++i) {
      Request r;
      r.prompt = encode("Once upon a time,");
      r.options = options(0, 1, 100000);
      r.on_done = [&](const absl::StatusOr<GenerateResult>& res) {
        std::lock_guard lock(mu);
        reasons.push_back(res->reason);
      };
      ASSERT_TRUE(sched->submit(std::move(r)).ok());
    }
  }  // the destructor cancels what runs and what waits
  ASSERT_EQ(reasons.size(), 3u);
  for (StopReason r : reasons)
    EXPECT_TRUE(r == StopReason::kCancelled || r == StopReason::kStopToken ||
                r == StopReason::kContextFull)
        << stop_reason_name(r);
}

}  // namespace
}  // namespace vex
