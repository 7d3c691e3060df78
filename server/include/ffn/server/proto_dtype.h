// DataType ↔ v1::DType: the one conversion between the server's element
// types and the proto enum, used where requests are read and responses,
// statistics and metrics labels are written.
//
// Example:
//   ffn::v1::Tensor tensor;
//   tensor.set_dtype(ffn::ToProtoDType(ffn::DataType::kBf16));
//   if (std::optional<ffn::DataType> type = ffn::FromProtoDType(tensor.dtype())) {
//     tensor.mutable_data()->resize(ffn::ElementBytes(*type));  // one value
//   }
#ifndef FFN_SERVER_PROTO_DTYPE_H_
#define FFN_SERVER_PROTO_DTYPE_H_

#include <optional>

#include "ffn/kernels/dtype.h"
#include "ffn/v1/ffn.pb.h"

namespace ffn {

// FLOAT32 or BFLOAT16. Its name (v1::DType_Name) is also the dtype label of
// the Prometheus metrics.
inline v1::DType ToProtoDType(DataType type) {
  return type == DataType::kBf16 ? v1::BFLOAT16 : v1::FLOAT32;
}

// The DataType of FLOAT32 or BFLOAT16; nullopt for any other value.
inline std::optional<DataType> FromProtoDType(v1::DType type) {
  switch (type) {
    case v1::FLOAT32: return DataType::kF32;
    case v1::BFLOAT16: return DataType::kBf16;
    default: return std::nullopt;
  }
}

}  // namespace ffn

#endif  // FFN_SERVER_PROTO_DTYPE_H_
