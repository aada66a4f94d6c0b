// safetensors header parsing (loader/safetensors.cpp) on arbitrary bytes: a file is either refused
// with an error or every tensor it describes lies inside the data section with a consistent size.
#include <cstdint>
#include <span>

#include "loader/safetensors.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using vex::fuzz::check;
  auto h = vex::parse_safetensors(std::span<const uint8_t>(data, size), "fuzz.safetensors");
  if (!h.ok()) {
    check(!h.status().message().empty(), "an error without a message");
    return 0;
  }
  check(h->data_start >= 8 && h->data_start <= size, "data section outside the file");
  for (const vex::TensorInfo& t : h->tensors) {
    check(t.begin <= t.end && t.end <= size - h->data_start, "tensor outside the data section");
    check(t.numel() >= 0, "negative element count");
    check(static_cast<uint64_t>(t.numel()) * vex::dtype_size(t.dtype) == t.nbytes(),
          "byte span differs from shape x element size");
    check(t.begin % vex::dtype_size(t.dtype) == 0, "tensor misaligned for its dtype");
  }
  return 0;
}
