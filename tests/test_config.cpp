// config.json parsing for both layouts, and errors that name the file and key.
#include <gtest/gtest.h>

#include "loader/config_json.h"
#include "loader/json_util.h"
#include "tests/fixtures.h"

namespace vex {
namespace {

using json = nlohmann::json;

json hf_20b() {
  return json::parse(R"({
    "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "num_hidden_layers": 24,
    "hidden_size": 2880, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
    "num_local_experts": 32, "num_experts_per_tok": 4, "intermediate_size": 2880,
    "vocab_size": 201088, "sliding_window": 128, "rope_theta": 150000,
    "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                     "original_max_position_embeddings": 4096, "truncate": false},
    "max_position_embeddings": 131072, "swiglu_limit": 7.0, "rms_norm_eps": 1e-05,
    "attention_bias": true, "tie_word_embeddings": false,
    "quantization_config": {"quant_method": "mxfp4"},
    "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention",
      "sliding_attention", "full_attention", "sliding_attention", "full_attention",
      "sliding_attention", "full_attention", "sliding_attention", "full_attention",
      "sliding_attention", "full_attention", "sliding_attention", "full_attention",
      "sliding_attention", "full_attention", "sliding_attention", "full_attention",
      "sliding_attention", "full_attention", "sliding_attention", "full_attention"]})");
}

TEST(Config, HuggingFace20b) {
  auto c = parse_config(hf_20b(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->layout, Layout::kHuggingFace);
  EXPECT_EQ(c->n_layers, 24);
  EXPECT_EQ(c->q_dim(), 4096);
  EXPECT_EQ(c->kv_dim(), 512);
  EXPECT_EQ(c->group_size(), 8);
  EXPECT_EQ(c->n_experts, 32);
  EXPECT_EQ(c->rope_original_ctx, 4096);
  EXPECT_FALSE(c->rope_truncate);
  EXPECT_EQ(c->layer_sliding[0], 1);
  EXPECT_EQ(c->layer_sliding[1], 0);
  EXPECT_EQ(c->layer_sliding[22], 1);
}

TEST(Config, Original20b) {
  auto j = json::parse(R"({"num_hidden_layers": 24, "num_experts": 32, "experts_per_token": 4,
    "vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880, "swiglu_limit": 7.0,
    "head_dim": 64, "num_attention_heads": 64, "num_key_value_heads": 8, "sliding_window": 128,
    "initial_context_length": 4096, "rope_theta": 150000, "rope_scaling_factor": 32.0,
    "rope_ntk_alpha": 1.0, "rope_ntk_beta": 32.0})");
  auto c = parse_config(j, "original/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->layout, Layout::kOriginal);
  EXPECT_EQ(c->rope_beta_fast, 32.0f);
  EXPECT_EQ(c->rope_beta_slow, 1.0f);
  EXPECT_EQ(c->max_position, 131072);
  EXPECT_EQ(c->layer_sliding[0], 1);
  EXPECT_EQ(c->layer_sliding[23], 0);
}

void expect_error(json j, const std::string& needle) {
  auto c = parse_config(j, "dir/config.json");
  ASSERT_FALSE(c.ok()) << "accepted; expected " << needle;
  EXPECT_NE(c.status().message().find("dir/config.json"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find(needle), std::string::npos) << c.status();
}

TEST(Config, MissingOrIllTypedFields) {
  json j = hf_20b();
  j.erase("hidden_size");
  expect_error(j, "key 'hidden_size': missing");
  j = hf_20b();
  j["num_attention_heads"] = "64";
  expect_error(j, "key 'num_attention_heads': expected a positive integer, got \"64\"");
  j = hf_20b();
  j["vocab_size"] = -3;
  expect_error(j, "key 'vocab_size'");
  j = hf_20b();
  j["rms_norm_eps"] = "small";
  expect_error(j, "key 'rms_norm_eps': expected a number");
  j = hf_20b();
  j["rope_scaling"]["rope_type"] = "linear";
  expect_error(j, "rope_type 'linear' is not supported");
  j = hf_20b();
  j["rope_scaling"].erase("original_max_position_embeddings");
  expect_error(j, "original_max_position_embeddings");
  j = hf_20b();
  j["layer_types"][3] = "chunked_attention";
  expect_error(j, "key 'layer_types': entry 3");
}

TEST(Config, UnsupportedModels) {
  json j = hf_20b();
  j["model_type"] = "llama";
  expect_error(j, "unsupported model 'llama'");
  j = hf_20b();
  j["tie_word_embeddings"] = true;
  expect_error(j, "tie_word_embeddings");
  j = hf_20b();
  j["quantization_config"]["quant_method"] = "gptq";
  expect_error(j, "quant_method");
  j = hf_20b();
  j["num_key_value_heads"] = 7;
  expect_error(j, "not a multiple of num_key_value_heads");
  j = hf_20b();
  j["hidden_size"] = 2880 + 16;
  expect_error(j, "multiples of the MXFP4 block size");
  expect_error(json::parse(R"({"foo": 1})"), "neither a Hugging Face config");
  j = hf_20b();
  j["quantization_config"]["quant_method"] = 4;  // ill-typed nested field: an error, no throw
  expect_error(j, "quantization_config");
}

// Sizes derived from file values are checked in 64 bits before anything uses them: 33 heads of
// 130150528 wrap to 128 in int (and then RoPE wrote out of bounds); floats must be finite.
TEST(Config, SizesAndFloatsOutOfRange) {
  json j = hf_20b();
  j["num_attention_heads"] = 33, j["num_key_value_heads"] = 33, j["head_dim"] = 130150528;
  expect_error(j, "head_dim 130150528 is outside [1, 1024]");
  j["num_attention_heads"] = 200, j["num_key_value_heads"] = 200, j["head_dim"] = 1000;
  expect_error(j, "num_attention_heads x head_dim 200000 is outside [1, 131072]");  // each fine
  j = hf_20b();
  j["num_hidden_layers"] = 2147483647;
  expect_error(j, "num_hidden_layers");
  j = hf_20b();
  j["vocab_size"] = 1 << 30;
  expect_error(j, "vocab_size 1073741824 is outside");
  j = hf_20b();
  j["rope_scaling"]["beta_fast"] = -1e30;
  expect_error(j, "beta_fast -1e+30 is outside");
  j = hf_20b();
  j["rope_scaling"]["factor"] = 1e300;  // inf as a float
  expect_error(j, "rope factor inf is outside");
  j = hf_20b();
  j["rms_norm_eps"] = 0;
  expect_error(j, "rms_norm_eps 0 is outside");
  j = hf_20b();
  j["max_position_embeddings"] = 100000000;
  expect_error(j, "max_position_embeddings 100000000 is outside");
}

TEST(Config, JsonFileErrors) {
  auto missing = read_json_file("/nonexistent/config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/config.json"), std::string::npos);
}

// Nesting is bounded before parsing: a config.json whose value was 200,000 nested arrays crashed
// vexrun (printing the value for the error recursed once per level).
TEST(Config, DeepNestingRefused) {
  const std::string deep =
      R"({"hidden_size": )" + std::string(200000, '[') + std::string(200000, ']') + "}";
  auto j = parse_json_text(deep, "config.json");
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("config.json: invalid JSON: nested deeper than 64"),
            std::string::npos)
      << j.status();
  // Brackets inside strings are text, not nesting; 64 levels are fine.
  EXPECT_TRUE(parse_json_text(R"({"a": ")" + std::string(1000, '[') + R"("})", "c.json").ok());
  EXPECT_TRUE(parse_json_text(std::string(64, '[') + std::string(64, ']'), "c.json").ok());
  EXPECT_FALSE(parse_json_text(std::string(65, '[') + std::string(65, ']'), "c.json").ok());
}

}  // namespace
}  // namespace vex
