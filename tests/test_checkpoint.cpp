// Checkpoint directories: both layouts load to the same weights; bad directories give one-line
// errors naming the file and tensor or key.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "loader/json_util.h"
#include "loader/safetensors_writer.h"
#include "runtime/model.h"
#include "tests/fixtures.h"

namespace vex {
namespace {
namespace fs = std::filesystem;

void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream(path) << j.dump(2);
}

void expect_load_error(const std::string& dir, const std::string& needle) {
  auto m = load_model(dir);
  ASSERT_FALSE(m.ok()) << "loaded; expected: " << needle;
  EXPECT_NE(m.status().message().find(needle), std::string::npos) << m.status();
  EXPECT_EQ(std::string(m.status().message()).find('\n'), std::string::npos) << "one line";
}

TEST(Checkpoint, BothLayoutsMapToIdenticalWeights) {
  const std::string& dir = testing::tiny_checkpoint();
  auto hf = load_model(dir);
  auto orig = load_model(dir + "/original");
  ASSERT_TRUE(hf.ok()) << hf.status();
  ASSERT_TRUE(orig.ok()) << orig.status();
  const Config& c = (*hf)->config();
  EXPECT_EQ((*hf)->config().layout, Layout::kHuggingFace);
  EXPECT_EQ((*orig)->config().layout, Layout::kOriginal);
  EXPECT_EQ((*hf)->checkpoint->tensors().size(), 3u + 19u * c.n_layers);
  const Weights &a = (*hf)->weights, &b = (*orig)->weights;
  auto same = [](const void* x, const void* y, size_t n) { return memcmp(x, y, n) == 0; };
  const size_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim();
  EXPECT_TRUE(same(a.embedding, b.embedding, c.vocab_size * D * 2));
  EXPECT_TRUE(same(a.lm_head, b.lm_head, c.vocab_size * D * 2));
  for (int il = 0; il < c.n_layers; ++il) {
    const LayerWeights &la = a.layers[il], &lb = b.layers[il];
    EXPECT_TRUE(same(la.wq, lb.wq, Q * D * 2)) << il;
    EXPECT_TRUE(same(la.wk, lb.wk, KV * D * 2)) << il;  // row slices of the fused qkv
    EXPECT_TRUE(same(la.wv, lb.wv, KV * D * 2)) << il;
    EXPECT_TRUE(same(la.bv, lb.bv, KV * 2)) << il;
    EXPECT_TRUE(same(la.sinks, lb.sinks, c.n_heads * 2)) << il;
    for (int e = 0; e < c.n_experts; ++e) {
      const ExpertWeights &ea = la.experts[e], &eb = lb.experts[e];
      EXPECT_TRUE(same(ea.gate_up.blocks, eb.gate_up.blocks, 2 * c.d_ff * D / 2));
      EXPECT_TRUE(same(ea.down.scales, eb.down.scales, D * c.d_ff / 32));
      EXPECT_TRUE(same(ea.down_bias, eb.down_bias, D * 2));
    }
  }
}

TEST(Checkpoint, DirectoryWithOnlyOriginal) {
  const std::string dir = testing::temp_dir("origonly");
  fs::copy(testing::tiny_checkpoint() + "/original", dir + "/original",
           fs::copy_options::recursive);
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->config().layout, Layout::kOriginal);
}

TEST(Checkpoint, NotACheckpoint) {
  expect_load_error("/nonexistent/dir", "/nonexistent/dir: not a directory");
  expect_load_error(testing::temp_dir("empty"), "no config.json");
}

// generation_config.json's EOS ids: 2^32 wrapped to 0 through get<int32_t>() before, and a
// negative id was taken; both are refused by name.
TEST(Checkpoint, EosIdsOutOfRangeAreRefused) {
  for (const char* eos : {"4294967296", "[200002, -1]"}) {
    const std::string dir = testing::copy_checkpoint(testing::tiny_checkpoint(), "badeos");
    std::ofstream(dir + "/generation_config.json") << "{\"eos_token_id\": " << eos << "}";
    expect_load_error(dir, "generation_config.json: key 'eos_token_id': expected a token id");
  }
}

TEST(Checkpoint, IndexNamesMissingShard) {
  const std::string dir = testing::copy_checkpoint(testing::tiny_checkpoint(), "noshard");
  fs::remove(dir + "/model-00001-of-00001.safetensors");
  expect_load_error(dir, "weight_map names shard 'model-00001-of-00001.safetensors'");
}

TEST(Checkpoint, IndexTensorAbsentFromShard) {
  const std::string dir = testing::copy_checkpoint(testing::tiny_checkpoint(), "badindex");
  auto j = *read_json_file(dir + "/model.safetensors.index.json");
  j["weight_map"]["lm_head.weight"] = "model-00000-of-00001.safetensors";  // it is in shard 1
  write_json(dir + "/model.safetensors.index.json", j);
  expect_load_error(dir, "weight_map puts tensor 'lm_head.weight' in model-00000-of-00001");
}

TEST(Checkpoint, MissingTensor) {
  const std::string dir = testing::copy_checkpoint(testing::tiny_checkpoint(), "missing");
  auto j = *read_json_file(dir + "/model.safetensors.index.json");
  j["weight_map"].erase("model.layers.2.self_attn.sinks");
  write_json(dir + "/model.safetensors.index.json", j);
  expect_load_error(dir, "missing tensor 'model.layers.2.self_attn.sinks'");
}

TEST(Checkpoint, ShapeDisagreesWithConfig) {
  const std::string dir = testing::copy_checkpoint(testing::tiny_checkpoint(), "shape");
  auto j = *read_json_file(dir + "/config.json");
  j["num_local_experts"] = 16;  // the checkpoint has 8
  write_json(dir + "/config.json", j);
  expect_load_error(dir,
                    "tensor 'model.layers.0.mlp.router.weight': expected BF16 [16, 64] from "
                    "config.json, found BF16 [8, 64]");
}

TEST(Checkpoint, MissingAndIllTypedConfigField) {
  const std::string dir = testing::copy_checkpoint(testing::tiny_checkpoint(), "cfg");
  auto j = *read_json_file(dir + "/config.json");
  j.erase("head_dim");
  write_json(dir + "/config.json", j);
  expect_load_error(dir, "config.json: key 'head_dim': missing");
  j["head_dim"] = 16.5;
  write_json(dir + "/config.json", j);
  expect_load_error(dir, "config.json: key 'head_dim': expected a positive integer, got 16.5");
  std::ofstream(dir + "/config.json") << "{\"model_type\": ";
  expect_load_error(dir, "config.json: invalid JSON");
}

TEST(Checkpoint, TruncatedShard) {
  const std::string dir = testing::copy_checkpoint(testing::tiny_checkpoint(), "trunc");
  const std::string shard = dir + "/model-00001-of-00001.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 1000);
  expect_load_error(dir, "model-00001-of-00001.safetensors: tensor 'lm_head.weight': data_offsets");
}

TEST(Checkpoint, WrongDtype) {
  // The index points model.norm.weight at a new shard that stores it as F32.
  const std::string dir = testing::copy_checkpoint(testing::tiny_checkpoint(), "dtype");
  std::vector<float> f32(64, 1.0f);
  ASSERT_TRUE(write_safetensors(dir + "/extra.safetensors",
                                {{"model.norm.weight", DType::kF32, {64}}}, {f32.data()})
                  .ok());
  auto j = *read_json_file(dir + "/model.safetensors.index.json");
  j["weight_map"]["model.norm.weight"] = "extra.safetensors";
  write_json(dir + "/model.safetensors.index.json", j);
  expect_load_error(dir,
                    "extra.safetensors: tensor 'model.norm.weight': expected BF16 [64] from "
                    "config.json, found F32 [64]");
}

TEST(Checkpoint, UnexpectedOrDuplicateTensor) {
  const std::string dir = testing::temp_dir("extra");
  fs::copy(testing::tiny_checkpoint() + "/original", dir, fs::copy_options::recursive);
  std::vector<float> f32(64, 1.0f);
  ASSERT_TRUE(write_safetensors(dir + "/extra.safetensors",
                                {{"block.0.attn.extra", DType::kF32, {64}}}, {f32.data()})
                  .ok());
  expect_load_error(dir, "unexpected tensor 'block.0.attn.extra'");
  fs::remove(dir + "/extra.safetensors");
  ASSERT_TRUE(write_safetensors(dir + "/extra.safetensors", {{"norm.scale", DType::kF32, {64}}},
                                {f32.data()})
                  .ok());
  expect_load_error(dir, "tensor 'norm.scale' also appears in");
}

}  // namespace
}  // namespace vex
