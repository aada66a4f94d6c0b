// The expert manifest (loader/manifest.h): a full manifest parsed, and every kind of bad input
// refused with the file, line:column and key in the message (docs/architecture.md §5).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "loader/manifest.h"
#include "loader/safetensors_writer.h"

namespace vex {
namespace {

namespace fs = std::filesystem;

class ManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / "vex_manifest_test";
    fs::create_directories(dir_);
    c_.n_layers = 4, c_.n_experts = 8, c_.n_experts_active = 4, c_.d_model = 64;
    sidecar("calc.safetensors", {1, 64}, {1});
    sidecar("wide.safetensors", {2, 64}, {2});
    std::vector<float> w(64, 0.5f), b(1, -1.0f), aw(128, 0.25f), ab(2, 1.0f), ow(64, 2.0f),
        ob(64, 0.0f);
    ASSERT_TRUE(write_safetensors((dir_ / "dscr.safetensors").string(),
                                  {{"weight", DType::kF32, {1, 64}},
                                   {"bias", DType::kF32, {1}},
                                   {"args.weight", DType::kF32, {2, 64}},
                                   {"args.bias", DType::kF32, {2}},
                                   {"out.weight", DType::kF32, {64}},
                                   {"out.bias", DType::kF32, {64}}},
                                  {w.data(), b.data(), aw.data(), ab.data(), ow.data(), ob.data()})
                    .ok());
  }
  void sidecar(const std::string& name, std::vector<int64_t> w, std::vector<int64_t> b) {
    std::vector<float> wd(w[0] * w[1], 0.5f), bd(b[0], -1.0f);
    ASSERT_TRUE(write_safetensors((dir_ / name).string(),
                                  {{"weight", DType::kF32, w}, {"bias", DType::kF32, b}},
                                  {wd.data(), bd.data()})
                    .ok());
  }
  absl::StatusOr<Manifest> parse(const std::string& text) {
    return parse_manifest(text, (dir_ / "m.toml").string(), c_);
  }
  // The error message with the manifest's folder shortened to "DIR".
  std::string error(const std::string& text) {
    auto m = parse(text);
    EXPECT_FALSE(m.ok()) << text;
    std::string s(m.status().message());
    for (size_t at; (at = s.find(dir_.string())) != std::string::npos;)
      s.replace(at, dir_.string().size(), "DIR");
    return s;
  }
  fs::path dir_;
  Config c_;
};

TEST_F(ManifestTest, ParsesAFullManifest) {
  auto m = parse(R"(
[base]
name = "gpt-oss-20b"
index_sha256 = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"

[prune]
keep = { "0" = [5, 0, 3, 7] }
drop = { "2" = [1, 6] }

[[virtual]]
name = "calculator"
kind = "host"
layers = [2, 1]
router = "calc.safetensors"
threshold = 0.3

[[virtual]]
name = "dscr"
kind = "device"
layers = [3]
router = "dscr.safetensors"
)");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->base_name, "gpt-oss-20b");
  EXPECT_EQ(m->index_sha256, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  EXPECT_EQ(m->kept(0, 8), (std::vector<int>{0, 3, 5, 7}));
  EXPECT_EQ(m->kept(1, 8), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(m->kept(2, 8), (std::vector<int>{0, 2, 3, 4, 5, 7}));
  ASSERT_EQ(m->virtuals.size(), 2u);
  EXPECT_EQ(m->virtuals[0].name, "calculator");
  EXPECT_EQ(m->virtuals[0].kind, VirtualExpertSpec::Kind::kHost);
  EXPECT_EQ(m->virtuals[0].layers, (std::vector<int>{1, 2}));
  EXPECT_EQ(m->virtuals[0].router, (dir_ / "calc.safetensors").string());
  EXPECT_FLOAT_EQ(*m->virtuals[0].threshold, 0.3f);
  EXPECT_EQ(m->virtuals[1].kind, VirtualExpertSpec::Kind::kDevice);
  EXPECT_FALSE(m->virtuals[1].threshold.has_value());
  // An empty manifest changes nothing.
  auto empty = parse("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->keep.empty() && empty->virtuals.empty());
}

TEST_F(ManifestTest, BadInputNamesFileLineAndKey) {
  const std::string v = "[[virtual]]\nname = \"calc\"\nkind = \"host\"\nlayers = [1]\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[base]\nnmae = \"x\"\n", "DIR/m.toml:2:1: unknown key 'nmae' in [base]"},
      {"foo = 1\n", "DIR/m.toml:1:1: unknown key 'foo' in the manifest"},
      {"[prune]\nkeep = { \"0\" = [0, 1, 2, 3] }\nkept = {}\n",
       "DIR/m.toml:3:1: unknown key 'kept' in [prune]"},
      {"[prune]\nkeep = { \"0\" = [0, 1, 2, 8] }\n",
       "DIR/m.toml:2:26: 'keep.0': 8 is outside [0, 8)"},
      {"[prune]\nkeep = { \"0\" = [1.1e36, 1, 2, 3] }\n",  // a float, past int64 (fuzz_manifest)
       "DIR/m.toml:2:17: 'keep.0': expected an integer"},
      {"[prune]\nkeep = { \"4\" = [0, 1, 2, 3] }\n",
       "DIR/m.toml:2:10: 'keep': layer '4' is not a layer of this model [0, 4)"},
      {"[prune]\nkeep = { \"x\" = [0, 1, 2, 3] }\n",
       "DIR/m.toml:2:10: 'keep': layer 'x' is not a layer of this model [0, 4)"},
      {"[prune]\nkeep = { \"1\" = [0, 1, 2] }\n",
       "DIR/m.toml:2:16: layer 1 keeps 3 experts, fewer than the 4 the router picks per token"},
      {"[prune]\ndrop = { \"1\" = [0, 1, 2, 3, 4] }\n",
       "DIR/m.toml:2:16: layer 1 keeps 3 experts, fewer than the 4 the router picks per token"},
      {"[prune]\nkeep = { \"1\" = [0, 1, 2, 2] }\n",
       "DIR/m.toml:2:26: 'keep.1': 2 is listed twice"},
      {"[prune]\nkeep = { \"1\" = [0, 1, 2, 3] }\ndrop = { \"1\" = [4] }\n",
       "DIR/m.toml:3:10: layer 1 is listed in both keep and drop"},
      {"[prune]\nkeep = { \"1\" = \"all\" }\n",
       "DIR/m.toml:2:16: 'keep.1': expected an array of integers"},
      {v + "router = \"missing.safetensors\"\n",
       "DIR/m.toml:5:10: 'router': the sidecar DIR/missing.safetensors does not exist"},
      // A name the system refuses: an error, not std::filesystem_error (fuzz_manifest).
      {v + "router = \"" + std::string(300, 'a') + "\"\n",
       "DIR/m.toml:5:10: 'router': the sidecar DIR/" + std::string(300, 'a') +
           " cannot be read: File name too long"},
      {v + "router = \"wide.safetensors\"\n",
       "DIR/m.toml:5:10: 'router': DIR/wide.safetensors: tensor 'weight' is F32 [2, 64], "
       "expected F32 or BF16 [1, 64]"},
      {"[[virtual]]\nname = \"dscr\"\nkind = \"device\"\nlayers = [1]\nrouter = "
       "\"calc.safetensors\"\n",
       "DIR/m.toml:5:10: 'router': DIR/calc.safetensors has no tensor 'args.weight'"},
      {"[[virtual]]\nname = \"calc\"\nkind = \"host\"\nrouter = \"calc.safetensors\"\n",
       "DIR/m.toml:1:1: [[virtual]] needs 'layers'"},
      {"[[virtual]]\nname = \"calc\"\nkind = \"gpu\"\nlayers = [1]\nrouter = "
       "\"calc.safetensors\"\n",
       "DIR/m.toml:3:8: 'kind': expected \"host\" or \"device\", got \"gpu\""},
      {v + "router = \"calc.safetensors\"\nthreshold = 1.5\n",
       "DIR/m.toml:6:13: 'threshold': expected a number in [0, 1]"},
      {v + "router = \"calc.safetensors\"\ncolour = 1\n",
       "DIR/m.toml:6:1: unknown key 'colour' in [[virtual]]"},
      {v + "router = \"calc.safetensors\"\nlayers = [2]\n", ""},  // toml++: redefinition
      {"[base]\nindex_sha256 = \"abc\"\n",
       "DIR/m.toml:2:16: 'index_sha256': expected 64 hexadecimal digits"},
      {"[prune\n", ""},  // syntax error: toml++'s message, with the position
  };
  for (const auto& [text, want] : cases) {
    const std::string got = error(text);
    if (want.empty())
      EXPECT_TRUE(got.rfind("DIR/m.toml:", 0) == 0) << got;
    else
      EXPECT_EQ(got, want) << text;
  }
}

// Random byte edits of a valid manifest: always a clean result or an error naming the file.
TEST_F(ManifestTest, CorruptedTextNeverCrashes) {
  const std::string good =
      "[prune]\nkeep = { \"0\" = [0, 1, 2, 3] }\n[[virtual]]\nname = \"c\"\nkind = \"host\"\n"
      "layers = [1]\nrouter = \"calc.safetensors\"\n";
  ASSERT_TRUE(parse(good).ok());
  uint32_t seed = 1;
  for (int i = 0; i < 2000; ++i) {
    std::string t = good;
    for (int e = 0; e < 3; ++e) {
      seed = seed * 1664525u + 1013904223u;
      t[(seed >> 8) % t.size()] = static_cast<char>(seed >> 24);
    }
    auto m = parse(t);
    if (!m.ok()) {
      EXPECT_NE(m.status().message().find("m.toml"), std::string::npos);
    }
  }
}

// Found by tests/fuzz/fuzz_manifest: toml++ 3.3 reaches __builtin_unreachable() on some
// characters outside ASCII (U+0322 where a value was due; U+FEEF in a run of garbage, even after
// a quote). A manifest is ASCII outside its comments; control characters are refused everywhere.
TEST_F(ManifestTest, AsciiOutsideCommentsNoControlCharacters) {
  auto m = parse("[[virtual]]\nname = \"c\"\nlayers = [\xcc\xa2\n");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("m.toml:3:11: a character outside ASCII"), std::string::npos)
      << m.status();
  const auto garbage = parse("a= { \"1[pr\"= --------\"---\xef\xbb\xaf[A- \"\"\" c[5, 0pr,cpr,");
  EXPECT_NE(garbage.status().message().find("m.toml:1:26: a character outside ASCII"),
            std::string::npos)
      << garbage.status();
  // Comments hold any UTF-8, and a '#' inside a string starts no comment.
  EXPECT_TRUE(parse("# caf\xc3\xa9\n[prune]\nkeep = { \"0\" = [0, 1, 2, 3] } # \xe2\x9c\x93\n").ok());
  const auto in_string = parse("[[virtual]]\nname = \"#caf\xc3\xa9\"\n");
  EXPECT_NE(in_string.status().message().find("m.toml:2:13: a character outside ASCII"),
            std::string::npos)
      << in_string.status();
  const auto nul = parse(std::string("[prune]\nkeep =[0, 1\0 ] }\n", 25));
  EXPECT_NE(nul.status().message().find("m.toml:2:12: a control character"), std::string::npos)
      << nul.status();
  const auto in_comment = parse(std::string("# a\x01\n", 5));
  EXPECT_NE(in_comment.status().message().find("m.toml:1:4: a control character"),
            std::string::npos)
      << in_comment.status();
}

TEST_F(ManifestTest, LoadNamesAMissingFile) {
  auto m = load_manifest((dir_ / "nope.toml").string(), c_);
  EXPECT_EQ(m.status().message(),
            (dir_ / "nope.toml").string() + ": cannot open the manifest: No such file or directory");
  // A directory is not an (empty) manifest.
  auto d = load_manifest(dir_.string(), c_);
  EXPECT_EQ(d.status().message(),
            dir_.string() + ": the manifest is not a regular file (a directory)");
}

}  // namespace
}  // namespace vex
