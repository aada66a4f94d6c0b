// The o200k_harmony tokenizer (docs/gpt-oss.md §6.1), loaded from the checkpoint's tokenizer.json:
// byte-level BPE over pieces cut by the o200k pre-tokenizer regex (PCRE2 with JIT), plus the
// added (special) tokens.
//
// Invalid UTF-8 input: each maximal invalid subsequence is replaced by U+FFFD before encoding
// (as Python's errors="replace" and JavaScript's TextDecoder do), so every byte string encodes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace vex {

class Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> load(const std::string& path);
  // The same from the text of a tokenizer.json; `path` names it in errors.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> parse(absl::string_view json,
                                                          const std::string& path);
  ~Tokenizer();

  // Text -> ids. With allow_special, added-token text such as "<|start|>" becomes its id;
  // without, it is ordinary text.
  std::vector<int32_t> encode(absl::string_view text, bool allow_special) const;
  // Ids -> bytes (UTF-8 when the ids form whole characters). Unknown ids decode to nothing.
  std::string decode(std::span<const int32_t> ids) const;
  // The bytes of one token ("" for ids with no token).
  const std::string& token_bytes(int32_t id) const;
  // The id of an added token by its text, or -1.
  int32_t special_id(absl::string_view text) const;
  bool is_special(int32_t id) const;
  int32_t vocab_size() const { return static_cast<int32_t>(bytes_.size()); }

 private:
  Tokenizer() = default;
  static absl::StatusOr<std::unique_ptr<Tokenizer>> parse_json(absl::string_view json,
                                                               const std::string& path);
  // BPE of one pre-tokenized piece. Pieces up to kShortPiece bytes use a rescanning loop on the
  // stack; longer ones a heap (same merge order).
  static constexpr size_t kShortPiece = 32;
  void encode_piece(absl::string_view piece, std::vector<int32_t>& out) const;
  void encode_ordinary(absl::string_view text, std::vector<int32_t>& out) const;

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<std::string> bytes_;  // [vocab] token id -> bytes
  std::vector<uint8_t> special_;    // [vocab] 1 for added tokens
};

// Turns a stream of token ids into text without splitting multi-byte characters: feed() returns
// only complete UTF-8; an incomplete tail waits for the next token, flush() returns the rest.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string feed(int32_t id);
  std::string flush();

 private:
  const Tokenizer& tok_;
  std::string pending_;
};

// Replaces invalid UTF-8 with U+FFFD (maximal subparts, per Unicode §3.9).
std::string sanitize_utf8(absl::string_view s);

}  // namespace vex
