#include "load_plan.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
    auto models = ListModels(*plan.endpoints[t].stub, plan.options.timeout_seconds);
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
    return invalid("stream runs a closed loop over InferStream; it cannot take a rate");
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
      plan->endpoints.push_back(std::move(e));
    }
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
