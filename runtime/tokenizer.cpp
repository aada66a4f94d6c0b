#include "runtime/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <climits>
#include <queue>

#include <simdjson.h>
#include <nlohmann/json.hpp>
#include "absl/container/flat_hash_map.h"

#include "loader/file.h"
#include "loader/json_util.h"

namespace vex {

struct Tokenizer::Impl {
  pcre2_code* re = nullptr;
  bool jit = false;
  absl::flat_hash_map<std::string, int32_t> vocab;  // token bytes -> id (BPE vocabulary)
  // (left id << 32 | right id) -> (merge rank, merged id); lower rank merges first
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merges;
  int32_t byte_id[256] = {};
  std::vector<std::pair<std::string, int32_t>> specials;  // longest text first
  ~Impl() {
    if (re) pcre2_code_free(re);
  }
};

namespace {

// GPT-2 byte-level alphabet: printable bytes map to themselves, the rest to U+0100 onwards.
std::vector<int> unicode_to_byte() {
  std::vector<int> inv(512, -1);
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    inv[printable ? b : 256 + n++] = b;
  }
  return inv;
}

// Decodes one UTF-8 code point at s[i]; returns its length or 0 if invalid/incomplete.
int utf8_len(absl::string_view s, size_t i, uint32_t* cp) {
  const auto c = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b = c(i);
  int len;
  uint32_t v, min;
  if (b < 0x80) return *cp = b, 1;
  if ((b & 0xE0) == 0xC0)
    len = 2, v = b & 0x1F, min = 0x80;
  else if ((b & 0xF0) == 0xE0)
    len = 3, v = b & 0x0F, min = 0x800;
  else if ((b & 0xF8) == 0xF0)
    len = 4, v = b & 0x07, min = 0x10000;
  else
    return 0;
  if (i + len > s.size()) return 0;
  for (int k = 1; k < len; ++k) {
    if ((c(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (c(i + k) & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  return *cp = v, len;
}

absl::Status bad(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

}  // namespace

std::string sanitize_utf8(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    if (int len = utf8_len(s, i, &cp)) {
      out.append(s.data() + i, len);
      i += len;
      continue;
    }
    // Skip the maximal subpart (Unicode §3.9): the longest prefix of a well-formed sequence.
    // The second byte's range depends on the lead (no overlongs, surrogates or > U+10FFFF).
    const uint8_t b = static_cast<uint8_t>(s[i]);
    int want = 1;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
      want = 2;
    else if (b >= 0xE0 && b <= 0xEF)
      want = 3, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    else if (b >= 0xF0 && b <= 0xF4)
      want = 4, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    size_t j = i + 1;
    while (j < s.size() && j < i + want) {
      const uint8_t c = static_cast<uint8_t>(s[j]);
      if (c < (j == i + 1 ? lo : 0x80) || c > (j == i + 1 ? hi : 0xBF)) break;
      ++j;
    }
    out += "\xEF\xBF\xBD";
    i = j;
  }
  return out;
}

Tokenizer::~Tokenizer() = default;

namespace {
// Token ids above this are refused: the id tables are dense, so the largest id sizes them
// (o200k's largest is 201,087; 2^21 entries is 64 MB of empty strings at worst).
constexpr int64_t kMaxTokenId = int64_t{1} << 21;
}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::load(const std::string& path) {
  VEX_ASSIGN_OR_RETURN(const std::string text, read_regular_file(path, 512 << 20, "tokenizer.json"));
  return parse(text, path);
}

// Structure errors surface as exceptions from simdjson (INCORRECT_TYPE, TAPE_ERROR, ...) or
// nlohmann (pre_tokenizer); both are reported, never thrown.
absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::parse(absl::string_view text,
                                                              const std::string& path) {
  try {
    return parse_json(text, path);
  } catch (const simdjson::simdjson_error& e) {
    return bad(path, absl::StrCat("invalid JSON or unexpected structure: ", e.what()));
  } catch (const nlohmann::json::exception& e) {
    return bad(path, absl::StrCat("unexpected JSON structure: ", e.what()));
  }
}

// The 27 MB file is read with simdjson's On-Demand API: its strings are used in place (views
// into the parser's buffer) and only the tokenizer's own tables are built, which keeps loading
// near 0.2 s instead of the ~0.8 s of a DOM parse.
absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::parse_json(absl::string_view text,
                                                                   const std::string& path) {
  simdjson::padded_string json(text.data(), text.size());
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc = parser.iterate(json);

  // Pass 1: collect views of the parts we need, in whatever order the file has them.
  std::string type, pre_json = "null";
  std::vector<std::pair<std::string_view, int64_t>> vocab_u;  // byte-level text -> id
  std::vector<std::pair<std::string_view, std::string_view>> merges_u;
  std::vector<std::pair<std::string, int64_t>> added;
  bool has_vocab = false, has_merges = false;
  for (auto field : doc.get_object()) {
    const std::string_view key = field.unescaped_key();
    if (key == "added_tokens") {
      for (auto a : field.value().get_array()) {
        auto obj = a.get_object();
        const int64_t id = obj["id"].get_int64();
        const std::string_view content = obj["content"].get_string();
        added.emplace_back(std::string(content), id);
      }
    } else if (key == "pre_tokenizer") {
      simdjson::ondemand::value v = field.value();
      if (v.type() == simdjson::ondemand::json_type::object)
        pre_json = std::string(v.get_object().value().raw_json().value());
    } else if (key == "model") {
      if (field.value().type() != simdjson::ondemand::json_type::object) continue;
      for (auto mf : field.value().get_object()) {
        const std::string_view mk = mf.unescaped_key();
        if (mk == "type") {
          if (mf.value().type() == simdjson::ondemand::json_type::string)
            type = std::string(std::string_view(mf.value().get_string()));
        } else if (mk == "vocab" && mf.value().type() == simdjson::ondemand::json_type::object) {
          has_vocab = true;
          for (auto v : mf.value().get_object()) {
            const std::string_view s = v.unescaped_key();
            vocab_u.emplace_back(s, v.value().get_int64());
          }
        } else if (mk == "merges" && mf.value().type() == simdjson::ondemand::json_type::array) {
          has_merges = true;
          for (auto m : mf.value().get_array()) {
            if (m.type() == simdjson::ondemand::json_type::string) {
              const std::string_view ab = m.get_string();
              const size_t sp = ab.find(' ');
              if (sp == std::string_view::npos)
                return bad(path, absl::StrCat("model.merges[", merges_u.size(), "]: no space"));
              merges_u.emplace_back(ab.substr(0, sp), ab.substr(sp + 1));
            } else {
              std::string_view pair[2];
              int n = 0;
              for (auto x : m.get_array()) {
                if (n < 2) pair[n] = x.get_string();
                ++n;
              }
              if (n != 2)
                return bad(path, absl::StrCat("model.merges[", merges_u.size(),
                                              "]: expected \"a b\" or [a, b]"));
              merges_u.emplace_back(pair[0], pair[1]);
            }
          }
        }
      }
    }
  }
  if (type != "BPE") return bad(path, "key 'model': expected a BPE model (byte-level, as o200k)");
  if (!has_vocab || !has_merges)
    return bad(path, "key 'model': missing 'vocab' object or 'merges' array");

  auto t = std::unique_ptr<Tokenizer>(new Tokenizer());
  t->impl_ = std::make_unique<Impl>();
  Impl& im = *t->impl_;

  // The pre-tokenizer regex, from the file (Split with a Regex pattern).
  std::string pattern;
  const auto pre = nlohmann::json::parse(pre_json);
  auto find_split = [&](const nlohmann::json& p) {
    if (p.is_object() && p.value("type", "") == "Split" && p.contains("pattern") &&
        p["pattern"].is_object() && p["pattern"].contains("Regex") &&
        p["pattern"]["Regex"].is_string())
      pattern = p["pattern"]["Regex"].get<std::string>();
  };
  find_split(pre);
  if (pre.is_object() && pre.contains("pretokenizers") && pre["pretokenizers"].is_array())
    for (const auto& p : pre["pretokenizers"]) find_split(p);
  if (pattern.empty())
    return bad(path, "key 'pre_tokenizer': no Split regex (not an o200k tokenizer)");
  int err;
  PCRE2_SIZE off;
  im.re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                        PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!im.re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    return bad(path, absl::StrCat("pre_tokenizer regex does not compile at offset ", off, ": ",
                                  reinterpret_cast<char*>(msg)));
  }
  im.jit = pcre2_jit_compile(im.re, PCRE2_JIT_COMPLETE) == 0;

  // Vocabulary: byte-level strings -> raw bytes.
  const std::vector<int> u2b = unicode_to_byte();
  int32_t max_id = -1;
  auto to_bytes = [&](std::string_view sv, std::string* out) {
    const absl::string_view s(sv.data(), sv.size());
    out->clear();
    for (size_t i = 0; i < s.size();) {
      uint32_t cp;
      const int len = utf8_len(s, i, &cp);
      if (!len || cp >= u2b.size() || u2b[cp] < 0) return false;
      out->push_back(static_cast<char>(u2b[cp]));
      i += len;
    }
    return true;
  };
  std::string b;
  absl::flat_hash_map<std::string_view, int32_t> by_text;  // byte-level text -> id, for merges
  by_text.reserve(vocab_u.size());
  im.vocab.reserve(vocab_u.size());
  for (const auto& [s, id] : vocab_u) {
    if (id < 0 || id > kMaxTokenId)
      return bad(path, absl::StrCat("model.vocab['", std::string(s), "']: expected a token id"));
    if (!to_bytes(s, &b))
      return bad(path, absl::StrCat("model.vocab['", std::string(s), "']: not byte-level text"));
    const int32_t v = static_cast<int32_t>(id);
    if (b.empty()) return bad(path, "model.vocab: an empty token");
    if (!im.vocab.emplace(b, v).second)
      return bad(path, absl::StrCat("model.vocab['", std::string(s), "']: listed twice"));
    by_text.emplace(s, v);
    max_id = std::max(max_id, v);
  }
  for (const auto& [content, id] : added) {
    if (id < 0 || id > kMaxTokenId) return bad(path, "added_tokens: id out of range");
    im.specials.push_back({content, static_cast<int32_t>(id)});
    max_id = std::max(max_id, static_cast<int32_t>(id));
  }
  std::sort(im.specials.begin(), im.specials.end(),
            [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
  t->bytes_.assign(max_id + 1, std::string());
  t->special_.assign(max_id + 1, 0);
  // One id, one token: decoding must give back what encoding read.
  for (const auto& [s, id] : im.vocab) {
    if (!t->bytes_[id].empty())
      return bad(path, absl::StrCat("model.vocab: id ", id, " is given to two tokens"));
    t->bytes_[id] = s;
  }
  for (const auto& [s, id] : im.specials) {
    if (!t->bytes_[id].empty() && !t->special_[id])
      return bad(path, absl::StrCat("added_tokens: id ", id, " ('", s,
                                    "') is also a token of model.vocab"));
    if (t->special_[id] && t->bytes_[id] != s)
      return bad(path, absl::StrCat("added_tokens: id ", id, " is given to two tokens"));
    t->bytes_[id] = s, t->special_[id] = 1;
  }
  for (int c = 0; c < 256; ++c) {
    auto it = im.vocab.find(std::string(1, static_cast<char>(c)));
    if (it == im.vocab.end()) return bad(path, absl::StrCat("model.vocab: no token for byte ", c));
    im.byte_id[c] = it->second;
  }

  // Merges: the index is the rank. Byte-level text concatenates like the bytes it stands for.
  im.merges.reserve(merges_u.size());
  std::string joined;
  for (size_t rank = 0; rank < merges_u.size(); ++rank) {
    const auto& [l, r] = merges_u[rank];
    joined.assign(l).append(r);
    auto il = by_text.find(l), ir = by_text.find(r), ij = by_text.find(joined);
    if (il == by_text.end() || ir == by_text.end() || ij == by_text.end())
      return bad(path,
                 absl::StrCat("model.merges[", rank, "]: refers to tokens not in the vocabulary"));
    const uint64_t key = (uint64_t(uint32_t(il->second)) << 32) | uint32_t(ir->second);
    im.merges.emplace(key, std::make_pair(static_cast<int32_t>(rank), ij->second));
  }

  // This runtime speaks Harmony: the chat's special tokens must be there, under their usual
  // names; their ids are the file's (o200k_harmony's are 200002...200012, a smaller model's
  // tokenizer has its own).
  for (const char* name : {"<|start|>", "<|message|>", "<|end|>", "<|return|>", "<|channel|>",
                           "<|call|>"})
    if (t->special_id(name) < 0)
      return bad(path, absl::StrCat("added_tokens: no ", name,
                                    " (a Harmony tokenizer names it as an added token)"));
  return t;
}

int32_t Tokenizer::special_id(absl::string_view text) const {
  for (const auto& [s, id] : impl_->specials)
    if (s == text) return id;
  return -1;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && special_[id];
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  static const std::string kEmpty;
  return id >= 0 && id < vocab_size() ? bytes_[id] : kEmpty;
}

void Tokenizer::encode_piece(absl::string_view piece, std::vector<int32_t>& out) const {
  const Impl& im = *impl_;
  if (auto it = im.vocab.find(piece); it != im.vocab.end()) {  // ignore_merges: whole pieces
    out.push_back(it->second);
    return;
  }
  auto merge_of = [&](int32_t a, int32_t b) -> const std::pair<int32_t, int32_t>* {
    auto it = im.merges.find((uint64_t(uint32_t(a)) << 32) | uint32_t(b));
    return it == im.merges.end() ? nullptr : &it->second;
  };
  const size_t n = piece.size();
  if (n <= kShortPiece) {
    // Short pieces (nearly all of them): rescan for the lowest-ranked pair, leftmost on ties.
    int32_t sym[kShortPiece];
    size_t len = n;
    for (size_t i = 0; i < n; ++i) sym[i] = im.byte_id[static_cast<uint8_t>(piece[i])];
    while (len > 1) {
      int32_t best = INT32_MAX, merged = -1;
      size_t at = 0;
      for (size_t i = 0; i + 1 < len; ++i)
        if (auto m = merge_of(sym[i], sym[i + 1]); m && m->first < best)
          best = m->first, at = i, merged = m->second;
      if (merged < 0) break;
      sym[at] = merged;
      std::copy(sym + at + 2, sym + len, sym + at + 1);
      --len;
    }
    out.insert(out.end(), sym, sym + len);
    return;
  }
  // Long pieces: the same merge order (lowest rank, then leftmost) from a heap of candidate
  // pairs over a linked list of symbols, O(n log n) instead of O(n^2). An entry is stale when
  // either symbol has changed since it was pushed.
  struct Sym {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
  };
  struct Cand {
    int32_t rank, pos, left, right;  // pair (left, right) starting at symbol pos
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Sym> sym(n);
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  for (size_t i = 0; i < n; ++i)
    sym[i] = {im.byte_id[static_cast<uint8_t>(piece[i])], int32_t(i) - 1,
              i + 1 < n ? int32_t(i + 1) : -1};
  auto push = [&](int32_t pos) {
    const int32_t nx = sym[pos].next;
    if (nx < 0) return;
    if (auto m = merge_of(sym[pos].id, sym[nx].id))
      heap.push({m->first, pos, sym[pos].id, sym[nx].id});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(int32_t(i));
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = sym[c.pos];
    if (l.id != c.left || l.next < 0 || sym[l.next].id != c.right) continue;  // stale
    Sym& r = sym[l.next];
    l.id = merge_of(c.left, c.right)->second;
    r.id = -1;  // removed
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.pos;
    if (l.prev >= 0) push(l.prev);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

void Tokenizer::encode_ordinary(absl::string_view text, std::vector<int32_t>& out) const {
  const Impl& im = *impl_;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(im.re, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc =
        im.jit ? pcre2_jit_match(im.re, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr)
               : pcre2_match(im.re, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) {  // no further match: the rest is one piece
      encode_piece(text.substr(pos), out);
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[0] > pos) encode_piece(text.substr(pos, ov[0] - pos), out);  // unmatched gap
    if (ov[1] == ov[0]) {  // empty match: step one character to make progress
      uint32_t cp;
      const size_t len = std::max(1, utf8_len(text, ov[0], &cp));
      encode_piece(text.substr(ov[0], len), out);
      pos = ov[0] + len;
      continue;
    }
    encode_piece(text.substr(ov[0], ov[1] - ov[0]), out);
    pos = ov[1];
  }
  pcre2_match_data_free(md);
}

std::vector<int32_t> Tokenizer::encode(absl::string_view text, bool allow_special) const {
  const std::string s = sanitize_utf8(text);
  std::vector<int32_t> out;
  absl::string_view rest = s;
  while (allow_special) {
    // Every added token starts with "<|": find the first one that matches, longest first.
    size_t at = rest.find("<|");
    int32_t id = -1;
    size_t len = 0;
    while (at != absl::string_view::npos) {
      for (const auto& [sp, sid] : impl_->specials)
        if (rest.substr(at, sp.size()) == sp) {
          id = sid, len = sp.size();
          break;
        }
      if (id >= 0) break;
      at = rest.find("<|", at + 1);
    }
    if (id < 0) break;
    encode_ordinary(rest.substr(0, at), out);
    out.push_back(id);
    rest.remove_prefix(at + len);
  }
  encode_ordinary(rest, out);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string s;
  for (int32_t id : ids) s += token_bytes(id);
  return s;
}

std::string StreamDecoder::feed(int32_t id) {
  pending_ += tok_.token_bytes(id);
  // Hold back an incomplete multi-byte character at the end (at most 3 bytes).
  size_t keep = 0;
  for (size_t back = 1; back <= 3 && back <= pending_.size(); ++back) {
    const uint8_t b = static_cast<uint8_t>(pending_[pending_.size() - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t want = (b & 0xE0) == 0xC0   ? 2
                        : (b & 0xF0) == 0xE0 ? 3
                        : (b & 0xF8) == 0xF0 ? 4
                                             : 1;
    if (want > back) keep = back;
    break;
  }
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace vex
