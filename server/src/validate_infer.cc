#include "ffn/server/validate_infer.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ffn/server/proto_dtype.h"

namespace ffn {
namespace {

std::string AcceptedActivations(const Model& model) {
  return absl::StrJoin(model.info.activations(), ", ");
}

// A client-given name as it appears in a message: quoted, and cut short when
// long, so an error never grows with the request (a 100 KB name would
// otherwise overflow gRPC's metadata limit and hide the real status).
std::string Quoted(const std::string& name) {
  constexpr size_t kShown = 64;
  if (name.size() <= kShown) return absl::StrCat("'", name, "'");
  return absl::StrCat("'", name.substr(0, kShown), "...' (", name.size(), " bytes)");
}

// "FLOAT32", or the number of a value the enum does not name.
std::string DTypeName(v1::DType dtype) {
  const std::string& name = v1::DType_Name(dtype);
  return name.empty() ? absl::StrCat("value ", static_cast<int>(dtype)) : name;
}

absl::StatusOr<InferInput> ValidateInput(const Model& model, const v1::Tensor& input) {
  InferInput in;
  std::optional<DataType> type = FromProtoDType(input.dtype());
  if (!type) {
    return absl::InvalidArgumentError(absl::StrCat("input dtype ", DTypeName(input.dtype()),
                                                   " is not served; send FLOAT32 or BFLOAT16"));
  }
  in.type = *type;
  const int64_t d_model = model.config.d_model;
  if (input.shape_size() != 2 || input.shape(1) != d_model) {
    // The first dimensions only: a shape of thousands would make the
    // message grow with the request, as a long name would (Quoted).
    constexpr int kShownDims = 8;
    const int shown = std::min(input.shape_size(), kShownDims);
    std::string dims = absl::StrJoin(input.shape().begin(), input.shape().begin() + shown, ", ");
    if (input.shape_size() > shown) {
      absl::StrAppend(&dims, ", ... (", input.shape_size(), " dimensions)");
    }
    return absl::InvalidArgumentError(
        absl::StrCat("input shape [", dims, "] is not [tokens, d_model = ", d_model, "]"));
  }
  in.tokens = input.shape(0);
  if (in.tokens < 1 || in.tokens > model.max_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("input has ", in.tokens,
                                                   " tokens; model '", model.config.name,
                                                   "' accepts 1 to ", model.max_tokens));
  }
  // tokens <= max_tokens <= 2^24 and d_model <= 2^20 (both checked at load),
  // so the product cannot overflow.
  const uint64_t expected_bytes = static_cast<uint64_t>(in.tokens) *
                                  static_cast<uint64_t>(d_model) * ElementBytes(in.type);
  if (input.data().size() != expected_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input data has ", input.data().size(), " bytes; shape [", in.tokens, ", ", d_model,
        "] of ", DTypeName(input.dtype()), " needs ", expected_bytes));
  }
  return in;
}

// A request's routing fields against its model: only for a mixture of
// experts, and then as ValidateRouting says.
absl::Status ValidateRoutingRequest(const Model& model, const v1::InferRequest& request,
                                    int64_t tokens) {
  const MoeWeights* moe = model.block->moe();
  if (moe == nullptr) {
    if (request.has_routing() || request.return_routing()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", model.config.name, "' is not a mixture of experts: it has no routing"));
    }
    return absl::OkStatus();
  }
  if (!request.has_routing()) return absl::OkStatus();
  return ValidateRouting(RoutingFromProto(request.routing(), moe->top_k), tokens,
                         moe->num_experts(), moe->top_k);
}

}  // namespace

MoeRouting RoutingFromProto(const v1::Routing& routing, int64_t top_k) {
  MoeRouting r;
  r.top_k = top_k;
  r.ids.assign(routing.expert_ids().begin(), routing.expert_ids().end());
  r.weights.assign(routing.expert_weights().begin(), routing.expert_weights().end());
  return r;
}

absl::StatusOr<const Model*> FindModel(const ModelRegistry& registry, const std::string& name) {
  const Model* model = registry.Find(name);
  if (model == nullptr) {
    std::vector<std::string> names;
    for (const auto& m : registry.models()) names.push_back(m->config.name);
    return absl::NotFoundError(absl::StrCat("no model named ", Quoted(name),
                                            "; this server has: ", absl::StrJoin(names, ", ")));
  }
  return model;
}

absl::StatusOr<InferVariant> ValidateVariant(const ModelRegistry& registry,
                                             const v1::InferRequest& request) {
  InferVariant v;
  absl::StatusOr<const Model*> found = FindModel(registry, request.model());
  if (!found.ok()) return found.status();
  v.model = *found;
  const Model& model = *v.model;
  if (request.activation().empty()) {
    v.activation = model.config.default_activation;
  } else {
    auto activation = ParseActivation(request.activation());
    if (!activation || IsGated(*activation) != (model.config.kind == FfnKind::kGated)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "activation ", Quoted(request.activation()), " is not valid for ",
          model.config.kind == FfnKind::kGated ? "gated" : "plain", " model '", model.config.name,
          "'; use one of: ", AcceptedActivations(model), " (or empty for the default, ",
          ActivationName(model.config.default_activation), ")"));
    }
    v.activation = *activation;
  }
  if (request.compute_dtype() == v1::DTYPE_UNSPECIFIED) {
    v.compute = model.config.dtype;
  } else if (std::optional<DataType> compute = FromProtoDType(request.compute_dtype())) {
    v.compute = *compute;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "compute_dtype ", static_cast<int>(request.compute_dtype()),
        " is not FLOAT32, BFLOAT16 or DTYPE_UNSPECIFIED (the model's default)"));
  }
  return v;
}

ValidatedInfer ValidateInfer(const ModelRegistry& registry, const v1::InferRequest& request) {
  ValidatedInfer result;
  absl::StatusOr<InferVariant> variant = ValidateVariant(registry, request);
  if (!variant.ok()) {
    result.status = variant.status();
    return result;
  }
  result.variant = *variant;
  absl::StatusOr<InferInput> input = ValidateInput(*variant->model, request.input());
  if (!input.ok()) {
    result.status = input.status();
    return result;
  }
  result.input = *input;
  result.status = ValidateRoutingRequest(*variant->model, request, input->tokens);
  return result;
}

}  // namespace ffn
