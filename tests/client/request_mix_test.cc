// Token distributions, the weighted round robin and arrival schedules: the
// parts of a load test that decide what each call carries and when it goes.
#include "ffn/client/request_mix.h"

#include <cmath>
#include <map>
#include <vector>

#include "ffn/client/arrivals.h"
#include "gtest/gtest.h"

namespace ffn::client {
namespace {

TEST(TokenDistributionTest, FixedValue) {
  auto d = TokenDistribution::Parse("16");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->Min(), 16);
  EXPECT_EQ(d->Max(), 16);
  EXPECT_DOUBLE_EQ(d->Mean(), 16.0);
  for (uint64_t n = 0; n < 100; ++n) EXPECT_EQ(d->Sample(MixBits(1, n)), 16);
  EXPECT_EQ(TokenDistribution::Fixed(3).spec(), "3");
}

TEST(TokenDistributionTest, RangeIsUniformOverItsIntegers) {
  auto d = TokenDistribution::Parse("1-4");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_DOUBLE_EQ(d->Mean(), 2.5);
  std::map<int64_t, int> counts;
  constexpr int kSamples = 40000;
  for (uint64_t n = 0; n < kSamples; ++n) ++counts[d->Sample(MixBits(7, n))];
  ASSERT_EQ(counts.size(), 4u);
  for (const auto& [value, count] : counts) {
    EXPECT_GE(value, 1);
    EXPECT_LE(value, 4);
    EXPECT_NEAR(count, kSamples / 4, kSamples / 4 * 0.05) << value;  // ~8 sigma
  }
}

TEST(TokenDistributionTest, WeightedListFollowsItsWeights) {
  auto d = TokenDistribution::Parse("1=50, 16=30, 64-65=20");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->Min(), 1);
  EXPECT_EQ(d->Max(), 65);
  EXPECT_DOUBLE_EQ(d->Mean(), (1 * 50 + 16 * 30 + 64.5 * 20) / 100.0);
  std::map<int64_t, int> counts;
  constexpr int kSamples = 100000;
  for (uint64_t n = 0; n < kSamples; ++n) ++counts[d->Sample(MixBits(3, n))];
  EXPECT_NEAR(counts[1], 0.5 * kSamples, 0.01 * kSamples);
  EXPECT_NEAR(counts[16], 0.3 * kSamples, 0.01 * kSamples);
  EXPECT_NEAR(counts[64] + counts[65], 0.2 * kSamples, 0.01 * kSamples);
  EXPECT_EQ(counts.size(), 4u);
}

TEST(TokenDistributionTest, RejectsMalformedSpecs) {
  for (const char* spec : {"", "0", "-3", "4-2", "1-", "x", "1=0", "1=x", "1,,2", "1.5", "2-3-4"}) {
    EXPECT_EQ(TokenDistribution::Parse(spec).status().code(), absl::StatusCode::kInvalidArgument)
        << "'" << spec << "'";
  }
}

TEST(WeightedCycleTest, DealsEachIndexByItsWeightInterleaved) {
  WeightedCycle cycle({5, 1, 1});
  ASSERT_EQ(cycle.size(), 7u);
  std::vector<size_t> order;
  for (uint64_t n = 0; n < 7; ++n) order.push_back(cycle.At(n));
  EXPECT_EQ(order, (std::vector<size_t>{0, 0, 1, 0, 2, 0, 0}));
  EXPECT_EQ(cycle.At(7), cycle.At(0));  // it repeats

  WeightedCycle even({1, 1, 1});
  for (uint64_t n = 0; n < 9; ++n) EXPECT_EQ(even.At(n), n % 3);
}

TEST(ArrivalScheduleTest, ConstantIsExactlyEvenlySpaced) {
  ArrivalSchedule schedule(400, Arrival::kConstant, 0);
  for (int i = 0; i < 100000; ++i) {
    ASSERT_DOUBLE_EQ(schedule.NextSeconds(), i / 400.0) << i;
  }
}

// Exponential gaps: mean 1/rate, standard deviation 1/rate; the same seed
// gives the same schedule.
TEST(ArrivalScheduleTest, PoissonHasExponentialGapsAndIsSeeded) {
  constexpr double kRate = 1000;
  constexpr int kCount = 200000;
  ArrivalSchedule a(kRate, Arrival::kPoisson, 42), b(kRate, Arrival::kPoisson, 42);
  ArrivalSchedule other(kRate, Arrival::kPoisson, 43);
  double previous = 0, sum = 0, sum_squares = 0;
  bool differs = false;
  for (int i = 0; i < kCount; ++i) {
    const double t = a.NextSeconds();
    ASSERT_EQ(t, b.NextSeconds());
    differs |= t != other.NextSeconds();
    const double gap = t - previous;
    ASSERT_GE(gap, 0);
    sum += gap;
    sum_squares += gap * gap;
    previous = t;
  }
  EXPECT_TRUE(differs);
  const double mean = sum / kCount;
  const double sd = std::sqrt(sum_squares / kCount - mean * mean);
  EXPECT_NEAR(mean, 1 / kRate, 0.01 / kRate);  // ~4.5 sigma
  EXPECT_NEAR(sd, 1 / kRate, 0.02 / kRate);
}

TEST(ArrivalScheduleTest, ParsesNames) {
  EXPECT_EQ(*ParseArrival("poisson"), Arrival::kPoisson);
  EXPECT_EQ(*ParseArrival("constant"), Arrival::kConstant);
  EXPECT_FALSE(ParseArrival("uniform").ok());
  EXPECT_EQ(ArrivalName(Arrival::kPoisson), "poisson");
}

}  // namespace
}  // namespace ffn::client
