// safetensors: memory-mapped, header validated completely before any tensor is handed out.
//
//   bytes 0..7     header length N, u64 little-endian
//   bytes 8..8+N   JSON: name -> {dtype, shape, data_offsets: [begin, end]}, optional __metadata__
//   rest           tensor data; offsets are relative to byte 8+N
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vex {

enum class DType : uint8_t {
  kBool,
  kU8,
  kI8,
  kU16,
  kI16,
  kF16,
  kBF16,
  kU32,
  kI32,
  kF32,
  kU64,
  kI64,
  kF64
};

absl::StatusOr<DType> parse_dtype(absl::string_view name);
absl::string_view dtype_name(DType dtype);
size_t dtype_size(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offset of the first element, relative to the data section
  uint64_t end = 0;    // one past the last byte

  uint64_t nbytes() const { return end - begin; }
  int64_t numel() const;
  std::string shape_str() const;  // "[201088, 2880]"
};

struct SafetensorsHeader {
  uint64_t data_start = 0;                      // 8 + N: file offset of the data section
  std::vector<TensorInfo> tensors;              // in header order
  std::map<std::string, std::string> metadata;  // __metadata__ (string -> string)
};

// Largest header accepted, as in the reference implementation (guards absurd allocations).
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

// Parses and validates the header of a whole safetensors file held in `file`: header length
// inside the file, JSON well-formed, no duplicate names, known dtypes, shape x element size ==
// byte span, offsets inside the data section and non-overlapping. `path` names the file in errors.
absl::StatusOr<SafetensorsHeader> parse_safetensors(std::span<const uint8_t> file,
                                                    absl::string_view path);

// A read-only memory map of a whole file.
class MappedFile {
 public:
  static absl::StatusOr<std::unique_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(absl::string_view name) const;
  // The tensor's bytes inside the map; valid while this object lives.
  const uint8_t* data(const TensorInfo& t) const {
    return file_->bytes().data() + header_.data_start + t.begin;
  }

 private:
  std::unique_ptr<MappedFile> file_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors()
};

}  // namespace vex
