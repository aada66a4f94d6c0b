#include "loader/config_json.h"

#include <cmath>

#include "loader/json_util.h"

namespace vex {
namespace {

constexpr int kMaxPositions = 1 << 26;
constexpr int kMaxLayers = 4096;

// num_hidden_layers, bounded before the per-layer pattern is allocated from it.
absl::StatusOr<int> layer_count(const JsonObject& o) {
  VEX_ASSIGN_OR_RETURN(const int n, o.positive_int("num_hidden_layers"));
  if (n > kMaxLayers)
    return o.error("num_hidden_layers", absl::StrCat(n, " is more than ", kMaxLayers));
  return n;
}

absl::StatusOr<Config> parse_hf(const JsonObject& o) {
  Config c;
  c.layout = Layout::kHuggingFace;
  VEX_ASSIGN_OR_RETURN(std::string model_type, o.string("model_type"));
  if (model_type != "gpt_oss")
    return o.error("model_type", absl::StrCat("unsupported model '", model_type,
                                              "' (vex runs gpt_oss checkpoints)"));
  VEX_ASSIGN_OR_RETURN(c.n_layers, layer_count(o));
  VEX_ASSIGN_OR_RETURN(c.d_model, o.positive_int("hidden_size"));
  VEX_ASSIGN_OR_RETURN(c.n_heads, o.positive_int("num_attention_heads"));
  VEX_ASSIGN_OR_RETURN(c.n_kv_heads, o.positive_int("num_key_value_heads"));
  VEX_ASSIGN_OR_RETURN(c.head_dim, o.positive_int("head_dim"));
  VEX_ASSIGN_OR_RETURN(c.n_experts, o.positive_int("num_local_experts"));
  const char* k_key = o.has("num_experts_per_tok") ? "num_experts_per_tok" : "experts_per_token";
  VEX_ASSIGN_OR_RETURN(c.n_experts_active, o.positive_int(k_key));
  VEX_ASSIGN_OR_RETURN(c.d_ff, o.positive_int("intermediate_size"));
  VEX_ASSIGN_OR_RETURN(c.vocab_size, o.positive_int("vocab_size"));
  VEX_ASSIGN_OR_RETURN(c.sliding_window, o.positive_int("sliding_window"));
  VEX_ASSIGN_OR_RETURN(double eps, o.number_or("rms_norm_eps", 1e-5));
  VEX_ASSIGN_OR_RETURN(double limit, o.number_or("swiglu_limit", 7.0));
  c.rms_eps = static_cast<float>(eps);
  c.swiglu_limit = static_cast<float>(limit);
  VEX_ASSIGN_OR_RETURN(c.max_position, o.positive_int_or("max_position_embeddings", 131072));
  VEX_ASSIGN_OR_RETURN(bool tied, o.boolean_or("tie_word_embeddings", false));
  if (tied) return o.error("tie_word_embeddings", "true is not supported (gpt-oss is untied)");
  VEX_ASSIGN_OR_RETURN(bool bias, o.boolean_or("attention_bias", true));
  if (!bias) return o.error("attention_bias", "false is not supported (gpt-oss has biases)");

  if (o.has("quantization_config")) {
    const auto& q = o.json()["quantization_config"];
    if (!q.is_object() || !q.contains("quant_method") || q["quant_method"] != "mxfp4")
      return o.error("quantization_config", "only quant_method \"mxfp4\" is supported");
  }

  // Layer pattern (§1.3): layer_types when given, else even layers slide.
  if (o.has("layer_types")) {
    c.layer_sliding.assign(c.n_layers, 0);
    const auto& lt = o.json()["layer_types"];
    if (!lt.is_array() || static_cast<int>(lt.size()) != c.n_layers)
      return o.error("layer_types", absl::StrCat("expected an array of ", c.n_layers, " strings"));
    for (int i = 0; i < c.n_layers; ++i) {
      std::string t = lt[i].is_string() ? lt[i].get<std::string>() : "";
      if (t == "sliding_attention")
        c.layer_sliding[i] = 1;
      else if (t != "full_attention")
        return o.error("layer_types", absl::StrCat("entry ", i,
                                                   ": expected \"sliding_attention\" "
                                                   "or \"full_attention\", got ",
                                                   lt[i].dump()));
    }
  } else {
    c.set_alternating_layers();
  }

  // RoPE: transformers 4.x writes rope_theta + rope_scaling, 5.x may write rope_parameters.
  const char* rope_key = o.has("rope_scaling") ? "rope_scaling" : "rope_parameters";
  if (!o.has(rope_key) || !o.json()[rope_key].is_object())
    return o.error("rope_scaling", "missing (gpt-oss uses YaRN scaling)");
  JsonObject r(o.json()[rope_key], absl::StrCat(o.file(), " (", rope_key, ")"));
  std::string rope_type;
  VEX_ASSIGN_OR_RETURN(rope_type, r.string(r.has("rope_type") ? "rope_type" : "type"));
  if (rope_type != "yarn")
    return o.error(rope_key, absl::StrCat("rope_type '", rope_type, "' is not supported (yarn)"));
  double theta = 0;
  if (o.has("rope_theta")) {
    VEX_ASSIGN_OR_RETURN(theta, o.number("rope_theta"));
  } else {
    VEX_ASSIGN_OR_RETURN(theta, r.number("rope_theta"));
  }
  VEX_ASSIGN_OR_RETURN(double factor, r.number("factor"));
  VEX_ASSIGN_OR_RETURN(double beta_fast, r.number_or("beta_fast", 32.0));
  VEX_ASSIGN_OR_RETURN(double beta_slow, r.number_or("beta_slow", 1.0));
  VEX_ASSIGN_OR_RETURN(c.rope_original_ctx, r.positive_int("original_max_position_embeddings"));
  VEX_ASSIGN_OR_RETURN(c.rope_truncate, r.boolean_or("truncate", true));
  c.rope_theta = static_cast<float>(theta);
  c.rope_factor = static_cast<float>(factor);
  c.rope_beta_fast = static_cast<float>(beta_fast);
  c.rope_beta_slow = static_cast<float>(beta_slow);
  return c;
}

absl::StatusOr<Config> parse_original(const JsonObject& o) {
  Config c;
  c.layout = Layout::kOriginal;
  VEX_ASSIGN_OR_RETURN(c.n_layers, layer_count(o));
  VEX_ASSIGN_OR_RETURN(c.d_model, o.positive_int("hidden_size"));
  VEX_ASSIGN_OR_RETURN(c.n_heads, o.positive_int("num_attention_heads"));
  VEX_ASSIGN_OR_RETURN(c.n_kv_heads, o.positive_int("num_key_value_heads"));
  VEX_ASSIGN_OR_RETURN(c.head_dim, o.positive_int("head_dim"));
  VEX_ASSIGN_OR_RETURN(c.n_experts, o.positive_int("num_experts"));
  VEX_ASSIGN_OR_RETURN(c.n_experts_active, o.positive_int("experts_per_token"));
  VEX_ASSIGN_OR_RETURN(c.d_ff, o.positive_int("intermediate_size"));
  VEX_ASSIGN_OR_RETURN(c.vocab_size, o.positive_int("vocab_size"));
  VEX_ASSIGN_OR_RETURN(c.sliding_window, o.positive_int("sliding_window"));
  VEX_ASSIGN_OR_RETURN(c.rope_original_ctx, o.positive_int("initial_context_length"));
  VEX_ASSIGN_OR_RETURN(double theta, o.number("rope_theta"));
  VEX_ASSIGN_OR_RETURN(double factor, o.number_or("rope_scaling_factor", 1.0));
  VEX_ASSIGN_OR_RETURN(double alpha, o.number_or("rope_ntk_alpha", 1.0));
  VEX_ASSIGN_OR_RETURN(double beta, o.number_or("rope_ntk_beta", 32.0));
  VEX_ASSIGN_OR_RETURN(double limit, o.number_or("swiglu_limit", 7.0));
  c.rope_theta = static_cast<float>(theta);
  c.rope_factor = static_cast<float>(factor);
  c.rope_beta_slow = static_cast<float>(alpha);
  c.rope_beta_fast = static_cast<float>(beta);
  c.rope_truncate = false;  // the torch reference uses the exact (unrounded) correction range
  c.swiglu_limit = static_cast<float>(limit);
  c.rms_eps = 1e-5f;  // hard-coded in the torch reference
  // In double, checked before the cast (a huge factor would overflow int).
  const double max_position = c.rope_original_ctx * factor;
  if (!(max_position >= 1 && max_position <= kMaxPositions))
    return o.error("rope_scaling_factor",
                   absl::StrFormat("%g x initial_context_length %d is not a context length in "
                                   "[1, %d]",
                                   factor, c.rope_original_ctx, kMaxPositions));
  c.max_position = static_cast<int>(max_position);
  c.set_alternating_layers();
  return c;
}

}  // namespace

absl::Status validate_config(const Config& c, const std::string& file) {
  auto fail = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", what));
  };
  // Every size the engines compute from these (products, byte counts, buffer lengths) is then
  // far from overflowing int (element counts of one row) or int64 (bytes): each dimension, and
  // each product used as a dimension, is bounded here, in 64 bits, before anything is allocated.
  const struct {
    const char* key;
    int64_t value, max;
  } dims[] = {
      {"num_hidden_layers", c.n_layers, kMaxLayers},
      {"hidden_size", c.d_model, 1 << 17},
      {"num_attention_heads", c.n_heads, 1 << 12},
      {"num_key_value_heads", c.n_kv_heads, 1 << 12},
      {"head_dim", c.head_dim, 1 << 10},
      {"num_attention_heads x head_dim", int64_t{c.n_heads} * c.head_dim, 1 << 17},
      {"num_local_experts", c.n_experts, 1 << 14},
      {"intermediate_size", c.d_ff, 1 << 18},
      {"vocab_size", c.vocab_size, 1 << 24},
      {"sliding_window", c.sliding_window, kMaxPositions},
      {"original_max_position_embeddings", c.rope_original_ctx, kMaxPositions},
      {"max_position_embeddings", c.max_position, kMaxPositions},
  };
  for (const auto& d : dims)
    if (d.value < 1 || d.value > d.max)
      return fail(absl::StrFormat("%s %d is outside [1, %d]", d.key, d.value, d.max));
  // Floats: finite and in the range the math needs.
  const struct {
    const char* key;
    double value, lo, hi;  // lo < value <= hi
  } floats[] = {
      {"rope_theta", c.rope_theta, 1, 1e12},
      {"rope factor", c.rope_factor, 1 - 1e-9, 1e6},
      {"beta_fast", c.rope_beta_fast, 0, 1e6},
      {"beta_slow", c.rope_beta_slow, 0, 1e6},
      {"swiglu_limit", c.swiglu_limit, 0, 1e6},
      {"rms_norm_eps", c.rms_eps, 0, 1},
  };
  for (const auto& f : floats)
    if (!std::isfinite(f.value) || !(f.value > f.lo) || !(f.value <= f.hi))
      return fail(absl::StrFormat("%s %g is outside (%g, %g]", f.key, f.value, f.lo, f.hi));
  if (c.n_heads % c.n_kv_heads != 0)
    return fail(
        absl::StrFormat("num_attention_heads %d is not a multiple of num_key_value_heads %d",
                        c.n_heads, c.n_kv_heads));
  if (c.head_dim % 2 != 0)
    return fail(absl::StrFormat("head_dim %d must be even (RoPE)", c.head_dim));
  if (c.d_model % 32 != 0 || c.d_ff % 32 != 0)
    return fail(
        absl::StrFormat("hidden_size %d and intermediate_size %d must be multiples of the "
                        "MXFP4 block size 32",
                        c.d_model, c.d_ff));
  if (c.n_experts_active > 16)
    return fail(
        absl::StrFormat("experts per token %d: at most 16 are supported", c.n_experts_active));
  if (c.n_experts_active > c.n_experts)
    return fail(absl::StrFormat("experts per token %d exceeds the %d experts", c.n_experts_active,
                                c.n_experts));
  return absl::OkStatus();
}

absl::StatusOr<Config> parse_config(const nlohmann::json& j, const std::string& file) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(file, ": not a JSON object"));
  JsonObject o(j, file);
  const bool hf = o.has("model_type") || o.has("architectures");
  if (!hf && !o.has("num_experts"))
    return absl::InvalidArgumentError(absl::StrCat(
        file,
        ": neither a Hugging Face config (no 'model_type') nor a gpt-oss original/ config "
        "(no 'num_experts')"));
  absl::StatusOr<Config> c;
  try {  // the typed accessors check first; a JSON type error left over is reported, not thrown
    c = hf ? parse_hf(o) : parse_original(o);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": unexpected JSON structure: ", e.what()));
  }
  if (!c.ok()) return c.status();
  VEX_RETURN_IF_ERROR(validate_config(*c, file));
  return c;
}

}  // namespace vex
