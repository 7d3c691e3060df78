// While serving, keeps tuned plans honest: every `interval` it compares each
// tuned model's served engine time with what its plan says, per probe of the
// plan (a batch counts for the probe nearest its size, as the plan resolves
// it), and re-times a probe whose served time stayed above 1.5x the plan for
// three checks running (FfnBlock::Retime, on the watcher's thread with an
// executor's thread count), swapping the faster strategy in. A plan tuned
// while the machine was busy, or a machine whose speed changed, corrects
// itself; each re-time is logged and counted (ffn_plan_retimes_total).
//
// The served time is the scheduler's engine-call time (ServerStats'
// batch sizes: the call with copying its rows in and out), the plan's the
// tuner's minimum for the model's representative activation. For models of
// real size served runs 1.0-1.3x the plan on a quiet machine, so 1.5x
// sustained is drift; for tiny ones the copying alone can exceed it, so a
// probe whose ratio stays high after a re-time needs twice the strikes for
// the next (3, 6, 12, ... checks; back to 3 once it is in line). Re-timing
// runs next to serving and competes with it for the cores, which is the
// machine the plan must suit.
//
// Example:
//   void Serve(const ffn::ModelRegistry& registry, const ffn::ServerStats& stats) {
//     ffn::PlanWatcher watcher(registry, stats, /*metrics=*/nullptr, absl::Seconds(10),
//                              /*threads=*/2);
//     watcher.Stop();  // once serving ends
//   }
#ifndef FFN_SERVER_SRC_PLAN_WATCHER_H_
#define FFN_SERVER_SRC_PLAN_WATCHER_H_

#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ffn/kernels/dtype.h"
#include "ffn/server/metrics.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/stats.h"

namespace ffn {

class PlanWatcher {
 public:
  // Served time above this multiple of the plan's is a strike.
  static constexpr double kDriftFactor = 1.5;
  // Strikes in a row that re-time a probe.
  static constexpr int kStrikes = 3;
  // Engine calls a probe needs in a check for the check to count.
  static constexpr uint64_t kMinBatches = 5;

  // Starts the thread if some model has a tuned plan. `metrics` may be null;
  // every reference outlives the watcher.
  PlanWatcher(const ModelRegistry& registry, const ServerStats& stats, Metrics* metrics,
              absl::Duration interval, int threads);
  ~PlanWatcher();  // Stop()s
  PlanWatcher(const PlanWatcher&) = delete;
  PlanWatcher& operator=(const PlanWatcher&) = delete;

  // Ends the thread (a re-time under way finishes first). Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // (model, compute dtype, tokens of an engine call)
  using SizeKey = std::tuple<std::string, DataType, int64_t>;
  // (model, compute dtype, probe m)
  using ProbeKey = std::tuple<std::string, DataType, int64_t>;
  struct Seen {
    uint64_t batches = 0;
    double compute_us = 0;  // summed
  };

  void Loop();
  // One comparison of every tuned model with its plan; re-times what has
  // drifted.
  void Check();

  const ModelRegistry& registry_;
  const ServerStats& stats_;
  Metrics* const metrics_;
  const absl::Duration interval_;
  const int threads_;
  std::map<SizeKey, Seen> seen_;    // totals at the last check
  std::map<ProbeKey, int> strikes_;
  std::map<ProbeKey, int> needed_;  // strikes the next re-time takes
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace ffn

#endif  // FFN_SERVER_SRC_PLAN_WATCHER_H_
