// Tests of LatencyHistogram against exact statistics of known samples.
//
// The header promises: min, max and mean exact; any percentile within 1/64 of
// the recorded value at that rank; 0 for everything when empty.
#include "ffn/common/latency_histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace ffn {
namespace {

constexpr double kRelativeError = 1.0 / 64.0;
constexpr double kPercents[] = {0,  0.1, 1,  5,  10,   25,    50,    75,
                                90, 95,  99, 99.5, 99.9, 99.99, 100};

// The exact percentile in ns with the histogram's definition: the smallest
// recorded value with at least `percent` % of samples at or below it.
int64_t ExactPercentileNanos(const std::vector<int64_t>& sorted, double percent) {
  const double n = static_cast<double>(sorted.size());
  auto rank = static_cast<int64_t>(std::ceil(percent / 100.0 * n));
  rank = std::clamp<int64_t>(rank, 1, static_cast<int64_t>(sorted.size()));
  return sorted[static_cast<size_t>(rank - 1)];
}

// Checks every percentile of `h` against `samples` (recorded into `h`).
void ExpectPercentilesWithinBound(const LatencyHistogram& h, std::vector<int64_t> samples) {
  std::sort(samples.begin(), samples.end());
  for (double p : kPercents) {
    const double exact_us = static_cast<double>(ExactPercentileNanos(samples, p)) / 1e3;
    const double got_us = h.PercentileMicros(p);
    EXPECT_LE(std::abs(got_us - exact_us), exact_us * kRelativeError)
        << "p" << p << ": got " << got_us << " us, exact " << exact_us << " us";
  }
}

double ExactMeanMicros(const std::vector<int64_t>& samples) {
  long double sum = 0;  // integers below 2^64: exact
  for (int64_t s : samples) sum += static_cast<long double>(s);
  return static_cast<double>(sum / samples.size()) / 1e3;
}

TEST(LatencyHistogramTest, EmptyReturnsZeroEverywhere) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.MeanMicros(), 0.0);
  EXPECT_EQ(h.MinMicros(), 0.0);
  EXPECT_EQ(h.MaxMicros(), 0.0);
  for (double p : kPercents) EXPECT_EQ(h.PercentileMicros(p), 0.0) << "p" << p;
}

TEST(LatencyHistogramTest, UniformOneToHundredThousandNanos) {
  std::vector<int64_t> samples;
  for (int64_t v = 1; v <= 100000; ++v) samples.push_back(v);
  // Record in a shuffled order: the result must not depend on it.
  std::vector<int64_t> shuffled = samples;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
  LatencyHistogram h;
  for (int64_t v : shuffled) h.RecordNanos(v);

  EXPECT_EQ(h.count(), 100000u);
  EXPECT_DOUBLE_EQ(h.MinMicros(), 0.001);
  EXPECT_DOUBLE_EQ(h.MaxMicros(), 100.0);
  EXPECT_DOUBLE_EQ(h.MeanMicros(), 50.0005);
  ExpectPercentilesWithinBound(h, samples);
  // A spot check of the arithmetic above: the median of 1..100000 is 50000 ns.
  EXPECT_NEAR(h.PercentileMicros(50), 50.0, 50.0 * kRelativeError);
}

TEST(LatencyHistogramTest, LogNormalSample) {
  std::mt19937 rng(12345);
  // Median 100 us, long tail: spans ~5 decades.
  std::lognormal_distribution<double> dist(std::log(1e5), 1.5);
  std::vector<int64_t> samples;
  LatencyHistogram h;
  for (int i = 0; i < 200000; ++i) {
    const auto v = static_cast<int64_t>(std::llround(dist(rng)));
    samples.push_back(v);
    h.RecordNanos(v);
  }
  const auto [lo, hi] = std::minmax_element(samples.begin(), samples.end());
  EXPECT_EQ(h.count(), samples.size());
  EXPECT_DOUBLE_EQ(h.MinMicros(), static_cast<double>(*lo) / 1e3);
  EXPECT_DOUBLE_EQ(h.MaxMicros(), static_cast<double>(*hi) / 1e3);
  EXPECT_DOUBLE_EQ(h.MeanMicros(), ExactMeanMicros(samples));
  ExpectPercentilesWithinBound(h, samples);
}

TEST(LatencyHistogramTest, EveryValueBelow128IsExact) {
  LatencyHistogram h;
  for (int64_t v = 0; v < 128; ++v) h.RecordNanos(v);
  for (int64_t v = 0; v < 128; ++v) {
    // Rank v+1 of 128 samples: percent chosen in the middle of its step.
    const double percent = (static_cast<double>(v) + 0.5) / 128.0 * 100.0;
    EXPECT_DOUBLE_EQ(h.PercentileMicros(percent), static_cast<double>(v) / 1e3) << "v=" << v;
  }
}

TEST(LatencyHistogramTest, ZeroAnd127And128) {
  LatencyHistogram h;
  h.RecordNanos(0);
  h.RecordNanos(127);
  h.RecordNanos(128);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_DOUBLE_EQ(h.MinMicros(), 0.0);
  EXPECT_DOUBLE_EQ(h.MaxMicros(), 0.128);
  EXPECT_DOUBLE_EQ(h.MeanMicros(), 0.085);
  EXPECT_DOUBLE_EQ(h.PercentileMicros(10), 0.0);
  EXPECT_DOUBLE_EQ(h.PercentileMicros(50), 0.127);
  // 128 opens the first two-wide bucket [128, 130); clamped to max = 128.
  EXPECT_DOUBLE_EQ(h.PercentileMicros(90), 0.128);
}

TEST(LatencyHistogramTest, NegativeCountsAsZero) {
  LatencyHistogram h;
  h.RecordNanos(-5);
  h.RecordNanos(std::numeric_limits<int64_t>::min());
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.MinMicros(), 0.0);
  EXPECT_EQ(h.MaxMicros(), 0.0);
  EXPECT_EQ(h.MeanMicros(), 0.0);
  EXPECT_EQ(h.PercentileMicros(50), 0.0);
}

TEST(LatencyHistogramTest, HugeValues) {
  LatencyHistogram h;
  constexpr int64_t kHuge = 1'000'000'000'000'000;  // 1e15 ns: 11.6 days
  h.RecordNanos(1);
  h.RecordNanos(kHuge);
  EXPECT_DOUBLE_EQ(h.MinMicros(), 0.001);
  EXPECT_DOUBLE_EQ(h.MaxMicros(), 1e12);
  EXPECT_DOUBLE_EQ(h.MeanMicros(), (1e15 + 1) / 2 / 1e3);
  EXPECT_DOUBLE_EQ(h.PercentileMicros(50), 0.001);
  EXPECT_NEAR(h.PercentileMicros(99), 1e12, 1e12 * kRelativeError);

  // The largest representable value lands in the last bucket without overflow.
  LatencyHistogram most;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  most.RecordNanos(kMax - 1000);
  most.RecordNanos(kMax);
  const double max_us = static_cast<double>(kMax) / 1e3;
  EXPECT_DOUBLE_EQ(most.MaxMicros(), max_us);
  EXPECT_NEAR(most.PercentileMicros(50), max_us, max_us * kRelativeError);
  EXPECT_NEAR(most.PercentileMicros(100), max_us, max_us * kRelativeError);
  EXPECT_GT(most.MeanMicros(), 0.0);
}

// p0 and p100 are the smallest and largest recorded values, which the
// histogram tracks exactly. The samples sit away from their buckets'
// midpoints: 1001 and 1007 are in [1000, 1008) (midpoint 1003.5), 200 is in
// [200, 202) (midpoint 200.5).
// The extremes are exact: p0 is the minimum and p100 the maximum.
TEST(LatencyHistogramTest, P0IsMinAndP100IsMax) {
  LatencyHistogram low_end;
  low_end.RecordNanos(1001);
  low_end.RecordNanos(5007);
  EXPECT_DOUBLE_EQ(low_end.PercentileMicros(0), low_end.MinMicros());
  EXPECT_DOUBLE_EQ(low_end.PercentileMicros(100), low_end.MaxMicros());

  LatencyHistogram high_end;
  high_end.RecordNanos(200);
  high_end.RecordNanos(1007);
  EXPECT_DOUBLE_EQ(high_end.PercentileMicros(0), high_end.MinMicros());
  EXPECT_DOUBLE_EQ(high_end.PercentileMicros(100), high_end.MaxMicros());

  // And on a large random sample.
  std::mt19937 rng(99);
  std::uniform_int_distribution<int64_t> dist(1000, 10'000'000);
  LatencyHistogram h;
  for (int i = 0; i < 10000; ++i) h.RecordNanos(dist(rng));
  EXPECT_DOUBLE_EQ(h.PercentileMicros(0), h.MinMicros());
  EXPECT_DOUBLE_EQ(h.PercentileMicros(100), h.MaxMicros());
}

TEST(LatencyHistogramTest, OutOfRangePercentsClamp) {
  LatencyHistogram h;
  for (int64_t v = 1000; v <= 2000; ++v) h.RecordNanos(v);
  EXPECT_DOUBLE_EQ(h.PercentileMicros(-10), h.PercentileMicros(0));
  EXPECT_DOUBLE_EQ(h.PercentileMicros(250), h.PercentileMicros(100));
}

TEST(LatencyHistogramTest, MergeEqualsRecordingAllSamples) {
  std::mt19937 rng(2024);
  std::lognormal_distribution<double> dist(std::log(2e4), 2.0);
  LatencyHistogram a, b, all;
  std::vector<int64_t> samples;
  for (int i = 0; i < 50000; ++i) {
    const auto v = static_cast<int64_t>(std::llround(dist(rng)));
    samples.push_back(v);
    all.RecordNanos(v);
    (i % 3 == 0 ? a : b).RecordNanos(v);
  }
  LatencyHistogram merged;  // starts empty: min must come from the inputs
  merged.Merge(a);
  merged.Merge(b);
  merged.Merge(LatencyHistogram());  // merging an empty one changes nothing

  EXPECT_EQ(merged.count(), all.count());
  EXPECT_DOUBLE_EQ(merged.MinMicros(), all.MinMicros());
  EXPECT_DOUBLE_EQ(merged.MaxMicros(), all.MaxMicros());
  EXPECT_DOUBLE_EQ(merged.MeanMicros(), all.MeanMicros());
  for (double p : kPercents) {
    EXPECT_EQ(merged.PercentileMicros(p), all.PercentileMicros(p)) << "p" << p;
  }
  ExpectPercentilesWithinBound(merged, samples);
}

TEST(LatencyHistogramTest, ResetEmpties) {
  LatencyHistogram h;
  h.RecordNanos(5000);
  h.RecordNanos(7);
  h.Reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.MinMicros(), 0.0);
  EXPECT_EQ(h.MaxMicros(), 0.0);
  EXPECT_EQ(h.PercentileMicros(50), 0.0);
  h.RecordNanos(300);
  EXPECT_DOUBLE_EQ(h.MinMicros(), 0.3);
  EXPECT_DOUBLE_EQ(h.MaxMicros(), 0.3);
  EXPECT_DOUBLE_EQ(h.PercentileMicros(50), 0.3);
}

}  // namespace
}  // namespace ffn
