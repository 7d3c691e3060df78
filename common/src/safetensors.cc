#include "ffn/common/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ffn/common/status_macros.h"
#include "ffn/kernels/dtype.h"
#include "nlohmann/json.hpp"

namespace ffn {
namespace {

// IEEE binary16 to float, exactly (every half is a float): subnormal halves
// are normalised, infinities and NaNs keep their class and payload bits.
float F16ToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  uint32_t exponent = (half >> 10) & 0x1Fu;
  uint32_t mantissa = half & 0x3FFu;
  uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // 0.mantissa × 2^-14: shift until the leading 1 is the implicit bit.
    exponent = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3FFu) << 13);
  }
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}


constexpr uint64_t kMaxHeaderBytes = 100u << 20;

size_t DtypeSize(std::string_view dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" ||
      dtype == "F8_E5M2")
    return 1;
  return 0;
}

std::string ShapeString(std::span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer,
  // forever; with it the open returns and the check below refuses the FIFO.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("safetensors file ", path, ": cannot open: ", std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors file ", path, ": not a regular file (a FIFO, device or directory)"));
  }
  const size_t file_size = static_cast<size_t>(st.st_size);
  auto error = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors file ", path, ": ", what));
  };
  if (file_size < 8) {
    ::close(fd);
    return error(absl::StrCat("too short (", file_size, " bytes; at least 8 needed)"));
  }
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("safetensors file ", path, ": mmap: ", std::strerror(errno)));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_ = map;
  file->map_size_ = file_size;

  const auto* bytes = static_cast<const std::byte*>(map);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  if (header_len > kMaxHeaderBytes || header_len > file_size - 8) {
    return error(absl::StrCat("header length ", header_len, " exceeds the file (", file_size,
                              " bytes)"));
  }
  const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
  nlohmann::json header = nlohmann::json::parse(header_begin, header_begin + header_len, nullptr,
                                                /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return error("header is not a JSON object");
  }
  const std::byte* data_begin = bytes + 8 + header_len;
  const size_t data_size = file_size - 8 - header_len;
  for (const auto& [name, desc] : header.items()) {
    if (name == "__metadata__") continue;
    const auto where = absl::StrCat("tensor '", name, "': ");
    if (!desc.is_object() || !desc.contains("dtype") || !desc.contains("shape") ||
        !desc.contains("data_offsets")) {
      return error(where + "needs dtype, shape and data_offsets");
    }
    const auto& dtype = desc["dtype"];
    const auto& shape = desc["shape"];
    const auto& offsets = desc["data_offsets"];
    if (!dtype.is_string() || !shape.is_array() || !offsets.is_array() || offsets.size() != 2 ||
        !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
      return error(where + "malformed dtype, shape or data_offsets");
    }
    SafetensorsEntry entry;
    entry.dtype = dtype.get<std::string>();
    const size_t elem_size = DtypeSize(entry.dtype);
    if (elem_size == 0) return error(where + "unknown dtype " + entry.dtype);
    constexpr uint64_t kMaxElements = uint64_t{1} << 48;
    uint64_t elements = 1;
    for (const auto& dim : shape) {
      if (!dim.is_number_unsigned()) return error(where + "shape has a non-integer or negative dim");
      const uint64_t d = dim.get<uint64_t>();
      if (d != 0 && elements > kMaxElements / d) return error(where + "shape too large");
      elements *= d;
      entry.shape.push_back(static_cast<int64_t>(d));
    }
    const uint64_t begin = offsets[0].get<uint64_t>();
    const uint64_t end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      return error(absl::StrCat(where, "data_offsets [", begin, ", ", end,
                                "] outside the data section (", data_size, " bytes)"));
    }
    const uint64_t expected = elements * elem_size;
    if (end - begin != expected) {
      return error(absl::StrCat(where, "holds ", end - begin, " bytes but ", entry.dtype, " ",
                                ShapeString(entry.shape), " needs ", expected));
    }
    entry.data = data_begin + begin;
    entry.size_bytes = end - begin;
    file->entries_.emplace(name, std::move(entry));
  }
  // As the format's reference reader does: the tensors tile the data section
  // exactly. Overlapping tensors would alias each other's bytes, and bytes no
  // tensor owns are what a file smuggling other content would carry.
  std::vector<std::pair<const std::string*, const SafetensorsEntry*>> by_offset;
  for (const auto& [name, entry] : file->entries_) by_offset.emplace_back(&name, &entry);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second->data, a.second->size_bytes) <
           std::pair(b.second->data, b.second->size_bytes);
  });
  uint64_t covered = 0;  // bytes of the data section owned so far
  const std::string* previous = nullptr;
  for (const auto& [name, entry] : by_offset) {
    const auto begin = static_cast<uint64_t>(entry->data - data_begin);
    if (begin < covered) {
      return error(absl::StrCat("tensors '", *previous, "' and '", *name, "' overlap (at byte ",
                                begin, " of the data section)"));
    }
    if (begin > covered) {
      return error(absl::StrCat("bytes [", covered, ", ", begin, ") of the data section belong to no "
                                "tensor (before '", *name, "')"));
    }
    covered = begin + entry->size_bytes;
    previous = name;
  }
  if (covered != data_size) {
    return error(absl::StrCat("the data section has ", data_size, " bytes but its tensors cover ",
                              covered));
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

std::vector<std::string> SafetensorsFile::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, entry] : entries_) names.push_back(name);
  return names;
}

absl::StatusOr<SafetensorsEntry> SafetensorsFile::Get(std::string_view name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    return absl::NotFoundError(
        absl::StrCat("safetensors file ", path_, ": no tensor named '", std::string(name), "'"));
  }
  return it->second;
}

absl::StatusOr<SafetensorsEntry> SafetensorsFile::GetShaped(
    std::string_view name, std::span<const int64_t> expected_shape) const {
  ASSIGN_OR_RETURN(SafetensorsEntry entry, Get(name));
  if (!std::equal(entry.shape.begin(), entry.shape.end(), expected_shape.begin(),
                  expected_shape.end())) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors file ", path_, ": tensor '", std::string(name),
                                                   "' has shape ", ShapeString(entry.shape),
                                                   ", expected ", ShapeString(expected_shape)));
  }
  return entry;
}

absl::StatusOr<std::vector<uint16_t>> SafetensorsFile::ReadFiniteBf16(
    std::string_view name, std::span<const int64_t> expected_shape) const {
  ASSIGN_OR_RETURN(const SafetensorsEntry entry, GetShaped(name, expected_shape));
  if (entry.dtype != "BF16") {
    return absl::InvalidArgumentError(absl::StrCat("safetensors file ", path_, ": tensor '",
                                                   std::string(name), "' has dtype ", entry.dtype,
                                                   ", not BF16"));
  }
  std::vector<uint16_t> values(entry.size_bytes / 2);
  if (entry.size_bytes > 0) std::memcpy(values.data(), entry.data, entry.size_bytes);
  // bf16 keeps fp32's exponent: all ones is an infinity or a NaN.
  const auto non_finite = [](uint16_t v) { return (v & 0x7f80) == 0x7f80; };
  const auto bad = std::find_if(values.begin(), values.end(), non_finite);
  if (bad == values.end()) return values;
  return absl::InvalidArgumentError(absl::StrCat(
      "safetensors file ", path_, ": tensor '", std::string(name), "': ",
      std::count_if(bad, values.end(), non_finite), " of ", values.size(),
      " values are not finite; the first, at index ", bad - values.begin(), ", is ",
      Bf16ToFloat(*bad)));
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadFloat(
    std::string_view name, std::span<const int64_t> expected_shape) const {
  auto entry = GetShaped(name, expected_shape);
  if (!entry.ok()) return entry.status();
  std::vector<float> values;
  if (entry->dtype == "F32") {
    values.resize(entry->size_bytes / 4);
    // An empty tensor has no data pointer to copy from (memcpy needs one).
    if (entry->size_bytes > 0) std::memcpy(values.data(), entry->data, entry->size_bytes);
  } else if (entry->dtype == "BF16" || entry->dtype == "F16") {
    const auto convert = entry->dtype == "BF16" ? Bf16ToFloat : F16ToFloat;
    values.resize(entry->size_bytes / 2);
    for (size_t i = 0; i < values.size(); ++i) {
      uint16_t bits;
      std::memcpy(&bits, entry->data + 2 * i, 2);
      values[i] = convert(bits);
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("safetensors file ", path_, ": tensor '", std::string(name),
                                                   "' has dtype ", entry->dtype,
                                                   "; only F32, BF16 and F16 are accepted"));
  }
  return values;
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadFiniteFloat(
    std::string_view name, std::span<const int64_t> expected_shape) const {
  ASSIGN_OR_RETURN(std::vector<float> values, ReadFloat(name, expected_shape));
  const auto finite = [](float v) { return std::isfinite(v); };
  const auto bad = std::find_if_not(values.begin(), values.end(), finite);
  if (bad == values.end()) return values;
  return absl::InvalidArgumentError(absl::StrCat(
      "safetensors file ", path_, ": tensor '", std::string(name), "': ",
      std::count_if(bad, values.end(), [](float v) { return !std::isfinite(v); }), " of ", values.size(),
      " values are not finite; the first, at index ", bad - values.begin(), ", is ", *bad));
}

absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<SafetensorsTensorToWrite>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    int64_t elements = 1;
    for (int64_t d : t.shape) elements *= d;
    if (elements != static_cast<int64_t>(t.values.size())) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "': ", t.values.size(),
                                                     " values for shape ", ShapeString(t.shape)));
    }
    const uint64_t bytes = t.values.size() * (t.bf16 ? 2 : 4);
    header[t.name] = {{"dtype", t.bf16 ? "BF16" : "F32"},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text = header.dump();
  while (header_text.size() % 8 != 0) header_text.push_back(' ');  // keeps data 8-byte aligned
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  const uint64_t len = header_text.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
  out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
  for (const auto& t : tensors) {
    if (!t.bf16) {
      out.write(reinterpret_cast<const char*>(t.values.data()),
                static_cast<std::streamsize>(t.values.size() * sizeof(float)));
      continue;
    }
    std::vector<uint16_t> bits(t.values.size());
    CopyConverting(t.values.data(), DataType::kF32, bits.data(), DataType::kBf16, bits.size());
    out.write(reinterpret_cast<const char*>(bits.data()),
              static_cast<std::streamsize>(bits.size() * sizeof(uint16_t)));
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("write to ", path, " failed"));
  return absl::OkStatus();
}

}  // namespace ffn
