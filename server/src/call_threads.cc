#include "call_threads.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace ffn {

double CallThreads::Arm::Median() const {
  const int n = static_cast<int>(std::min<int64_t>(samples, kWindow));
  if (n == 0) return std::numeric_limits<double>::infinity();
  // Insertion sort of at most kWindow values.
  std::array<int64_t, kWindow> sorted = ns;
  for (int i = 1; i < n; ++i) {
    for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; --j) std::swap(sorted[j - 1], sorted[j]);
  }
  return n % 2 == 1 ? static_cast<double>(sorted[n / 2])
                    : 0.5 * static_cast<double>(sorted[n / 2 - 1] + sorted[n / 2]);
}

CallThreads::CallThreads(int max_threads, bool adaptive) {
  max_threads = std::max(1, max_threads);
  if (adaptive) {
    for (int n = 1; n < max_threads; n *= 2) candidates_.push_back(n);
  }
  candidates_.push_back(max_threads);
  for (Bucket& bucket : buckets_) bucket.arms.resize(candidates_.size());
}

size_t CallThreads::BucketOf(int64_t tokens) {
  size_t bucket = 0;  // tokens in [2^bucket, 2^(bucket+1))
  while (bucket + 1 < kBuckets && tokens >= (int64_t{2} << bucket)) ++bucket;
  return bucket;
}

int CallThreads::BestLocked(const Bucket& bucket) const {
  const size_t n = candidates_.size();
  for (const Arm& arm : bucket.arms) {
    if (arm.samples < kMinSamples) return static_cast<int>(n - 1);
  }
  // Fewer threads only by a margin over them all.
  size_t best = n - 1;
  double best_ns = bucket.arms[best].Median() / kFewerMargin;
  for (size_t i = 0; i + 1 < n; ++i) {
    const double ns = bucket.arms[i].Median();
    if (ns < best_ns) {
      best = i;
      best_ns = ns;
    }
  }
  return static_cast<int>(best);
}

CallThreads::Choice CallThreads::Choose(int64_t tokens, bool backlog, int previous_threads) {
  const size_t n = candidates_.size();
  if (n == 1 || backlog) return {candidates_.back(), false};
  absl::MutexLock lock(&mu_);
  Bucket& bucket = buckets_[BucketOf(tokens)];
  const auto choice = [&](size_t arm) {
    return Choice{candidates_[arm], candidates_[arm] <= previous_threads};
  };
  // Timing every candidate first: the one with the fewest timed calls (an
  // untimed call leaves it the fewest, so the next call repeats it).
  size_t fewest = 0;
  for (size_t i = 1; i < n; ++i) {
    if (bucket.arms[i].samples < bucket.arms[fewest].samples) fewest = i;
  }
  if (bucket.arms[fewest].samples < kMinSamples) return choice(fewest);

  const size_t best = static_cast<size_t>(BestLocked(bucket));
  ++bucket.calls;
  if (bucket.retry >= 0) {
    const size_t retry = static_cast<size_t>(bucket.retry);
    bucket.retry = -1;
    if (retry != best) return choice(retry);
  }
  if (bucket.calls % kExplorePeriod == 0) {
    size_t other = bucket.next_explored % n;
    if (other == best) other = (other + 1) % n;
    bucket.next_explored = other + 1;
    const bool close = bucket.arms[other].Median() <= kFarRatio * bucket.arms[best].Median();
    if (close || bucket.calls % kFarExplorePeriod == 0) {
      bucket.retry = static_cast<int>(other);  // the second call of the pair
      return choice(other);
    }
  }
  return choice(best);
}

void CallThreads::Record(int64_t tokens, int threads, int64_t compute_ns) {
  if (candidates_.size() == 1) return;
  const auto it = std::find(candidates_.begin(), candidates_.end(), threads);
  if (it == candidates_.end()) return;
  const size_t index = static_cast<size_t>(it - candidates_.begin());
  absl::MutexLock lock(&mu_);
  Bucket& bucket = buckets_[BucketOf(tokens)];
  Arm& arm = bucket.arms[index];
  arm.ns[static_cast<size_t>(arm.samples % kWindow)] = compute_ns;
  ++arm.samples;
  // While the counts are first timed, Choose() takes them in turn itself.
  for (const Arm& each : bucket.arms) {
    if (each.samples < kMinSamples) return;
  }
  // Timed again while its times would make it the best: below the best's
  // median, and by kFewerMargin where that is every thread; every thread
  // comes back within the margin of a count below it.
  const size_t best = static_cast<size_t>(BestLocked(bucket)), all = candidates_.size() - 1;
  double bar = bucket.arms[best].Median();
  if (index != all && best == all) bar /= kFewerMargin;
  if (index == all) bar *= kFewerMargin;
  if (index != best && static_cast<double>(compute_ns) < bar) {
    bucket.retry = static_cast<int>(index);
  }
}

int CallThreads::Best(int64_t tokens) const {
  absl::MutexLock lock(&mu_);
  return candidates_[static_cast<size_t>(BestLocked(buckets_[BucketOf(tokens)]))];
}

}  // namespace ffn
