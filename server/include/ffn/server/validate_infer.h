// Checking an InferRequest against the models a server holds, before any
// work is queued for it.
//
// Example:
//   bool CountsAgainstVariant(const ffn::ModelRegistry& registry,
//                             const ffn::v1::InferRequest& request) {
//     ffn::ValidatedInfer validated = ffn::ValidateInfer(registry, request);
//     // a bad tensor for a valid variant: count it against that variant
//     return !validated.status.ok() && validated.variant.has_value();
//   }
#ifndef FFN_SERVER_VALIDATE_INFER_H_
#define FFN_SERVER_VALIDATE_INFER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ffn/kernels/activation.h"
#include "ffn/kernels/dtype.h"
#include "ffn/kernels/moe.h"
#include "ffn/server/model_registry.h"
#include "ffn/v1/ffn.pb.h"

namespace ffn {

// The variant a request asks for: its model, activation and compute dtype.
struct InferVariant {
  const Model* model = nullptr;
  Activation activation = Activation::kRelu;
  DataType compute = DataType::kF32;
};

// The input tensor of a request.
struct InferInput {
  int64_t tokens = 0;
  DataType type = DataType::kF32;  // also the output's
};

// What ValidateInfer found.
struct ValidatedInfer {
  // OK when the whole request is valid; otherwise the first problem.
  absl::Status status;
  // Set once model, activation and compute dtype are valid, even if the
  // tensor is not, so that a rejection can be counted against its variant.
  std::optional<InferVariant> variant;
  InferInput input;  // valid when `status` is OK
};

// A request's routing as the engine takes it.
MoeRouting RoutingFromProto(const v1::Routing& routing, int64_t top_k);

// The model `name`; NOT_FOUND naming the models the server has otherwise.
absl::StatusOr<const Model*> FindModel(const ModelRegistry& registry, const std::string& name);

// The variant `request` asks for (model, activation, compute_dtype; its
// tensor is not looked at): NOT_FOUND or INVALID_ARGUMENT as ValidateInfer.
absl::StatusOr<InferVariant> ValidateVariant(const ModelRegistry& registry,
                                             const v1::InferRequest& request);

// Checks an InferRequest against the registry: first the variant, then the
// tensor, then the routing (a mixture-of-experts model's only; as
// ValidateRouting says). NOT_FOUND for an unknown model; INVALID_ARGUMENT for an unknown
// activation or one of the wrong kind, an unknown compute_dtype, an input
// dtype other than FLOAT32 or BFLOAT16, a shape other than [tokens,
// d_model], tokens outside [1, max_tokens], or a byte count not matching
// shape and dtype. The message names what was expected.
ValidatedInfer ValidateInfer(const ModelRegistry& registry, const v1::InferRequest& request);

}  // namespace ffn

#endif  // FFN_SERVER_VALIDATE_INFER_H_
