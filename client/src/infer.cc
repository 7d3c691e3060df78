#include "ffn/client/infer.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "ffn/client/check.h"
#include "ffn/client/client.h"
#include "ffn/client/kserve.h"
#include "ffn/client/request.h"

namespace ffn::client {

absl::StatusOr<InferOutcome> RunInfer(v1::FfnService::StubInterface& stub,
                                      const InferOptions& options) {
  auto models = ListModels(stub, options.timeout_seconds);
  if (!models.ok()) return models.status();
  auto model = FindModel(*models, options.model);
  if (!model.ok()) return model.status();

  if (auto s = CheckTokens(*model, options.tokens); !s.ok()) return s;

  InferOutcome outcome;
  outcome.model = std::move(*model);
  const std::vector<float> input =
      RandomInput(options.tokens, outcome.model.d_model(), options.seed);
  auto compute = ParseComputeDtype(options.compute_dtype);
  if (!compute.ok()) return compute.status();
  v1::InferRequest request =
      MakeInferRequest(options.model, options.activation, input, options.tokens, *compute);
  // A mixture of experts is checked along the routing the server used.
  const bool moe = outcome.model.has_moe();
  if (moe && options.check) request.set_return_routing(true);
  const auto start = std::chrono::steady_clock::now();
  auto response = Infer(stub, request, options.timeout_seconds);
  const auto finish = std::chrono::steady_clock::now();
  if (!response.ok()) return response.status();
  outcome.round_trip_us =
      std::chrono::duration_cast<std::chrono::microseconds>(finish - start).count();
  outcome.response = std::move(*response);
  auto output = TensorFloats(outcome.response.output());
  if (!output.ok()) {
    return absl::Status(output.status().code(),
                        absl::StrCat("answer: ", std::string(output.status().message())));
  }
  outcome.output = std::move(*output);

  if (!options.check) return outcome;
  // The activation that ran: the server names it, even for the default.
  std::string ran = outcome.response.variant().activation();
  if (ran.empty())
    ran = options.activation.empty() ? outcome.model.default_activation() : options.activation;
  if (moe) {
    auto weights = MoeWeightsForModel(outcome.model, options.weights_override);
    if (!weights.ok()) return weights.status();
    auto comparison = CompareMoeAnswer(outcome.model, *weights, ran, input, outcome.response);
    if (!comparison.ok()) return comparison.status();
    outcome.comparison = *comparison;
    return outcome;
  }
  auto weights = WeightsForModel(outcome.model, options.weights_override);
  if (!weights.ok()) return weights.status();
  auto comparison = CompareAnswer(outcome.model, *weights, ran, input, outcome.response);
  if (!comparison.ok()) return comparison.status();
  outcome.comparison = *comparison;
  return outcome;
}

namespace {

// One ModelInfer, and the check through ffn.v1's model list.
absl::StatusOr<InferOutcome> RunInferV2(const std::shared_ptr<grpc::Channel>& channel,
                                        const InferOptions& options) {
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  auto model = DescribeV2Model(*stub, options.model, options.timeout_seconds);
  if (!model.ok()) return model.status();
  if (model->max_tokens > 0 && options.tokens > model->max_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("model '", options.model, "' takes up to ",
                                                   model->max_tokens, " tokens"));
  }
  InferOutcome outcome;
  outcome.model.set_name(options.model);
  outcome.model.set_d_model(model->d_model);
  const std::vector<float> input = RandomInput(options.tokens, model->d_model, options.seed);
  inference::ModelInferRequest request =
      MakeV2Request(*model, input, options.tokens, options.compute_dtype);
  if (!options.activation.empty()) {
    (*request.mutable_parameters())["activation"].set_string_param(options.activation);
  }
  inference::ModelInferResponse answer;
  grpc::ClientContext context;
  SetTimeout(context, options.timeout_seconds);
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = stub->ModelInfer(&context, request, &answer);
  const auto finish = std::chrono::steady_clock::now();
  if (!status.ok()) return FromGrpcStatus(status);
  outcome.round_trip_us =
      std::chrono::duration_cast<std::chrono::microseconds>(finish - start).count();
  auto response = FromV2Response(answer, *model, options.tokens);
  if (!response.ok()) return response.status();
  outcome.response = std::move(*response);
  auto output = TensorFloats(outcome.response.output());
  if (!output.ok()) return output.status();
  outcome.output = std::move(*output);
  if (!options.check) return outcome;

  // The weights come from ffn.v1's model list: MODEL, or MODEL of
  // MODEL:ACTIVATION.
  auto ffn_stub = v1::FfnService::NewStub(channel);
  auto models = ListModels(*ffn_stub, options.timeout_seconds);
  if (!models.ok()) {
    return absl::Status(models.status().code(),
                        absl::StrCat("--check needs the server's ffn.v1 ListModels for the "
                                     "weights: ", std::string(models.status().message())));
  }
  std::string base = options.model;
  if (!FindModel(*models, base).ok() && base.rfind(':') != std::string::npos) {
    base = base.substr(0, base.rfind(':'));
  }
  auto info = FindModel(*models, base);
  if (!info.ok()) return info.status();
  outcome.model = *info;
  auto weights = WeightsForModel(outcome.model, options.weights_override);
  if (!weights.ok()) return weights.status();
  const std::string ran = outcome.response.variant().activation();
  if (ran.empty()) {
    return absl::FailedPreconditionError(
        "the answer does not name its activation (parameter 'activation'); cannot check it");
  }
  auto comparison = CompareAnswer(outcome.model, *weights, ran, input, outcome.response);
  if (!comparison.ok()) return comparison.status();
  outcome.comparison = *comparison;
  return outcome;
}

}  // namespace

absl::StatusOr<InferOutcome> RunInferOn(const std::shared_ptr<grpc::Channel>& channel,
                                        const InferOptions& options) {
  if (options.protocol == Protocol::kV2) return RunInferV2(channel, options);
  return RunInfer(*v1::FfnService::NewStub(channel), options);
}

}  // namespace ffn::client
