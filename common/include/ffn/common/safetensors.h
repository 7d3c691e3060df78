// Reading (and writing) safetensors files, the format Hugging Face exports.
//
// A file is: an 8-byte little-endian header length N, N bytes of JSON mapping
// tensor names to {dtype, shape, data_offsets}, then the raw little-endian
// data. SafetensorsFile maps the file read-only and checks the whole header
// on Open(), so later look-ups cannot read outside the file.
//
// Example:
//   ASSIGN_OR_RETURN(auto file, ffn::SafetensorsFile::Open("model.safetensors"));
//   const int64_t shape[] = {3072, 768};
//   ASSIGN_OR_RETURN(std::vector<float> w, file->ReadFloat("fc1.weight", shape));
#ifndef FFN_COMMON_SAFETENSORS_H_
#define FFN_COMMON_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ffn {

struct SafetensorsEntry {
  std::string dtype;           // "F32", "BF16", "F16", "I64", ...
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t size_bytes = 0;
};

class SafetensorsFile {
 public:
  // Maps `path` and validates its header. Errors name the file and the fault
  // (too short, header length beyond the file, bad JSON, offsets out of range,
  // size not matching dtype × shape).
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  std::vector<std::string> Names() const;
  // NOT_FOUND if the file has no tensor `name`.
  absl::StatusOr<SafetensorsEntry> Get(std::string_view name) const;
  // Copies an F32, BF16 or F16 tensor into floats (exactly). INVALID_ARGUMENT if its dtype is
  // another, or its shape is not `expected_shape`.
  absl::StatusOr<std::vector<float>> ReadFloat(std::string_view name,
                                               std::span<const int64_t> expected_shape) const;
  // ReadFloat, refusing a tensor with a NaN or infinity (a weight that
  // poisons every answer it touches): INVALID_ARGUMENT with their count and
  // the first one's index and value.
  absl::StatusOr<std::vector<float>> ReadFiniteFloat(std::string_view name,
                                                     std::span<const int64_t> expected_shape) const;
  // A BF16 tensor's values as they are stored (bf16 bits), refusing NaN and
  // infinities as ReadFiniteFloat does. INVALID_ARGUMENT for another dtype or
  // shape.
  absl::StatusOr<std::vector<uint16_t>> ReadFiniteBf16(std::string_view name,
                                                       std::span<const int64_t> expected_shape) const;

 private:
  // Get(), INVALID_ARGUMENT unless the tensor's shape is `expected_shape`.
  absl::StatusOr<SafetensorsEntry> GetShaped(std::string_view name,
                                             std::span<const int64_t> expected_shape) const;

  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, SafetensorsEntry, std::less<>> entries_;
};

// One tensor to write, as F32, or as BF16 (the values rounded to nearest
// even) with bf16 set.
struct SafetensorsTensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
  bool bf16 = false;
};

// Writes `tensors` as a safetensors file (for tests and for exporting
// weights). INVALID_ARGUMENT if a tensor's values do not match its shape.
absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<SafetensorsTensorToWrite>& tensors);

}  // namespace ffn

#endif  // FFN_COMMON_SAFETENSORS_H_
