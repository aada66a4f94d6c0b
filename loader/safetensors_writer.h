// Writes a safetensors file: the header first, then the data section mapped writable so that
// callers fill tensors in place (in parallel, for the 13.8 GB synthetic checkpoints of vexgen).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "loader/safetensors.h"

namespace vex {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;
};

class SafetensorsWriter {
 public:
  // Lays the tensors out contiguously in the given order and sizes the file.
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> create(
      const std::string& path, std::vector<TensorSpec> tensors,
      const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  uint8_t* data(size_t i) { return map_ + data_start_ + offsets_[i]; }
  uint64_t total_bytes() const { return total_; }  // the data section's size
  absl::Status finish();                           // unmap and close; reports write errors

 private:
  SafetensorsWriter() = default;
  std::string path_;
  std::vector<TensorSpec> tensors_;
  std::vector<uint64_t> offsets_;
  uint64_t data_start_ = 0;
  uint64_t total_ = 0;
  uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  int fd_ = -1;
};

// Writes a whole small file from host buffers, one per tensor (sidecars, test fixtures).
absl::Status write_safetensors(const std::string& path, const std::vector<TensorSpec>& tensors,
                               const std::vector<const void*>& data,
                               const std::map<std::string, std::string>& metadata = {});

}  // namespace vex
