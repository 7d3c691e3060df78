#include "plan_watcher.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "ffn/server/proto_dtype.h"
#include "spdlog/spdlog.h"

namespace ffn {
namespace {

// The probe of `plan` in `compute` nearest `tokens` on a log scale, as the
// plan resolves a call of that size; 0 without probes.
int64_t NearestProbe(const TuneResult& plan, DataType compute, int64_t tokens) {
  int64_t nearest = 0;
  double best = 0;
  for (const TuneResult::Probe& p : plan.probes) {
    if (p.compute != compute) continue;
    const double distance = std::abs(std::log(static_cast<double>(tokens)) -
                                     std::log(static_cast<double>(p.m)));
    if (nearest == 0 || distance < best) {
      nearest = p.m;
      best = distance;
    }
  }
  return nearest;
}

}  // namespace

PlanWatcher::PlanWatcher(const ModelRegistry& registry, const ServerStats& stats, Metrics* metrics,
                         absl::Duration interval, int threads)
    : registry_(registry), stats_(stats), metrics_(metrics), interval_(interval), threads_(threads) {
  bool tuned = false;
  for (const auto& model : registry_.models()) tuned = tuned || model->block->Plan().has_value();
  if (tuned && interval_ > absl::ZeroDuration()) thread_ = std::thread([this] { Loop(); });
}

PlanWatcher::~PlanWatcher() { Stop(); }

void PlanWatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void PlanWatcher::Loop() {
  omp_set_num_threads(threads_);  // this thread's re-times, as an executor runs
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), interval_);
      if (stop_) return;
    }
    Check();
  }
}

void PlanWatcher::Check() {
  // Per probe, the engine calls since the last check: how long they took,
  // and how long the plan says they take.
  struct Window {
    uint64_t batches = 0;
    double served_us = 0, planned_us = 0;
  };
  std::map<ProbeKey, Window> windows;
  std::map<std::string, std::optional<TuneResult>> plans;
  const v1::GetStatsResponse stats = stats_.Snapshot(/*exact_batch_sizes=*/true);
  for (const v1::VariantStats& v : stats.variants()) {
    const Model* model = registry_.Find(v.variant().model());
    const std::optional<DataType> compute = FromProtoDType(v.variant().dtype());
    if (model == nullptr || !compute) continue;
    auto [it, added] = plans.try_emplace(model->config.name);
    if (added) it->second = model->block->Plan();
    if (!it->second) continue;
    const TuneResult& plan = *it->second;
    for (const v1::BatchSizeStats& size : v.batch_sizes()) {
      const int64_t tokens = size.tokens_from();
      const double total_us = size.compute_mean_us() * static_cast<double>(size.batches());
      // Each activation's batches apart: a batch shared by two activations
      // counts for both, served and planned alike.
      Seen& before = seen_[{model->config.name + "/" + v.variant().activation(), *compute, tokens}];
      const uint64_t batches = size.batches() - before.batches;
      const double served_us = total_us - before.compute_us;
      before = {size.batches(), total_us};
      const int64_t probe = NearestProbe(plan, *compute, tokens);
      const double planned_ms = plan.PlannedMs(*compute, static_cast<double>(tokens));
      if (batches == 0 || probe == 0 || planned_ms <= 0) continue;
      Window& w = windows[{model->config.name, *compute, probe}];
      w.batches += batches;
      w.served_us += served_us;
      w.planned_us += static_cast<double>(batches) * planned_ms * 1e3;
    }
  }
  for (const auto& [key, w] : windows) {
    if (w.batches < kMinBatches) continue;  // too few calls to say
    int& strikes = strikes_[key];
    int& needed = needed_.try_emplace(key, kStrikes).first->second;
    if (w.served_us <= kDriftFactor * w.planned_us) {
      strikes = 0;
      needed = kStrikes;
      continue;
    }
    if (++strikes < needed) continue;
    strikes = 0;
    needed = std::min(needed * 2, kStrikes << 6);
    const auto& [name, compute, m] = key;
    const Model* model = registry_.Find(name);
    absl::StatusOr<TuneResult::Probe> fresh = model->block->Retime(m, compute);
    if (!fresh.ok()) {
      spdlog::error("model {}: re-timing its plan at m={} {} failed: {}", name, m,
                    DataTypeName(compute), fresh.status().ToString());
      continue;
    }
    if (metrics_ != nullptr) metrics_->OnPlanRetime(name);
    spdlog::warn(
        "model {}: {} calls near m={} took {:.3f} ms on average against the plan's {:.3f}, over "
        "{:.1f}x for several checks running; re-timed: unfused {:.3f}, fused {:.3f} ms, now {}",
        name, DataTypeName(compute), m, w.served_us / 1e3 / static_cast<double>(w.batches),
        w.planned_us / 1e3 / static_cast<double>(w.batches), kDriftFactor, fresh->ms[0],
        fresh->ms[2], StrategyName(fresh->chosen));
  }
}

}  // namespace ffn
