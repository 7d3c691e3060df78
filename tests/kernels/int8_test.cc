// int8 models (Quantization::kInt8): the integer kernels give exact sums on
// every ISA, the block's answers stay within the stated int8 tolerance of
// the fp64 reference, do not depend on the batch, keep a NaN token to
// itself, and hold half the bytes of bf16.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dispatch.h"
#include "ffn/kernels/ffn_block.h"
#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/moe.h"
#include "ffn/kernels/reference.h"
#include "gtest/gtest.h"
#include "small_m.h"

namespace ffn {
namespace {

struct Int8Table {
  std::string name;
  SmallMInt8Kernel kernel;
  bool fused;  // one rounding per group multiply-add (FMA)
};

std::vector<Int8Table> Int8Tables() {
  std::vector<Int8Table> tables = {{"scalar", ScalarSmallMKernels().int8, false}};
  for (Isa isa : SupportedIsas()) {
    if (isa == Isa::kAvx2) tables.push_back({"avx2", Avx2SmallMKernels().int8, true});
  }
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) {
    tables.push_back({"avx512-vnni", SmallMPackedInt8, true});
  } else {
    std::printf("[ SKIPPED  ] the AVX512-VNNI kernel: this CPU has no AVX512-VNNI\n");
  }
  return tables;
}

std::vector<float> Tokens(int64_t m, int64_t d_model, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m * d_model));
  for (float& v : x) v = dist(rng);
  return x;
}

// Every kernel against plain loops: the int32 sum of each group exact, one
// multiply-add per group in k order (fused or not, as the kernel's ISA does
// it), the correction taken off, for k not a multiple of 4 or of a group, n not
// a multiple of 16, token groups of every size and the extremes of s8 and u8.
TEST(Int8KernelTest, GroupSumsAreExactOnEveryIsa) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> u8(0, 255), s8(-127, 127);
  std::uniform_real_distribution<float> positive(0.001f, 0.1f);
  for (int64_t k : {1, 3, 4, 37, 64, 768}) {
    for (int64_t n : {1, 16, 45, 100}) {
      std::vector<uint8_t> w(static_cast<size_t>(n * k));
      for (uint8_t& v : w) v = static_cast<uint8_t>(u8(rng));
      w[0] = 255;
      const std::vector<uint8_t> packed = PackRows(w.data(), n, k);
      const int64_t kgroups = Int8KGroups(k), stride = PaddedK<int8_t>(k);
      for (int64_t m : {1, 2, 3, 4, 5, 9}) {
        std::vector<int8_t> x(static_cast<size_t>(m * stride), 0);
        for (int64_t r = 0; r < m; ++r) {
          for (int64_t i = 0; i < k; ++i) x[static_cast<size_t>(r * stride + i)] = static_cast<int8_t>(s8(rng));
        }
        x[0] = -127;
        std::vector<float> scale(static_cast<size_t>(m * kgroups)), correction(static_cast<size_t>(m));
        for (float& v : scale) v = positive(rng);
        for (float& v : correction) v = positive(rng) * static_cast<float>(s8(rng));
        for (const Int8Table& t : Int8Tables()) {
          std::vector<float> expected(static_cast<size_t>(m * n));
          for (int64_t r = 0; r < m; ++r) {
            for (int64_t j = 0; j < n; ++j) {
              float sum = 0;
              for (int64_t g = 0; g < kgroups; ++g) {
                int32_t acc = 0;
                for (int64_t i = g * kInt8Group; i < std::min(k, (g + 1) * kInt8Group); ++i) {
                  acc += int32_t{x[static_cast<size_t>(r * stride + i)]} * int32_t{w[static_cast<size_t>(j * k + i)]};
                }
                const size_t at = static_cast<size_t>(r * kgroups + g);
                const float exact = static_cast<float>(acc);
                sum = t.fused ? std::fma(exact, scale[at], sum) : exact * scale[at] + sum;
              }
              expected[static_cast<size_t>(r * n + j)] = sum - correction[static_cast<size_t>(r)];
            }
          }
          std::vector<float> y(expected.size(), -1);
          t.kernel(x.data(), stride, scale.data(), kgroups, correction.data(), m, packed.data(), k,
                   0, n, y.data(), n);
          EXPECT_EQ(std::memcmp(y.data(), expected.data(), y.size() * sizeof(float)), 0)
              << t.name << " m=" << m << " k=" << k << " n=" << n;
        }
      }
    }
  }
}

// Token quantization: the same bits on every ISA, and what small_m.h says
// (group scales, round to nearest even, zero padding, the correction, NaN
// rows).
TEST(Int8KernelTest, TokenQuantizationIsTheSameOnEveryIsa) {
  std::vector<std::pair<std::string, QuantizeInt8Kernel>> kernels = {
      {"scalar", ScalarSmallMKernels().quantize_int8}};
  for (Isa isa : SupportedIsas()) {
    if (isa == Isa::kAvx2) kernels.emplace_back("avx2", Avx2SmallMKernels().quantize_int8);
  }
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) {
    kernels.emplace_back("avx512", QuantizeInt8Rows);
  }
  for (int64_t k : {1, 5, 16, 31, 32, 33, 70, 768}) {
    const int64_t rows = 4, stride = PaddedK<int8_t>(k) + 4, kgroups = Int8KGroups(k);
    std::vector<float> x = Tokens(rows, k, static_cast<uint32_t>(k));
    for (int64_t i = 0; i < k; ++i) x[static_cast<size_t>(k + i)] = 0.0f;  // a row of zeros
    x[static_cast<size_t>(2 * k)] = std::numeric_limits<float>::quiet_NaN();
    x[static_cast<size_t>(3 * k + k / 2)] *= 1000.0f;  // an outlier
    std::vector<int8_t> first_q;
    std::vector<float> first_scale, first_correction;
    for (const auto& [name, quantize] : kernels) {
      std::vector<int8_t> q(static_cast<size_t>(rows * stride), 99);
      std::vector<float> scale(static_cast<size_t>(rows * kgroups)), correction(rows);
      quantize(x.data(), k, rows, k, q.data(), stride, scale.data(), kgroups, correction.data());
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i = k; i < stride; ++i) EXPECT_EQ(q[static_cast<size_t>(r * stride + i)], 0) << name;
      }
      EXPECT_TRUE(std::isnan(correction[2])) << name;
      EXPECT_EQ(correction[1], 0.0f) << name;
      // Row 0 as small_m.h defines it.
      float total = 0;
      for (int64_t g = 0; g < kgroups; ++g) {
        float largest = 0;
        for (int64_t i = g * kInt8Group; i < std::min(k, (g + 1) * kInt8Group); ++i) largest = std::max(largest, std::fabs(x[static_cast<size_t>(i)]));
        EXPECT_EQ(scale[static_cast<size_t>(g)], largest / 127.0f) << name;
        int32_t sum = 0;
        for (int64_t i = g * kInt8Group; i < std::min(k, (g + 1) * kInt8Group); ++i) {
          const float expected = std::nearbyint(x[static_cast<size_t>(i)] * (127.0f / largest));
          EXPECT_EQ(q[static_cast<size_t>(i)], static_cast<int8_t>(expected)) << name << " k=" << k << " i=" << i;
          sum += q[static_cast<size_t>(i)];
        }
        total = std::fma(static_cast<float>(128 * sum), scale[static_cast<size_t>(g)], total);
      }
      EXPECT_EQ(correction[0], total) << name;
      if (first_q.empty()) {
        first_q = q;
        first_scale = scale;
        first_correction = correction;
        continue;
      }
      EXPECT_EQ(q, first_q) << name << " k=" << k;
      EXPECT_EQ(std::memcmp(scale.data(), first_scale.data(), scale.size() * sizeof(float)), 0) << name;
      EXPECT_EQ(std::memcmp(correction.data(), first_correction.data(), rows * sizeof(float)), 0) << name;
    }
  }
}

TEST(Int8KernelTest, PackingRoundTrips) {
  std::vector<uint8_t> w(19 * 13);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint8_t>(i % 256);
  const std::vector<uint8_t> packed = PackRows(w.data(), 19, 13);
  EXPECT_EQ(packed.size(), size_t{32 * 16});  // 2 groups of 16 rows × 16 (13 padded to quads)
  EXPECT_EQ((UnpackRows<uint8_t, uint8_t>(packed.data(), 19, 13)), w);
}

struct Int8Case {
  FfnKind kind;
  Activation activation;
  int64_t d_model, d_ff;
};

std::unique_ptr<FfnBlock> Int8Block(const Int8Case& c, uint64_t seed) {
  auto block =
      FfnBlock::Create(RandomFfnWeights(c.kind, c.d_model, c.d_ff, seed), {}, Quantization::kInt8);
  EXPECT_TRUE(block.ok()) << block.status();
  return block.ok() ? std::move(*block) : nullptr;
}

const Int8Case kCases[] = {
    {FfnKind::kPlain, Activation::kGelu, 768, 3072},
    {FfnKind::kPlain, Activation::kRelu, 130, 300},
    {FfnKind::kGated, Activation::kSwiglu, 256, 700},
    {FfnKind::kGated, Activation::kGeglu, 96, 260},
};

// Against the fp64 reference on the original (unquantized) weights: the
// tolerance docs/ACCURACY.md states, in both compute dtypes and y types.
TEST(Int8BlockTest, WithinTheInt8ToleranceOfFp64) {
  for (const Int8Case& c : kCases) {
    const FfnWeights original = RandomFfnWeights(c.kind, c.d_model, c.d_ff, 3);
    auto block = Int8Block(c, 3);
    ASSERT_NE(block, nullptr);
    EXPECT_EQ(block->quantization(), Quantization::kInt8);
    for (int64_t m : {1, 7, 64}) {
      const std::vector<float> x = Tokens(m, c.d_model, 11);
      const std::vector<double> ref =
          ReferenceFfn(original, c.activation, block->params(), x.data(), m);
      for (DataType compute : {DataType::kF32, DataType::kBf16}) {
        std::vector<float> y(x.size());
        ASSERT_TRUE(block
                        ->Run({c.activation, compute, x.data(), DataType::kF32, m, y.data(),
                               DataType::kF32})
                        .ok());
        const ReferenceComparison cmp = CompareToReference(y.data(), ref);
        EXPECT_TRUE(cmp.within(kInt8CheckTolerance) &&
                    cmp.relative_frobenius <= kInt8FrobeniusTolerance)
            << ActivationName(c.activation) << " m=" << m << " scaled " << cmp.max_scaled_error
            << " frobenius " << cmp.relative_frobenius;
        std::printf("%s %ldx%ld m=%ld: scaled %.3g, frobenius %.3g\n",
                    std::string(ActivationName(c.activation)).c_str(), static_cast<long>(c.d_model),
                    static_cast<long>(c.d_ff), static_cast<long>(m), cmp.max_scaled_error,
                    cmp.relative_frobenius);
      }
    }
  }
}

// A token alone and as any row of calls of every size: the same bits.
TEST(Int8BlockTest, AnswersAreBatchInvariant) {
  for (const Int8Case& c : kCases) {
    auto block = Int8Block(c, 5);
    ASSERT_NE(block, nullptr);
    const int64_t largest = 512;
    const std::vector<float> x = Tokens(largest, c.d_model, 13);
    std::vector<float> alone(x.size());
    for (int64_t r = 0; r < largest; ++r) {
      ASSERT_TRUE(
          block->Run(c.activation, x.data() + r * c.d_model, 1, alone.data() + r * c.d_model).ok());
    }
    for (int64_t m : {2, 3, 8, 31, 64, 200, 512}) {
      std::vector<float> y(static_cast<size_t>(m * c.d_model));
      ASSERT_TRUE(block->Run(c.activation, x.data(), m, y.data()).ok());
      EXPECT_EQ(std::memcmp(y.data(), alone.data(), y.size() * sizeof(float)), 0)
          << ActivationName(c.activation) << " m=" << m;
    }
  }
}

TEST(Int8BlockTest, ANonFiniteTokenGivesNaNAndLeavesTheOthers) {
  const Int8Case c = kCases[2];
  auto block = Int8Block(c, 9);
  ASSERT_NE(block, nullptr);
  std::vector<float> x = Tokens(3, c.d_model, 17);
  std::vector<float> clean(x.size()), y(x.size());
  ASSERT_TRUE(block->Run(c.activation, x.data(), 3, clean.data()).ok());
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    x[static_cast<size_t>(c.d_model + 5)] = bad;
    ASSERT_TRUE(block->Run(c.activation, x.data(), 3, y.data()).ok());
    for (int64_t i = 0; i < c.d_model; ++i) {
      EXPECT_TRUE(std::isnan(y[static_cast<size_t>(c.d_model + i)]));
      EXPECT_EQ(y[static_cast<size_t>(i)], clean[static_cast<size_t>(i)]);
      EXPECT_EQ(y[static_cast<size_t>(2 * c.d_model + i)],
                clean[static_cast<size_t>(2 * c.d_model + i)]);
    }
  }
}

// Half of bf16's bytes (plus a scale and a sum per row), a quarter of f32's,
// and the matrices back as the dequantized values.
TEST(Int8BlockTest, HoldsHalfTheBytesOfBf16) {
  const Int8Case c = kCases[2];
  auto int8 = Int8Block(c, 1);
  ASSERT_NE(int8, nullptr);
  auto f32 = FfnBlock::Create(RandomFfnWeights(c.kind, c.d_model, c.d_ff, 1));
  ASSERT_TRUE(f32.ok());
  const double matrices = 3.0 * static_cast<double>(c.d_model * c.d_ff);
  EXPECT_LE(static_cast<double>(int8->WeightBytes()), matrices * 1.05);
  EXPECT_GE(static_cast<double>((*f32)->WeightBytes()), matrices * 4);
  const FfnWeights unpacked = int8->UnpackedWeights();
  const FfnWeights original = RandomFfnWeights(c.kind, c.d_model, c.d_ff, 1);
  ASSERT_EQ(unpacked.wg.size(), original.wg.size());
  double worst = 0, largest = 0;
  for (size_t i = 0; i < original.wg.size(); ++i) {
    worst = std::max(worst, std::fabs(double{unpacked.wg[i]} - original.wg[i]));
    largest = std::max(largest, std::fabs(double{original.wg[i]}));
  }
  EXPECT_GT(worst, 0);                               // quantized
  EXPECT_LE(worst, largest / 127.0 * 0.5 * 1.0001);  // half a step of the largest row scale
}

// A mixture of experts with int8 experts (and shared expert): within the
// int8 bound of the fp64 reference along the routing it used, and the same
// bits for a token alone and inside a larger call.
TEST(Int8BlockTest, MixtureOfExpertsWithInt8Experts) {
  const MoeWeights kept = RandomMoeWeights({96, 160, 6, 2, 64}, 8);
  auto block = FfnBlock::CreateMoe(kept, {}, Quantization::kInt8);
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_EQ((*block)->quantization(), Quantization::kInt8);
  for (int64_t m : {1, 9, 70}) {
    const std::vector<float> x = Tokens(m, 96, static_cast<uint32_t>(m));
    std::vector<float> y(x.size());
    MoeRouting used;
    FfnRun run{Activation::kSwiglu, DataType::kF32, x.data(), DataType::kF32, m, y.data(),
               DataType::kF32};
    run.routing_out = &used;
    ASSERT_TRUE((*block)->Run(run).ok());
    const ReferenceComparison c = CompareToReference(
        y.data(), ReferenceMoe(kept, Activation::kSwiglu, (*block)->params(), x.data(), m, used));
    EXPECT_TRUE(kInt8Check.Passes(c)) << "m=" << m << " scaled " << c.max_scaled_error
                                      << ", Frobenius " << c.relative_frobenius;
    EXPECT_GT(c.relative_frobenius, 1e-4);  // quantized, so not f32-exact
    std::vector<float> alone(96);
    ASSERT_TRUE((*block)->Run(Activation::kSwiglu, x.data() + (m - 1) * 96, 1, alone.data()).ok());
    EXPECT_EQ(std::memcmp(alone.data(), y.data() + (m - 1) * 96, 96 * sizeof(float)), 0) << m;
  }
}

TEST(Int8BlockTest, RefusesStrategiesItDoesNotRun) {
  auto block = Int8Block(kCases[1], 1);
  ASSERT_NE(block, nullptr);
  std::vector<float> x = Tokens(2, 130, 1), y(x.size());
  for (Strategy s : {Strategy::kUnfused, Strategy::kPostops}) {
    FfnRun run{Activation::kRelu, DataType::kF32, x.data(), DataType::kF32, 2,
               y.data(),          DataType::kF32};
    run.strategy = s;
    EXPECT_EQ(block->Run(run).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(block->Tune(8).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ffn
