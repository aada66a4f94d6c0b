#include "loader/manifest.h"

#include <toml++/toml.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "loader/file.h"
#include "loader/safetensors.h"

namespace vex {
namespace {

namespace fs = std::filesystem;

// "file:line:col" of a node (the file alone when toml++ has no position for it).
std::string where(const std::string& path, const toml::source_region& r) {
  if (r.begin.line == 0) return path;
  return absl::StrCat(path, ":", r.begin.line, ":", r.begin.column);
}

absl::Status error(const std::string& path, const toml::node& n, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where(path, n.source()), ": ", what));
}

// Refuses keys of `table` outside `allowed`, naming the first unknown one.
absl::Status only_keys(const std::string& path, const toml::table& table, const std::string& in,
                       std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, node] : table)
    if (std::find(allowed.begin(), allowed.end(), key.str()) == allowed.end())
      return absl::InvalidArgumentError(absl::StrCat(where(path, key.source()), ": unknown key '",
                                                     std::string(key.str()), "' in ", in));
  return absl::OkStatus();
}

absl::StatusOr<int> integer_in(const std::string& path, const toml::node& n, const std::string& key,
                               int lo, int hi) {
  // Only an integer node is read: toml++'s value<int64_t>() converts a float node unchecked
  // (1e36 overflowed the cast, found by fuzz_manifest).
  const toml::value<int64_t>* i = n.as_integer();
  if (!i) return error(path, n, absl::StrCat("'", key, "': expected an integer"));
  const int64_t v = i->get();
  if (v < lo || v >= hi)
    return error(path, n, absl::StrCat("'", key, "': ", v, " is outside [", lo, ", ", hi, ")"));
  return static_cast<int>(v);
}

// An array of distinct integers in [lo, hi), returned ascending.
absl::StatusOr<std::vector<int>> int_set(const std::string& path, const toml::node& n,
                                         const std::string& key, int lo, int hi) {
  const toml::array* a = n.as_array();
  if (!a) return error(path, n, absl::StrCat("'", key, "': expected an array of integers"));
  std::vector<int> out;
  for (const toml::node& e : *a) {
    VEX_ASSIGN_OR_RETURN(int v, integer_in(path, e, key, lo, hi));
    if (std::find(out.begin(), out.end(), v) != out.end())
      return error(path, e, absl::StrCat("'", key, "': ", v, " is listed twice"));
    out.push_back(v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::string> string_of(const std::string& path, const toml::node& n,
                                      const std::string& key) {
  const auto v = n.value<std::string>();
  if (!n.is_string() || !v) return error(path, n, absl::StrCat("'", key, "': expected a string"));
  return *v;
}

// A router sidecar: weight [1, hidden], bias [1], F32 or BF16; a DEVICE expert's also holds its
// argument rows args.weight [2, hidden], args.bias [2] and its output direction out.weight
// [hidden], out.bias [hidden].
absl::Status check_sidecar(const std::string& manifest, const toml::node& n,
                           const std::string& file, const Config& c, bool device) {
  // The non-throwing form: a name the system refuses (too long, a component not a folder)
  // threw std::filesystem_error out of the parser (found by fuzz_manifest).
  std::error_code ec;
  if (!fs::exists(file, ec))
    return error(manifest, n,
                 absl::StrCat("'router': the sidecar ", file,
                              ec ? " cannot be read: " + ec.message() : " does not exist"));
  auto st = SafetensorsFile::open(file);
  if (!st.ok()) return error(manifest, n, absl::StrCat("'router': ", st.status().message()));
  auto shaped = [&](const char* name, std::vector<int64_t> shape) -> absl::Status {
    const TensorInfo* t = (*st)->find(name);
    if (!t)
      return error(manifest, n, absl::StrCat("'router': ", file, " has no tensor '", name, "'"));
    if (t->shape != shape || (t->dtype != DType::kF32 && t->dtype != DType::kBF16))
      return error(manifest, n,
                   absl::StrCat("'router': ", file, ": tensor '", name, "' is ",
                                std::string(dtype_name(t->dtype)), " ", t->shape_str(),
                                ", expected F32 or BF16 [", absl::StrJoin(shape, ", "), "]"));
    return absl::OkStatus();
  };
  VEX_RETURN_IF_ERROR(shaped("weight", {1, c.d_model}));
  VEX_RETURN_IF_ERROR(shaped("bias", {1}));
  if (!device) return absl::OkStatus();
  VEX_RETURN_IF_ERROR(shaped("args.weight", {2, c.d_model}));
  VEX_RETURN_IF_ERROR(shaped("args.bias", {2}));
  VEX_RETURN_IF_ERROR(shaped("out.weight", {c.d_model}));
  return shaped("out.bias", {c.d_model});
}

absl::Status parse_prune(const std::string& path, const toml::table& prune, const Config& c,
                         Manifest* m) {
  VEX_RETURN_IF_ERROR(only_keys(path, prune, "[prune]", {"keep", "drop"}));
  std::set<int> seen;
  for (const char* list : {"keep", "drop"}) {
    const toml::node* node = prune.get(list);
    if (!node) continue;
    const toml::table* layers = node->as_table();
    if (!layers)
      return error(path, *node,
                   absl::StrCat("'", list, "': expected a table of layer = [expert ids]"));
    for (const auto& [key, ids] : *layers) {
      int layer = -1;
      const std::string k(key.str());
      if (!absl::SimpleAtoi(k, &layer) || layer < 0 || layer >= c.n_layers)
        return absl::InvalidArgumentError(
            absl::StrCat(where(path, key.source()), ": '", list, "': layer '", k,
                         "' is not a layer of this model [0, ", c.n_layers, ")"));
      if (!seen.insert(layer).second)
        return absl::InvalidArgumentError(absl::StrCat(where(path, key.source()), ": layer ", layer,
                                                       " is listed in both keep and drop"));
      VEX_ASSIGN_OR_RETURN(std::vector<int> set,
                           int_set(path, ids, absl::StrCat(list, ".", k), 0, c.n_experts));
      std::vector<int> kept = set;
      if (std::string_view(list) == "drop") {
        kept.clear();
        for (int e = 0; e < c.n_experts; ++e)
          if (!std::binary_search(set.begin(), set.end(), e)) kept.push_back(e);
      }
      if (static_cast<int>(kept.size()) < c.n_experts_active)
        return error(
            path, ids,
            absl::StrCat("layer ", layer, " keeps ", kept.size(), " experts, fewer than the ",
                         c.n_experts_active, " the router picks per token"));
      m->keep[layer] = std::move(kept);
    }
  }
  return absl::OkStatus();
}

absl::Status parse_virtual(const std::string& path, const toml::table& v, const Config& c,
                           Manifest* m) {
  VEX_RETURN_IF_ERROR(
      only_keys(path, v, "[[virtual]]", {"name", "kind", "layers", "router", "threshold"}));
  VirtualExpertSpec x;
  auto need = [&](const char* key) -> absl::StatusOr<const toml::node*> {
    const toml::node* n = v.get(key);
    if (!n)
      return absl::InvalidArgumentError(
          absl::StrCat(where(path, v.source()), ": [[virtual]] needs '", key, "'"));
    return n;
  };
  VEX_ASSIGN_OR_RETURN(const toml::node* name, need("name"));
  VEX_ASSIGN_OR_RETURN(x.name, string_of(path, *name, "name"));
  if (x.name.empty()) return error(path, *name, "'name': must not be empty");
  VEX_ASSIGN_OR_RETURN(const toml::node* kind, need("kind"));
  VEX_ASSIGN_OR_RETURN(std::string k, string_of(path, *kind, "kind"));
  if (k != "host" && k != "device")
    return error(path, *kind,
                 absl::StrCat("'kind': expected \"host\" or \"device\", got \"", k, "\""));
  x.kind = k == "host" ? VirtualExpertSpec::Kind::kHost : VirtualExpertSpec::Kind::kDevice;
  VEX_ASSIGN_OR_RETURN(const toml::node* layers, need("layers"));
  VEX_ASSIGN_OR_RETURN(x.layers, int_set(path, *layers, "layers", 0, c.n_layers));
  if (x.layers.empty()) return error(path, *layers, "'layers': must name at least one layer");
  VEX_ASSIGN_OR_RETURN(const toml::node* router, need("router"));
  VEX_ASSIGN_OR_RETURN(std::string file, string_of(path, *router, "router"));
  const fs::path p(file);
  x.router = p.is_absolute() ? file : (fs::path(path).parent_path() / p).string();
  VEX_RETURN_IF_ERROR(
      check_sidecar(path, *router, x.router, c, x.kind == VirtualExpertSpec::Kind::kDevice));
  if (const toml::node* t = v.get("threshold")) {
    const auto f = t->value<double>();
    if (!(t->is_number()) || !f || !(*f >= 0 && *f <= 1))
      return error(path, *t, "'threshold': expected a number in [0, 1]");
    x.threshold = static_cast<float>(*f);
  }
  for (const VirtualExpertSpec& other : m->virtuals)
    if (other.name == x.name)
      return error(path, *name,
                   absl::StrCat("'name': virtual expert '", x.name,
                                "' is attached twice (list its layers once)"));
  m->virtuals.push_back(std::move(x));
  return absl::OkStatus();
}

// What toml++ is given: the text with its comments blanked, after checking that the rest is
// ASCII without control characters (tab aside). toml++ 3.3 (Debian bookworm) reaches
// __builtin_unreachable() on some characters outside ASCII (its
// is_non_ascii_horizontal_whitespace() has no case for U+00A1...U+0499, U+2DAE...U+31A7 or
// U+FBD6...U+FEFE) wherever its tokenizer asks whether one is whitespace, which malformed text
// can make it ask anywhere (found by tests/fuzz/fuzz_manifest: U+0322 where a value was due,
// U+FEEF inside a run of garbage). So a manifest is ASCII outside its comments, names and
// paths included; comments may hold any UTF-8.
absl::StatusOr<std::string> toml_text(std::string_view text, const std::string& path) {
  std::string out(text);
  int line = 1;
  size_t line_start = 0;
  char quote = 0;  // the open string's quote character, 0 outside strings
  bool multi = false;
  for (size_t i = 0; i < out.size(); ++i) {
    const char c = out[i];
    const auto u = static_cast<unsigned char>(c);
    const std::string_view where = std::string_view(out).substr(i);
    if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7F)
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", line, ":", i - line_start + 1, ": a control character (TOML allows none but tab)"));
    if (c == '\n') {
      ++line, line_start = i + 1;
      if (!multi) quote = 0;  // a single-line string ends with its line at the latest
    } else if (quote == 0 && c == '#') {
      for (; i + 1 < out.size() && out[i + 1] != '\n'; ++i)
        if (static_cast<unsigned char>(out[i + 1]) < 0x20 && out[i + 1] != '\t' && out[i + 1] != '\r')
          return absl::InvalidArgumentError(absl::StrCat(path, ":", line, ":", i + 2 - line_start,
                                                         ": a control character (TOML allows none but tab)"));
        else
          out[i + 1] = ' ';
    } else if (u >= 0x80) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", line, ":", i - line_start + 1,
          ": a character outside ASCII (a manifest is ASCII outside its comments)"));
    } else if (quote == 0 && (c == '"' || c == '\'')) {
      quote = c;
      multi = where.starts_with(std::string(3, c));
      if (multi) i += 2;
    } else if (quote != 0 && c == '\\' && quote == '"') {
      if (i + 1 < out.size() && out[i + 1] != '\n') ++i;  // the escaped character
    } else if (quote != 0 && c == quote) {
      if (!multi) {
        quote = 0;
      } else if (where.starts_with(std::string(3, c))) {
        quote = 0, multi = false, i += 2;
      }
    }
  }
  return out;
}

}  // namespace

std::vector<int> Manifest::kept(int layer, int n_experts) const {
  if (auto it = keep.find(layer); it != keep.end()) return it->second;
  std::vector<int> all(n_experts);
  for (int e = 0; e < n_experts; ++e) all[e] = e;
  return all;
}

absl::StatusOr<Manifest> parse_manifest(const std::string& text, const std::string& path,
                                        const Config& config) {
  VEX_ASSIGN_OR_RETURN(const std::string ascii, toml_text(text, path));
  toml::table root;
  try {
    root = toml::parse(ascii, std::string_view(path));
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(path, e.source()), ": ", std::string(e.description())));
  }
  Manifest m;
  m.path = path;
  VEX_RETURN_IF_ERROR(only_keys(path, root, "the manifest", {"base", "prune", "virtual"}));
  if (const toml::node* base = root.get("base")) {
    const toml::table* t = base->as_table();
    if (!t) return error(path, *base, "'base': expected a table");
    VEX_RETURN_IF_ERROR(only_keys(path, *t, "[base]", {"name", "index_sha256"}));
    if (const toml::node* n = t->get("name")) {
      VEX_ASSIGN_OR_RETURN(m.base_name, string_of(path, *n, "name"));
    }
    if (const toml::node* n = t->get("index_sha256")) {
      VEX_ASSIGN_OR_RETURN(m.index_sha256, string_of(path, *n, "index_sha256"));
      absl::AsciiStrToLower(&m.index_sha256);
      if (m.index_sha256.size() != 64 ||
          m.index_sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
        return error(path, *n, "'index_sha256': expected 64 hexadecimal digits");
    }
  }
  if (const toml::node* prune = root.get("prune")) {
    const toml::table* t = prune->as_table();
    if (!t) return error(path, *prune, "'prune': expected a table");
    VEX_RETURN_IF_ERROR(parse_prune(path, *t, config, &m));
  }
  if (const toml::node* virt = root.get("virtual")) {
    const toml::array* a = virt->as_array();
    if (!a || !a->is_array_of_tables())
      return error(path, *virt, "'virtual': expected [[virtual]] tables");
    for (const toml::node& v : *a)
      VEX_RETURN_IF_ERROR(parse_virtual(path, *v.as_table(), config, &m));
  }
  return m;
}

absl::StatusOr<Manifest> load_manifest(const std::string& path, const Config& config) {
  VEX_ASSIGN_OR_RETURN(const std::string text, read_regular_file(path, 16 << 20, "the manifest"));
  return parse_manifest(text, path, config);
}

}  // namespace vex
