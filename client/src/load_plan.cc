#include "load_plan.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ffn/client/client.h"
#include "ffn/client/request.h"

namespace ffn::client {
namespace {

double FlopsPerToken(const v1::ModelInfo& model) {
  const double matmuls = model.kind() == v1::GATED ? 3.0 : 2.0;
  return 2.0 * static_cast<double>(model.d_model()) * static_cast<double>(model.d_ff()) * matmuls;
}

// The models of the first target that answers.
absl::StatusOr<std::vector<v1::ModelInfo>> ListFromAny(const LoadPlan& plan) {
  std::vector<std::string> failures;
  const size_t targets = plan.options.targets.size();
  absl::Status last;
  for (size_t t = 0; t < targets; ++t) {
    auto models = ListModels(*plan.endpoints[t].stub, plan.options.SetupTimeout());
    if (models.ok()) return models;
    last = models.status();
    failures.push_back(absl::StrCat(plan.options.targets[t], ": ", StatusCodeName(last.code()),
                                    ": ", std::string(last.message())));
  }
  if (targets == 1) {
    return absl::Status(last.code(), absl::StrCat(plan.options.targets[0], ": ",
                                                  std::string(last.message())));
  }
  return absl::UnavailableError(
      absl::StrCat("no target answered ListModels: ", absl::StrJoin(failures, "; ")));
}

// --protocol v2: the variants are v2 model names, NAME[=WEIGHT],...; each
// described by its server (first target that answers).
absl::Status BuildV2Variants(LoadPlan& plan, std::vector<uint64_t>& weights) {
  const LoadOptions& o = plan.options;
  if (o.variants.empty() || o.variants == "all") {
    return absl::InvalidArgumentError(
        "with --protocol v2, name the models: --variants NAME[=WEIGHT],... (the protocol has "
        "no model list)");
  }
  for (absl::string_view entry : absl::StrSplit(o.variants, ',')) {
    std::string name(entry);
    uint64_t weight = 1;
    if (size_t eq = name.rfind('='); eq != std::string::npos) {
      if (!absl::SimpleAtoi(name.substr(eq + 1), &weight) || weight < 1) {
        return absl::InvalidArgumentError(absl::StrCat("variant '", name,
                                                       "': the weight must be a positive integer"));
      }
      name = name.substr(0, eq);
    }
    if (name.empty()) return absl::InvalidArgumentError("an empty name in --variants");
    absl::Status last;
    std::optional<V2Model> model;
    for (size_t t = 0; t < o.targets.size() && !model; ++t) {
      auto described = DescribeV2Model(*plan.endpoints[t].v2_stub, name, o.SetupTimeout());
      if (described.ok()) {
        model = *described;
      } else {
        last = absl::Status(described.status().code(),
                            absl::StrCat(o.targets[t], ": ", std::string(described.status().message())));
      }
    }
    if (!model) return last;
    if (model->max_tokens > 0 && plan.tokens.Max() > model->max_tokens) {
      return absl::InvalidArgumentError(absl::StrCat("model '", name, "' takes up to ",
                                                     model->max_tokens, " tokens; --tokens asks ",
                                                     plan.tokens.Max()));
    }
    auto [input, inserted] = plan.inputs.try_emplace(name);
    if (inserted) input->second = RandomInput(plan.tokens.Max(), model->d_model, o.seed);
    plan.variants.push_back({name, ""});
    plan.flops_per_token.push_back(model->flops_per_token);
    plan.d_model.push_back(model->d_model);
    plan.v2_models.push_back(*model);
    weights.push_back(weight);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateLoadOptions(const LoadOptions& o) {
  auto invalid = [](const std::string& why) { return absl::InvalidArgumentError(why); };
  if (o.targets.empty()) return invalid("at least one target is needed");
  for (const std::string& t : o.targets) {
    if (t.empty()) return invalid("a target is empty");
  }
  if (!o.lb_policy.empty() && o.lb_policy != "round_robin" && o.lb_policy != "pick_first") {
    return invalid(
        absl::StrCat("lb-policy '", o.lb_policy, "': must be round_robin or pick_first"));
  }
  if (o.connections < 1) return invalid("connections must be at least 1");
  if (o.concurrency < 1) return invalid("concurrency must be at least 1");
  if (!(o.rate >= 0) || std::isinf(o.rate)) return invalid("rate must be >= 0 and finite");
  if (o.stream && o.rate > 0) {
    return invalid(absl::StrCat("stream runs a closed loop over ", o.StreamRpc(),
                                "; it cannot take a rate"));
  }
  if (o.max_outstanding < 1) return invalid("max-outstanding must be at least 1");
  if (o.requests == 0 && !(o.duration_seconds > 0)) return invalid("duration must be positive");
  if (!(o.warmup_seconds >= 0)) return invalid("warmup must be >= 0");
  if (!(o.timeout_seconds > 0)) return invalid("timeout must be positive");
  if (auto tokens = TokenDistribution::Parse(o.tokens); !tokens.ok()) return tokens.status();
  if (auto compute = ParseComputeDtype(o.compute_dtype); !compute.ok()) return compute.status();
  return absl::OkStatus();
}

CallDeal LoadPlan::Deal(uint64_t n) const {
  CallDeal deal;
  deal.endpoint = n % endpoints.size();
  deal.variant = variant_cycle.At(n / endpoints.size());
  deal.tokens = tokens.Sample(MixBits(options.seed, n));
  return deal;
}

v1::InferRequest LoadPlan::MakeRequest(const CallDeal& deal) const {
  const VariantSpec& v = variants[deal.variant];
  const std::vector<float>& input = inputs.at(v.model);
  return MakeInferRequest(
      v.model, v.activation,
      std::span<const float>(input.data(),
                             static_cast<size_t>(deal.tokens * d_model[deal.variant])),
      deal.tokens, ParseComputeDtype(options.compute_dtype).value_or(std::nullopt));
}

inference::ModelInferRequest LoadPlan::MakeV2Request(const CallDeal& deal) const {
  const std::vector<float>& input = inputs.at(variants[deal.variant].model);
  return client::MakeV2Request(v2_models[deal.variant], input, deal.tokens,
                               options.compute_dtype);
}

grpc::Status LoadPlan::ReadV2Answer(const CallDeal& deal,
                                    const inference::ModelInferResponse& answer,
                                    v1::InferResponse* response) const {
  absl::StatusOr<v1::InferResponse> read =
      FromV2Response(answer, v2_models[deal.variant], deal.tokens);
  if (!read.ok()) {
    return grpc::Status(grpc::StatusCode::INTERNAL, std::string(read.status().message()));
  }
  *response = std::move(*read);
  return grpc::Status::OK;
}

void LoadPlan::Prepare(const CallDeal& deal, UnaryInfer* call) const {
  if (options.protocol == Protocol::kFfnV1) {
    call->request = MakeRequest(deal);
  } else {
    call->v2_request = MakeV2Request(deal);
  }
}

void LoadPlan::Send(const CallDeal& deal, UnaryInfer* call, grpc::CompletionQueue* queue,
                    void* tag) const {
  const Endpoint& endpoint = endpoints[deal.endpoint];
  if (options.protocol == Protocol::kFfnV1) {
    call->reader = endpoint.stub->PrepareAsyncInfer(&call->context, call->request, queue);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, tag);
    return;
  }
  call->v2_reader =
      endpoint.v2_stub->PrepareAsyncModelInfer(&call->context, call->v2_request, queue);
  call->v2_reader->StartCall();
  call->v2_reader->Finish(&call->v2_response, &call->status, tag);
}

void LoadPlan::Complete(const CallDeal& deal, UnaryInfer* call) const {
  if (options.protocol == Protocol::kFfnV1 || !call->status.ok()) return;
  call->status = ReadV2Answer(deal, call->v2_response, &call->response);
}

absl::StatusOr<std::unique_ptr<LoadPlan>> BuildLoadPlan(const LoadOptions& options) {
  if (auto s = ValidateLoadOptions(options); !s.ok()) return s;
  auto plan = std::make_unique<LoadPlan>();
  plan->options = options;
  plan->tokens = *TokenDistribution::Parse(options.tokens);
  const size_t targets = options.targets.size();
  for (int k = 0; k < options.connections; ++k) {
    for (size_t t = 0; t < targets; ++t) {
      Endpoint e;
      e.target = t;
      e.channel = MakeChannel(options.targets[t], k, options.lb_policy, options.security);
      e.stub = v1::FfnService::NewStub(e.channel);
      e.v2_stub = inference::GRPCInferenceService::NewStub(e.channel);
      plan->endpoints.push_back(std::move(e));
    }
  }
  if (options.protocol == Protocol::kV2) {
    std::vector<uint64_t> weights;
    if (absl::Status s = BuildV2Variants(*plan, weights); !s.ok()) return s;
    plan->variant_cycle = WeightedCycle(weights);
    return plan;
  }

  auto models = ListFromAny(*plan);
  if (!models.ok()) return models.status();
  auto weighted = SelectWeightedVariants(options.variants, *models);
  if (!weighted.ok()) return weighted.status();
  std::vector<uint64_t> weights;
  uint64_t total_weight = 0;
  for (const WeightedVariant& w : *weighted) {
    auto model = FindModel(*models, w.variant.model);
    if (!model.ok()) return model.status();
    if (auto s = CheckTokens(*model, plan->tokens.Max()); !s.ok()) return s;
    auto [input, inserted] = plan->inputs.try_emplace(w.variant.model);
    if (inserted) input->second = RandomInput(plan->tokens.Max(), model->d_model(), options.seed);
    plan->variants.push_back(w.variant);
    plan->flops_per_token.push_back(FlopsPerToken(*model));
    plan->d_model.push_back(model->d_model());
    weights.push_back(w.weight);
    total_weight += w.weight;
  }
  if (total_weight > 1'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("variant weights sum to ", total_weight, "; at most 1000000"));
  }
  plan->variant_cycle = WeightedCycle(weights);
  return plan;
}

}  // namespace ffn::client
