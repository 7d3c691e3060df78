// Every strategy (unfused, postops, fused) × compute dtype × activation
// against the fp64 ReferenceFfn, at M = 1 and 5 (fused: the dot-product
// kernels), 64 and 300 (fused: column blocks), on a shape whose sizes are
// not multiples of the vector widths or of kColumnBlock (d_model 72, d_ff
// 600: blocks of 256, 256, 88), and Tune()'s plan.
//
// Tolerances (CompareToReference's scaled error): f32 kFp32CheckTolerance
// (1e-4; oneDNN's post-op approximations included), bf16 kBf16CheckTolerance
// (5e-2: inputs, weights and the activated block rounded to 8 bits).
#include <omp.h>

#include <atomic>
#include <cstring>
#include <ostream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ffn/kernels/ffn_block.h"
#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/moe.h"
#include "ffn/kernels/reference.h"
#include "plan.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ffn {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kDModel = 72, kDff = 600;

const FfnWeights& Weights(FfnKind kind) {
  static const FfnWeights plain = RandomFfnWeights(FfnKind::kPlain, kDModel, kDff, 41);
  static const FfnWeights gated = RandomFfnWeights(FfnKind::kGated, kDModel, kDff, 42);
  return kind == FfnKind::kGated ? gated : plain;
}

const FfnBlock& Block(FfnKind kind) {
  static const auto plain = *FfnBlock::Create(Weights(FfnKind::kPlain));
  static const auto gated = *FfnBlock::Create(Weights(FfnKind::kGated));
  return kind == FfnKind::kGated ? *gated : *plain;
}

using Case = std::tuple<Strategy, DataType, Activation>;

class StrategyTest : public ::testing::TestWithParam<Case> {};

TEST_P(StrategyTest, MatchesReference) {
  const auto [strategy, compute, activation] = GetParam();
  const FfnKind kind = IsGated(activation) ? FfnKind::kGated : FfnKind::kPlain;
  const FfnWeights& weights = Weights(kind);
  ActivationParams params;
  params.prelu_alpha = weights.prelu_alpha;
  const double tolerance = compute == DataType::kF32 ? kFp32CheckTolerance : kBf16CheckTolerance;
  for (int64_t m : {1, 5, 64, 300}) {
    std::vector<float> x(static_cast<size_t>(m * kDModel));
    FillUniform(static_cast<uint64_t>(m) + 7, RandomStream::kInput, kRandomInputScale, x);
    std::vector<float> y(x.size(), -12345.0f);
    FfnRun run{activation, compute, x.data(), DataType::kF32, m, y.data(), DataType::kF32};
    run.strategy = strategy;
    const absl::Status s = Block(kind).Run(run);
    ASSERT_TRUE(s.ok()) << s;
    const std::vector<double> expected = ReferenceFfn(weights, activation, params, x.data(), m);
    const ReferenceComparison c = CompareToReference(y.data(), expected);
    EXPECT_TRUE(c.within(tolerance)) << "m=" << m << ": scaled error " << c.max_scaled_error
                                     << " at " << c.worst_index;
    EXPECT_GT(c.rms_reference, 0.1) << "a degenerate output would make the check vacuous";
  }
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  const auto [strategy, compute, activation] = info.param;
  return std::string(StrategyName(strategy)) + "_" + DataTypeName(compute) + "_" +
         ActivationName(activation);
}

INSTANTIATE_TEST_SUITE_P(All, StrategyTest,
                         ::testing::Combine(::testing::ValuesIn(ConcreteStrategies()),
                                            ::testing::Values(DataType::kF32, DataType::kBf16),
                                            ::testing::ValuesIn(AllActivations())),
                         CaseName);

TEST(StrategyTest, PerChannelPreluEveryStrategyAndDtype) {
  FfnWeights weights = RandomFfnWeights(FfnKind::kPlain, kDModel, kDff, 43);
  weights.prelu_alpha.resize(kDff);
  for (int64_t j = 0; j < kDff; ++j) weights.prelu_alpha[static_cast<size_t>(j)] = 0.01f * static_cast<float>(j % 50);
  auto block = FfnBlock::Create(weights);
  ASSERT_TRUE(block.ok()) << block.status();
  ActivationParams params;
  params.prelu_alpha = weights.prelu_alpha;
  for (Strategy strategy : ConcreteStrategies()) {
    for (DataType compute : {DataType::kF32, DataType::kBf16}) {
      for (int64_t m : {1, 5, 64}) {
        std::vector<float> x(static_cast<size_t>(m * kDModel));
        FillUniform(static_cast<uint64_t>(m), RandomStream::kInput, kRandomInputScale, x);
        std::vector<float> y(x.size());
        FfnRun run{Activation::kPrelu, compute, x.data(), DataType::kF32, m, y.data(), DataType::kF32};
        run.strategy = strategy;
        const absl::Status s = (*block)->Run(run);
        if (strategy == Strategy::kPostops) {
          // oneDNN 2.6 cannot: a clear error rather than a slow or wrong answer.
          EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
          EXPECT_THAT(std::string(s.message()), HasSubstr("per-channel prelu"));
          continue;
        }
        ASSERT_TRUE(s.ok()) << StrategyName(strategy) << " " << DataTypeName(compute) << " m=" << m << ": " << s;
        const ReferenceComparison c =
            CompareToReference(y.data(), ReferenceFfn(weights, Activation::kPrelu, params, x.data(), m));
        EXPECT_TRUE(c.within(compute == DataType::kF32 ? kFp32CheckTolerance : kBf16CheckTolerance))
            << StrategyName(strategy) << " " << DataTypeName(compute) << " m=" << m << ": "
            << c.max_scaled_error;
      }
    }
  }
}

TEST(StrategyTest, AutoAndFixedPostopsFallBackForPerChannelPrelu) {
  FfnWeights weights = RandomFfnWeights(FfnKind::kPlain, kDModel, kDff, 44);
  weights.prelu_alpha.assign(kDff, 0.2f);
  weights.prelu_alpha[3] = 0.7f;
  auto block = FfnBlock::Create(weights);
  ASSERT_TRUE(block.ok()) << block.status();
  ActivationParams params;
  params.prelu_alpha = weights.prelu_alpha;
  std::vector<float> x(40 * kDModel), y(x.size());
  FillUniform(2, RandomStream::kInput, kRandomInputScale, x);
  const std::vector<double> expected = ReferenceFfn(weights, Activation::kPrelu, params, x.data(), 40);
  // A model fixed to postops still serves prelu (through unfused), and
  // every other activation through postops.
  (*block)->SetStrategy(Strategy::kPostops);
  EXPECT_EQ((*block)->PlannedStrategy(40, DataType::kF32), Strategy::kPostops);
  ASSERT_TRUE((*block)->Run(Activation::kPrelu, x.data(), 40, y.data()).ok());
  EXPECT_TRUE(CompareToReference(y.data(), expected).within(kFp32CheckTolerance));
  ASSERT_TRUE((*block)->Run(Activation::kGelu, x.data(), 40, y.data()).ok());
}

// Odd sizes for the packed small-M kernels: a k of odd length (bf16 pairs
// padded), row groups of 16 cut short, and 9 or 33 tokens (a second token
// group of 1; the blocks path above 32).
TEST(StrategyTest, FusedOddShapes) {
  for (FfnKind kind : {FfnKind::kPlain, FfnKind::kGated}) {
    const FfnWeights weights = RandomFfnWeights(kind, 37, 91, 45);
    auto block = FfnBlock::Create(weights);
    ASSERT_TRUE(block.ok()) << block.status();
    const Activation a = kind == FfnKind::kGated ? Activation::kSwiglu : Activation::kGelu;
    ActivationParams params;
    params.prelu_alpha = weights.prelu_alpha;
    for (DataType compute : {DataType::kF32, DataType::kBf16}) {
      for (int64_t m : {1, 2, 7, 9, 33}) {
        std::vector<float> x(static_cast<size_t>(m * 37));
        FillUniform(static_cast<uint64_t>(m), RandomStream::kInput, kRandomInputScale, x);
        std::vector<float> y(x.size(), -1.0f);
        FfnRun run{a, compute, x.data(), DataType::kF32, m, y.data(), DataType::kF32};
        run.strategy = Strategy::kFused;
        ASSERT_TRUE((*block)->Run(run).ok());
        const ReferenceComparison c = CompareToReference(y.data(), ReferenceFfn(weights, a, params, x.data(), m));
        EXPECT_TRUE(c.within(compute == DataType::kF32 ? kFp32CheckTolerance : kBf16CheckTolerance))
            << DataTypeName(compute) << " m=" << m << ": " << c.max_scaled_error;
      }
    }
  }
}

TEST(StrategyNamesTest, RoundTrip) {
  for (Strategy s : {Strategy::kUnfused, Strategy::kPostops, Strategy::kFused, Strategy::kAuto}) {
    EXPECT_EQ(ParseStrategy(StrategyName(s)), s);
  }
  EXPECT_EQ(ParseStrategy("Fused"), std::nullopt);
  EXPECT_EQ(ParseStrategy(""), std::nullopt);
  EXPECT_EQ(ConcreteStrategies().size(), 3u);
}

TEST(TuneTest, PlannedTimeIsTheChosenStrategysInterpolatedBetweenProbes) {
  TuneResult plan;
  // ms: unfused, postops, fused.
  plan.probes.push_back({DataType::kF32, 1, {0.5, -1, 0.2}, Strategy::kFused});
  plan.probes.push_back({DataType::kF32, 4, {0.6, -1, 0.8}, Strategy::kUnfused});
  plan.probes.push_back({DataType::kBf16, 1, {0.4, -1, 0.1}, Strategy::kFused});
  EXPECT_DOUBLE_EQ(plan.PlannedMs(DataType::kF32, 1), 0.2);
  EXPECT_DOUBLE_EQ(plan.PlannedMs(DataType::kF32, 4), 0.6);
  EXPECT_DOUBLE_EQ(plan.PlannedMs(DataType::kF32, 2.5), 0.4);  // halfway from 0.2 to 0.6
  EXPECT_DOUBLE_EQ(plan.PlannedMs(DataType::kF32, 100), 0.6);  // beyond the last probe
  EXPECT_DOUBLE_EQ(plan.PlannedMs(DataType::kBf16, 7), 0.1);
  EXPECT_LT(TuneResult().PlannedMs(DataType::kF32, 1), 0);
}

TEST(TuneTest, RetimeReplacesOneProbeWhileCallsRun) {
  auto block = FfnBlock::Create(RandomFfnWeights(FfnKind::kGated, kDModel, kDff, 5));
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_FALSE((*block)->Plan().has_value());  // untuned
  // A plan as if tuned on a machine a million times faster: unfused at 4.
  TuneResult fake;
  fake.probes.push_back({DataType::kF32, 1, {1e-6, -1, 2e-6}, Strategy::kUnfused});
  fake.probes.push_back({DataType::kF32, 4, {1e-6, -1, 2e-6}, Strategy::kUnfused});
  ASSERT_TRUE((*block)->SetPlan(fake).ok());
  ASSERT_TRUE((*block)->Plan().has_value());
  EXPECT_EQ((*block)->PlannedStrategy(4, DataType::kF32), Strategy::kUnfused);
  // Calls run on another thread all along.
  std::atomic<bool> stop{false};
  std::thread caller([&] {
    std::vector<float> x(4 * kDModel, 0.25f), y(x.size());
    while (!stop.load()) ASSERT_TRUE((*block)->Run(Activation::kSwiglu, x.data(), 4, y.data()).ok());
  });
  auto fresh = (*block)->Retime(4, DataType::kF32);
  stop = true;
  caller.join();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_GT(fresh->ms[0], 1e-4);  // a real time now
  EXPECT_GT(fresh->ms[2], 1e-4);
  EXPECT_EQ(fresh->chosen, fresh->ms[2] <= fresh->ms[0] ? Strategy::kFused : Strategy::kUnfused);
  EXPECT_EQ((*block)->PlannedStrategy(4, DataType::kF32), fresh->chosen);
  const std::optional<TuneResult> plan = (*block)->Plan();
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->probes[0].ms[0], 1e-6);  // the other probe as it was
  EXPECT_EQ(plan->probes[1].ms[0], fresh->ms[0]);
  EXPECT_EQ((*block)->Retime(3, DataType::kF32).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*block)->Retime(1, DataType::kBf16).status().code(), absl::StatusCode::kNotFound);
  (*block)->SetStrategy(Strategy::kFused);
  EXPECT_FALSE((*block)->Plan().has_value());
}

TEST(TuneTest, PlansAValidStrategyForEveryProbeAndUsesIt) {
  auto block = FfnBlock::Create(RandomFfnWeights(FfnKind::kGated, kDModel, kDff, 5));
  ASSERT_TRUE(block.ok()) << block.status();
  auto result = (*block)->Tune(64);
  ASSERT_TRUE(result.ok()) << result.status();
  // Probes 1, 2, 4, 8, 16, 32 and max_m = 64, for both dtypes.
  ASSERT_EQ(result->probes.size(), 14u);
  for (const TuneResult::Probe& p : result->probes) {
    EXPECT_GT(p.ms[0], 0.0);
    EXPECT_LT(p.ms[1], 0.0) << "postops is never timed: auto does not trade accuracy for speed";
    EXPECT_GT(p.ms[2], 0.0);
    // The faster of unfused and fused, never postops.
    EXPECT_EQ(p.chosen, p.ms[2] <= p.ms[0] ? Strategy::kFused : Strategy::kUnfused);
    EXPECT_EQ((*block)->PlannedStrategy(p.m, p.compute), p.chosen);
  }
  EXPECT_THAT(result->ToString(), HasSubstr("bf16 m=64 "));
  EXPECT_THAT(result->ToString(), HasSubstr("postops n/a"));
  // Token counts between probes take the nearest probe on a log scale.
  EXPECT_EQ((*block)->PlannedStrategy(2, DataType::kF32), (*block)->PlannedStrategy(1, DataType::kF32));
  EXPECT_EQ((*block)->PlannedStrategy(1000, DataType::kBf16), (*block)->PlannedStrategy(64, DataType::kBf16));
  // The tuned block still computes the right answer through its plan.
  const FfnWeights weights = RandomFfnWeights(FfnKind::kGated, kDModel, kDff, 5);
  std::vector<float> x(20 * kDModel), y(x.size());
  FillUniform(3, RandomStream::kInput, kRandomInputScale, x);
  ASSERT_TRUE((*block)->Run(Activation::kGeglu, x.data(), 20, y.data()).ok());
  const std::vector<double> expected = ReferenceFfn(weights, Activation::kGeglu, {}, x.data(), 20);
  EXPECT_TRUE(CompareToReference(y.data(), expected).within(kFp32CheckTolerance));
}

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

TEST(PackedWeightsTest, PackedOncePerMatmulAndTrimmedByTune) {
  auto block = FfnBlock::Create(RandomFfnWeights(FfnKind::kPlain, kDModel, kDff, 9));
  ASSERT_TRUE(block.ok()) << block.status();
  std::vector<float> x(64 * kDModel, 0.25f), y(x.size());
  auto run = [&](Strategy strategy, int64_t m, DataType compute = DataType::kF32) {
    FfnRun r{Activation::kGelu, compute, x.data(), DataType::kF32, m, y.data(), DataType::kF32};
    r.strategy = strategy;
    ASSERT_TRUE((*block)->Run(r).ok());
  };
  const size_t before = (*block)->PackedWeightBytes();
  run(Strategy::kUnfused, 64);
  const size_t unfused = (*block)->PackedWeightBytes();
  // W1 and W2 in f32, packed (oneDNN may pad the blocked layout).
  EXPECT_GE(unfused - before, 2 * sizeof(float) * kDModel * kDff);
  EXPECT_LE(unfused - before, 4 * sizeof(float) * kDModel * kDff);
  run(Strategy::kUnfused, 64);
  run(Strategy::kUnfused, 40);  // another M reads the same packed copies
  EXPECT_EQ((*block)->PackedWeightBytes(), unfused);
  run(Strategy::kFused, 64);
  run(Strategy::kPostops, 64);
  const size_t all = (*block)->PackedWeightBytes();
  // fused's column blocks have copies of their own: made now, or at creation
  // where one token already runs them (without AVX-512).
  EXPECT_TRUE(all > unfused || before > 0) << all << " " << unfused << " " << before;
  // Tune times both dtypes; whatever it plans packs no more than every
  // strategy in both dtypes did.
  for (Strategy s : ConcreteStrategies()) run(s, 64, DataType::kBf16);
  const size_t both_dtypes = (*block)->PackedWeightBytes();
  ASSERT_TRUE((*block)->Tune(64).ok());
  EXPECT_LE((*block)->PackedWeightBytes(), both_dtypes);
}

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

// Batch invariance: a token's output bits are the same alone and as any row
// of a call of m tokens, whatever the other rows hold, for every compute and
// I/O dtype, plain and gated, with and without pre-norm and residual.
TEST(BatchInvariantTest, TokenAloneEqualsTokenInsideEveryBatch) {
  FfnWeights sublayer = RandomFfnWeights(FfnKind::kPlain, kDModel, kDff, 43);
  AddRandomNorm(sublayer, NormKind::kLayerNorm, 43);
  sublayer.residual = true;
  const auto with_norm = FfnBlock::Create(sublayer);
  ASSERT_TRUE(with_norm.ok()) << with_norm.status();
  const std::pair<const FfnBlock*, Activation> models[] = {
      {&Block(FfnKind::kPlain), Activation::kGelu},
      {&Block(FfnKind::kGated), Activation::kSwiglu},
      {with_norm->get(), Activation::kSilu}};
  for (const auto& [block, activation] : models) {
    for (DataType compute : {DataType::kF32, DataType::kBf16}) {
      for (DataType io : {DataType::kF32, DataType::kBf16}) {
        const size_t es = ElementBytes(io);
        // The token, alone.
        std::vector<float> token(kDModel);
        FillUniform(99, RandomStream::kInput, kRandomInputScale, token);
        std::vector<char> x1(kDModel * es), y1(kDModel * es);
        CopyConverting(token.data(), DataType::kF32, x1.data(), io, kDModel);
        FfnRun alone{activation, compute, x1.data(), io, 1, y1.data(), io};
        alone.batch_invariant = true;
        ASSERT_TRUE(block->Run(alone).ok());
        for (int64_t m : {2, 3, 8, 31, 33, 64, 200, 512}) {
          // ... as row `at` of m rows of other tokens.
          std::vector<float> others(static_cast<size_t>(m * kDModel));
          FillUniform(static_cast<uint64_t>(m), RandomStream::kInput, kRandomInputScale, others);
          for (int64_t at : {int64_t{0}, m / 2, m - 1}) {
            std::copy(token.begin(), token.end(), others.begin() + at * kDModel);
            std::vector<char> x(others.size() * es), y(others.size() * es);
            CopyConverting(others.data(), DataType::kF32, x.data(), io, others.size());
            FfnRun batch{activation, compute, x.data(), io, m, y.data(), io};
            batch.batch_invariant = true;
            ASSERT_TRUE(block->Run(batch).ok());
            EXPECT_EQ(std::memcmp(y.data() + at * kDModel * es, y1.data(), kDModel * es), 0)
                << ActivationName(activation) << " compute " << DataTypeName(compute) << " io "
                << DataTypeName(io) << ": row " << at << " of " << m << " differs from the token alone";
          }
        }
      }
    }
  }
}

TEST(BatchInvariantTest, MatchesTheReferenceAndRefusesOrderDependentStrategies) {
  const FfnWeights& weights = Weights(FfnKind::kGated);
  ActivationParams params;
  std::vector<float> x(static_cast<size_t>(100 * kDModel)), y(x.size());
  FillUniform(5, RandomStream::kInput, kRandomInputScale, x);
  FfnRun run{Activation::kGeglu, DataType::kF32, x.data(), DataType::kF32, 100, y.data(), DataType::kF32};
  run.batch_invariant = true;
  ASSERT_TRUE(Block(FfnKind::kGated).Run(run).ok());
  const std::vector<double> expected = ReferenceFfn(weights, Activation::kGeglu, params, x.data(), 100);
  EXPECT_TRUE(CompareToReference(y.data(), expected).within(kFp32CheckTolerance));
  for (Strategy order_dependent : {Strategy::kUnfused, Strategy::kPostops}) {
    run.strategy = order_dependent;
    EXPECT_EQ(Block(FfnKind::kGated).Run(run).code(), absl::StatusCode::kInvalidArgument);
  }
  auto impl = Block(FfnKind::kGated).ImplementationFor(100, DataType::kF32, true);
  ASSERT_TRUE(impl.ok());
  EXPECT_THAT(*impl, HasSubstr("batch-invariant"));
}

// The server may run a call on fewer OpenMP threads than its executor has
// (ServerSettings::call_threads): a batch-invariant answer's bits must not
// depend on the thread count either. Each output element is summed whole by
// one thread; threads only share out column blocks and output columns.
// Dense f32/bf16 and int8 blocks, plain and gated, and mixtures of experts
// (f32 and int8 experts), each at 1, 2 and 3 threads against 1.
TEST(BatchInvariantTest, SameBitsOnAnyThreadCount) {
  auto int8_plain = FfnBlock::Create(Weights(FfnKind::kPlain), {}, Quantization::kInt8);
  auto int8_gated = FfnBlock::Create(Weights(FfnKind::kGated), {}, Quantization::kInt8);
  auto moe = FfnBlock::CreateMoe(RandomMoeWeights({kDModel, kDff, 8, 2, 64}, 44));
  auto int8_moe =
      FfnBlock::CreateMoe(RandomMoeWeights({kDModel, kDff, 8, 2, 64}, 44), {}, Quantization::kInt8);
  ASSERT_TRUE(int8_plain.ok() && int8_gated.ok() && moe.ok() && int8_moe.ok());
  const std::pair<const FfnBlock*, Activation> models[] = {
      {&Block(FfnKind::kPlain), Activation::kGelu},  {&Block(FfnKind::kGated), Activation::kSwiglu},
      {int8_plain->get(), Activation::kGelu},        {int8_gated->get(), Activation::kSwiglu},
      {moe->get(), Activation::kSwiglu},             {int8_moe->get(), Activation::kSwiglu}};
  const int saved = omp_get_max_threads();
  for (const auto& [block, activation] : models) {
    for (DataType compute : {DataType::kF32, DataType::kBf16}) {
      for (int64_t m : {1, 3, 31, 200, 512}) {
        std::vector<float> x(static_cast<size_t>(m * kDModel));
        FillUniform(static_cast<uint64_t>(m) + 3, RandomStream::kInput, kRandomInputScale, x);
        std::vector<float> one(x.size());
        for (int threads : {1, 2, 3}) {
          std::vector<float> y(x.size());
          FfnRun run{activation, compute, x.data(), DataType::kF32, m,
                     (threads == 1 ? one : y).data(), DataType::kF32};
          run.batch_invariant = true;
          omp_set_num_threads(threads);
          const absl::Status status = block->Run(run);
          omp_set_num_threads(saved);
          ASSERT_TRUE(status.ok()) << status;
          if (threads > 1) {
            EXPECT_EQ(std::memcmp(y.data(), one.data(), y.size() * sizeof(float)), 0)
                << ActivationName(activation) << " " << DataTypeName(compute) << " m=" << m << ": "
                << threads << " threads differ from one";
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

// Requests of several variants batched together: one call whose row
// segments each run their own activation over the shared matmuls.
TEST(SegmentsTest, EachSegmentGetsItsOwnActivation) {
  struct Model {
    FfnKind kind;
    std::vector<ActivationSegment> segments;
  };
  const Model models[] = {
      {FfnKind::kPlain, {{3, Activation::kGelu}, {5, Activation::kRelu}, {40, Activation::kSilu},
                         {1, Activation::kElu}}},
      {FfnKind::kGated, {{2, Activation::kSwiglu}, {37, Activation::kGeglu}, {9, Activation::kGlu}}}};
  for (const Model& model : models) {
    const FfnBlock& block = Block(model.kind);
    ActivationParams params;
    params.prelu_alpha = Weights(model.kind).prelu_alpha;
    const int64_t m = 49 - (model.kind == FfnKind::kGated ? 1 : 0);
    std::vector<float> x(static_cast<size_t>(m * kDModel)), y(x.size());
    FillUniform(8, RandomStream::kInput, kRandomInputScale, x);
    for (int invariant = 0; invariant < 2; ++invariant) {
      for (Strategy strategy : ConcreteStrategies()) {
        if (invariant && strategy != Strategy::kFused) continue;
        SCOPED_TRACE(absl::StrCat(StrategyName(strategy), invariant ? " invariant" : ""));
        FfnRun run{Activation::kRelu, DataType::kF32, x.data(), DataType::kF32, m, y.data(),
                   DataType::kF32};
        run.strategy = strategy;
        run.batch_invariant = invariant;
        run.segments = model.segments;
        ASSERT_TRUE(block.Run(run).ok());
        int64_t row = 0;
        for (const ActivationSegment& s : model.segments) {
          const float* xs = x.data() + row * kDModel;
          const std::vector<double> expected =
              ReferenceFfn(Weights(model.kind), s.activation, params, xs, s.rows);
          EXPECT_TRUE(CompareToReference(y.data() + row * kDModel, expected).within(kFp32CheckTolerance))
              << ActivationName(s.activation) << " rows from " << row;
          if (invariant) {
            // Bitwise what the segment gets in a call of its own.
            std::vector<float> alone(static_cast<size_t>(s.rows * kDModel));
            FfnRun own{s.activation, DataType::kF32, xs, DataType::kF32, s.rows, alone.data(),
                       DataType::kF32};
            own.batch_invariant = true;
            ASSERT_TRUE(block.Run(own).ok());
            EXPECT_EQ(std::memcmp(alone.data(), y.data() + row * kDModel, alone.size() * sizeof(float)), 0)
                << ActivationName(s.activation);
          }
          row += s.rows;
        }
      }
    }
  }
}

TEST(SegmentsTest, SegmentsMustCoverTheRowsWithTheModelsKind) {
  std::vector<float> x(10 * kDModel), y(x.size());
  FfnRun run{Activation::kRelu, DataType::kF32, x.data(), DataType::kF32, 10, y.data(), DataType::kF32};
  const ActivationSegment short_of_rows[] = {{4, Activation::kGelu}, {5, Activation::kRelu}};
  run.segments = short_of_rows;
  EXPECT_EQ(Block(FfnKind::kPlain).Run(run).code(), absl::StatusCode::kInvalidArgument);
  const ActivationSegment wrong_kind[] = {{4, Activation::kGelu}, {6, Activation::kSwiglu}};
  run.segments = wrong_kind;
  EXPECT_EQ(Block(FfnKind::kPlain).Run(run).code(), absl::StatusCode::kInvalidArgument);
  const ActivationSegment empty_segment[] = {{10, Activation::kGelu}, {0, Activation::kRelu}};
  run.segments = empty_segment;
  EXPECT_EQ(Block(FfnKind::kPlain).Run(run).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

// The tuner's noise check: a point far above what its neighbours allow.
TEST(TuneTest, OutOfLinePointsAreThoseTheNeighboursRuleOut) {
  const std::vector<int64_t> m = {1, 2, 4, 8, 16, 32};
  // Flat for few tokens, then linear: nothing out of line.
  EXPECT_TRUE(OutOfLine(m, {0.2, 0.2, 0.21, 0.25, 0.45, 0.9}).empty());
  // The m=16 point took 8.6 ms next to 0.8 at m=8 and 1.6 at m=32 (a busy
  // neighbour process during start-up): out of line.
  EXPECT_EQ(OutOfLine(m, {0.2, 0.2, 0.4, 0.8, 8.6, 1.6}), std::vector<size_t>{4});
  // m=1 slower than m=2 by more than 2x: out of line; twice as long as
  // m=1 at m=2 is what linear scaling allows.
  EXPECT_EQ(OutOfLine(m, {15.8, 0.45, 0.5, 0.8, 1.2, 2.4}), std::vector<size_t>{0});
  EXPECT_TRUE(OutOfLine({1, 2}, {0.4, 0.8}).empty());
  EXPECT_TRUE(OutOfLine({64}, {100.0}).empty());
}

}  // namespace
}  // namespace ffn
