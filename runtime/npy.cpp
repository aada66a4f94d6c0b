#include "runtime/npy.h"

#include <cstring>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace vex {

absl::Status write_npy_f32(const std::string& path, const float* data,
                           const std::vector<int64_t>& shape) {
  std::string dims = absl::StrJoin(shape, ", ");
  if (shape.size() == 1) dims += ",";
  std::string header =
      absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': (", dims, "), }");
  // magic(6) + version(2) + len(2) + header + '\n' is padded to a multiple of 64 bytes.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) return absl::InternalError(absl::StrCat(path, ": cannot create"));
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.put(static_cast<char>(len & 0xff)).put(static_cast<char>(len >> 8));
  out << header;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  out.write(reinterpret_cast<const char*>(data), n * sizeof(float));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

absl::StatusOr<NpyF32> read_npy_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  char pre[10];
  if (!in.read(pre, 10) || memcmp(pre, "\x93NUMPY\x01\x00", 8) != 0)
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a version 1.0 .npy file"));
  const size_t len = static_cast<uint8_t>(pre[8]) | (static_cast<uint8_t>(pre[9]) << 8);
  std::string header(len, '\0');
  if (!in.read(header.data(), len))
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated header"));
  if (header.find("'descr': '<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos)
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected little-endian float32, C order"));
  const size_t a = header.find("'shape': ("), b = header.find(')', a);
  if (a == std::string::npos || b == std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat(path, ": no shape in header"));
  NpyF32 r;
  int64_t n = 1;
  for (absl::string_view d :
       absl::StrSplit(header.substr(a + 10, b - a - 10), ',', absl::SkipWhitespace())) {
    int64_t v;
    if (!absl::SimpleAtoi(d, &v) || v < 0)
      return absl::InvalidArgumentError(absl::StrCat(path, ": bad shape entry '", d, "'"));
    r.shape.push_back(v);
    n *= v;
  }
  r.data.resize(n);
  if (!in.read(reinterpret_cast<char*>(r.data.data()), n * sizeof(float)))
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated data"));
  return r;
}

}  // namespace vex
