// Expert slots on the CPU path (docs/architecture.md §4-§5): physical pruning equals masking, DEVICE
// functions against hand-computed values, HOST triggers and thresholds, switching virtual experts
// off, and the injection loop in raw and chat mode.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kernels/cpu/moe.h"
#include "loader/attach.h"
#include "loader/safetensors_writer.h"
#include "loader/sha256.h"
#include "runtime/forward_cpu.h"
#include "runtime/harmony.h"
#include "runtime/model.h"
#include "runtime/session.h"
#include "tests/fixtures.h"

namespace vex {
namespace {

namespace fs = std::filesystem;

// A router sidecar whose row reads nothing and whose bias decides: bias 30 puts the slot first
// at every position (routing weight ~1 against the tiny model's logits of a few units), -30 never.
void write_router(const std::string& path, float bias, int D, bool device = false,
                  std::vector<float> args_b = {0, 0}) {
  std::vector<float> w(D, 0.0f), b = {bias}, aw(2 * D, 0.0f), ow(D, 0.0f), ob(D, 0.0f);
  ow[0] = 1.0f;  // the result lands on dimension 0
  std::vector<TensorSpec> specs = {{"weight", DType::kF32, {1, D}}, {"bias", DType::kF32, {1}}};
  std::vector<const void*> data = {w.data(), b.data()};
  if (device) {
    specs.insert(specs.end(), {{"args.weight", DType::kF32, {2, D}},
                               {"args.bias", DType::kF32, {2}},
                               {"out.weight", DType::kF32, {D}},
                               {"out.bias", DType::kF32, {D}}});
    data.insert(data.end(), {aw.data(), args_b.data(), ow.data(), ob.data()});
  }
  ASSERT_TRUE(write_safetensors(path, specs, data).ok());
}

std::string write_manifest(const std::string& dir, const std::string& text) {
  const std::string path = dir + "/m.toml";
  std::ofstream(path) << text;
  return path;
}

std::unique_ptr<Model> load(const std::string& manifest, bool mask = false,
                            const std::string& dir = testing::tiny_checkpoint()) {
  LoadOptions o;
  o.experts = manifest;
  o.mask_pruned = mask;
  auto m = load_model(dir, o);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

std::vector<float> run(const Model& m, std::span<const int32_t> tokens, bool virtual_on = true) {
  CpuEngine e(m.config(), m.weights, 64);
  EXPECT_TRUE(e.set_virtual_experts(virtual_on).ok());
  std::vector<float> logits(tokens.size() * m.config().vocab_size);
  EXPECT_TRUE(e.forward(tokens, logits.data()).ok());
  return logits;
}

const std::vector<int32_t> kTokens = {200006, 17360, 200008, 3575, 553, 17554, 162016, 11, 4827,
                                      382,    220,   12807, 425,  220, 7479, 314,    220, 19,
                                      3443,   1899,  13,    2632, 1495, 2804,  1217,  9};

// Physical pruning (experts never loaded, rows removed) gives the logits of the full model with
// those experts masked out of the top-k, bit for bit: the same rows, the same order, the same sums.
TEST(Slots, PhysicalPruningEqualsMasking) {
  const std::string dir = testing::temp_dir("prune");
  const std::string manifest = write_manifest(dir, R"(
[prune]
keep = { "0" = [0, 2, 4, 6, 7], "3" = [1, 2, 3, 5] }
drop = { "1" = [3] }
)");
  auto pruned = load(manifest), masked = load(manifest, true), full = load("");
  ASSERT_TRUE(pruned && masked && full);
  EXPECT_EQ(pruned->pruned_experts, 3 + 4 + 1);
  EXPECT_EQ(pruned->weights.layers[0].n_slots(), 5);
  EXPECT_EQ(pruned->weights.layers[0].experts.size(), 5u);
  EXPECT_EQ(pruned->weights.layers[3].expert_ids, (std::vector<int>{1, 2, 3, 5}));
  EXPECT_EQ(masked->weights.layers[0].n_slots(), 8);
  const std::vector<float> a = run(*pruned, kTokens), b = run(*masked, kTokens),
                           c = run(*full, kTokens);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "logit " << i;
  EXPECT_NE(a, c);  // and pruning did change the model

  // Bytes read fall by exactly the pruned experts' bytes.
  // (Independent of Config::expert_bytes: 64 x 64 experts, 2 x 64 x 2 x 17 bytes of MXFP4 gate_up
  // and 64 x 2 x 17 of down, 128 + 64 bf16 biases; 65 bf16 per router row.)
  EXPECT_EQ(full->weight_bytes - pruned->weight_bytes, 8u * (4352 + 256 + 2176 + 128 + 130));
}

// Ablating experts at run time (Engine::set_routing_override, no manifest, no reload) gives the
// pruned model's logits bit for bit; forcing and k change what the observer sees.
TEST(Slots, RoutingOverridesEqualPruningAndAreObserved) {
  const std::string dir = testing::temp_dir("override");
  const std::string manifest = write_manifest(dir, R"(
[prune]
keep = { "0" = [0, 2, 4, 6, 7], "3" = [1, 2, 3, 5] }
)");
  auto pruned = load(manifest), full = load("");
  ASSERT_TRUE(pruned && full);
  const std::vector<float> want = run(*pruned, kTokens);
  CpuEngine e(full->config(), full->weights, 64);
  RoutingOverride o;
  for (int x : {1, 3, 5}) o.ablate.push_back({0, x});
  for (int x : {0, 4, 6, 7}) o.ablate.push_back({3, x});
  ASSERT_TRUE(e.set_routing_override(o).ok());
  std::vector<std::vector<int>> chosen(full->config().n_layers);
  ASSERT_TRUE(e.set_routing_observer([&](const RoutingEvent& ev) {
                 EXPECT_EQ(ev.k, 4);
                 for (int j = 0; j < ev.k; ++j) chosen[ev.layer].push_back(ev.slots[j]);
               }).ok());
  std::vector<float> got(want.size());
  ASSERT_TRUE(e.forward(kTokens, got.data()).ok());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "logit " << i;
  EXPECT_EQ(chosen[0].size(), 4 * kTokens.size());
  for (int x : chosen[0]) EXPECT_TRUE(x != 1 && x != 3 && x != 5) << x;
  for (int x : chosen[3]) EXPECT_TRUE(x == 1 || x == 2 || x == 3 || x == 5) << x;

  // k = 1 (the one chosen weighs 1), and a forced expert in every token's choice.
  RoutingOverride f;
  f.k = 2, f.force = {{2, 6}};
  ASSERT_TRUE(e.set_routing_override(f).ok());
  int events = 0;
  ASSERT_TRUE(e.set_routing_observer([&](const RoutingEvent& ev) {
                 ++events;
                 EXPECT_EQ(ev.k, 2);
                 EXPECT_NEAR(ev.weights[0] + ev.weights[1], 1.0f, 1e-6f);
                 if (ev.layer == 2) {
                   EXPECT_EQ(ev.slots[0], 6);
                 }
               }).ok());
  e.truncate(0);
  ASSERT_TRUE(e.forward(kTokens, nullptr).ok());
  EXPECT_EQ(events, full->config().n_layers * static_cast<int>(kTokens.size()));
  // Overrides that cannot hold are refused, naming the pair.
  RoutingOverride bad;
  bad.ablate = {{9, 0}};
  EXPECT_NE(e.set_routing_override(bad).message().find("ablate 9:0"), std::string::npos);
  bad = {};
  bad.force = {{0, 1}, {0, 2}}, bad.k = 1;
  EXPECT_NE(e.set_routing_override(bad).message().find("more than k = 1"), std::string::npos);
  bad = {};
  bad.k = 17;
  EXPECT_FALSE(e.set_routing_override(bad).ok());
  auto masked = load(manifest, /*mask=*/true);  // pruned slots kept in the table, marked
  ASSERT_TRUE(masked);
  CpuEngine p(masked->config(), masked->weights, 8);
  bad = {};
  bad.force = {{0, 1}};  // slot 1 of layer 0 is pruned there
  EXPECT_FALSE(p.set_routing_override(bad).ok());
}

// A DEVICE slot computes its function exactly from the arguments it reads. Constructed hidden
// state: xn = (NOI, debt service, ...) read by unit rows; hand-computed results. Tolerance: the
// arguments are fp32 sums of one product each (exact); f is one fp32 division or product, so
// results are the fp32 roundings of the exact values (relative 6e-8).
TEST(Slots, DeviceFunctionsOnConstructedHiddenStates) {
  const int D = 8;
  std::vector<float> aw(2 * D, 0.0f), ab = {0, 0}, ow(D), ob(D, 0.5f), y(D);
  aw[0] = 1, aw[D + 1] = 1;  // a = xn[0], b = xn[1]
  for (int i = 0; i < D; ++i) ow[i] = float(i) - 3;
  const vex_device_params p{aw.data(), ab.data(), ow.data(), ob.data()};
  struct Case {
    vex_device_fn fn;
    float a, b, want;
  };
  const Case cases[] = {
      {VEX_FN_DSCR, 1200000, 1000000, 1.2f},      // DSCR = NOI / annual debt service
      {VEX_FN_LTV, 750000, 1000000, 75.0f},       // LTV = loan / value x 100
      {VEX_FN_CAP_RATE, 500000, 8000000, 6.25f},  // cap rate = NOI / price x 100
      {VEX_FN_DEBT_YIELD, 900000, 10000000, 9.0f},
      {VEX_FN_ADD, 127, 89, 216},
      {VEX_FN_SUB, 127, 89, 38},
      {VEX_FN_MUL, 127, 89, 11303},
      {VEX_FN_DIV, 11303, 89, 127},
      {VEX_FN_DIV, 1, 0, 0},  // division by zero gives 0, never inf
  };
  for (const Case& c : cases) {
    std::vector<float> xn(D, 7.0f);
    xn[0] = c.a, xn[1] = c.b;
    const float f = device_expert(p, c.fn, xn.data(), D, y.data());
    EXPECT_NEAR(f, c.want, std::abs(c.want) * 6e-8) << device_fn_name(c.fn);
    for (int i = 0; i < D; ++i) EXPECT_FLOAT_EQ(y[i], f * ow[i] + 0.5f);
  }
}

// Attached through a manifest, a DEVICE slot that always wins changes the logits; switched off
// (the per-request flag) the model is exactly the one without it.
TEST(Slots, DeviceSlotInTheForwardPassAndSwitchedOff) {
  const std::string dir = testing::temp_dir("device");
  write_router(dir + "/mul.safetensors", 30.0f, 64, true, {3.0f, 4.0f});
  auto m = load(write_manifest(dir, R"(
[[virtual]]
name = "mul"
kind = "device"
layers = [1, 2]
router = "mul.safetensors"
)"));
  auto full = load("");
  ASSERT_TRUE(m && full);
  const vex_slot& s = m->weights.layers[1].slots.back();
  EXPECT_EQ(s.kind, VEX_SLOT_DEVICE);
  EXPECT_EQ(s.function, VEX_FN_MUL);
  EXPECT_EQ(m->weights.layers[1].n_slots(), 9);
  const std::vector<float> on = run(*m, kTokens), off = run(*m, kTokens, false),
                           base = run(*full, kTokens);
  EXPECT_EQ(off, base);
  EXPECT_NE(on, base);
}

// HOST slots write triggers (position, layer, slot, weight), add nothing to the residual, and
// count only at or above their threshold.
TEST(Slots, HostTriggersAndThreshold) {
  const std::string dir = testing::temp_dir("host");
  write_router(dir + "/calc.safetensors", 30.0f, 64);
  write_router(dir + "/never.safetensors", -30.0f, 64);
  auto m = load(write_manifest(dir, R"(
[[virtual]]
name = "calculator"
kind = "host"
layers = [2]
router = "calc.safetensors"
threshold = 0.5

[[virtual]]
name = "units"
kind = "host"
layers = [2]
router = "never.safetensors"
)"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->host_experts, (std::vector<std::string>{"calculator", "units"}));
  CpuEngine e(m->config(), m->weights, 64);
  ASSERT_TRUE(e.forward(kTokens, nullptr).ok());
  ASSERT_EQ(e.triggers().size(), kTokens.size());
  for (size_t i = 0; i < kTokens.size(); ++i) {
    const vex_trigger& t = e.triggers()[i];
    EXPECT_EQ(t.pos, int(i));
    EXPECT_EQ(t.layer, 2);
    EXPECT_EQ(t.slot, 8);  // the first virtual row after the 8 neural ones
    EXPECT_GT(t.weight, 0.99f);
  }
  // Two slots that always win share the weight (~0.5 each): a threshold of 0.6 silences both,
  // 0.4 lets both count.
  for (const float threshold : {0.6f, 0.4f}) {
    const std::string two = testing::temp_dir("host_two");
    write_router(two + "/a.safetensors", 30.0f, 64);
    auto m2 = load(write_manifest(two, absl::StrFormat(R"(
[[virtual]]
name = "calculator"
kind = "host"
layers = [2]
router = "a.safetensors"
threshold = %.1f

[[virtual]]
name = "units"
kind = "host"
layers = [2]
router = "a.safetensors"
threshold = %.1f
)",
                                                        threshold, threshold)));
    ASSERT_TRUE(m2);
    CpuEngine e2(m2->config(), m2->weights, 64);
    ASSERT_TRUE(e2.forward(kTokens, nullptr).ok());
    EXPECT_EQ(e2.triggers().size(), threshold > 0.5f ? 0u : 2 * kTokens.size());
  }
}

TEST(Slots, ManifestForOtherWeightsIsRefused) {
  const std::string dir = testing::temp_dir("hash");
  auto m = load_model(testing::tiny_checkpoint(),
                      LoadOptions{.experts = write_manifest(
                                      dir, "[base]\nindex_sha256 = \"" + std::string(64, '0') + "\"\n"),
                                  .progress = {}});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("hashes to"), std::string::npos) << m.status();
  const std::string index = testing::tiny_checkpoint() + "/model.safetensors.index.json";
  auto h = sha256_file_hex(index);
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(load_model(testing::tiny_checkpoint(),
                         LoadOptions{.experts = write_manifest(
                                         dir, "[base]\nindex_sha256 = \"" + *h + "\"\n"),
                                     .progress = {}})
                  .ok());
}

// A sidecar with an inf bias or a NaN weight would route every token (or none) and print
// garbage: refused at load, naming the file, tensor and element.
TEST(Slots, NonFiniteSidecarsAreRefused) {
  const std::string dir = testing::temp_dir("nonfinite");
  for (float bad : {INFINITY, -INFINITY, NAN}) {
    write_router(dir + "/r.safetensors", bad, 64);
    auto m = load_model(testing::tiny_checkpoint(),
                        LoadOptions{.experts = write_manifest(dir, R"(
[[virtual]]
name = "calculator"
kind = "host"
layers = [0]
router = "r.safetensors"
)"),
                                    .progress = {}});
    ASSERT_FALSE(m.ok()) << bad;
    EXPECT_NE(m.status().message().find("r.safetensors: tensor 'bias' element 0 is"),
              std::string::npos)
        << m.status();
  }
}

TEST(Slots, Sha256KnownAnswers) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// The injection loop: a HOST calculator slot that fires at every position of layer 2. In raw
// mode the trigger at the prompt's last position answers at once; the continuation's tokens are
// streamed as generated tokens and the KV cache then holds prompt + continuation.
class Injection : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = testing::temp_dir("inject");
    write_router(dir + "/calc.safetensors", 30.0f, 64);
    model_ = load(write_manifest(dir, R"(
[[virtual]]
name = "calculator"
kind = "host"
layers = [2]
router = "calc.safetensors"
)"),
                  false, testing::tiny_chat_checkpoint());
    ASSERT_TRUE(model_);
    auto v = VirtualExperts::bind(*model_, registry_);
    ASSERT_TRUE(v.ok()) << v.status();
    experts_ = std::move(*v);
    auto e = make_engine(*model_, 256, Device::kCpu);
    ASSERT_TRUE(e.ok());
    session_ = std::make_unique<Session>(std::move(*e));
  }
  std::string generate(const std::vector<int32_t>& prompt, int n, GenerateResult* r = nullptr) {
    std::vector<int32_t> out;
    GenerateOptions o{.max_tokens = n, .sampling = {.temperature = 0}};
    o.experts = experts_.get();
    auto res = session_->generate(prompt, o, [&](int32_t t) { return out.push_back(t), true; });
    EXPECT_TRUE(res.ok()) << res.status();
    if (r && res.ok()) *r = *res;
    return model_->tokenizer->decode(out);
  }
  ExpertRegistry registry_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<VirtualExperts> experts_;
  std::unique_ptr<Session> session_;
};

TEST_F(Injection, RawPromptAnswersAtOnce) {
  const auto prompt = model_->tokenizer->encode("127 * 89 = ", false);
  GenerateResult r;
  const std::string text = generate(prompt, 8, &r);
  EXPECT_TRUE(text.starts_with("11303")) << text;
  EXPECT_EQ(r.injected, static_cast<int>(model_->tokenizer->encode("11303", false).size()));
  ASSERT_FALSE(experts_->firings().empty());
  const ExpertFiring& f = experts_->firings()[0];
  EXPECT_EQ(f.expert, "calculator");
  EXPECT_EQ(f.layer, 2);
  EXPECT_EQ(f.pos, static_cast<int>(prompt.size()) - 1);
  EXPECT_TRUE(f.answered);
  EXPECT_EQ(f.inputs, "127 * 89");
  EXPECT_EQ(f.output, "11303");
  // The cache holds prompt + continuation + the sampled tokens after it: the logits of the
  // session equal a fresh run over the same tokens.
  CpuEngine fresh(model_->config(), model_->weights, 256);
  std::vector<float> logits(model_->config().vocab_size);
  ASSERT_TRUE(fresh.forward(session_->tokens(), logits.data(), true).ok());
  for (size_t i = 0; i < logits.size(); ++i) ASSERT_EQ(logits[i], session_->logits()[i]);
}

// An expert's answer is atomic: a token limit smaller than the answer neither cuts it nor is
// spent on it (max_tokens counts sampled tokens; the answer is counted in `injected`).
TEST_F(Injection, TheAnswerIsWholeUnderATokenLimit) {
  const auto answer = model_->tokenizer->encode("11303", false);
  ASSERT_GT(answer.size(), 1u);
  for (int limit : {0, 1}) {
    GenerateResult r;
    const std::string text = generate(model_->tokenizer->encode("127 * 89 = ", false), limit, &r);
    if (limit == 0) {
      EXPECT_EQ(r.generated, 0);  // nothing sampled, nothing asked of the experts
      continue;
    }
    EXPECT_TRUE(text.starts_with("11303")) << text;
    EXPECT_EQ(r.injected, static_cast<int>(answer.size()));
    EXPECT_EQ(r.generated - r.injected, limit);
    EXPECT_EQ(r.reason, StopReason::kMaxTokens);
  }
}

// After "11303" no token may glue onto the number (no "113035", no "11303.5"); a space, a
// newline or a sentence's end may follow.
TEST_F(Injection, TheAnswerIsSealed) {
  const Tokenizer& tok = *model_->tokenizer;
  GenerateResult r;
  generate(tok.encode("127 * 89 = ", false), 2, &r);  // the continuation only: nothing sampled
  ASSERT_GT(r.injected, 0);
  const int V = model_->config().vocab_size;
  auto id = [&](const char* s) {
    const auto ids = tok.encode(s, false);
    EXPECT_EQ(ids.size(), 1u) << s;
    return ids[0];
  };
  std::vector<float> logits(V, 0.0f);
  ASSERT_TRUE(experts_->seal({}, logits));
  for (const char* glued : {"5", "42", "x", "th", "A"}) EXPECT_EQ(logits[id(glued)], -INFINITY) << glued;
  for (const char* free : {".", " the", "\n", ",", " ="}) EXPECT_EQ(logits[id(free)], 0.0f) << free;
  std::fill(logits.begin(), logits.end(), 0.0f);
  const int32_t dot = id(".");
  ASSERT_TRUE(experts_->seal(std::span(&dot, 1), logits));  // "11303." + digit would be 11303.5
  EXPECT_EQ(logits[id("5")], -INFINITY);
  EXPECT_EQ(logits[id(" the")], 0.0f);
  EXPECT_EQ(logits[id("x")], 0.0f);
  const int32_t space = id(" ");
  EXPECT_FALSE(experts_->seal(std::span(&space, 1), logits));  // the answer is over
}

TEST_F(Injection, DeclinesLeaveGenerationUntouched) {
  // "room 127 =" fires the slot but the calculator declines: same tokens as with no experts.
  const auto prompt = model_->tokenizer->encode("room 127 = ", false);
  const std::string with = generate(prompt, 6);
  std::vector<int32_t> out;
  auto r = session_->generate(prompt, {.max_tokens = 6, .sampling = {.temperature = 0}},
                              [&](int32_t t) { return out.push_back(t), true; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(with, model_->tokenizer->decode(out));
  ASSERT_FALSE(experts_->firings().empty());  // the slot fired; the calculator declined
  for (const ExpertFiring& f : experts_->firings()) EXPECT_FALSE(f.answered);
}

// Chat mode: the assistant's final message forced up to "127 * 89 = "; the calculator reads the
// message content (never the headers) and its answer continues the message.
TEST_F(Injection, InsideAnAssistantMessage) {
  const Tokenizer& tok = *model_->tokenizer;
  harmony::Conversation conv;
  conv.messages.push_back({.role = "user", .content = "What is 127 * 89?"});
  std::vector<int32_t> prompt = harmony::render(tok, conv, /*for_completion=*/true).tokens;
  const std::vector<int32_t> forced = tok.encode("<|channel|>final<|message|>127 * 89 = ", true);
  harmony::StreamParser parser(tok);
  for (int32_t t : forced) parser.feed(t);
  prompt.insert(prompt.end(), forced.begin(), forced.end());
  experts_->read_message_content(parser);
  std::vector<int32_t> out;
  GenerateOptions o{.max_tokens = 8, .sampling = {.temperature = 0}};
  o.experts = experts_.get();
  auto r = session_->generate(prompt, o, [&](int32_t t) { return parser.feed(t), out.push_back(t), true; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(tok.decode(out).starts_with("11303")) << tok.decode(out);
  ASSERT_FALSE(parser.messages().empty());
  EXPECT_TRUE(parser.messages().back().content.starts_with("127 * 89 = 11303"))
      << parser.messages().back().content;

  // In a header (the prompt ends with "<|start|>assistant") nothing is injected.
  harmony::StreamParser header(tok);
  experts_->read_message_content(header);
  experts_->clear();
  auto r2 = session_->generate(harmony::render(tok, conv, true).tokens,
                               GenerateOptions{.max_tokens = 1, .sampling = {.temperature = 0},
                                               .experts = experts_.get()},
                               [&](int32_t t) { return header.feed(t), true; });
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->injected, 0);
  EXPECT_TRUE(experts_->firings().empty());
}

}  // namespace
}  // namespace vex
