// How many OpenMP threads an engine call runs on, learnt from served calls.
//
// An executor has threads_per_executor OpenMP threads, and a large call wants
// them all. A small call served at low load can be faster on fewer: between
// calls the team's other threads sleep, and waking them while gRPC's threads
// (and, on a small host, the clients) hold the other cores costs about
// 100 us on a 2-vCPU host, more than a one-token int8 call's whole work
// (docs/BENCHMARKS.md, "Threads per call"). A benchmark calling back to back
// never sees that cost, so no start-up timing can decide it; the served calls
// do. Per token-count bucket (1, 2-3, 4-7, ..., as GetStats'), each candidate
// count (1, 2, 4, ..., and max_threads) keeps the times of its last kWindow
// timed calls, and a call runs on the count with the lowest median, where a
// count below max_threads must beat max_threads' median by kFewerMargin:
// switching between counts has costs of its own that no timing of either
// shows (calls near a tie served 9-11 % fewer tokens/s without the margin).
//
// Only while the server keeps up: a call whose batch was taken while other
// requests waited (a backlog) runs on max_threads, untimed. Under a backlog
// the team stays awake from call to call and holds its cores against gRPC's
// threads, a steady state that no short trial of it reproduces: timing
// trials there chose fewer threads and cost 5-8 % of the throughput
// (docs/BENCHMARKS.md, "Threads per call").
//
// A call on more threads than its executor's previous call pays for waking
// threads that a steady run on its count would have kept awake (or, at low
// load, would have had to wake as well: then the next call shows it), so it
// is not timed; counts are tried in pairs of calls, the second timed.
// Timing such calls would bias every comparison towards fewer threads.
//
// The choice follows the load: every kExplorePeriod-th call of a bucket
// starts a pair on another candidate in turn (every kFarExplorePeriod-th
// once that candidate's median is over kFarRatio times the best's), and a
// timed call fast enough to make its count the best (margin included) is
// followed by another on the same count until its median says whether it is. Exploring
// costs at most 2 (kFarRatio - 1) / kExplorePeriod = 1.6 % of a bucket's
// compute at close ratios, and 2 (ratio - 1) / kFarExplorePeriod beyond
// (0.8 % at 2x).
//
// Only batch-invariant models use it (the server's default): their answers
// have the same bits on any thread count (BatchInvariantTest.
// SameBitsOnAnyThreadCount), while oneDNN's primitives are built for the
// executor's count. Thread-safe: executors share one per queue.
//
// Example:
//   ffn::CallThreads threads(/*max_threads=*/2, /*adaptive=*/true);
//   const ffn::CallThreads::Choice next =
//       threads.Choose(/*tokens=*/1, /*backlog=*/false, /*previous_threads=*/2);
//   // ... omp_set_num_threads(next.threads), run the call, time it ...
//   if (next.timed) threads.Record(/*tokens=*/1, next.threads, /*compute_ns=*/90'000);
#ifndef FFN_SERVER_SRC_CALL_THREADS_H_
#define FFN_SERVER_SRC_CALL_THREADS_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace ffn {

class CallThreads {
 public:
  static constexpr int kWindow = 8;              // calls per candidate's median
  static constexpr int kExplorePeriod = 32;      // calls between explorations
  static constexpr int kFarExplorePeriod = 256;  // ... of a candidate far behind
  static constexpr double kFarRatio = 1.25;      // median over the best's: far behind
  static constexpr double kFewerMargin = 1.15;   // fewer threads: at least this much faster
  static constexpr int kBuckets = 31;            // token counts up to 2^31 - 1

  // max_threads: the executor's OpenMP threads (at least 1). adaptive false:
  // every call runs on max_threads.
  CallThreads(int max_threads, bool adaptive);

  struct Choice {
    int threads;
    bool timed;  // Record() its time: it runs on no more threads than the previous call
  };
  // The thread count to run the next call of `tokens` tokens on, after the
  // executor's previous call ran on `previous_threads`: until each candidate
  // has been timed kMinSamples times, the candidates in turn; then a
  // candidate whose last call would make it the best, or the second call of
  // an exploring pair, or on an exploring turn the next other candidate, or
  // else the best.
  // `backlog`: other requests were waiting when its batch was taken (then
  // max_threads, untimed).
  Choice Choose(int64_t tokens, bool backlog, int previous_threads) ABSL_LOCKS_EXCLUDED(mu_);

  // The engine time of a call Choose() sized and said to time; failed calls
  // are not recorded.
  void Record(int64_t tokens, int threads, int64_t compute_ns) ABSL_LOCKS_EXCLUDED(mu_);

  // The count with the lowest median for calls of `tokens` tokens taken
  // without a backlog, fewer than max_threads only by kFewerMargin
  // (max_threads until every candidate has been timed).
  int Best(int64_t tokens) const ABSL_LOCKS_EXCLUDED(mu_);

  const std::vector<int>& candidates() const { return candidates_; }

 private:
  static constexpr int kMinSamples = 3;
  struct Arm {
    std::array<int64_t, kWindow> ns{};
    int64_t samples = 0;  // recorded so far (the ring holds the last kWindow)
    double Median() const;  // of the last kWindow; +infinity before any
  };
  struct Bucket {
    std::vector<Arm> arms;  // one per candidate
    uint64_t calls = 0;
    size_t next_explored = 0;  // the candidate the next exploring turn tries
    int retry = -1;  // the candidate of the next call: an exploring pair's, or one that beat the best
  };
  static size_t BucketOf(int64_t tokens);
  int BestLocked(const Bucket& bucket) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  std::vector<int> candidates_;  // ascending; the last is max_threads
  mutable absl::Mutex mu_;
  std::array<Bucket, kBuckets> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ffn

#endif  // FFN_SERVER_SRC_CALL_THREADS_H_
