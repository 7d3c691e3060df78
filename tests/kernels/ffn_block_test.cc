// Tests of FfnBlock (oneDNN matmuls + ffnserve's activation kernels) against
// the fp64 ReferenceFfn, for every activation, plain and gated.
//
// Bound: CompareToReference's scaled error within kFp32CheckTolerance (1e-4),
// and, to catch a regression long before that, below kTightTolerance.
#include "ffn/kernels/ffn_block.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "ffn/kernels/epilogue.h"
#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/reference.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ffn {

// gtest prints a parameter by its API name. (Identical in every test file
// of kernels_test, as an inline function must be.)
inline void PrintTo(Activation activation, std::ostream* os) { *os << ActivationName(activation); }

namespace {

std::string ActivationTestName(const ::testing::TestParamInfo<Activation>& param_info) {
  return ActivationName(param_info.param);
}

using ::testing::HasSubstr;

constexpr double kTightTolerance = 1e-5;
constexpr int64_t kTokenCounts[] = {1, 3, 64};

std::vector<float> RandomInput(int64_t m, int64_t d_model, uint64_t seed) {
  std::vector<float> x(static_cast<size_t>(m * d_model));
  FillUniform(seed, RandomStream::kInput, kRandomInputScale, x);
  return x;
}

// The activation parameters the reference should use for `weights`.
ActivationParams ParamsFor(const FfnWeights& weights) {
  ActivationParams p;
  p.prelu_alpha = weights.prelu_alpha;
  return p;
}

std::map<std::string, double>& WorstScaledError() {
  static std::map<std::string, double> worst;
  return worst;
}

// Runs `block` on a random x of m tokens and compares with the reference
// computed from `reference_weights` (the weights the block was made from).
ReferenceComparison RunAndCompare(const FfnBlock& block, const FfnWeights& reference_weights,
                                  Activation activation, int64_t m, uint64_t input_seed,
                                  const std::string& label) {
  const std::vector<float> x = RandomInput(m, reference_weights.d_model, input_seed);
  std::vector<float> y(static_cast<size_t>(m * reference_weights.d_model), -12345.0f);
  const absl::Status s = block.Run(activation, x.data(), m, y.data());
  EXPECT_TRUE(s.ok()) << label << ": " << s;
  const std::vector<double> ref =
      ReferenceFfn(reference_weights, activation, ParamsFor(reference_weights), x.data(), m);
  const ReferenceComparison c = CompareToReference(y.data(), ref);
  EXPECT_TRUE(c.within(kFp32CheckTolerance))
      << label << " m=" << m << ": scaled error " << c.max_scaled_error << " at " << c.worst_index;
  EXPECT_LT(c.max_scaled_error, kTightTolerance)
      << label << " m=" << m << ": scaled error " << c.max_scaled_error << " at " << c.worst_index;
  EXPECT_GT(c.rms_reference, 0.1) << label << ": a degenerate output would make the check vacuous";
  double& worst = WorstScaledError()[label];
  worst = std::max(worst, c.max_scaled_error);
  return c;
}

std::string Label(const char* model, Activation a) {
  return std::string(model) + "/" + ActivationName(a);
}

class PlainFfnBlockTest : public ::testing::TestWithParam<Activation> {};

TEST_P(PlainFfnBlockTest, MatchesReference) {
  const Activation a = GetParam();
  const FfnWeights weights = RandomFfnWeights(FfnKind::kPlain, 64, 160, /*seed=*/17);
  auto block = FfnBlock::Create(weights);
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_EQ((*block)->kind(), FfnKind::kPlain);
  EXPECT_EQ((*block)->d_model(), 64);
  EXPECT_EQ((*block)->d_ff(), 160);
  for (int64_t m : kTokenCounts) {
    RunAndCompare(**block, weights, a, m, /*input_seed=*/100 + static_cast<uint64_t>(m),
                  Label("plain 64x160", a));
  }
}

TEST_P(PlainFfnBlockTest, WithoutBiases) {
  const Activation a = GetParam();
  FfnWeights weights = RandomFfnWeights(FfnKind::kPlain, 64, 160, /*seed=*/23);
  weights.has_bias = false;
  weights.b1.clear();
  weights.b2.clear();
  auto block = FfnBlock::Create(weights);
  ASSERT_TRUE(block.ok()) << block.status();
  for (int64_t m : kTokenCounts) {
    RunAndCompare(**block, weights, a, m, 200 + static_cast<uint64_t>(m), Label("plain no bias", a));
  }
  // The biases really are off: with them the answer differs.
  FfnWeights with_bias = RandomFfnWeights(FfnKind::kPlain, 64, 160, /*seed=*/23);
  const std::vector<float> x = RandomInput(1, 64, 5);
  std::vector<float> y(64);
  ASSERT_TRUE((*block)->Run(a, x.data(), 1, y.data()).ok());
  const auto ref_with_bias = ReferenceFfn(with_bias, a, ParamsFor(with_bias), x.data(), 1);
  EXPECT_FALSE(CompareToReference(y.data(), ref_with_bias).within(kFp32CheckTolerance));
}

TEST_P(PlainFfnBlockTest, DeterministicBitForBit) {
  const Activation a = GetParam();
  auto block = FfnBlock::Create(RandomFfnWeights(FfnKind::kPlain, 64, 160, 31));
  ASSERT_TRUE(block.ok()) << block.status();
  for (int64_t m : kTokenCounts) {
    const std::vector<float> x = RandomInput(m, 64, 7);
    std::vector<float> y1(static_cast<size_t>(m * 64)), y2(y1.size(), 1.0f);
    ASSERT_TRUE((*block)->Run(a, x.data(), m, y1.data()).ok());
    ASSERT_TRUE((*block)->Run(a, x.data(), m, y2.data()).ok());
    EXPECT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)), 0) << "m=" << m;
  }
}

INSTANTIATE_TEST_SUITE_P(All, PlainFfnBlockTest,
                         ::testing::ValuesIn(PlainActivations().begin(), PlainActivations().end()),
                         ActivationTestName);

class GatedFfnBlockTest : public ::testing::TestWithParam<Activation> {};

TEST_P(GatedFfnBlockTest, MatchesReference) {
  const Activation a = GetParam();
  // The block takes its weights by value and empties its matrices: keep a copy.
  const FfnWeights weights = RandomFfnWeights(FfnKind::kGated, 48, 100, /*seed=*/29);
  auto block = FfnBlock::Create(weights);
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_EQ((*block)->kind(), FfnKind::kGated);
  // The matrices moved into the packed copy, and come back unchanged.
  EXPECT_TRUE((*block)->weights().wg.empty());
  EXPECT_TRUE((*block)->weights().wu.empty());
  EXPECT_TRUE((*block)->weights().w2.empty());
  const FfnWeights unpacked = (*block)->UnpackedWeights();
  EXPECT_EQ(unpacked.wg, weights.wg);
  EXPECT_EQ(unpacked.wu, weights.wu);
  EXPECT_EQ(unpacked.w2, weights.w2);
  for (int64_t m : kTokenCounts) {
    RunAndCompare(**block, weights, a, m, 300 + static_cast<uint64_t>(m), Label("gated 48x100", a));
  }
}

TEST_P(GatedFfnBlockTest, DeterministicBitForBit) {
  const Activation a = GetParam();
  auto block = FfnBlock::Create(RandomFfnWeights(FfnKind::kGated, 48, 100, 37));
  ASSERT_TRUE(block.ok()) << block.status();
  for (int64_t m : kTokenCounts) {
    const std::vector<float> x = RandomInput(m, 48, 9);
    std::vector<float> y1(static_cast<size_t>(m * 48)), y2(y1.size(), 1.0f);
    ASSERT_TRUE((*block)->Run(a, x.data(), m, y1.data()).ok());
    ASSERT_TRUE((*block)->Run(a, x.data(), m, y2.data()).ok());
    EXPECT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)), 0) << "m=" << m;
  }
}

INSTANTIATE_TEST_SUITE_P(All, GatedFfnBlockTest,
                         ::testing::ValuesIn(GatedActivations().begin(), GatedActivations().end()),
                         ActivationTestName);

// d_ff 700 spans two activation column tiles (512 wide): channel j must get
// alpha[j] in the second tile too.
TEST(FfnBlockTest, PerChannelPrelu) {
  FfnWeights weights = RandomFfnWeights(FfnKind::kPlain, 32, 700, /*seed=*/41);
  weights.prelu_alpha.resize(700);
  FillUniform(43, RandomStream::kB1, 1.0f, weights.prelu_alpha);  // slopes in (-1, 1)
  auto block = FfnBlock::Create(weights);
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_EQ((*block)->params().prelu_alpha.size(), 700u);
  EXPECT_EQ((*block)->params().prelu_alpha.data(), (*block)->weights().prelu_alpha.data());
  for (int64_t m : kTokenCounts) {
    RunAndCompare(**block, weights, Activation::kPrelu, m, 400 + static_cast<uint64_t>(m),
                  "plain 32x700/prelu per-channel");
  }
  // A single shared slope gives a different answer: the per-channel one is used.
  FfnWeights shared = weights;
  shared.prelu_alpha = {0.25f};
  const std::vector<float> x = RandomInput(3, 32, 401);
  std::vector<float> y(3 * 32);
  ASSERT_TRUE((*block)->Run(Activation::kPrelu, x.data(), 3, y.data()).ok());
  EXPECT_FALSE(CompareToReference(y.data(), ReferenceFfn(shared, Activation::kPrelu, ParamsFor(shared),
                                                         x.data(), 3))
                   .within(kFp32CheckTolerance));
}

// Activation parameters given to Create are the ones Run uses.
TEST(FfnBlockTest, CustomActivationParams) {
  const FfnWeights weights = RandomFfnWeights(FfnKind::kPlain, 64, 160, 47);
  ActivationParams params;
  params.leaky_relu_slope = 0.3f;
  params.elu_alpha = 0.5f;
  params.rrelu_lower = 0.2f;
  params.rrelu_upper = 0.4f;
  auto block = FfnBlock::Create(weights, params);
  ASSERT_TRUE(block.ok()) << block.status();
  for (Activation a : {Activation::kLeakyRelu, Activation::kElu, Activation::kRrelu}) {
    const std::vector<float> x = RandomInput(3, 64, 11);
    std::vector<float> y(3 * 64);
    ASSERT_TRUE((*block)->Run(a, x.data(), 3, y.data()).ok());
    ActivationParams ref_params = params;
    ref_params.prelu_alpha = weights.prelu_alpha;
    const auto c = CompareToReference(y.data(), ReferenceFfn(weights, a, ref_params, x.data(), 3));
    EXPECT_LT(c.max_scaled_error, kTightTolerance) << ActivationName(a);
  }
}

// FfnWeights documents prelu_alpha's default as {0.25}, and Create fills it in
// when empty; a plain model built without slopes should therefore work.
// Plain weights without PReLU slopes get the documented default, 0.25.
TEST(FfnBlockTest, PlainWeightsWithoutPreluAlphaDefaultToQuarter) {
  FfnWeights weights = RandomFfnWeights(FfnKind::kPlain, 64, 160, 53);
  weights.prelu_alpha.clear();
  auto block = FfnBlock::Create(weights);
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_EQ((*block)->weights().prelu_alpha, std::vector<float>{0.25f});
  weights.prelu_alpha = {0.25f};
  RunAndCompare(**block, weights, Activation::kPrelu, 3, 500, "plain default alpha/prelu");
}

TEST(FfnBlockTest, RejectsNonPositiveTokenCount) {
  auto block = FfnBlock::Create(RandomFfnWeights(FfnKind::kPlain, 16, 32, 1));
  ASSERT_TRUE(block.ok()) << block.status();
  std::vector<float> x(16, 1.0f), y(16, 0.0f);
  for (int64_t m : {int64_t{0}, int64_t{-1}}) {
    const absl::Status s = (*block)->Run(Activation::kGelu, x.data(), m, y.data());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("token count must be positive"));
  }
  EXPECT_EQ(y, std::vector<float>(16, 0.0f));
}

TEST(FfnBlockTest, RejectsActivationOfTheOtherKind) {
  auto plain = FfnBlock::Create(RandomFfnWeights(FfnKind::kPlain, 16, 32, 1));
  auto gated = FfnBlock::Create(RandomFfnWeights(FfnKind::kGated, 16, 32, 1));
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(gated.ok()) << gated.status();
  std::vector<float> x(16, 1.0f), y(16, 0.0f);
  for (Activation a : GatedActivations()) {
    const absl::Status s = (*plain)->Run(a, x.data(), 1, y.data());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << ActivationName(a);
    EXPECT_THAT(std::string(s.message()), HasSubstr("needs a gated model; this one is plain"));
  }
  for (Activation a : PlainActivations()) {
    const absl::Status s = (*gated)->Run(a, x.data(), 1, y.data());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << ActivationName(a);
    EXPECT_THAT(std::string(s.message()), HasSubstr("needs a plain model; this one is gated"));
  }
}

// Each way the weights can be inconsistent, and the tensor the message names.
TEST(FfnBlockTest, CreateRejectsInconsistentWeights) {
  struct Case {
    const char* what;
    FfnKind kind;
    void (*break_it)(FfnWeights&);
    const char* message;
  };
  const Case cases[] = {
      {"w1 short", FfnKind::kPlain, [](FfnWeights& w) { w.w1.pop_back(); }, "tensor w1 has 511 values, expected 512"},
      {"w2 long", FfnKind::kPlain, [](FfnWeights& w) { w.w2.push_back(0); }, "tensor w2"},
      {"b1 wrong", FfnKind::kPlain, [](FfnWeights& w) { w.b1.resize(3); }, "tensor b1 has 3 values, expected 32"},
      {"b2 missing", FfnKind::kPlain, [](FfnWeights& w) { w.b2.clear(); }, "tensor b2"},
      {"alpha 3", FfnKind::kPlain, [](FfnWeights& w) { w.prelu_alpha = {1, 2, 3}; }, "prelu alpha has 3 values"},
      {"d_model 0", FfnKind::kPlain, [](FfnWeights& w) { w.d_model = 0; }, "must be positive"},
      {"d_ff negative", FfnKind::kGated, [](FfnWeights& w) { w.d_ff = -32; }, "must be positive"},
      {"wg short", FfnKind::kGated, [](FfnWeights& w) { w.wg.resize(10); }, "tensor wg"},
      {"wu missing", FfnKind::kGated, [](FfnWeights& w) { w.wu.clear(); }, "tensor wu"},
      {"gated w2 short", FfnKind::kGated, [](FfnWeights& w) { w.w2.resize(100); }, "tensor w2"},
      {"plain without w1", FfnKind::kPlain, [](FfnWeights& w) { w.w1.clear(); }, "tensor w1"},
  };
  for (const Case& c : cases) {
    FfnWeights w = RandomFfnWeights(c.kind, 16, 32, 3);
    c.break_it(w);
    EXPECT_EQ(w.Validate().code(), absl::StatusCode::kInvalidArgument) << c.what;
    auto block = FfnBlock::Create(std::move(w));
    ASSERT_FALSE(block.ok()) << c.what;
    EXPECT_EQ(block.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(block.status().message()), HasSubstr(c.message)) << c.what;
  }
  // Biases are not checked when the model has none.
  FfnWeights no_bias = RandomFfnWeights(FfnKind::kPlain, 16, 32, 3);
  no_bias.has_bias = false;
  no_bias.b1.resize(5);
  EXPECT_TRUE(no_bias.Validate().ok());
}

// Two threads on one block, different token counts (some new, so their
// primitives are built concurrently), each answer checked.
TEST(FfnBlockTest, ConcurrentRunsFromTwoThreads) {
  const FfnWeights plain_weights = RandomFfnWeights(FfnKind::kPlain, 64, 160, 59);
  auto block = FfnBlock::Create(plain_weights);
  ASSERT_TRUE(block.ok()) << block.status();
  struct Job {
    Activation activation;
    int64_t m;
    double worst = 0;
    int failures = 0;
  };
  Job jobs[2] = {{Activation::kGelu, 5}, {Activation::kSilu, 67}};
  std::vector<std::vector<double>> refs;
  std::vector<std::vector<float>> inputs;
  for (const Job& job : jobs) {
    inputs.push_back(RandomInput(job.m, 64, 600 + static_cast<uint64_t>(job.m)));
    refs.push_back(ReferenceFfn(plain_weights, job.activation, ParamsFor(plain_weights),
                                inputs.back().data(), job.m));
  }
  auto work = [&](int index) {
    Job& job = jobs[index];
    std::vector<float> y(static_cast<size_t>(job.m * 64));
    for (int iteration = 0; iteration < 40; ++iteration) {
      std::fill(y.begin(), y.end(), 0.0f);
      if (!(*block)->Run(job.activation, inputs[index].data(), job.m, y.data()).ok()) {
        ++job.failures;
        continue;
      }
      const auto c = CompareToReference(y.data(), refs[index]);
      job.worst = std::max(job.worst, c.max_scaled_error);
    }
  };
  std::thread t0(work, 0), t1(work, 1);
  t0.join();
  t1.join();
  for (const Job& job : jobs) {
    EXPECT_EQ(job.failures, 0) << ActivationName(job.activation);
    EXPECT_LT(job.worst, kTightTolerance) << ActivationName(job.activation) << " m=" << job.m;
  }
}

TEST(FfnBlockTest, FlopsAndImplementation) {
  auto plain = FfnBlock::Create(RandomFfnWeights(FfnKind::kPlain, 64, 160, 1));
  auto gated = FfnBlock::Create(RandomFfnWeights(FfnKind::kGated, 48, 100, 1));
  ASSERT_TRUE(plain.ok() && gated.ok());
  EXPECT_DOUBLE_EQ((*plain)->Flops(3), 3 * 2.0 * 2 * 64 * 160);
  EXPECT_DOUBLE_EQ((*gated)->Flops(3), 3 * 2.0 * 3 * 48 * 100);
  // Before tuning: our dot products for one token, oneDNN unfused above.
  auto impl = (*plain)->ImplementationFor(1);
  ASSERT_TRUE(impl.ok()) << impl.status();
  EXPECT_THAT(*impl, ::testing::StartsWith("fused: "));
  impl = (*plain)->ImplementationFor(100);
  ASSERT_TRUE(impl.ok()) << impl.status();
  EXPECT_THAT(*impl, ::testing::StartsWith("unfused: "));
  EXPECT_THAT(*impl, HasSubstr(" / "));
  EXPECT_THAT(OneDnnDescription(), HasSubstr("oneDNN"));
}

class ScaledErrorReporter : public ::testing::EmptyTestEventListener {
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    if (WorstScaledError().empty()) return;
    std::printf("\nFfnBlock: worst max_scaled_error vs ReferenceFfn over M in {1, 3, 64}:\n");
    for (const auto& [label, worst] : WorstScaledError()) {
      std::printf("  %-36s %.3g\n", label.c_str(), worst);
    }
  }
};

[[maybe_unused]] const bool kReporterInstalled = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new ScaledErrorReporter);
  return true;
}();

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

// bf16 compute, every activation, f32 and bf16 inputs and outputs, against
// the fp64 reference of the fp32 model: within kBf16CheckTolerance (bf16
// rounds inputs, weights and the activated block to 8 significant bits).
class Bf16FfnBlockTest : public ::testing::TestWithParam<Activation> {};

TEST_P(Bf16FfnBlockTest, MatchesReferenceWithinBf16Tolerance) {
  const Activation a = GetParam();
  const FfnKind kind = IsGated(a) ? FfnKind::kGated : FfnKind::kPlain;
  const FfnWeights weights = RandomFfnWeights(kind, 96, 200, 71);
  auto block = FfnBlock::Create(weights);
  ASSERT_TRUE(block.ok()) << block.status();
  ActivationParams params;
  params.prelu_alpha = weights.prelu_alpha;
  for (int64_t m : {1, 5, 64, 300}) {
    std::vector<float> x(static_cast<size_t>(m * 96));
    FillUniform(static_cast<uint64_t>(m), RandomStream::kInput, kRandomInputScale, x);
    const std::vector<double> expected = ReferenceFfn(weights, a, params, x.data(), m);
    // f32 in, f32 out.
    std::vector<float> y(x.size());
    ASSERT_TRUE((*block)->Run({a, DataType::kBf16, x.data(), DataType::kF32, m, y.data(), DataType::kF32}).ok());
    ReferenceComparison c = CompareToReference(y.data(), expected);
    EXPECT_TRUE(c.within(kBf16CheckTolerance)) << ActivationName(a) << " m=" << m << ": " << c.max_scaled_error;
    EXPECT_GT(c.max_scaled_error, kFp32CheckTolerance) << "bf16 compute should not be as exact as f32";
    // bf16 in and out: the input rounded to bf16 first, the output rounded once.
    std::vector<uint16_t> x16(x.size()), y16(x.size());
    std::vector<float> x_rounded(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      x16[i] = FloatToBf16(x[i]);
      x_rounded[i] = Bf16ToFloat(x16[i]);
    }
    ASSERT_TRUE((*block)->Run({a, DataType::kBf16, x16.data(), DataType::kBf16, m, y16.data(), DataType::kBf16}).ok());
    const std::vector<double> expected16 = ReferenceFfn(weights, a, params, x_rounded.data(), m);
    std::vector<float> y_widened(y16.size());
    for (size_t i = 0; i < y16.size(); ++i) y_widened[i] = Bf16ToFloat(y16[i]);
    c = CompareToReference(y_widened.data(), expected16);
    EXPECT_TRUE(c.within(kBf16CheckTolerance)) << ActivationName(a) << " bf16 io m=" << m << ": " << c.max_scaled_error;
    // f32 compute with a bf16 input: as exact as f32 on the rounded input.
    std::vector<float> y32(x.size());
    ASSERT_TRUE((*block)->Run({a, DataType::kF32, x16.data(), DataType::kBf16, m, y32.data(), DataType::kF32}).ok());
    c = CompareToReference(y32.data(), expected16);
    EXPECT_TRUE(c.within(kFp32CheckTolerance)) << ActivationName(a) << " f32 compute, bf16 in: " << c.max_scaled_error;
  }
}

INSTANTIATE_TEST_SUITE_P(All, Bf16FfnBlockTest, ::testing::ValuesIn(AllActivations()),
                         [](const ::testing::TestParamInfo<Activation>& param_info) {
                           return std::string(ActivationName(param_info.param));
                         });

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

using ::testing::HasSubstr;

// The whole sub-layer y = x + FFN(norm(x)): every norm with and without the
// residual, plain and gated, f32 and bf16 compute, against the fp64 reference.
TEST(FfnBlockSubLayerTest, NormAndResidualMatchTheReference) {
  for (FfnKind kind : {FfnKind::kPlain, FfnKind::kGated}) {
    for (NormKind norm : {NormKind::kNone, NormKind::kLayerNorm, NormKind::kRmsNorm}) {
      for (bool residual : {false, true}) {
        FfnWeights weights = RandomFfnWeights(kind, 64, 128, 81);
        AddRandomNorm(weights, norm, 82);
        weights.norm_eps = 1e-5f;
        weights.residual = residual;
        auto block = FfnBlock::Create(weights);
        ASSERT_TRUE(block.ok()) << block.status();
        const Activation a = kind == FfnKind::kGated ? Activation::kSwiglu : Activation::kGelu;
        ActivationParams params;
        params.prelu_alpha = weights.prelu_alpha;
        for (int64_t m : {1, 5, 64}) {
          // Inputs off-centre and scaled, so the norm has work to do.
          std::vector<float> x(static_cast<size_t>(m * 64));
          FillUniform(static_cast<uint64_t>(m), RandomStream::kInput, 3.0f, x);
          for (float& v : x) v += 0.7f;
          const std::vector<double> expected = ReferenceFfn(weights, a, params, x.data(), m);
          const std::string what = std::string(NormName(norm)) + (residual ? " + residual" : "") +
                                   (kind == FfnKind::kGated ? " gated" : " plain") +
                                   " m=" + std::to_string(m);
          for (DataType compute : {DataType::kF32, DataType::kBf16}) {
            for (Strategy strategy : ConcreteStrategies()) {
              std::vector<float> y(x.size());
              FfnRun run{a, compute, x.data(), DataType::kF32, m, y.data(), DataType::kF32};
              run.strategy = strategy;
              ASSERT_TRUE((*block)->Run(run).ok());
              const ReferenceComparison c = CompareToReference(y.data(), expected);
              EXPECT_TRUE(c.within(compute == DataType::kF32 ? kFp32CheckTolerance : kBf16CheckTolerance))
                  << what << " " << DataTypeName(compute) << " " << StrategyName(strategy) << ": "
                  << c.max_scaled_error;
            }
          }
        }
      }
    }
  }
}

TEST(FfnBlockSubLayerTest, NormWeightsAreValidated) {
  FfnWeights weights = RandomFfnWeights(FfnKind::kPlain, 16, 32, 1);
  AddRandomNorm(weights, NormKind::kLayerNorm, 1);
  weights.norm_beta.pop_back();
  auto block = FfnBlock::Create(weights);
  ASSERT_FALSE(block.ok());
  EXPECT_THAT(std::string(block.status().message()), HasSubstr("norm_bias"));
  weights = RandomFfnWeights(FfnKind::kPlain, 16, 32, 1);
  AddRandomNorm(weights, NormKind::kRmsNorm, 1);
  weights.norm_eps = 0;
  EXPECT_FALSE(FfnBlock::Create(weights).ok());
}

}  // namespace
}  // namespace ffn
