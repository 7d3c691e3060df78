#include "ffn/client/request.h"

#include <bit>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ffn/kernels/ffn_weights.h"

namespace ffn::client {

// Tensors travel little-endian; a plain memcpy is the conversion.
static_assert(std::endian::native == std::endian::little);

std::vector<float> RandomInput(int64_t tokens, int64_t d_model, uint64_t seed) {
  std::vector<float> input(static_cast<size_t>(tokens * d_model));
  FillUniform(seed, RandomStream::kInput, kRandomInputScale, input);
  return input;
}

v1::InferRequest MakeInferRequest(const std::string& model, const std::string& activation,
                                  std::span<const float> input, int64_t tokens,
                                  std::optional<DataType> compute) {
  v1::InferRequest request;
  request.set_model(model);
  request.set_activation(activation);
  if (compute) request.set_compute_dtype(*compute == DataType::kBf16 ? v1::BFLOAT16 : v1::FLOAT32);
  v1::Tensor* tensor = request.mutable_input();
  tensor->set_dtype(v1::FLOAT32);
  tensor->add_shape(tokens);
  tensor->add_shape(static_cast<int64_t>(input.size()) / tokens);
  tensor->set_data(input.data(), input.size_bytes());
  return request;
}

absl::StatusOr<std::optional<DataType>> ParseComputeDtype(const std::string& name) {
  if (name.empty()) return std::nullopt;
  if (std::optional<DataType> type = ParseDataType(name)) return type;
  return absl::InvalidArgumentError(
      absl::StrCat("compute dtype '", name, "' is not one of f32, bf16"));
}

absl::Status CheckTokens(const v1::ModelInfo& model, int64_t tokens) {
  const int64_t max_tokens = model.max_tokens() > 0 ? model.max_tokens() : INT64_MAX;
  if (tokens >= 1 && tokens <= max_tokens) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("input has ", tokens, " tokens; model '",
                                                 model.name(), "' accepts 1 to ", max_tokens));
}

absl::StatusOr<std::vector<float>> TensorFloats(const v1::Tensor& tensor) {
  if (tensor.dtype() != v1::FLOAT32) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor dtype is ", v1::DType_Name(tensor.dtype()), ", not FLOAT32"));
  }
  uint64_t elements = 1;
  for (int64_t dim : tensor.shape()) {
    if (dim < 0) return absl::InvalidArgumentError("tensor has a negative dimension");
    elements *= static_cast<uint64_t>(dim);
  }
  if (tensor.data().size() != elements * sizeof(float)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor has ", tensor.data().size(), " bytes; its shape needs ", elements * sizeof(float)));
  }
  std::vector<float> values(elements);
  std::memcpy(values.data(), tensor.data().data(), tensor.data().size());
  return values;
}

}  // namespace ffn::client
