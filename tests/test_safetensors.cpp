// The safetensors reader: round trip through the writer, one test per class of bad input, and
// a randomized-corruption run over a valid file.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "loader/safetensors.h"
#include "loader/safetensors_writer.h"
#include "tests/fixtures.h"

namespace vex {
namespace {

std::vector<uint8_t> file_with_header(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> f(8 + header.size() + data_bytes, 0xAB);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) f[i] = static_cast<uint8_t>(n >> (8 * i));
  memcpy(f.data() + 8, header.data(), header.size());
  return f;
}

absl::Status parse(const std::vector<uint8_t>& f) {
  return parse_safetensors(f, "x.safetensors").status();
}

void expect_error(const std::vector<uint8_t>& f, const std::string& needle) {
  absl::Status st = parse(f);
  ASSERT_FALSE(st.ok()) << "accepted a bad file; expected: " << needle;
  EXPECT_NE(st.message().find("x.safetensors"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
}

TEST(Safetensors, RoundTrip) {
  const std::string dir = testing::temp_dir("st");
  const std::string path = dir + "/a.safetensors";
  std::vector<uint16_t> a(6);
  std::vector<float> b(4);
  for (int i = 0; i < 6; ++i) a[i] = 0x3f80 + i;
  for (int i = 0; i < 4; ++i) b[i] = 0.25f * i - 1;
  ASSERT_TRUE(write_safetensors(path, {{"a", DType::kBF16, {2, 3}}, {"b", DType::kF32, {4}}},
                                {a.data(), b.data()}, {{"k", "v"}})
                  .ok());
  auto f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->tensors().size(), 2u);
  const TensorInfo* ta = (*f)->find("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ta->dtype, DType::kBF16);
  EXPECT_EQ(memcmp((*f)->data(*ta), a.data(), 12), 0);
  EXPECT_EQ(memcmp((*f)->data(*(*f)->find("b")), b.data(), 16), 0);
  EXPECT_EQ((*f)->metadata().at("k"), "v");
  EXPECT_EQ((*f)->find("c"), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*f)->data(*ta)) % 8, 0u) << "data section 8-aligned";
}

TEST(Safetensors, TruncatedFile) {
  expect_error({1, 2, 3}, "truncated");
  expect_error({}, "truncated");
}

TEST(Safetensors, HeaderLengthPastEnd) {
  auto f = file_with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 4);
  f.resize(20);  // cut inside the header
  expect_error(f, "runs past the end of the file");
  auto g = file_with_header("{}", 0);
  g[7] = 0x7f;  // absurd length
  expect_error(g, "exceeds the limit");
}

TEST(Safetensors, MalformedJson) {
  expect_error(file_with_header(R"({"a":{"dtype":"U8",)", 0), "header JSON");
  expect_error(file_with_header(R"([1,2])", 0), "JSON object");
  expect_error(file_with_header(R"({"a":5})", 0), "tensor 'a': entry is not a JSON object");
  expect_error(file_with_header(R"({"__metadata__":)" + std::string(100000, '[') +
                                    std::string(100000, ']') + "}",
                                0),
               "nested deeper than 64");
}

TEST(Safetensors, OffsetsOutOfRange) {
  expect_error(file_with_header(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", 4),
               "end past the data section");
  expect_error(file_with_header(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}})", 4),
               "run backwards");
  expect_error(file_with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[-1,3]}})", 4),
               "non-negative");
}

TEST(Safetensors, OverlappingTensors) {
  expect_error(file_with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                                8),
               "overlap");
}

// A header length shortened into the header's own padding moves the data section: every
// tensor would be read shifted. The data must end exactly where the last tensor does, and each
// tensor must start aligned for its dtype.
TEST(Safetensors, DataSectionMustFitTheTensors) {
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append((8 - (8 + header.size()) % 8) % 8 + 8, ' ');  // padded to 8, plus 8 spaces
  auto f = file_with_header(header, 8);
  EXPECT_TRUE(parse(f).ok()) << parse(f);
  f[0] -= 8;  // the length now ends inside the padding: 8 spaces become "data"
  expect_error(f, "the data section is 16 bytes but its tensors end at byte 8");
  std::string odd = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                    R"("b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})";
  odd.append((8 - (8 + odd.size()) % 8) % 8, ' ');
  expect_error(file_with_header(odd, 6), "tensor 'b' starts at file offset");
}

TEST(Safetensors, UnknownDtype) {
  expect_error(file_with_header(R"({"a":{"dtype":"Q4","shape":[4],"data_offsets":[0,4]}})", 4),
               "unknown dtype 'Q4'");
}

TEST(Safetensors, ShapeDisagreesWithSpan) {
  expect_error(file_with_header(R"({"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}})", 8),
               "tensor 'w': shape [2, 3] of BF16 needs 12 bytes but data_offsets span 8");
  expect_error(
      file_with_header(
          R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
      "overflows");
}

TEST(Safetensors, DuplicateNamesAndBadFields) {
  expect_error(file_with_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                                2),
               "duplicate tensor name 'a'");
  expect_error(
      file_with_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})", 1),
      "unknown key 'x'");
  expect_error(file_with_header(R"({"__metadata__":{"k":3}})", 0), "not a string");
  expect_error(file_with_header(R"({"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}})", 2),
               "shape entries");
}

TEST(Safetensors, MissingFileAndDirectory) {
  auto f = SafetensorsFile::open("/nonexistent/x.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("/nonexistent/x.safetensors"), std::string::npos);
  auto d = SafetensorsFile::open(testing::temp_dir("stdir"));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("not a regular file"), std::string::npos);
}

// Randomized corruption: flip, overwrite, insert and truncate bytes of a valid file. The parser
// must never crash or read out of bounds (run under ASan/valgrind to check the latter), and any
// header it accepts must still satisfy the invariants it promises.
TEST(Safetensors, RandomizedCorruption) {
  const std::string dir = testing::temp_dir("fuzz");
  std::vector<uint8_t> payload(64);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 37);
  ASSERT_TRUE(write_safetensors(dir + "/v.safetensors",
                                {{"embed", DType::kBF16, {4, 4}},
                                 {"scales", DType::kU8, {8}},
                                 {"bias", DType::kF32, {6}}},
                                {payload.data(), payload.data(), payload.data()},
                                {{"format", "pt"}})
                  .ok());
  std::ifstream in(dir + "/v.safetensors", std::ios::binary);
  const std::vector<uint8_t> valid((std::istreambuf_iterator<char>(in)), {});
  ASSERT_TRUE(parse(valid).ok());

  std::mt19937_64 rng(42);
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> f = valid;
    const int edits = 1 + rng() % 4;
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % f.size();
      switch (rng() % 5) {
        case 0:
          f[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          f[pos] = static_cast<uint8_t>(rng());
          break;
        case 2:
          f[pos] = "{}[]\",:0123456789-eE."[rng() % 21];
          break;  // JSON-ish bytes
        case 3:
          f.insert(f.begin() + pos, static_cast<uint8_t>(rng()));
          break;
        case 4:
          f.resize(pos);
          break;
      }
      if (f.empty()) break;
    }
    auto h = parse_safetensors(f, "fuzz.safetensors");
    if (!h.ok()) {
      EXPECT_NE(h.status().message().find("fuzz.safetensors"), std::string::npos);
      continue;
    }
    ++accepted;
    for (const auto& t : h->tensors) {
      ASSERT_LE(t.begin, t.end);
      ASSERT_LE(h->data_start + t.end, f.size());
      ASSERT_EQ(static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype), t.nbytes());
    }
  }
  printf("randomized corruption: %d of 20000 mutants accepted (all valid by the invariants)\n",
         accepted);
}

}  // namespace
}  // namespace vex
