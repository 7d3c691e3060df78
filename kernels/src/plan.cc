#include "plan.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ffn/common/status_macros.h"
#include "onednn_matmul.h"

namespace ffn {
namespace {

// Before tuning, auto runs fused for single tokens (the dot-product kernels
// match or beat oneDNN there on every shape measured, by 1.3-1.5x where the
// weights stream from memory) and unfused above.
constexpr int64_t kUntunedFusedTokens = 1;
// Tune() times each strategy over about this many ms (3 to 11 runs).
constexpr double kTuneSampleMs = 10;
// Token counts Tune() measures.
constexpr int64_t kTuneProbes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

double MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// The strategies auto chooses between (postops, oneDNN's activation
// approximations, runs only where a model asks for it, so it is not timed).
constexpr Strategy kTimed[] = {Strategy::kUnfused, Strategy::kFused};
// Index of a strategy in TuneResult::Probe::ms.
size_t Slot(Strategy s) { return s == Strategy::kUnfused ? 0 : s == Strategy::kPostops ? 1 : 2; }
// Re-timings of a point that is out of line with its neighbours, at most.
constexpr int kRetimes = 3;

// The minimum over rounds that run each timed strategy once in turn, so that
// a burst of noise falls on both alike and the minimum (the run least
// disturbed) is kept. An untimed warm-up per strategy builds primitives,
// packs weights and sizes the sample: 3 to 11 rounds, more for short calls.
absl::Status TimeInterleaved(const std::function<absl::Status(const FfnRun&)>& run,
                             FfnRun call, TuneResult::Probe& probe) {
  double warm_ms = 0;
  for (Strategy s : kTimed) {
    call.strategy = s;
    const auto warm = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(run(call));
    warm_ms = std::max(warm_ms, MillisSince(warm));
  }
  const int rounds =
      std::clamp(static_cast<int>(kTuneSampleMs / std::max(warm_ms, 1e-3)), 1, 5) * 2 + 1;
  for (Strategy s : kTimed) probe.ms[Slot(s)] = std::numeric_limits<double>::infinity();
  for (int round = 0; round < rounds; ++round) {
    for (Strategy s : kTimed) {
      call.strategy = s;
      const auto start = std::chrono::steady_clock::now();
      RETURN_IF_ERROR(run(call));
      probe.ms[Slot(s)] = std::min(probe.ms[Slot(s)], MillisSince(start));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const char* StrategyName(Strategy strategy) {
  switch (strategy) {
    case Strategy::kUnfused: return "unfused";
    case Strategy::kPostops: return "postops";
    case Strategy::kFused: return "fused";
    case Strategy::kAuto: return "auto";
  }
  return "unknown";
}

std::optional<Strategy> ParseStrategy(std::string_view name) {
  for (Strategy s : {Strategy::kUnfused, Strategy::kPostops, Strategy::kFused, Strategy::kAuto}) {
    if (name == StrategyName(s)) return s;
  }
  return std::nullopt;
}

std::vector<Strategy> ConcreteStrategies() {
  return {Strategy::kUnfused, Strategy::kPostops, Strategy::kFused};
}

const char* StrategyAccuracy(Strategy strategy) {
  if (strategy == Strategy::kPostops) {
    return "oneDNN eltwise post-ops: the negative tails of gelu, gelu_tanh, silu, quick_gelu, "
           "elu and sigmoid lose every digit (up to 2^24 ULP), relu(NaN) = 0; see docs/ACCURACY.md";
  }
  return "ffnserve kernels: each activation within 0.9 ULP of fp64 where the result is a normal "
         "float, NaN propagates; bf16 compute rounds that value once; see docs/ACCURACY.md";
}

std::string TuneResult::ToString() const {
  std::string out;
  for (const Probe& p : probes) {
    absl::StrAppend(&out, out.empty() ? "" : "; ", DataTypeName(p.compute), " m=", p.m, " ",
                    StrategyName(p.chosen), " (");
    for (int i = 0; i < 3; ++i) {
      absl::StrAppend(&out, i ? ", " : "", StrategyName(ConcreteStrategies()[i]), " ",
                      p.ms[i] < 0 ? std::string("n/a") : absl::StrFormat("%.3g", p.ms[i]));
    }
    absl::StrAppend(&out, " ms)");
  }
  if (retimed > 0) absl::StrAppend(&out, "; ", retimed, " out-of-line points timed again");
  return out;
}

double TuneResult::PlannedMs(DataType compute, double m) const {
  const Probe* below = nullptr;
  const Probe* above = nullptr;
  for (const Probe& p : probes) {
    if (p.compute != compute) continue;
    if (p.m <= m && (below == nullptr || p.m > below->m)) below = &p;
    if (p.m >= m && (above == nullptr || p.m < above->m)) above = &p;
  }
  auto chosen_ms = [](const Probe& p) {
    for (int i = 0; i < 3; ++i) {
      if (ConcreteStrategies()[i] == p.chosen) return p.ms[i];
    }
    return -1.0;
  };
  if (below == nullptr && above == nullptr) return -1;
  if (below == nullptr) return chosen_ms(*above);
  if (above == nullptr || above == below) return chosen_ms(*below);
  const double t = (m - static_cast<double>(below->m)) / static_cast<double>(above->m - below->m);
  return chosen_ms(*below) + t * (chosen_ms(*above) - chosen_ms(*below));
}

Activation RepresentativeActivation(FfnKind kind) {
  return kind == FfnKind::kGated ? Activation::kSwiglu : Activation::kGelu;
}

Strategy StrategyPlan::Resolve(Strategy requested, int64_t m, DataType compute,
                               Activation activation, const ActivationParams& params) const {
  if (requested != Strategy::kAuto) return requested;
  absl::MutexLock lock(&mu_);
  const std::vector<PlanEntry>& p = entries_[compute == DataType::kBf16];
  if (p.empty()) return m <= kUntunedFusedTokens ? Strategy::kFused : Strategy::kUnfused;
  const double lm = std::log(static_cast<double>(m));
  const PlanEntry* best = &p.front();
  for (const PlanEntry& entry : p) {
    if (std::abs(std::log(static_cast<double>(entry.m)) - lm) <
        std::abs(std::log(static_cast<double>(best->m)) - lm)) {
      best = &entry;
    }
  }
  if (best->chosen == Strategy::kPostops && !PostopsSupports(activation, params)) return best->ours;
  return best->chosen;
}

void StrategyPlan::Set(std::vector<PlanEntry> f32, std::vector<PlanEntry> bf16) {
  absl::MutexLock lock(&mu_);
  entries_[0] = std::move(f32);
  entries_[1] = std::move(bf16);
}

void StrategyPlan::Force(Strategy strategy) {
  absl::MutexLock lock(&mu_);
  for (std::vector<PlanEntry>& entries : entries_) {
    entries.clear();
    if (strategy != Strategy::kAuto) {
      entries.push_back({1, strategy, strategy == Strategy::kPostops ? Strategy::kUnfused : strategy});
    }
  }
}

std::vector<size_t> OutOfLine(const std::vector<int64_t>& m, const std::vector<double>& ms) {
  std::vector<size_t> out;
  for (size_t i = 0; i < m.size(); ++i) {
    // A call takes no longer than a larger one, nor longer than a smaller one
    // scaled by the token ratio: the tightest of those bounds from the
    // neighbours on either side.
    double bound = std::numeric_limits<double>::infinity();
    if (i > 0) {
      bound = std::min(bound, ms[i - 1] * static_cast<double>(m[i]) / static_cast<double>(m[i - 1]));
    }
    if (i + 1 < m.size()) bound = std::min(bound, ms[i + 1]);
    if (ms[i] > kOutOfLineFactor * bound) out.push_back(i);
  }
  return out;
}

absl::Status TimeProbe(int64_t d_model, Activation activation,
                       const std::function<absl::Status(const FfnRun&)>& run,
                       TuneResult::Probe& probe) {
  std::vector<float> x(static_cast<size_t>(probe.m * d_model)), y(x.size());
  FillUniform(11, RandomStream::kInput, kRandomInputScale, x);
  probe.ms[Slot(Strategy::kPostops)] = -1;
  RETURN_IF_ERROR(TimeInterleaved(
      run, {activation, probe.compute, x.data(), DataType::kF32, probe.m, y.data(), DataType::kF32},
      probe));
  probe.chosen = probe.ms[2] <= probe.ms[0] ? Strategy::kFused : Strategy::kUnfused;
  return absl::OkStatus();
}

absl::StatusOr<TuneResult> MeasureStrategies(int64_t max_m, int64_t d_model, Activation activation,
                                           const std::function<absl::Status(const FfnRun&)>& run) {
  std::vector<int64_t> probes;
  for (int64_t p : kTuneProbes) {
    if (p < max_m) probes.push_back(p);
  }
  const int64_t last = std::min<int64_t>(max_m, kTuneProbes[std::size(kTuneProbes) - 1]);
  if (probes.empty() || probes.back() != last) probes.push_back(last);
  std::vector<float> x(static_cast<size_t>(probes.back() * d_model)), y(x.size());
  FillUniform(11, RandomStream::kInput, kRandomInputScale, x);
  TuneResult out;
  for (DataType compute : {DataType::kF32, DataType::kBf16}) {
    std::vector<TuneResult::Probe> measured;
    for (int64_t m : probes) {
      TuneResult::Probe probe{compute, m, {-1, -1, -1}, Strategy::kUnfused};
      RETURN_IF_ERROR(TimeInterleaved(
          run, {activation, compute, x.data(), DataType::kF32, m, y.data(), DataType::kF32}, probe));
      measured.push_back(probe);
    }
    // A point far above what its neighbours allow was disturbed: time it
    // again (keeping the minimum) until it is in line, a few times at most.
    for (int retime = 0; retime < kRetimes; ++retime) {
      std::vector<size_t> again;
      for (Strategy s : kTimed) {
        std::vector<double> ms;
        for (const TuneResult::Probe& p : measured) ms.push_back(p.ms[Slot(s)]);
        for (size_t i : OutOfLine(probes, ms)) again.push_back(i);
      }
      if (again.empty()) break;
      std::sort(again.begin(), again.end());
      again.erase(std::unique(again.begin(), again.end()), again.end());
      for (size_t i : again) {
        TuneResult::Probe fresh = measured[i];
        RETURN_IF_ERROR(TimeInterleaved(run,
                                        {activation, compute, x.data(), DataType::kF32, probes[i],
                                         y.data(), DataType::kF32},
                                        fresh));
        for (Strategy s : kTimed) {
          measured[i].ms[Slot(s)] = std::min(measured[i].ms[Slot(s)], fresh.ms[Slot(s)]);
        }
        ++out.retimed;
      }
    }
    for (TuneResult::Probe& probe : measured) {
      probe.chosen = probe.ms[2] <= probe.ms[0] ? Strategy::kFused : Strategy::kUnfused;
      out.probes.push_back(probe);
    }
  }
  return out;
}

}  // namespace ffn
