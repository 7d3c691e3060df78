// Mixture-of-experts blocks: routing, answers against the fp64 ReferenceMoe
// along the routing used, batch invariance, caller-given routing and the
// per-expert counters.
//
// Tolerances (CompareToReference's scaled error) as for dense blocks: f32
// kFp32CheckTolerance, bf16 compute kBf16CheckTolerance.
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "ffn/kernels/ffn_block.h"
#include "ffn/kernels/moe.h"
#include "ffn/kernels/reference.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ffn {
namespace {

using ::testing::HasSubstr;

std::vector<float> Input(int64_t m, int64_t dm, uint64_t seed) {
  std::vector<float> x(static_cast<size_t>(m * dm));
  FillUniform(seed, RandomStream::kInput, kRandomInputScale, x);
  return x;
}

TEST(MoeRoutingTest, PicksTheLargestProbabilitiesAndNormalizesThem) {
  const MoeWeights w = RandomMoeWeights({24, 40, 6, 3, 0}, 1);
  const int64_t m = 20;
  const std::vector<float> x = Input(m, 24, 2);
  const MoeRouting r = RouteTokens(w, x.data(), m, DataType::kF32);
  ASSERT_EQ(r.ids.size(), static_cast<size_t>(m * 3));
  for (int64_t t = 0; t < m; ++t) {
    // Softmax in double, brute force.
    std::vector<double> p(6);
    for (int64_t e = 0; e < 6; ++e) {
      for (int64_t i = 0; i < 24; ++i) p[e] += static_cast<double>(x[t * 24 + i]) * w.router[e * 24 + i];
    }
    const double top = *std::max_element(p.begin(), p.end());
    double sum = 0;
    for (double& v : p) sum += (v = std::exp(v - top));
    for (double& v : p) v /= sum;
    std::vector<int> order(6);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    const double chosen = p[order[0]] + p[order[1]] + p[order[2]];
    for (int64_t k = 0; k < 3; ++k) {
      EXPECT_EQ(r.ids[t * 3 + k], order[k]) << "token " << t;
      EXPECT_NEAR(r.weights[t * 3 + k], p[order[k]] / chosen, 1e-6) << "token " << t;
    }
  }
}

TEST(MoeRoutingTest, GivenRoutingIsValidated) {
  MoeRouting r{2, {0, 1, 2, 2}, {0.5f, 0.5f, 0.5f, 0.5f}};
  EXPECT_THAT(std::string(ValidateRouting(r, 2, 4, 2).message()), HasSubstr("names expert 2 twice"));
  r.ids = {0, 1, 2, 4};
  EXPECT_THAT(std::string(ValidateRouting(r, 2, 4, 2).message()), HasSubstr("experts 0..3"));
  r.ids = {0, 1, 2, 3};
  EXPECT_TRUE(ValidateRouting(r, 2, 4, 2).ok());
  EXPECT_THAT(std::string(ValidateRouting(r, 3, 4, 2).message()), HasSubstr("needs 6 of each"));
  r.weights[3] = NAN;
  EXPECT_THAT(std::string(ValidateRouting(r, 2, 4, 2).message()), HasSubstr("not finite"));
}

class MoeBlockTest : public ::testing::TestWithParam<bool> {};  // with a shared expert

TEST_P(MoeBlockTest, MatchesTheReferenceAlongItsRouting) {
  MoeWeights w = RandomMoeWeights({40, 72, 5, 2, GetParam() ? 56 : 0}, 3);
  AddRandomNorm(w.outer, NormKind::kRmsNorm, 3);
  w.outer.residual = true;
  const MoeWeights kept = w;
  auto block = FfnBlock::CreateMoe(std::move(w));
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_EQ((*block)->num_experts(), 5);
  for (const DataType compute : {DataType::kF32, DataType::kBf16}) {
    for (const bool invariant : {true, false}) {
      for (const int64_t m : {1, 5, 40}) {
        for (const Activation a : {Activation::kSwiglu, Activation::kGeglu}) {
          const std::vector<float> x = Input(m, 40, static_cast<uint64_t>(m));
          std::vector<float> y(x.size());
          MoeRouting used;
          FfnRun run{a, compute, x.data(), DataType::kF32, m, y.data(), DataType::kF32};
          run.batch_invariant = invariant;
          run.routing_out = &used;
          ASSERT_TRUE((*block)->Run(run).ok());
          const auto ref = ReferenceMoe(kept, a, (*block)->params(), x.data(), m, used);
          const ReferenceComparison c = CompareToReference(y.data(), ref);
          EXPECT_TRUE(c.within(compute == DataType::kF32 ? kFp32CheckTolerance : kBf16CheckTolerance))
              << DataTypeName(compute) << " m=" << m << " scaled error " << c.max_scaled_error;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, MoeBlockTest, ::testing::Bool());

bool SameBits(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, static_cast<size_t>(n) * sizeof(float)) == 0;
}

class MoeInvarianceTest : public ::testing::TestWithParam<int64_t> {};  // top_k

// top_k 1: a token alone keeps one expert busy, which then runs on every
// thread; in a batch, whole experts run one per thread. Same bits either way.
TEST_P(MoeInvarianceTest, ATokensAnswerDoesNotDependOnItsBatch) {
  auto block = FfnBlock::CreateMoe(RandomMoeWeights({48, 600, 8, GetParam(), 32}, 4));
  ASSERT_TRUE(block.ok()) << block.status();
  const std::vector<float> token = Input(1, 48, 99);
  for (const DataType compute : {DataType::kF32, DataType::kBf16}) {
    std::vector<float> alone(48);
    FfnRun run{Activation::kSwiglu, compute, token.data(), DataType::kF32, 1, alone.data(), DataType::kF32};
    run.batch_invariant = true;
    ASSERT_TRUE((*block)->Run(run).ok());
    for (const int64_t m : {2, 3, 31, 64, 200}) {
      std::vector<float> x = Input(m, 48, static_cast<uint64_t>(m) + 7);
      std::copy(token.begin(), token.end(), x.begin() + (m / 2) * 48);
      std::vector<float> y(x.size());
      FfnRun batch = run;
      batch.x = x.data();
      batch.m = m;
      batch.y = y.data();
      ASSERT_TRUE((*block)->Run(batch).ok());
      EXPECT_TRUE(SameBits(alone.data(), y.data() + (m / 2) * 48, 48))
          << DataTypeName(compute) << " m=" << m;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(TopK, MoeInvarianceTest, ::testing::Values(1, 2));

TEST(MoeBlockTest, GivenRoutingEqualToTheRoutersGivesTheSameBitsAndCountsEveryToken) {
  const MoeWeights weights = RandomMoeWeights({32, 48, 6, 2, 0}, 5);
  auto block = FfnBlock::CreateMoe(weights);
  ASSERT_TRUE(block.ok()) << block.status();
  const int64_t m = 9;
  const std::vector<float> x = Input(m, 32, 5);
  std::vector<float> routed(x.size()), given(x.size());
  MoeRouting used;
  MoeCounters counters;
  FfnRun run{Activation::kSwiglu, DataType::kF32, x.data(), DataType::kF32, m, routed.data(),
             DataType::kF32};
  run.batch_invariant = true;
  run.routing_out = &used;
  run.counters = &counters;
  ASSERT_TRUE((*block)->Run(run).ok());
  // The router's choice, as RouteTokens makes it.
  EXPECT_EQ(used.ids, RouteTokens(weights, x.data(), m, DataType::kF32).ids);
  EXPECT_EQ(used.weights, RouteTokens(weights, x.data(), m, DataType::kF32).weights);
  ASSERT_EQ(counters.tokens.size(), 6u);
  EXPECT_EQ(std::accumulate(counters.tokens.begin(), counters.tokens.end(), int64_t{0}), m * 2);
  for (size_t e = 0; e < 6; ++e) EXPECT_EQ(counters.seconds[e] > 0, counters.tokens[e] > 0) << e;
  FfnRun again = run;
  again.routing = &used;
  again.routing_out = nullptr;
  again.y = given.data();
  ASSERT_TRUE((*block)->Run(again).ok());
  EXPECT_TRUE(SameBits(routed.data(), given.data(), m * 32));
  // Another routing is another answer; a bad one is refused.
  MoeRouting other = used;
  other.ids[0] = (used.ids[0] + 1) % 6 == used.ids[1] ? (used.ids[0] + 2) % 6 : (used.ids[0] + 1) % 6;
  again.routing = &other;
  ASSERT_TRUE((*block)->Run(again).ok());
  EXPECT_FALSE(SameBits(routed.data(), given.data(), 32));
  other.ids[0] = 6;
  const absl::Status bad = (*block)->Run(again);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), HasSubstr("names expert 6"));
}

TEST(MoeBlockTest, RefusesInconsistentWeights) {
  MoeWeights w = RandomMoeWeights({16, 24, 4, 5, 0}, 6);
  EXPECT_THAT(std::string(FfnBlock::CreateMoe(w).status().message()), HasSubstr("top_k is 5"));
  w.top_k = 2;
  w.router.pop_back();
  EXPECT_THAT(std::string(FfnBlock::CreateMoe(w).status().message()), HasSubstr("router has"));
}

}  // namespace
}  // namespace ffn
