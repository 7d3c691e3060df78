// Building Infer requests from seeded random inputs, and reading answers.
//
// A request's input is [tokens, d_model] floats drawn with
// ffn::FillUniform(seed, RandomStream::kInput, kRandomInputScale, ...), so any
// request can be rebuilt from (tokens, d_model, seed) alone.
//
// Example:
//   std::vector<float> x = ffn::client::RandomInput(/*tokens=*/4, /*d_model=*/768, /*seed=*/0);
//   ffn::v1::InferRequest request = ffn::client::MakeInferRequest("ffn-768", "gelu", x, 4);
#ifndef FFN_CLIENT_REQUEST_H_
#define FFN_CLIENT_REQUEST_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ffn/kernels/dtype.h"
#include "ffn/v1/ffn.pb.h"

namespace ffn::client {

// tokens·d_model values, unit variance, from (seed, RandomStream::kInput).
std::vector<float> RandomInput(int64_t tokens, int64_t d_model, uint64_t seed);

// A FLOAT32 request for `model` with input shape [tokens, input.size() / tokens].
// An empty `activation` asks for the model's default, no `compute` the
// model's default compute dtype. Requires tokens >= 1 and input.size() a
// multiple of tokens.
v1::InferRequest MakeInferRequest(const std::string& model, const std::string& activation,
                                  std::span<const float> input, int64_t tokens,
                                  std::optional<DataType> compute = std::nullopt);

// A --compute-dtype value: "" (the model's default: nullopt), "f32" or
// "bf16"; INVALID_ARGUMENT otherwise.
absl::StatusOr<std::optional<DataType>> ParseComputeDtype(const std::string& name);

// OK if a request of `tokens` rows fits `model` (1 to its max_tokens, when it
// reports one); INVALID_ARGUMENT worded as the server's answer otherwise, so
// an oversized request is refused before it is built.
absl::Status CheckTokens(const v1::ModelInfo& model, int64_t tokens);

// The values of a FLOAT32 tensor. INVALID_ARGUMENT if the dtype is another or
// the byte count does not match the shape.
absl::StatusOr<std::vector<float>> TensorFloats(const v1::Tensor& tensor);

}  // namespace ffn::client

#endif  // FFN_CLIENT_REQUEST_H_
