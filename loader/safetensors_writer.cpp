#include "loader/safetensors_writer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

namespace vex {

uint64_t TensorSpec::nbytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::create(
    const std::string& path, std::vector<TensorSpec> tensors,
    const std::map<std::string, std::string>& metadata) {
  auto w = std::unique_ptr<SafetensorsWriter>(new SafetensorsWriter());
  w->path_ = path;
  // nlohmann::ordered_json keeps the tensors in layout order, which makes files reproducible.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    w->offsets_.push_back(offset);
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  w->total_ = offset;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so that the data section is 8-aligned
  w->data_start_ = 8 + text.size();
  w->tensors_ = std::move(tensors);

  w->fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w->fd_ < 0)
    return absl::InternalError(absl::StrCat(path, ": cannot create: ", strerror(errno)));
  w->map_size_ = w->data_start_ + w->total_;
  if (ftruncate(w->fd_, static_cast<off_t>(w->map_size_)) != 0)
    return absl::InternalError(absl::StrCat(path, ": cannot size file: ", strerror(errno)));
  void* p = mmap(nullptr, w->map_size_, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd_, 0);
  if (p == MAP_FAILED) return absl::InternalError(absl::StrCat(path, ": mmap: ", strerror(errno)));
  w->map_ = static_cast<uint8_t*>(p);
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) w->map_[i] = static_cast<uint8_t>(n >> (8 * i));
  memcpy(w->map_ + 8, text.data(), text.size());
  return w;
}

absl::Status SafetensorsWriter::finish() {
  absl::Status st;
  if (map_) {
    if (munmap(map_, map_size_) != 0)
      st = absl::InternalError(absl::StrCat(path_, ": munmap: ", strerror(errno)));
    map_ = nullptr;
  }
  if (fd_ >= 0) {
    if (::close(fd_) != 0 && st.ok())
      st = absl::InternalError(absl::StrCat(path_, ": close: ", strerror(errno)));
    fd_ = -1;
  }
  return st;
}

SafetensorsWriter::~SafetensorsWriter() {
  (void)finish();
}

absl::Status write_safetensors(const std::string& path, const std::vector<TensorSpec>& tensors,
                               const std::vector<const void*>& data,
                               const std::map<std::string, std::string>& metadata) {
  VEX_ASSIGN_OR_RETURN(auto w, SafetensorsWriter::create(path, tensors, metadata));
  for (size_t i = 0; i < tensors.size(); ++i) memcpy(w->data(i), data[i], tensors[i].nbytes());
  return w->finish();
}

}  // namespace vex
