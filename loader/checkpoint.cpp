#include "loader/checkpoint.h"

#include <algorithm>
#include <filesystem>

#include "loader/config_json.h"
#include "loader/json_util.h"

namespace vex {
namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return absl::NotFoundError(absl::StrCat(dir, ": not a directory"));
  auto ck = std::unique_ptr<Checkpoint>(new Checkpoint());
  fs::path d(dir);
  if (fs::exists(d / "config.json", ec)) {
    ck->root_ = d.string();
  } else if (fs::exists(d / "original" / "config.json", ec)) {
    ck->root_ = (d / "original").string();
  } else {
    return absl::NotFoundError(absl::StrCat(
        dir,
        ": no config.json (expected a Hugging Face gpt-oss directory or its original/ folder)"));
  }
  std::string cfg_path = (fs::path(ck->root_) / "config.json").string();
  VEX_ASSIGN_OR_RETURN(auto j, read_json_file(cfg_path));
  VEX_ASSIGN_OR_RETURN(ck->config_, parse_config(j, cfg_path));
  if (ck->config_.layout == Layout::kHuggingFace) {
    VEX_RETURN_IF_ERROR(ck->open_hf());
  } else {
    VEX_RETURN_IF_ERROR(ck->open_original());
  }
  return ck;
}

absl::Status Checkpoint::add_file(const std::string& path, const std::vector<std::string>* only) {
  VEX_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(path));
  for (const auto& t : f->tensors()) {
    if (only && !std::binary_search(only->begin(), only->end(), t.name)) continue;
    auto [it, inserted] = tensors_.emplace(t.name, TensorRef{f.get(), &t});
    if (!inserted)
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", t.name, "' also appears in ", it->second.file->path()));
  }
  files_.push_back(std::move(f));
  return absl::OkStatus();
}

absl::Status Checkpoint::open_hf() {
  fs::path root(root_);
  fs::path index = root / "model.safetensors.index.json";
  std::error_code ec;
  if (!fs::exists(index, ec)) {
    fs::path single = root / "model.safetensors";
    if (!fs::exists(single, ec))
      return absl::NotFoundError(absl::StrCat(
          root_, ": neither model.safetensors.index.json nor model.safetensors found"));
    return add_file(single.string(), nullptr);
  }
  VEX_ASSIGN_OR_RETURN(auto j, read_json_file(index.string()));
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    return absl::InvalidArgumentError(
        absl::StrCat(index.string(), ": key 'weight_map': missing or not an object"));
  // shard file -> sorted tensor names it should hold
  std::map<std::string, std::vector<std::string>> shards;
  for (const auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos)
      return absl::InvalidArgumentError(absl::StrCat(index.string(), ": weight_map entry '", name,
                                                     "': expected a shard file name"));
    shards[file.get<std::string>()].push_back(name);
  }
  for (auto& [file, names] : shards) {
    fs::path p = root / file;
    if (!fs::exists(p, ec))
      return absl::NotFoundError(absl::StrCat(index.string(), ": weight_map names shard '", file,
                                              "' (for tensor '", names.front(),
                                              "'), which does not exist"));
    std::sort(names.begin(), names.end());
    VEX_RETURN_IF_ERROR(add_file(p.string(), &names));
    for (const auto& n : names) {
      if (!tensors_.count(n))
        return absl::InvalidArgumentError(absl::StrCat(index.string(), ": weight_map puts tensor '",
                                                       n, "' in ", file, ", which lacks it"));
    }
  }
  return absl::OkStatus();
}

absl::Status Checkpoint::open_original() {
  std::vector<std::string> paths;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_, ec))
    if (e.path().extension() == ".safetensors") paths.push_back(e.path().string());
  if (paths.empty()) return absl::NotFoundError(absl::StrCat(root_, ": no *.safetensors files"));
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) VEX_RETURN_IF_ERROR(add_file(p, nullptr));
  return absl::OkStatus();
}

const TensorRef* Checkpoint::find(absl::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

uint64_t Checkpoint::tensor_bytes() const {
  uint64_t n = 0;
  for (const auto& [_, t] : tensors_) n += t.info->nbytes();
  return n;
}

}  // namespace vex
