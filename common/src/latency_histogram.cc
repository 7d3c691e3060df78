#include "ffn/common/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace ffn {

int LatencyHistogram::BucketIndex(uint64_t value) {
  if (value < 128) return static_cast<int>(value);
  const int msb = 63 - std::countl_zero(value);
  const int shift = msb - 6;  // value >> shift lies in [64, 127]
  const int top = static_cast<int>(value >> shift);
  return 128 + (shift - 1) * 64 + (top - 64);
}

uint64_t LatencyHistogram::BucketLow(int index) {
  if (index < 128) return static_cast<uint64_t>(index);
  const int shift = (index - 128) / 64 + 1;
  const uint64_t top = static_cast<uint64_t>((index - 128) % 64 + 64);
  return top << shift;
}

uint64_t LatencyHistogram::BucketHigh(int index) {
  if (index < 128) return static_cast<uint64_t>(index) + 1;
  const int shift = (index - 128) / 64 + 1;
  return BucketLow(index) + (uint64_t{1} << shift);
}

void LatencyHistogram::RecordNanos(int64_t nanos) {
  const uint64_t value = nanos < 0 ? 0 : static_cast<uint64_t>(nanos);
  ++counts_[BucketIndex(value)];
  ++count_;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += value;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void LatencyHistogram::Reset() { *this = LatencyHistogram(); }

double LatencyHistogram::MeanMicros() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / count_) / 1e3;
}
double LatencyHistogram::MinMicros() const {
  return count_ == 0 ? 0.0 : static_cast<double>(min_) / 1e3;
}
double LatencyHistogram::MaxMicros() const {
  return static_cast<double>(max_) / 1e3;
}

double LatencyHistogram::PercentileMicros(double percent) const {
  if (count_ == 0) return 0.0;
  percent = std::clamp(percent, 0.0, 100.0);
  // Rank of the sample wanted, 1-based: the smallest value with at least
  // percent % of samples at or below it.
  uint64_t rank = static_cast<uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  // The extremes are known exactly; no bucket rounding for them.
  if (rank == 1) return MinMicros();
  if (rank == count_) return MaxMicros();
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const double low = static_cast<double>(BucketLow(i));
      const double high = static_cast<double>(BucketHigh(i));
      const double mid = i < 128 ? low : (low + high - 1) / 2.0;
      const double clamped = std::clamp(mid, static_cast<double>(min_), static_cast<double>(max_));
      return clamped / 1e3;
    }
  }
  return static_cast<double>(max_) / 1e3;
}

}  // namespace ffn
