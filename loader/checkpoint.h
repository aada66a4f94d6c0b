// A checkpoint directory: config.json and every tensor of every shard, memory-mapped.
// Hugging Face layout (model.safetensors.index.json + shards, or one model.safetensors) and the
// original/ layout (every *.safetensors in the folder) are both accepted (docs/gpt-oss.md §2).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "loader/safetensors.h"

namespace vex {

struct TensorRef {
  const SafetensorsFile* file = nullptr;
  const TensorInfo* info = nullptr;
  const uint8_t* data() const { return file->data(*info); }
};

class Checkpoint {
 public:
  // `dir` is the directory given by the user: a Hugging Face gpt-oss directory, its original/
  // subfolder, or a directory with only original/ inside.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> open(const std::string& dir);

  const Config& config() const { return config_; }
  const std::string& root() const { return root_; }  // the folder holding config.json
  const TensorRef* find(absl::string_view name) const;
  const std::map<std::string, TensorRef, std::less<>>& tensors() const { return tensors_; }
  uint64_t tensor_bytes() const;  // sum of all tensors' sizes

 private:
  absl::Status open_hf();
  absl::Status open_original();
  absl::Status add_file(const std::string& path, const std::vector<std::string>* only);

  std::string root_;
  Config config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, TensorRef, std::less<>> tensors_;
};

}  // namespace vex
