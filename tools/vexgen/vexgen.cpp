#include "tools/vexgen/vexgen.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "loader/safetensors_writer.h"

namespace vex {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kShardBytes = 5'000'000'000;  // the hub's 20b has 3 shards of at most ~5 GB

// splitmix64 finalizer: a bijective 64-bit mix with good avalanche.
uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(absl::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

// How the values of one logical (Hugging Face named) tensor are drawn.
struct Recipe {
  enum Kind { kBf16Uniform, kBytes, kScales } kind = kBytes;
  float center = 0, amp = 0;  // kBf16Uniform: center + amp * u, u uniform in [-1, 1)
  int base_exp = 127;         // kScales: E8M0 byte = base_exp + {-1, 0, +1}
};

// A run of bytes inside an output tensor filled from one logical tensor's stream. original/
// fuses q, k and v into one tensor: three segments, each with the values its HF twin has.
struct Segment {
  std::string logical;  // the HF name keying the value stream
  Recipe recipe;
  uint64_t offset = 0;  // byte offset inside the output tensor
  uint64_t bytes = 0;
};

struct OutTensor {
  TensorSpec spec;
  std::vector<Segment> segments;
};

// Fills bytes [b0, b1) of a segment (b0, b1 multiples of 8) from its value stream.
void fill(const Segment& s, uint64_t stream, uint64_t b0, uint64_t b1, uint8_t* dst) {
  auto h = [&](uint64_t i) { return mix(stream ^ (i * 0xd1b54a32d192ed03ull)); };
  switch (s.recipe.kind) {
    case Recipe::kBf16Uniform: {
      uint16_t* out = reinterpret_cast<uint16_t*>(dst);
      for (uint64_t i = b0 / 2; i < b1 / 2; ++i) {
        // u = k / 2^23 with a 24-bit k: exact in fp32; then one multiply and one add, each
        // correctly rounded (no contraction: see CMakeLists), then an integer bf16 rounding.
        const float u = static_cast<float>(static_cast<int64_t>(h(i) >> 40) - (1 << 23)) *
                        (1.0f / static_cast<float>(1 << 23));
        const float t = s.recipe.amp * u;
        const float v = s.recipe.center + t;
        out[i - b0 / 2] = f32_to_bf16(v);
      }
      break;
    }
    case Recipe::kBytes:  // MXFP4 codes: every nibble uniform over the 16 E2M1 values
      for (uint64_t i = b0 / 8; i < b1 / 8; ++i) {
        const uint64_t v = h(i);
        for (int j = 0; j < 8; ++j) dst[(i - b0 / 8) * 8 + j] = static_cast<uint8_t>(v >> (8 * j));
      }
      break;
    case Recipe::kScales:
      for (uint64_t i = b0; i < b1; ++i) {
        const int e = s.recipe.base_exp + static_cast<int>(h(i) % 3) - 1;
        dst[i - b0] = static_cast<uint8_t>(std::clamp(e, 1, 254));
      }
      break;
  }
}

// E8M0 exponent making E2M1 rows (rms 2.93 for uniform codes) over `k` inputs of rms `in_rms`
// produce outputs of rms `target`. frexp is exact, so this is deterministic without log2.
int base_exponent(double target, double in_rms, int k) {
  const double scale = target / (2.926 * in_rms * std::sqrt(static_cast<double>(k)));
  int e;
  const double m = std::frexp(scale, &e);  // scale = m * 2^e, m in [0.5, 1)
  return 127 + (m < 0.70710678118654752 ? e - 1 : e);
}

Recipe uniform(double center, double amp) {
  return {Recipe::kBf16Uniform, static_cast<float>(center), static_cast<float>(amp), 0};
}

// Value recipe of each HF tensor, chosen so that attention is neither flat nor one-hot,
// routing is not degenerate, MXFP4 scales vary, and the SwiGLU clamp (|h| > 7) is reached
// often (about a quarter of the pre-activations of the tiny model: tests/test_vexgen.cpp).
Recipe recipe_for(const std::string& name, const Config& c) {
  const double D = c.d_model, Q = c.q_dim(), r3 = std::sqrt(3.0);
  auto ends = [&](std::string_view suffix) { return name.ends_with(suffix); };
  if (ends("embed_tokens.weight")) return uniform(0, 1);
  if (ends("layernorm.weight") || name == "model.norm.weight") return uniform(1, 0.5);
  if (ends("q_proj.weight") || ends("k_proj.weight") || ends("v_proj.weight"))
    return uniform(0, 1.5 * r3 / std::sqrt(D));
  if (ends("o_proj.weight")) return uniform(0, r3 / std::sqrt(Q));
  if (ends("sinks")) return uniform(0, 2);
  if (ends("router.weight")) return uniform(0, 2 * r3 / std::sqrt(D));
  if (ends("router.bias") || ends("gate_up_proj_bias")) return uniform(0, 0.5);
  if (ends("_blocks")) return {Recipe::kBytes};
  if (ends("gate_up_proj_scales"))
    return {Recipe::kScales, 0, 0, base_exponent(4.5, 1.0, c.d_model)};
  if (ends("down_proj_scales")) return {Recipe::kScales, 0, 0, base_exponent(1.0, 3.0, c.d_ff)};
  if (ends("lm_head.weight")) return uniform(0, 2 * r3 / std::sqrt(D));
  return uniform(0, 0.2);  // remaining biases
}

OutTensor simple(const std::string& out_name, const std::string& logical, DType dt,
                 std::vector<int64_t> shape, const Config& c) {
  OutTensor t{{out_name, dt, std::move(shape)}, {}};
  t.segments.push_back({logical, recipe_for(logical, c), 0, t.spec.nbytes()});
  return t;
}

// The Hugging Face tensors in file order (docs/gpt-oss.md §2.1).
std::vector<OutTensor> hf_tensors(const Config& c) {
  const int64_t D = c.d_model, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim(), E = c.n_experts,
                I = c.d_ff;
  std::vector<OutTensor> ts;
  auto add = [&](const std::string& n, DType dt, std::vector<int64_t> shape) {
    ts.push_back(simple(n, n, dt, std::move(shape), c));
  };
  const DType BF = DType::kBF16, U8 = DType::kU8;
  add("model.embed_tokens.weight", BF, {V, D});
  for (int il = 0; il < c.n_layers; ++il) {
    const std::string p = absl::StrCat("model.layers.", il, ".");
    add(p + "input_layernorm.weight", BF, {D});
    add(p + "self_attn.q_proj.weight", BF, {Q, D});
    add(p + "self_attn.q_proj.bias", BF, {Q});
    add(p + "self_attn.k_proj.weight", BF, {KV, D});
    add(p + "self_attn.k_proj.bias", BF, {KV});
    add(p + "self_attn.v_proj.weight", BF, {KV, D});
    add(p + "self_attn.v_proj.bias", BF, {KV});
    add(p + "self_attn.o_proj.weight", BF, {D, Q});
    add(p + "self_attn.o_proj.bias", BF, {D});
    add(p + "self_attn.sinks", BF, {c.n_heads});
    add(p + "post_attention_layernorm.weight", BF, {D});
    add(p + "mlp.router.weight", BF, {E, D});
    add(p + "mlp.router.bias", BF, {E});
    add(p + "mlp.experts.gate_up_proj_blocks", U8, {E, 2 * I, D / 32, 16});
    add(p + "mlp.experts.gate_up_proj_scales", U8, {E, 2 * I, D / 32});
    add(p + "mlp.experts.gate_up_proj_bias", BF, {E, 2 * I});
    add(p + "mlp.experts.down_proj_blocks", U8, {E, D, I / 32, 16});
    add(p + "mlp.experts.down_proj_scales", U8, {E, D, I / 32});
    add(p + "mlp.experts.down_proj_bias", BF, {E, D});
  }
  add("model.norm.weight", BF, {D});
  add("lm_head.weight", BF, {V, D});
  return ts;
}

// The same model under original/ names (docs/gpt-oss.md §2.2): renames, and q/k/v fused by rows.
std::vector<OutTensor> original_tensors(const Config& c) {
  std::vector<OutTensor> hf = hf_tensors(c), out;
  auto find = [&](const std::string& n) -> const OutTensor& {
    for (const auto& t : hf)
      if (t.spec.name == n) return t;
    std::abort();  // internal: the name lists below are derived from hf_tensors
  };
  auto rename = [&](const std::string& from, const std::string& to) {
    OutTensor t = find(from);
    t.spec.name = to;
    out.push_back(std::move(t));
  };
  auto fuse = [&](const std::string& to, std::vector<std::string> parts) {
    OutTensor t{{to, DType::kBF16, {}}, {}};
    int64_t rows = 0;
    uint64_t off = 0;
    for (const auto& pn : parts) {
      const OutTensor& p = find(pn);
      rows += p.spec.shape[0];
      t.segments.push_back({pn, p.segments[0].recipe, off, p.spec.nbytes()});
      off += p.spec.nbytes();
    }
    t.spec.shape = find(parts[0]).spec.shape;
    t.spec.shape[0] = rows;
    out.push_back(std::move(t));
  };
  rename("model.embed_tokens.weight", "embedding.weight");
  for (int il = 0; il < c.n_layers; ++il) {
    const std::string h = absl::StrCat("model.layers.", il, "."),
                      o = absl::StrCat("block.", il, ".");
    rename(h + "input_layernorm.weight", o + "attn.norm.scale");
    fuse(o + "attn.qkv.weight", {h + "self_attn.q_proj.weight", h + "self_attn.k_proj.weight",
                                 h + "self_attn.v_proj.weight"});
    fuse(o + "attn.qkv.bias",
         {h + "self_attn.q_proj.bias", h + "self_attn.k_proj.bias", h + "self_attn.v_proj.bias"});
    rename(h + "self_attn.sinks", o + "attn.sinks");
    rename(h + "self_attn.o_proj.weight", o + "attn.out.weight");
    rename(h + "self_attn.o_proj.bias", o + "attn.out.bias");
    rename(h + "post_attention_layernorm.weight", o + "mlp.norm.scale");
    rename(h + "mlp.router.weight", o + "mlp.gate.weight");
    rename(h + "mlp.router.bias", o + "mlp.gate.bias");
    rename(h + "mlp.experts.gate_up_proj_blocks", o + "mlp.mlp1_weight.blocks");
    rename(h + "mlp.experts.gate_up_proj_scales", o + "mlp.mlp1_weight.scales");
    rename(h + "mlp.experts.gate_up_proj_bias", o + "mlp.mlp1_bias");
    rename(h + "mlp.experts.down_proj_blocks", o + "mlp.mlp2_weight.blocks");
    rename(h + "mlp.experts.down_proj_scales", o + "mlp.mlp2_weight.scales");
    rename(h + "mlp.experts.down_proj_bias", o + "mlp.mlp2_bias");
  }
  rename("model.norm.weight", "norm.scale");
  rename("lm_head.weight", "unembedding.weight");
  return out;
}

nlohmann::ordered_json hf_config_json(const Config& c) {
  nlohmann::ordered_json layer_types = nlohmann::ordered_json::array();
  for (int i = 0; i < c.n_layers; ++i)
    layer_types.push_back(c.layer_sliding[i] ? "sliding_attention" : "full_attention");
  return {
      {"architectures", {"GptOssForCausalLM"}},
      {"attention_bias", true},
      {"attention_dropout", 0.0},
      {"eos_token_id", 200002},
      {"experts_per_token", c.n_experts_active},
      {"head_dim", c.head_dim},
      {"hidden_act", "silu"},
      {"hidden_size", c.d_model},
      {"initial_context_length", c.rope_original_ctx},
      {"initializer_range", 0.02},
      {"intermediate_size", c.d_ff},
      {"layer_types", layer_types},
      {"max_position_embeddings", c.max_position},
      {"model_type", "gpt_oss"},
      {"num_attention_heads", c.n_heads},
      {"num_experts_per_tok", c.n_experts_active},
      {"num_hidden_layers", c.n_layers},
      {"num_key_value_heads", c.n_kv_heads},
      {"num_local_experts", c.n_experts},
      {"output_router_logits", false},
      {"pad_token_id", 199999},
      {"quantization_config",
       {{"modules_to_not_convert",
         {"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
          "lm_head"}},
        {"quant_method", "mxfp4"}}},
      {"rms_norm_eps", c.rms_eps},
      {"rope_scaling",
       {{"beta_fast", c.rope_beta_fast},
        {"beta_slow", c.rope_beta_slow},
        {"factor", c.rope_factor},
        {"original_max_position_embeddings", c.rope_original_ctx},
        {"rope_type", "yarn"},
        {"truncate", c.rope_truncate}}},
      {"rope_theta", c.rope_theta},
      {"router_aux_loss_coef", 0.9},
      {"sliding_window", c.sliding_window},
      {"swiglu_limit", c.swiglu_limit},
      {"tie_word_embeddings", false},
      {"torch_dtype", "bfloat16"},
      {"transformers_version", "4.55.0.dev0"},
      {"use_cache", true},
      {"vocab_size", c.vocab_size},
  };
}

nlohmann::ordered_json original_config_json(const Config& c) {
  return {
      {"num_hidden_layers", c.n_layers},
      {"num_experts", c.n_experts},
      {"experts_per_token", c.n_experts_active},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.d_model},
      {"intermediate_size", c.d_ff},
      {"swiglu_limit", c.swiglu_limit},
      {"head_dim", c.head_dim},
      {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.n_kv_heads},
      {"sliding_window", c.sliding_window},
      {"initial_context_length", c.rope_original_ctx},
      {"rope_theta", c.rope_theta},
      {"rope_scaling_factor", c.rope_factor},
      {"rope_ntk_alpha", c.rope_beta_slow},
      {"rope_ntk_beta", c.rope_beta_fast},
  };
}

absl::Status write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(p.string(), ": write failed"));
  return absl::OkStatus();
}

// One file's tensors, filled by all threads in chunks.
absl::Status write_file(const fs::path& path, const std::vector<OutTensor>& tensors, uint64_t seed,
                        int threads) {
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back(t.spec);
  VEX_ASSIGN_OR_RETURN(auto w, SafetensorsWriter::create(path.string(), specs, {{"format", "pt"}}));
  struct Work {
    size_t tensor;
    const Segment* seg;
    uint64_t b0, b1;
  };
  constexpr uint64_t kChunk = 16 << 20;  // a multiple of 8: chunk edges never split a value
  std::vector<Work> work;
  for (size_t i = 0; i < tensors.size(); ++i)
    for (const auto& s : tensors[i].segments)
      for (uint64_t b = 0; b < s.bytes; b += kChunk)
        work.push_back({i, &s, b, std::min(s.bytes, b + kChunk)});
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t k; (k = next.fetch_add(1)) < work.size();) {
      const Work& wk = work[k];
      const uint64_t stream = mix(seed ^ fnv1a(wk.seg->logical));
      fill(*wk.seg, stream, wk.b0, wk.b1, w->data(wk.tensor) + wk.seg->offset + wk.b0);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& th : pool) th.join();
  return w->finish();
}

}  // namespace

absl::StatusOr<Config> preset_config(const std::string& shape) {
  Config c;
  c.vocab_size = 201088;
  c.rope_theta = 150000;
  c.rope_factor = 32;
  c.rope_beta_fast = 32;
  c.rope_beta_slow = 1;
  c.rope_original_ctx = 4096;
  c.rope_truncate = false;
  c.max_position = 131072;
  c.swiglu_limit = 7.0f;
  c.rms_eps = 1e-5f;
  if (shape == "tiny") {
    // Small dims, real vocabulary; window 16 so that test sequences span several windows.
    c.n_layers = 4, c.d_model = 64, c.n_heads = 8, c.n_kv_heads = 2, c.head_dim = 16;
    c.n_experts = 8, c.n_experts_active = 4, c.d_ff = 64, c.sliding_window = 16;
  } else if (shape == "20b" || shape == "120b") {
    c.n_layers = shape == "20b" ? 24 : 36, c.n_experts = shape == "20b" ? 32 : 128;
    c.d_model = 2880, c.n_heads = 64, c.n_kv_heads = 8, c.head_dim = 64;
    c.n_experts_active = 4, c.d_ff = 2880, c.sliding_window = 128;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown shape '", shape, "' (expected tiny, 20b or 120b)"));
  }
  c.set_alternating_layers();
  return c;
}

absl::StatusOr<GenReport> generate_checkpoint(const GenOptions& opt) {
  const Config& c = opt.config;
  const int threads = opt.threads > 0
                          ? opt.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::error_code ec;
  fs::path out(opt.out);
  fs::create_directories(out, ec);
  if (ec) return absl::InternalError(absl::StrCat(opt.out, ": cannot create: ", ec.message()));
  GenReport report;

  if (opt.write_hf) {
    std::vector<OutTensor> ts = hf_tensors(c);
    uint64_t total = 0;
    for (const auto& t : ts) total += t.spec.nbytes();
    const int shards =
        opt.shards > 0
            ? opt.shards
            : std::max<int>(2, static_cast<int>((total + kShardBytes - 1) / kShardBytes));
    // Greedy split by bytes, in file order; names as on the hub: 0-based, "of" the last index.
    std::vector<std::vector<OutTensor>> files(shards);
    uint64_t acc = 0;
    for (auto& t : ts) {
      const int f = std::min<int>(shards - 1, static_cast<int>(acc * shards / total));
      acc += t.spec.nbytes();
      files[f].push_back(std::move(t));
    }
    nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
    for (int f = 0; f < shards; ++f) {
      const std::string name = absl::StrFormat("model-%05d-of-%05d.safetensors", f, shards - 1);
      for (const auto& t : files[f]) weight_map[t.spec.name] = name;
      VEX_RETURN_IF_ERROR(write_file(out / name, files[f], opt.seed, threads));
      report.files++;
    }
    report.bytes += total;
    nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}},
                                    {"weight_map", weight_map}};
    VEX_RETURN_IF_ERROR(write_text(out / "model.safetensors.index.json", index.dump(2) + "\n"));
    VEX_RETURN_IF_ERROR(write_text(out / "config.json", hf_config_json(c).dump(2) + "\n"));
    nlohmann::ordered_json gen = {{"bos_token_id", 199998},
                                  {"do_sample", true},
                                  {"eos_token_id", {200002, 199999, 200012}},
                                  {"pad_token_id", 199999},
                                  {"transformers_version", "4.55.0.dev0"}};
    VEX_RETURN_IF_ERROR(write_text(out / "generation_config.json", gen.dump(2) + "\n"));
  }

  if (opt.write_original) {
    fs::path orig = out / "original";
    fs::create_directories(orig, ec);
    if (ec)
      return absl::InternalError(absl::StrCat(orig.string(), ": cannot create: ", ec.message()));
    std::vector<OutTensor> ts = original_tensors(c);
    nlohmann::ordered_json dtypes = nlohmann::ordered_json::object();
    for (const auto& t : ts) {
      const std::string& n = t.spec.name;
      dtypes[n] = n.ends_with(".blocks") ? "FP4" : n.ends_with(".scales") ? "UE8" : "BF16";
      report.bytes += t.spec.nbytes();
    }
    VEX_RETURN_IF_ERROR(write_file(orig / "model.safetensors", ts, opt.seed, threads));
    report.files++;
    VEX_RETURN_IF_ERROR(write_text(orig / "config.json", original_config_json(c).dump(2) + "\n"));
    VEX_RETURN_IF_ERROR(write_text(orig / "dtypes.json", dtypes.dump(2) + "\n"));
  }
  return report;
}

}  // namespace vex
