#include "ffn/client/infer.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "ffn/client/check.h"
#include "ffn/client/client.h"
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

}  // namespace ffn::client
