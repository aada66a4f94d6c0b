#include "loader/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include <simdjson.h>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_join.h"
#include "loader/json_util.h"

namespace vex {
namespace {

using json = nlohmann::json;

struct DTypeEntry {
  DType dtype;
  absl::string_view name;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},   {DType::kI8, "I8", 1},
    {DType::kU16, "U16", 2},   {DType::kI16, "I16", 2}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kU32, "U32", 4}, {DType::kI32, "I32", 4},
    {DType::kF32, "F32", 4},   {DType::kU64, "U64", 8}, {DType::kI64, "I64", 8},
    {DType::kF64, "F64", 8},
};

absl::Status bad(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::StatusOr<TensorInfo> parse_entry(absl::string_view path, const std::string& name,
                                       const json& e, uint64_t data_size) {
  auto fail = [&](absl::string_view what) {
    return bad(path, absl::StrCat("tensor '", name, "': ", what));
  };
  if (!e.is_object()) return fail("entry is not a JSON object");
  for (const auto& [key, _] : e.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      return fail(absl::StrCat("unknown key '", key, "'"));
  }
  if (!e.contains("dtype") || !e["dtype"].is_string()) return fail("missing or non-string dtype");
  if (!e.contains("shape") || !e["shape"].is_array()) return fail("missing or non-array shape");
  if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
    return fail("data_offsets must be an array [begin, end]");

  TensorInfo t;
  t.name = name;
  auto dtype = parse_dtype(e["dtype"].get<std::string>());
  if (!dtype.ok()) return fail(dtype.status().message());
  t.dtype = *dtype;

  uint64_t numel = 1;
  for (const json& d : e["shape"]) {
    if (!d.is_number_unsigned()) return fail("shape entries must be non-negative integers");
    uint64_t v = d.get<uint64_t>();
    if (v > (uint64_t{1} << 62) || __builtin_mul_overflow(numel, v, &numel))
      return fail("shape overflows");
    t.shape.push_back(static_cast<int64_t>(v));
  }
  for (const json& o : e["data_offsets"]) {
    if (!o.is_number_unsigned()) return fail("data_offsets must be non-negative integers");
  }
  t.begin = e["data_offsets"][0].get<uint64_t>();
  t.end = e["data_offsets"][1].get<uint64_t>();
  if (t.begin > t.end)
    return fail(absl::StrFormat("data_offsets [%d, %d] run backwards", t.begin, t.end));
  if (t.end > data_size)
    return fail(absl::StrFormat("data_offsets [%d, %d] end past the data section (%d bytes)",
                                t.begin, t.end, data_size));
  uint64_t want = 0;
  if (__builtin_mul_overflow(numel, dtype_size(t.dtype), &want) || want != t.nbytes())
    return fail(absl::StrFormat("shape %s of %s needs %d bytes but data_offsets span %d",
                                t.shape_str(), dtype_name(t.dtype), numel * dtype_size(t.dtype),
                                t.nbytes()));
  return t;
}

}  // namespace

absl::StatusOr<DType> parse_dtype(absl::string_view name) {
  for (const auto& e : kDTypes)
    if (e.name == name) return e.dtype;
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype '", name, "'"));
}

absl::string_view dtype_name(DType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e.name;
  return "?";
}

size_t dtype_size(DType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e.size;
  return 0;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_str() const {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<SafetensorsHeader> parse_safetensors(std::span<const uint8_t> file,
                                                    absl::string_view path) {
  if (file.size() < 8)
    return bad(path, absl::StrFormat("truncated: %d bytes, a safetensors file starts with an "
                                     "8-byte header length",
                                     file.size()));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[i];  // little-endian on any host
  if (n > kMaxSafetensorsHeader)
    return bad(path, absl::StrFormat("header length %d exceeds the limit of %d bytes", n,
                                     kMaxSafetensorsHeader));
  if (n > file.size() - 8)
    return bad(path, absl::StrFormat("header length %d runs past the end of the file (%d bytes)", n,
                                     file.size()));
  if (n < 2 || file[8] != '{')
    return bad(path, "header is not a JSON object (must start with '{' at byte 8)");

  const std::string_view header(reinterpret_cast<const char*>(file.data() + 8), n);
  VEX_RETURN_IF_ERROR(check_json_depth(header, std::string(path)));
  json root;
  try {
    root = json::parse(file.begin() + 8, file.begin() + 8 + n);
  } catch (const json::exception& e) {
    return bad(path, absl::StrCat("header JSON: ", e.what()));
  }
  if (!root.is_object()) return bad(path, "header is not a JSON object");
  // Duplicate tensor names would silently shadow each other in the parsed object: count the
  // top-level keys as written (simdjson On-Demand sees every one) against the object's size.
  // (nlohmann's parse callback, used for this before, rescans its object at every nested
  // object's end: 30 s for a 50,000-tensor header.)
  {
    simdjson::padded_string text(reinterpret_cast<const char*>(file.data() + 8), n);
    simdjson::ondemand::parser parser;
    absl::flat_hash_set<std::string> seen;
    seen.reserve(root.size());
    simdjson::ondemand::document doc;
    simdjson::ondemand::object object;
    if (parser.iterate(text).get(doc) || doc.get_object().get(object))
      return bad(path, "header is not a JSON object");
    for (auto field : object) {
      std::string_view k;
      if (field.unescaped_key().get(k)) return bad(path, "header JSON: bad key");
      if (!seen.emplace(k).second)
        return bad(path, absl::StrCat("duplicate tensor name '", std::string(k), "'"));
    }
  }

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = file.size() - h.data_start;
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return bad(path, "__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string())
          return bad(path, absl::StrCat("__metadata__ value of '", k, "' is not a string"));
        h.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    VEX_ASSIGN_OR_RETURN(TensorInfo t, parse_entry(path, name, entry, data_size));
    h.tensors.push_back(std::move(t));
  }

  // Non-overlapping: sort spans by begin; each must start at or after the previous end.
  std::vector<const TensorInfo*> order;
  for (const auto& t : h.tensors)
    if (t.nbytes() > 0) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->begin < order[i - 1]->end)
      return bad(path, absl::StrFormat("tensors '%s' [%d, %d] and '%s' [%d, %d] overlap",
                                       order[i - 1]->name, order[i - 1]->begin, order[i - 1]->end,
                                       order[i]->name, order[i]->begin, order[i]->end));
  }
  // The data section holds the tensors and nothing else: a header length shortened into its
  // padding shifts every tensor, and then the data ends past the last one (as the safetensors
  // library itself requires). Every tensor starts aligned for its dtype (aligned loads).
  const uint64_t last = order.empty() ? 0 : order.back()->end;
  if (last != data_size)
    return bad(path, absl::StrFormat("the data section is %d bytes but its tensors end at byte %d "
                                     "(a header length that does not match the header?)",
                                     data_size, last));
  for (const TensorInfo& t : h.tensors)
    if ((h.data_start + t.begin) % dtype_size(t.dtype) != 0)
      return bad(path, absl::StrFormat("tensor '%s' starts at file offset %d, not aligned for %s",
                                       t.name, h.data_start + t.begin, dtype_name(t.dtype)));
  return h;
}

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  // O_NONBLOCK: a FIFO named as a shard must not hang here (it is refused below).
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", strerror(errno)));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  auto m = std::unique_ptr<MappedFile>(new MappedFile());
  m->path_ = path;
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ > 0) {
    void* p = mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat(path, ": mmap failed: ", strerror(err)));
    }
    m->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return m;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  auto f = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  VEX_ASSIGN_OR_RETURN(f->file_, MappedFile::open(path));
  VEX_ASSIGN_OR_RETURN(f->header_, parse_safetensors(f->file_->bytes(), path));
  for (size_t i = 0; i < f->header_.tensors.size(); ++i) f->index_[f->header_.tensors[i].name] = i;
  return f;
}

const TensorInfo* SafetensorsFile::find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

}  // namespace vex
