// Matrices kept in bf16 (FfnWeights::matrix_type kBf16, as from a bf16
// checkpoint): f32 compute widens them, which is exact, so every answer must
// be bitwise the answer of the same block built from the widened f32
// matrices. Checked on the small-M kernel that reads bf16 packs for f32
// tokens (every ISA this CPU runs), then through FfnBlock on every strategy,
// compute dtype and M, batch-invariant or not; and the memory the block
// holds.
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dispatch.h"
#include "ffn/kernels/dtype.h"
#include "ffn/kernels/ffn_block.h"
#include "ffn/kernels/ffn_weights.h"
#include "gtest/gtest.h"
#include "small_m.h"

namespace ffn {
namespace {

std::vector<uint16_t> ToBf16(const std::vector<float>& values) {
  std::vector<uint16_t> out(values.size());
  CopyConverting(values.data(), DataType::kF32, out.data(), DataType::kBf16, values.size());
  return out;
}

std::vector<float> Widened(const std::vector<uint16_t>& bits) {
  std::vector<float> out(bits.size());
  CopyConverting(bits.data(), DataType::kBf16, out.data(), DataType::kF32, bits.size());
  return out;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Table {
  std::string name;
  SmallMF32Kernel f32;
  SmallMF32Bf16WeightsKernel mixed;
};

std::vector<Table> Tables() {
  std::vector<Table> tables = {
      {"scalar", ScalarSmallMKernels().f32, ScalarSmallMKernels().f32_bf16_weights}};
  for (Isa isa : SupportedIsas()) {
    if (isa == Isa::kAvx2) {
      tables.push_back({"avx2", Avx2SmallMKernels().f32, Avx2SmallMKernels().f32_bf16_weights});
    }
    if (isa == Isa::kAvx512) {
      tables.push_back({"avx512", SmallMPackedF32, SmallMPackedF32Bf16Weights});
    }
  }
  return tables;
}

// The f32-tokens-on-bf16-weights kernel against the f32 kernel over the
// widened weights: the same bits, for odd and even k, n not a multiple of 16,
// every token count, and a group offset into the packed matrix.
TEST(Bf16WeightsKernelTest, SumsAreTheF32KernelsOverTheWidenedWeights) {
  for (const Table& t : Tables()) {
    for (const int64_t k : {1, 2, 37, 64, 131}) {
      const int64_t n = 75, group0 = 2, rows = n + group0 * kPackRows;
      std::vector<float> w(static_cast<size_t>(rows * k));
      FillUniform(static_cast<uint64_t>(k), RandomStream::kW1, 1.0f, w);
      const std::vector<uint16_t> bits = ToBf16(w);
      const std::vector<float> wide = Widened(bits);
      const std::vector<uint16_t> packed_bf16 = PackRows(bits.data(), rows, k);
      const std::vector<float> packed_f32 = PackRows(wide.data(), rows, k);
      for (const int64_t m : {1, 2, 3, 7, 8, 9, 16, 32}) {
        std::vector<float> x(static_cast<size_t>(m * k));
        FillUniform(static_cast<uint64_t>(m), RandomStream::kInput, 2.0f, x);
        std::vector<float> want(static_cast<size_t>(m * n)), got(want.size(), -1.0f);
        t.f32(x.data(), k, m, packed_f32.data(), k, group0, n, want.data(), n);
        t.mixed(x.data(), k, m, packed_bf16.data(), k, group0, n, got.data(), n);
        EXPECT_TRUE(SameBits(got, want)) << t.name << " k=" << k << " m=" << m;
      }
    }
  }
}

TEST(Bf16WeightsKernelTest, UnpackRowsUndoesPackRows) {
  for (const int64_t k : {1, 5, 64}) {
    const int64_t n = 35;
    std::vector<float> w(static_cast<size_t>(n * k));
    FillUniform(7, RandomStream::kW2, 1.0f, w);
    const std::vector<uint16_t> bits = ToBf16(w);
    EXPECT_EQ((UnpackRows<float, float>(PackRows(w.data(), n, k).data(), n, k)), w);
    EXPECT_EQ((UnpackRows<uint16_t, uint16_t>(PackRows(bits.data(), n, k).data(), n, k)), bits);
    EXPECT_EQ((UnpackRows<float, uint16_t>(PackRows(bits.data(), n, k).data(), n, k)), Widened(bits));
    EXPECT_EQ((UnpackRows<uint16_t, float>(PackRows(w.data(), n, k).data(), n, k)), bits);
  }
}

// The same random model with its matrices in bf16, and widened to f32.
struct Pair {
  FfnWeights bf16, f32;
};

Pair Models(FfnKind kind, int64_t dm, int64_t dff, uint64_t seed) {
  FfnWeights w = RandomFfnWeights(kind, dm, dff, seed);
  Pair p{w, w};
  p.bf16.matrix_type = DataType::kBf16;
  p.bf16.w1_bf16 = ToBf16(w.w1);
  p.bf16.wg_bf16 = ToBf16(w.wg);
  p.bf16.wu_bf16 = ToBf16(w.wu);
  p.bf16.w2_bf16 = ToBf16(w.w2);
  p.bf16.w1 = p.bf16.wg = p.bf16.wu = p.bf16.w2 = {};
  p.f32 = p.bf16;
  WidenMatrices(p.f32);
  return p;
}

// int8 from a bf16 checkpoint: quantized from the bf16 values, the same
// block as from their widened f32 copy.
TEST(Bf16WeightsBlockTest, Int8FromBf16IsInt8FromTheWidenedF32) {
  for (const FfnKind kind : {FfnKind::kPlain, FfnKind::kGated}) {
    const Pair p = Models(kind, 72, 600, 6);
    auto kept = FfnBlock::Create(p.bf16, {}, Quantization::kInt8);
    auto widened = FfnBlock::Create(p.f32, {}, Quantization::kInt8);
    ASSERT_TRUE(kept.ok() && widened.ok()) << kept.status() << widened.status();
    const Activation a = kind == FfnKind::kGated ? Activation::kSwiglu : Activation::kGelu;
    std::vector<float> x(static_cast<size_t>(9 * 72));
    FillUniform(4, RandomStream::kInput, kRandomInputScale, x);
    std::vector<float> from_bf16(x.size()), from_f32(x.size());
    ASSERT_TRUE((*kept)->Run(a, x.data(), 9, from_bf16.data()).ok());
    ASSERT_TRUE((*widened)->Run(a, x.data(), 9, from_f32.data()).ok());
    EXPECT_TRUE(SameBits(from_bf16, from_f32));
    EXPECT_EQ((*kept)->WeightBytes(), (*widened)->WeightBytes());
  }
}

TEST(Bf16WeightsBlockTest, AnswersAreTheWidenedF32BlocksBitForBit) {
  for (const FfnKind kind : {FfnKind::kPlain, FfnKind::kGated}) {
    // Not multiples of the vector widths, kPackRows or kColumnBlock.
    const Pair p = Models(kind, 72, 600, 5);
    auto kept = FfnBlock::Create(p.bf16);
    auto widened = FfnBlock::Create(p.f32);
    ASSERT_TRUE(kept.ok() && widened.ok()) << kept.status() << widened.status();
    EXPECT_EQ((*kept)->MatrixType(), DataType::kBf16);
    EXPECT_EQ((*widened)->MatrixType(), DataType::kF32);
    const Activation a = kind == FfnKind::kGated ? Activation::kSwiglu : Activation::kGelu;
    for (const DataType compute : {DataType::kF32, DataType::kBf16}) {
      for (const Strategy strategy : {Strategy::kUnfused, Strategy::kFused, Strategy::kPostops}) {
        for (const bool invariant : {false, true}) {
          if (invariant && strategy != Strategy::kFused) continue;
          for (const int64_t m : {1, 5, 32, 33, 200}) {
            std::vector<float> x(static_cast<size_t>(m * 72));
            FillUniform(static_cast<uint64_t>(m), RandomStream::kInput, kRandomInputScale, x);
            std::vector<float> want(x.size()), got(x.size(), -1.0f);
            FfnRun run{a, compute, x.data(), DataType::kF32, m, want.data(), DataType::kF32};
            run.strategy = strategy;
            run.batch_invariant = invariant;
            ASSERT_TRUE((*widened)->Run(run).ok());
            run.y = got.data();
            ASSERT_TRUE((*kept)->Run(run).ok());
            EXPECT_TRUE(SameBits(got, want))
                << (kind == FfnKind::kGated ? "gated " : "plain ") << DataTypeName(compute) << " "
                << StrategyName(strategy) << (invariant ? " invariant" : "") << " m=" << m;
          }
        }
      }
    }
    // The matrices come back as given.
    EXPECT_EQ((*kept)->UnpackedWeights().w2, p.f32.w2);
    EXPECT_EQ((*kept)->UnpackedWeights().wg, p.f32.wg);
    EXPECT_EQ((*kept)->UnpackedWeights().w1, p.f32.w1);
  }
}

// A bf16 block serving batch-invariant calls in both compute dtypes holds
// its matrices once, in bf16 (padded to whole groups of 16 rows); an f32
// block holds its f32 packs and, once bf16 compute runs, their bf16 twin.
TEST(Bf16WeightsBlockTest, Bf16MatricesAreHeldOnce) {
  const int64_t dm = 256, dff = 1024;
  const Pair p = Models(FfnKind::kGated, dm, dff, 6);
  auto kept = FfnBlock::Create(p.bf16);
  auto widened = FfnBlock::Create(p.f32);
  ASSERT_TRUE(kept.ok() && widened.ok());
  ASSERT_TRUE((*kept)->Prepare(32, /*batch_invariant=*/true).ok());
  ASSERT_TRUE((*widened)->Prepare(32, /*batch_invariant=*/true).ok());
  const size_t bf16_bytes = 3 * dm * dff * sizeof(uint16_t);
  EXPECT_EQ((*kept)->WeightBytes(), bf16_bytes);
  EXPECT_EQ((*widened)->WeightBytes(), 3 * bf16_bytes);
  EXPECT_EQ((*kept)->PackedWeightBytes(), 0u);  // no oneDNN copies
}

}  // namespace
}  // namespace ffn
