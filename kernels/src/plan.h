// The auto plan: which strategy runs a call of m tokens in each compute
// dtype, and how Tune() measures it.
#ifndef FFN_KERNELS_SRC_PLAN_H_
#define FFN_KERNELS_SRC_PLAN_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ffn/kernels/activation.h"
#include "ffn/kernels/dtype.h"
#include "ffn/kernels/ffn_block.h"

namespace ffn {

// The activation a block is prepared, tuned and described with: gelu for
// plain models, swiglu for gated ones. The one place this is chosen.
Activation RepresentativeActivation(FfnKind kind);

// One probe of the plan: the strategy for token counts near `m`, and the
// faster of ours for activations postops cannot run.
struct PlanEntry {
  int64_t m;
  Strategy chosen, ours;
};

// Per compute dtype, the probes ascending by m. Thread-safe: calls may
// resolve while another thread replaces the plan.
class StrategyPlan {
 public:
  // `requested`, or for kAuto the entry nearest m on a log scale (its
  // `ours` where postops cannot run `activation`); with no entries, fused
  // for a single token and unfused above.
  Strategy Resolve(Strategy requested, int64_t m, DataType compute, Activation activation,
                   const ActivationParams& params) const;
  // Replaces both dtypes' entries.
  void Set(std::vector<PlanEntry> f32, std::vector<PlanEntry> bf16);
  // kAuto: back to the untuned rule; otherwise `strategy` at every m.
  void Force(Strategy strategy);

 private:
  mutable absl::Mutex mu_;
  std::vector<PlanEntry> entries_[2] ABSL_GUARDED_BY(mu_);  // [f32, bf16]
};

// A point counts as disturbed when it is more than this many times what its
// neighbours allow (OutOfLine).
inline constexpr double kOutOfLineFactor = 2.0;

// The indices of the points of one strategy's times `ms` at token counts `m`
// (ascending) that are more than kOutOfLineFactor above the bound their
// neighbours set: no more than the next larger count's time, nor than the
// next smaller count's time scaled by the token ratio.
std::vector<size_t> OutOfLine(const std::vector<int64_t>& m, const std::vector<double>& ms);

// Times unfused and fused through `run` at the probe token counts for max_m
// (1, 2, 4, ..., 512 below max_m, and min(max_m, 512)) in both compute
// dtypes, on seeded inputs of `d_model` columns with `activation`: the
// minimum over interleaved rounds, and points OutOfLine with their
// neighbours timed again (up to 3 times). Chooses the faster per probe
// (postops is never timed nor chosen).
absl::StatusOr<TuneResult> MeasureStrategies(int64_t max_m, int64_t d_model, Activation activation,
                                           const std::function<absl::Status(const FfnRun&)>& run);

// Times unfused and fused at probe.m tokens of probe.compute as
// MeasureStrategies times one point, and sets probe.ms and probe.chosen.
absl::Status TimeProbe(int64_t d_model, Activation activation,
                       const std::function<absl::Status(const FfnRun&)>& run,
                       TuneResult::Probe& probe);

}  // namespace ffn

#endif  // FFN_KERNELS_SRC_PLAN_H_
