#include "moe_layer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "ffn/common/status_macros.h"

namespace ffn {

absl::StatusOr<std::unique_ptr<MoeLayer>> MoeLayer::Create(MoeWeights weights,
                                                           const ActivationParams& params,
                                                           Quantization quantization) {
  auto layer = std::make_unique<MoeLayer>();
  for (FfnWeights& expert : weights.experts) {
    ASSIGN_OR_RETURN(std::unique_ptr<FfnBlock> block, FfnBlock::Create(std::move(expert), params, quantization));
    layer->experts_.push_back(std::move(block));
  }
  weights.experts.clear();
  if (weights.shared) {
    ASSIGN_OR_RETURN(layer->shared_, FfnBlock::Create(std::move(*weights.shared), params, quantization));
    weights.shared.reset();
  }
  layer->meta_ = std::move(weights);
  return layer;
}

void MoeLayer::SetStrategy(Strategy strategy) {
  for (auto& expert : experts_) expert->SetStrategy(strategy);
  if (shared_ != nullptr) shared_->SetStrategy(strategy);
}

namespace {

// Consecutive rows sharing an activation, for an expert call.
std::vector<ActivationSegment> Segments(std::span<const Activation> activations) {
  std::vector<ActivationSegment> segments;
  for (Activation a : activations) {
    if (!segments.empty() && segments.back().activation == a) {
      ++segments.back().rows;
    } else {
      segments.push_back({1, a});
    }
  }
  return segments;
}

}  // namespace

absl::Status MoeLayer::Run(const FfnRun& run, const Activation* row_activation, const float* x,
                           int64_t m, float* y) const {
  const int64_t dm = meta_.outer.d_model, k = meta_.top_k, n = num_experts();
  const std::span<const Activation> activations(row_activation, static_cast<size_t>(m));
  MoeRouting routed;
  const MoeRouting* routing = run.routing;
  if (routing != nullptr && routing->ids.size() == static_cast<size_t>(m * k) &&
      std::any_of(routing->ids.begin(), routing->ids.end(), [](int32_t id) { return id == -1; })) {
    // Tokens whose ids are -1 take the router's choice (a batch of requests
    // of which only some give their routing).
    routed = RouteTokens(meta_, x, m, run.compute);
    for (int64_t t = 0; t < m; ++t) {
      if (routing->ids[static_cast<size_t>(t * k)] == -1) continue;
      for (int64_t r = 0; r < k; ++r) {
        const size_t i = static_cast<size_t>(t * k + r);
        routed.ids[i] = routing->ids[i];
        routed.weights[i] = routing->weights[i];
      }
    }
    routing = &routed;
  }
  if (routing != nullptr) {
    RETURN_IF_ERROR(ValidateRouting(*routing, m, n, k));
  } else {
    routed = RouteTokens(meta_, x, m, run.compute);
    routing = &routed;
  }
  if (run.routing_out != nullptr) *run.routing_out = *routing;
  if (run.counters != nullptr) {
    run.counters->tokens.assign(static_cast<size_t>(n), 0);
    run.counters->seconds.assign(static_cast<size_t>(n), 0.0);
  }
  // Each token's expert outputs by rank: slot t·k + r.
  std::vector<float> slots(static_cast<size_t>(m * k * dm));
  // The slots routed to each expert, in token order; experts with none
  // are skipped, the busiest first.
  std::vector<std::vector<int64_t>> picked(static_cast<size_t>(n));
  for (int64_t s = 0; s < m * k; ++s) {
    picked[static_cast<size_t>(routing->ids[static_cast<size_t>(s)])].push_back(s);
  }
  std::vector<int64_t> active;
  for (int64_t e = 0; e < n; ++e) {
    if (!picked[static_cast<size_t>(e)].empty()) active.push_back(e);
  }
  std::stable_sort(active.begin(), active.end(), [&](int64_t a, int64_t b) {
    return picked[static_cast<size_t>(a)].size() > picked[static_cast<size_t>(b)].size();
  });
  // One expert's call on its tokens, its answers into their slots.
  auto run_expert = [&](int64_t e) -> absl::Status {
    const std::vector<int64_t>& slots_of = picked[static_cast<size_t>(e)];
    const int64_t rows = static_cast<int64_t>(slots_of.size());
    std::vector<float> xe(static_cast<size_t>(rows * dm)), ye(xe.size());
    std::vector<Activation> row_activations(static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t token = slots_of[static_cast<size_t>(i)] / k;
      std::copy(x + token * dm, x + (token + 1) * dm, xe.begin() + i * dm);
      row_activations[static_cast<size_t>(i)] = activations[static_cast<size_t>(token)];
    }
    const std::vector<ActivationSegment> segments = Segments(row_activations);
    FfnRun call{segments.front().activation, run.compute, xe.data(), DataType::kF32, rows,
                ye.data(), DataType::kF32};
    call.strategy = run.strategy;
    call.batch_invariant = run.batch_invariant;
    if (segments.size() > 1) call.segments = segments;
    const auto start = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(experts_[static_cast<size_t>(e)]->Run(call));
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    if (run.counters != nullptr) {
      run.counters->tokens[static_cast<size_t>(e)] = rows;
      run.counters->seconds[static_cast<size_t>(e)] = took.count();
    }
    for (int64_t i = 0; i < rows; ++i) {
      std::copy(ye.begin() + i * dm, ye.begin() + (i + 1) * dm,
                slots.begin() + slots_of[static_cast<size_t>(i)] * dm);
    }
    return absl::OkStatus();
  };
  // With at least as many busy experts as threads, each thread runs whole
  // experts on one core (no split of an expert's few columns, no barrier per
  // expert); otherwise each expert call uses every thread. A call's bits do
  // not depend on its thread count, so both give the same answers.
  const int threads = omp_get_max_threads();
  if (threads > 1 && static_cast<int64_t>(active.size()) >= threads) {
    std::vector<absl::Status> status(active.size());
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = 0; i < active.size(); ++i) {
      omp_set_num_threads(1);
      status[i] = run_expert(active[i]);
    }
    for (const absl::Status& s : status) RETURN_IF_ERROR(s);
  } else {
    for (int64_t e : active) RETURN_IF_ERROR(run_expert(e));
  }
  // y[t] = Σ_r w[t, r] · slot[t, r], in rank order.
  for (int64_t t = 0; t < m; ++t) {
    float* yt = y + t * dm;
    std::fill(yt, yt + dm, 0.0f);
    for (int64_t r = 0; r < k; ++r) {
      const float w = routing->weights[static_cast<size_t>(t * k + r)];
      const float* slot = slots.data() + (t * k + r) * dm;
      for (int64_t j = 0; j < dm; ++j) yt[j] += w * slot[j];
    }
  }
  if (shared_ != nullptr) {
    // + σ(x·g) · shared(x), every token.
    const std::vector<ActivationSegment> segments = Segments(activations);
    std::vector<float> ye(static_cast<size_t>(m * dm));
    FfnRun call{segments.front().activation, run.compute, x, DataType::kF32, m, ye.data(),
                DataType::kF32};
    call.strategy = run.strategy;
    call.batch_invariant = run.batch_invariant;
    if (segments.size() > 1) call.segments = segments;
    RETURN_IF_ERROR(shared_->Run(call));
    for (int64_t t = 0; t < m; ++t) {
      double g = 0;
      for (int64_t j = 0; j < dm; ++j) {
        g += static_cast<double>(meta_.shared_gate[static_cast<size_t>(j)]) * x[t * dm + j];
      }
      const float scale = static_cast<float>(1.0 / (1.0 + std::exp(-g)));
      for (int64_t j = 0; j < dm; ++j) y[t * dm + j] += scale * ye[static_cast<size_t>(t * dm + j)];
    }
  }
  return absl::OkStatus();
}

}  // namespace ffn
