// Per-variant counters and latency histograms, served by GetStats.
//
// A variant is (model, activation, dtype). Rates are given over the server's
// uptime and over a sliding window of whole seconds (window_seconds).
// Thread-safe.
#ifndef FFN_SERVER_STATS_H_
#define FFN_SERVER_STATS_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ffn/common/latency_histogram.h"
#include "ffn/kernels/ffn_block.h"
#include "ffn/server/variant_key.h"
#include "ffn/v1/ffn.pb.h"

namespace ffn {

class Metrics;

class ServerStats {
 public:
  // Also feeds `metrics`, if not null, so every figure has one source.
  explicit ServerStats(double window_seconds, Metrics* metrics = nullptr);

  // A request answered OK.
  void RecordSuccess(const VariantKey& variant, int64_t tokens, const RequestTimings& timings)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A request whose variant was known but that failed with `code`.
  void RecordError(const VariantKey& variant, absl::StatusCode code) ABSL_LOCKS_EXCLUDED(mu_);
  // A request rejected before its variant was known.
  void RecordRejected(absl::StatusCode code) ABSL_LOCKS_EXCLUDED(mu_);
  // One engine call of `tokens` tokens in which `variant` had rows: its
  // share of the flops and of the compute time (a batch of several variants
  // is recorded once for each, each with the batch's size), and the whole
  // call's time (batch_compute_ns; -1: the share is the whole), and the
  // OpenMP threads it ran on (0: not said).
  void RecordBatch(const VariantKey& variant, int64_t tokens, double flops, int64_t compute_ns,
                   int64_t batch_compute_ns = -1, int threads = 0) ABSL_LOCKS_EXCLUDED(mu_);
  // One engine call of mixture-of-experts model `model`: each expert's
  // tokens and seconds.
  void RecordExperts(const std::string& model, const MoeCounters& counters)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Current depth of a variant's queue (metrics gauges only).
  void SetQueueDepth(const VariantKey& variant, int64_t requests, int64_t tokens);

  // An FfnService call began, or ended; `cancelled`: it ended without the
  // client having the service's answer (the client went away, or the drain
  // timed out and gRPC cut the call off), whatever the request's own count
  // says.
  void RecordCallStarted() ABSL_LOCKS_EXCLUDED(mu_);
  void RecordCallEnded(bool cancelled) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until no call is in flight or `deadline` has passed; true if none is.
  bool AwaitNoCallsInFlight(absl::Time deadline) const ABSL_LOCKS_EXCLUDED(mu_);
  // Calls that ended cancelled since start.
  uint64_t cancelled_calls() const ABSL_LOCKS_EXCLUDED(mu_);

  // exact_batch_sizes: VariantStats.batch_sizes has one entry per token
  // count seen (tokens_from == tokens_to) instead of power-of-two buckets.
  v1::GetStatsResponse Snapshot(bool exact_batch_sizes = false) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Clock = std::chrono::steady_clock;
  struct Second {
    int64_t index = -1;  // whole seconds since start
    uint64_t requests = 0;
    uint64_t tokens = 0;
  };
  struct Variant {
    uint64_t requests = 0;
    uint64_t tokens = 0;
    uint64_t errors = 0;
    uint64_t expired = 0;
    uint64_t queue_full = 0;
    uint64_t batches = 0;
    double flops = 0;
    int64_t batch_compute_ns = 0;
    LatencyHistogram total, queue, compute;
    LatencyHistogram batch_tokens;  // "nanoseconds" = tokens
    struct BatchSize {
      uint64_t batches = 0;
      int64_t compute_ns = 0;
      int64_t threads = 0;  // summed over the batches
    };
    std::map<int64_t, BatchSize> by_size;  // engine calls by token count
    int64_t last_success_unix_ms = 0;
    std::vector<Second> seconds;  // ring, one slot per second of the window
  };
  Variant& Get(const VariantKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t SecondIndex(Clock::time_point t) const;

  const Clock::time_point start_;
  const int window_seconds_;
  Metrics* const metrics_;
  mutable absl::Mutex mu_;
  std::map<VariantKey, Variant> variants_ ABSL_GUARDED_BY(mu_);
  struct Experts {
    std::vector<uint64_t> tokens;
    std::vector<double> seconds;
  };
  std::map<std::string, Experts> experts_ ABSL_GUARDED_BY(mu_);
  uint64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t calls_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t cancelled_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ffn

#endif  // FFN_SERVER_STATS_H_
