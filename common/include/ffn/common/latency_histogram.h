// A log-linear latency histogram with bounded relative error.
//
// Values are recorded in nanoseconds into buckets that are exact below 128 ns
// and keep 64 sub-buckets per power of two above, so any reported percentile
// is within 1/64 (1.6 %) of a recorded value: at least two significant digits.
// Memory is fixed (about 30 KiB); recording is O(1) and never sorts samples.
//
// Example:
//   ffn::LatencyHistogram h;
//   h.RecordNanos(1500);
//   double p99_us = h.PercentileMicros(99.0);
//
// Not thread-safe: guard it, or keep one per thread and Merge().
#ifndef FFN_COMMON_LATENCY_HISTOGRAM_H_
#define FFN_COMMON_LATENCY_HISTOGRAM_H_

#include <array>
#include <cstdint>

namespace ffn {

class LatencyHistogram {
 public:
  // Records one value; negative values count as 0.
  void RecordNanos(int64_t nanos);
  // Adds every sample of `other`.
  void Merge(const LatencyHistogram& other);
  void Reset();

  uint64_t count() const { return count_; }
  // Exact mean, min and max of the recorded values (0 when empty).
  double MeanMicros() const;
  double MinMicros() const;
  double MaxMicros() const;
  // The value at or below which `percent` % of samples lie (0 <= percent <= 100),
  // reported as the midpoint of its bucket, clamped to [min, max]. 0 when empty.
  double PercentileMicros(double percent) const;

 private:
  static constexpr int kSubBucketBits = 7;  // 128 exact values, then 64 per octave
  static constexpr int kBuckets = 128 + 56 * 64;
  static int BucketIndex(uint64_t value);
  static uint64_t BucketLow(int index);
  static uint64_t BucketHigh(int index);  // exclusive

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace ffn

#endif  // FFN_COMMON_LATENCY_HISTOGRAM_H_
