#include "ffn/kernels/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace ffn {

absl::Status MoeWeights::Validate() const {
  const int64_t dm = outer.d_model, dff = outer.d_ff, n = static_cast<int64_t>(experts.size());
  if (dm < 1 || dff < 1) return absl::InvalidArgumentError("d_model and d_ff must be positive");
  if (n < 1) return absl::InvalidArgumentError("a mixture of experts needs at least one expert");
  if (top_k < 1 || top_k > n) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k is ", top_k, "; it must be in [1, experts = ", n, "]"));
  }
  if (router.size() != static_cast<size_t>(n * dm)) {
    return absl::InvalidArgumentError(absl::StrCat("the router has ", router.size(),
                                                   " values, expected experts × d_model = ", n * dm));
  }
  for (int64_t e = 0; e < n; ++e) {
    const FfnWeights& w = experts[static_cast<size_t>(e)];
    if (w.kind != FfnKind::kGated || w.d_model != dm || w.d_ff != dff) {
      return absl::InvalidArgumentError(absl::StrCat("expert ", e, " is not a gated ", dm, "×", dff,
                                                     " FFN like the others"));
    }
  }
  if (shared) {
    if (shared->kind != FfnKind::kGated || shared->d_model != dm) {
      return absl::InvalidArgumentError(
          absl::StrCat("the shared expert is not a gated FFN of d_model ", dm));
    }
    if (shared_gate.size() != static_cast<size_t>(dm)) {
      return absl::InvalidArgumentError(absl::StrCat("the shared expert's gate has ",
                                                     shared_gate.size(), " values, expected ", dm));
    }
  }
  return absl::OkStatus();
}

MoeWeights RandomMoeWeights(const MoeShape& shape, uint64_t seed) {
  MoeWeights w;
  w.outer.kind = FfnKind::kGated;
  w.outer.d_model = shape.d_model;
  w.outer.d_ff = shape.d_ff;
  w.top_k = shape.top_k;
  w.normalize_top_k = true;
  const float scale = std::sqrt(3.0f / static_cast<float>(shape.d_model));
  w.router.resize(static_cast<size_t>(shape.experts * shape.d_model));
  FillUniform(seed, static_cast<RandomStream>(kRouterStream), scale, w.router);
  for (int64_t e = 0; e < shape.experts; ++e) {
    w.experts.push_back(RandomFfnWeights(FfnKind::kGated, shape.d_model, shape.d_ff,
                                         seed + 1 + static_cast<uint64_t>(e)));
  }
  if (shape.shared_d_ff > 0) {
    w.shared = RandomFfnWeights(FfnKind::kGated, shape.d_model, shape.shared_d_ff,
                                seed + 1 + static_cast<uint64_t>(shape.experts));
    w.shared_gate.resize(static_cast<size_t>(shape.d_model));
    FillUniform(seed, static_cast<RandomStream>(kSharedGateStream), scale, w.shared_gate);
  }
  return w;
}

MoeRouting RouteTokens(const MoeWeights& weights, const float* x, int64_t m, DataType compute) {
  const int64_t dm = weights.outer.d_model, n = weights.num_experts(), k = weights.top_k;
  const bool bf16 = compute == DataType::kBf16;
  auto rounded = [bf16](float v) { return bf16 ? Bf16ToFloat(FloatToBf16(v)) : v; };
  MoeRouting routing;
  routing.top_k = k;
  routing.ids.resize(static_cast<size_t>(m * k));
  routing.weights.resize(routing.ids.size());
  std::vector<double> probs(static_cast<size_t>(n));
  std::vector<int32_t> order(static_cast<size_t>(n));
  for (int64_t t = 0; t < m; ++t) {
    const float* xt = x + t * dm;
    double max_logit = -INFINITY;
    for (int64_t e = 0; e < n; ++e) {
      const float* wr = weights.router.data() + e * dm;
      double sum = 0;
      for (int64_t i = 0; i < dm; ++i) {
        sum += static_cast<double>(rounded(xt[i])) * static_cast<double>(rounded(wr[i]));
      }
      const double logit = rounded(static_cast<float>(sum));
      probs[static_cast<size_t>(e)] = logit;
      max_logit = std::max(max_logit, logit);
    }
    double total = 0;
    for (double& p : probs) total += (p = std::exp(p - max_logit));
    for (double& p : probs) p = static_cast<float>(p / total);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return probs[static_cast<size_t>(a)] > probs[static_cast<size_t>(b)];
    });
    float chosen_sum = 0;
    for (int64_t r = 0; r < k; ++r) chosen_sum += static_cast<float>(probs[static_cast<size_t>(order[static_cast<size_t>(r)])]);
    for (int64_t r = 0; r < k; ++r) {
      const int32_t id = order[static_cast<size_t>(r)];
      float w = static_cast<float>(probs[static_cast<size_t>(id)]);
      if (weights.normalize_top_k) w /= chosen_sum;
      routing.ids[static_cast<size_t>(t * k + r)] = id;
      routing.weights[static_cast<size_t>(t * k + r)] = rounded(w);
    }
  }
  return routing;
}

absl::Status ValidateRouting(const MoeRouting& routing, int64_t m, int64_t experts,
                             int64_t top_k) {
  const size_t want = static_cast<size_t>(m * top_k);
  if (routing.ids.size() != want || routing.weights.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        "routing has ", routing.ids.size(), " expert ids and ", routing.weights.size(),
        " weights; ", m, " tokens × top_k ", top_k, " needs ", want, " of each"));
  }
  for (int64_t t = 0; t < m; ++t) {
    for (int64_t r = 0; r < top_k; ++r) {
      const size_t i = static_cast<size_t>(t * top_k + r);
      const int32_t id = routing.ids[i];
      if (id < 0 || id >= experts) {
        return absl::InvalidArgumentError(absl::StrCat("routing: token ", t, " names expert ", id,
                                                       "; the model has experts 0..", experts - 1));
      }
      for (int64_t q = 0; q < r; ++q) {
        if (routing.ids[static_cast<size_t>(t * top_k + q)] == id) {
          return absl::InvalidArgumentError(
              absl::StrCat("routing: token ", t, " names expert ", id, " twice"));
        }
      }
      if (!std::isfinite(routing.weights[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("routing: token ", t, "'s weight for expert ", id, " is not finite"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace ffn
