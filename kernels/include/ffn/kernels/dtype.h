// Element types of tensors and of the computation, and the conversions
// between them. The one home of DataType: the engine, the server's config,
// scheduler and statistics all use it; the proto enum (v1::DType) is
// converted at the gRPC service boundary only.
//
// Example:
//   std::vector<float> floats = {1.0f, 0.1f};
//   std::optional<ffn::DataType> type = ffn::ParseDataType("bf16");
//   std::vector<uint16_t> half(floats.size());
//   ffn::CopyConverting(floats.data(), ffn::DataType::kF32, half.data(), *type, floats.size());
//
// bf16 is the upper half of an IEEE fp32: fp32 → bf16 rounds to nearest,
// ties to even, and keeps NaN a (quiet) NaN; bf16 → fp32 is exact.
// Header-only, so libraries below the kernels (common/) can use it too.
#ifndef FFN_KERNELS_DTYPE_H_
#define FFN_KERNELS_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace ffn {

enum class DataType { kF32, kBf16 };

// "f32", "bf16": the names of config files, flags and reports.
inline const char* DataTypeName(DataType type) { return type == DataType::kBf16 ? "bf16" : "f32"; }

// Parses a DataTypeName; nullopt for anything else.
inline std::optional<DataType> ParseDataType(std::string_view name) {
  if (name == "f32") return DataType::kF32;
  if (name == "bf16") return DataType::kBf16;
  return std::nullopt;
}

// Bytes of one element.
inline size_t ElementBytes(DataType type) { return type == DataType::kBf16 ? 2 : 4; }

// fp32 → bf16, round to nearest even; NaN stays NaN (quiet).
inline uint16_t FloatToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(bits >> 16);
}

// bf16 → fp32, exact.
inline float Bf16ToFloat(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

// Copies `n` values of `from_type` at `from` to `to_type` at `to` (a plain
// copy when the types match, else converted as above). The buffers must not
// overlap.
inline void CopyConverting(const void* from, DataType from_type, void* to, DataType to_type,
                           size_t n) {
  if (from_type == to_type) {
    std::memcpy(to, from, n * ElementBytes(from_type));
  } else if (from_type == DataType::kBf16) {
    const auto* in = static_cast<const uint16_t*>(from);
    auto* out = static_cast<float*>(to);
    for (size_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(in[i]);
  } else {
    const auto* in = static_cast<const float*>(from);
    auto* out = static_cast<uint16_t*>(to);
    for (size_t i = 0; i < n; ++i) out[i] = FloatToBf16(in[i]);
  }
}

}  // namespace ffn

#endif  // FFN_KERNELS_DTYPE_H_
