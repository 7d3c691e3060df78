#include "ffn/client/kserve.h"

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ffn/client/client.h"

namespace ffn::client {
namespace {

// The string parameter `key` of a model configuration; empty if absent.
std::string ConfigParameter(const inference::ModelConfig& config, const std::string& key) {
  auto it = config.parameters().find(key);
  return it == config.parameters().end() ? std::string() : it->second.string_value();
}

int64_t IntParameter(const inference::ModelInferResponse& response, const std::string& key) {
  auto it = response.parameters().find(key);
  if (it == response.parameters().end()) return 0;
  return it->second.int64_param();
}

std::string StringParameter(const inference::ModelInferResponse& response, const std::string& key) {
  auto it = response.parameters().find(key);
  if (it == response.parameters().end()) return std::string();
  return it->second.string_param();
}

}  // namespace

absl::StatusOr<Protocol> ParseProtocol(const std::string& name) {
  if (name == "ffn") return Protocol::kFfnV1;
  if (name == "v2") return Protocol::kV2;
  return absl::InvalidArgumentError(
      absl::StrCat("protocol '", name, "': must be ffn (ffn.v1) or v2 (KServe v2)"));
}

absl::StatusOr<V2Model> DescribeV2Model(inference::GRPCInferenceService::StubInterface& stub,
                                        const std::string& name, double timeout_seconds) {
  inference::ModelMetadataRequest request;
  request.set_name(name);
  inference::ModelMetadataResponse metadata;
  {
    grpc::ClientContext context;
    SetTimeout(context, timeout_seconds);
    if (grpc::Status status = stub.ModelMetadata(&context, request, &metadata); !status.ok()) {
      return FromGrpcStatus(status);
    }
  }
  if (metadata.inputs_size() != 1 || metadata.outputs_size() < 1) {
    return absl::InvalidArgumentError(absl::StrCat("model '", name, "' has ",
                                                   metadata.inputs_size(), " inputs and ",
                                                   metadata.outputs_size(),
                                                   " outputs; ffn-client drives one input"));
  }
  const auto& input = metadata.inputs(0);
  if (input.datatype() != "FP32" || input.shape_size() != 2 || input.shape(1) <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", name, "' input '", input.name(), "' is ", input.datatype(), " [",
        absl::StrJoin(input.shape(), ", "), "]; ffn-client sends FP32 [tokens, d_model]"));
  }
  V2Model model;
  model.name = name;
  model.input_name = input.name();
  model.output_name = metadata.outputs(0).name();
  model.d_model = input.shape(1);

  // The configuration extension is optional: without it, no token limit or
  // flop count is known.
  inference::ModelConfigRequest config_request;
  config_request.set_name(name);
  inference::ModelConfigResponse config;
  grpc::ClientContext context;
  SetTimeout(context, timeout_seconds);
  if (stub.ModelConfig(&context, config_request, &config).ok()) {
    model.max_tokens = config.config().max_batch_size();
    int64_t d_ff = 0;
    if (absl::SimpleAtoi(ConfigParameter(config.config(), "d_ff"), &d_ff) && d_ff > 0) {
      const double matmuls = ConfigParameter(config.config(), "kind") == "gated" ? 3.0 : 2.0;
      model.flops_per_token =
          2.0 * static_cast<double>(model.d_model) * static_cast<double>(d_ff) * matmuls;
    }
  }
  return model;
}

inference::ModelInferRequest MakeV2Request(const V2Model& model, std::span<const float> input,
                                           int64_t tokens, const std::string& compute_dtype) {
  inference::ModelInferRequest request;
  request.set_model_name(model.name);
  auto* tensor = request.add_inputs();
  tensor->set_name(model.input_name);
  tensor->set_datatype("FP32");
  tensor->add_shape(tokens);
  tensor->add_shape(model.d_model);
  request.add_raw_input_contents()->assign(
      reinterpret_cast<const char*>(input.data()),
      static_cast<size_t>(tokens * model.d_model) * sizeof(float));
  if (!compute_dtype.empty()) {
    (*request.mutable_parameters())["compute_dtype"].set_string_param(compute_dtype);
  }
  return request;
}

absl::StatusOr<v1::InferResponse> FromV2Response(const inference::ModelInferResponse& response,
                                                 const V2Model& model, int64_t tokens) {
  int index = -1;
  for (int i = 0; i < response.outputs_size(); ++i) {
    if (response.outputs(i).name() == model.output_name) index = i;
  }
  if (index < 0 || response.outputs(index).datatype() != "FP32") {
    return absl::InvalidArgumentError(
        absl::StrCat("the answer has no FP32 output '", model.output_name, "'"));
  }
  const size_t expected = static_cast<size_t>(tokens * model.d_model) * sizeof(float);
  v1::InferResponse out;
  v1::Tensor* tensor = out.mutable_output();
  tensor->set_dtype(v1::FLOAT32);
  tensor->add_shape(tokens);
  tensor->add_shape(model.d_model);
  if (index < response.raw_output_contents_size()) {
    *tensor->mutable_data() = response.raw_output_contents(index);
  } else {
    const auto& values = response.outputs(index).contents().fp32_contents();
    tensor->mutable_data()->assign(reinterpret_cast<const char*>(values.data()),
                                   values.size() * sizeof(float));
  }
  if (tensor->data().size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("the answer's output has ",
                                                   tensor->data().size(), " bytes; [", tokens,
                                                   ", ", model.d_model, "] FP32 is ", expected));
  }
  out.mutable_variant()->set_model(model.name);
  out.mutable_variant()->set_activation(StringParameter(response, "activation"));
  out.mutable_variant()->set_dtype(StringParameter(response, "compute_dtype") == "bf16"
                                       ? v1::BFLOAT16
                                       : v1::FLOAT32);
  out.set_queue_us(IntParameter(response, "queue_us"));
  out.set_compute_us(IntParameter(response, "compute_us"));
  out.set_total_us(IntParameter(response, "total_us"));
  out.set_batch_tokens(IntParameter(response, "batch_tokens"));
  return out;
}

}  // namespace ffn::client
