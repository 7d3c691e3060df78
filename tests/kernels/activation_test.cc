// Tests of the activation kernels against the fp64 reference (reference.h).
//
// The bound under test is the one activation.h states:
//   relu, leaky_relu, prelu, rrelu, reglu: exact (the fp64 value rounded once);
//   the others: at most 4 ULP, or 1e-7 absolute where the result is below
//   1e-6 in magnitude.
// plus its special-value rules: NaN in → NaN out, ±inf → the limits, no NaN
// from finite input, no inf from finite input with a finite answer, the sign
// of zero as the reference has it.
//
// The sweep prints the largest error seen per activation (in ULP of the exact
// value), so that the header's bound can be kept honest.
#include "ffn/kernels/activation.h"
#include "ffn/kernels/epilogue.h"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "ffn/kernels/reference.h"
#include "gtest/gtest.h"

namespace ffn {

// gtest prints a parameter by its API name. (Identical in every test file
// of kernels_test, as an inline function must be.)
inline void PrintTo(Activation activation, std::ostream* os) { *os << ActivationName(activation); }

namespace {

std::string ActivationTestName(const ::testing::TestParamInfo<Activation>& param_info) {
  return ActivationName(param_info.param);
}

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr double kMaxUlp = 4.0;
constexpr double kTinyResult = 1e-6;   // below it, an absolute bound applies
constexpr double kTinyAbsError = 1e-7;

bool IsExactFamily(Activation a) {
  return a == Activation::kRelu || a == Activation::kLeakyRelu || a == Activation::kPrelu ||
         a == Activation::kRrelu || a == Activation::kReglu;
}

// One fp32 ULP at the magnitude of `v` (the spacing of floats around it).
double FloatUlp(double v) {
  const double a = std::abs(v);
  if (a < static_cast<double>(FLT_MIN)) return std::ldexp(1.0, -149);
  int e;
  std::frexp(a, &e);  // a in [2^(e-1), 2^e)
  return std::ldexp(1.0, e - 24);
}

// Worst errors seen for one activation.
struct ErrorStats {
  double max_ulp = 0;          // over results with |exact| >= 1e-6
  double max_ulp_normal = 0;   // over all results in the normal float range
  double max_abs_tiny = 0;     // absolute error where |exact| < 1e-6
  double worst_x = 0;
  int64_t checked = 0;
};

std::map<std::string, ErrorStats>& Observed() {
  static std::map<std::string, ErrorStats> observed;
  return observed;
}

// A failure description, built only when a check fails.
template <typename... Parts>
std::string Describe(const Parts&... parts) {
  std::ostringstream out;
  out.precision(9);
  (out << ... << parts);
  return out.str();
}

// Empty if `y` is within the stated bound of `exact`; otherwise why not.
// `exact_family` selects the bit-exact bound.
std::string CheckAgainstExact(bool exact_family, float y, double exact, bool finite_input,
                              ErrorStats* stats, double x_for_stats) {
  if (stats) ++stats->checked;
  if (std::isnan(exact)) {
    return std::isnan(y) ? "" : Describe("expected NaN, got ", y);
  }
  if (std::isnan(y)) {
    return Describe("got NaN, expected ", exact, finite_input ? " (finite input)" : "");
  }
  const float exact_rounded = static_cast<float>(exact);
  if (exact_family) {
    if (std::bit_cast<uint32_t>(y) == std::bit_cast<uint32_t>(exact_rounded)) return "";
    return Describe("got ", y, ", exact ", exact_rounded, " (not bit-identical)");
  }
  if (std::isinf(exact) || std::isinf(exact_rounded)) {
    return y == exact_rounded ? "" : Describe("got ", y, ", expected ", exact_rounded);
  }
  if (std::isinf(y)) return Describe("got inf for finite answer ", exact);
  // A zero answer carries the sign of the exact value (rounding keeps signs).
  if (y == 0.0f && std::signbit(y) != std::signbit(exact)) {
    return Describe("sign of zero: got ", std::signbit(y) ? "-0" : "+0", " for exact ", exact);
  }
  const double err = std::abs(static_cast<double>(y) - exact);
  const double ulps = err / FloatUlp(exact);
  const bool tiny = std::abs(exact) < kTinyResult;
  if (stats) {
    if (!tiny && ulps > stats->max_ulp) {
      stats->max_ulp = ulps;
      stats->worst_x = x_for_stats;
    }
    if (std::abs(exact) >= FLT_MIN) stats->max_ulp_normal = std::max(stats->max_ulp_normal, ulps);
    if (tiny) stats->max_abs_tiny = std::max(stats->max_abs_tiny, err);
  }
  if (ulps <= kMaxUlp || (tiny && err <= kTinyAbsError)) return "";
  return Describe("got ", y, ", exact ", exact, ": ", ulps, " ULP, abs error ", err);
}

// Inputs: every 997th float bit pattern of either sign up to 100, a uniform
// grid on [-100, 100] in steps of 1/256, a finer grid on [-8, 8], and the
// special values.
std::vector<float> SpecialValues() {
  const float denorm = std::numeric_limits<float>::denorm_min();
  std::vector<float> v = {0.0f,    -0.0f,   denorm,   -denorm,  2 * denorm, -2 * denorm,
                          FLT_MIN, -FLT_MIN, FLT_MIN * 0.5f, -FLT_MIN * 0.5f,
                          kInf,    -kInf,   kNaN,     -kNaN,    88.0f,   -88.0f,
                          88.7f,   -88.7f,  89.0f,    -89.0f,   103.0f,  -103.0f,
                          104.0f,  -104.0f, 150.0f,   -150.0f,  1e30f,   -1e30f,
                          FLT_MAX, -FLT_MAX, 1e-30f,  -1e-30f,  1e-7f,   -1e-7f,
                          std::bit_cast<float>(0x7fa00000u) /* signalling NaN */};
  return v;
}

std::vector<float> SweepInputs() {
  std::vector<float> xs;
  const uint32_t limit = std::bit_cast<uint32_t>(100.0f);
  for (uint32_t bits = 0; bits <= limit; bits += 997) {
    const float x = std::bit_cast<float>(bits);
    xs.push_back(x);
    xs.push_back(-x);
  }
  for (int i = -25600; i <= 25600; ++i) xs.push_back(static_cast<float>(i) / 256.0f);
  for (int i = -80000; i <= 80000; ++i) xs.push_back(static_cast<float>(i) * 1e-4f);
  for (float s : SpecialValues()) xs.push_back(s);
  return xs;
}

const std::vector<float>& Sweep() {
  static const std::vector<float> xs = SweepInputs();
  return xs;
}

ActivationParams DefaultParams() {
  static const float alpha[] = {0.25f};
  ActivationParams p;
  p.prelu_alpha = alpha;
  return p;
}

// Non-default parameters, to catch a kernel that ignores them.
ActivationParams CustomParams() {
  static const float alpha[] = {0.1f};
  ActivationParams p;
  p.leaky_relu_slope = 0.2f;
  p.rrelu_lower = 0.1f;
  p.rrelu_upper = 0.3f;
  p.elu_alpha = 1.5f;
  p.prelu_alpha = alpha;
  return p;
}

std::string Hex(float x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%a", static_cast<double>(x));
  return buf;
}

// Checks ActivationScalar and ApplyActivationRows on every input.
void SweepPlain(Activation a, const ActivationParams& params, bool record) {
  const std::vector<float>& xs = Sweep();
  std::vector<float> rows = xs;
  // Several rows, the last one ragged.
  constexpr size_t kCols = 1000;
  const size_t full_rows = rows.size() / kCols;
  ApplyActivationRows(a, params, rows.data(), full_rows, kCols, kCols);
  const size_t tail = rows.size() - full_rows * kCols;
  ApplyActivationRows(a, params, rows.data() + full_rows * kCols, 1, tail, tail);

  ErrorStats* stats = record ? &Observed()[ActivationName(a)] : nullptr;
  int failures = 0;
  for (size_t i = 0; i < xs.size() && failures < 10; ++i) {
    const float x = xs[i];
    const double exact = ActivationReference(a, params, x);
    const std::string scalar_error = CheckAgainstExact(IsExactFamily(a), ActivationScalar(a, params, x),
                                                       exact, std::isfinite(x), stats, x);
    const std::string rows_error =
        CheckAgainstExact(IsExactFamily(a), rows[i], exact, std::isfinite(x), nullptr, x);
    if (!scalar_error.empty()) {
      ADD_FAILURE() << ActivationName(a) << "(" << x << " = " << Hex(x) << ") scalar: " << scalar_error;
      ++failures;
    }
    if (!rows_error.empty()) {
      ADD_FAILURE() << ActivationName(a) << "(" << x << " = " << Hex(x) << ") rows: " << rows_error;
      ++failures;
    }
  }
}

class PlainActivationTest : public ::testing::TestWithParam<Activation> {};

TEST_P(PlainActivationTest, SweepWithinStatedBound) {
  SweepPlain(GetParam(), DefaultParams(), /*record=*/true);
}

// Non-default parameters: rrelu's fp32 slope (lower + upper) / 2 must match
// the reference exactly, which the defaults alone would not show.
TEST_P(PlainActivationTest, SweepWithCustomParams) {
  SweepPlain(GetParam(), CustomParams(), /*record=*/false);
}

// The limits activation.h names, and signed zeros, checked directly (not
// only through the reference).
TEST_P(PlainActivationTest, SpecialValues) {
  const Activation a = GetParam();
  const ActivationParams p = DefaultParams();
  auto f = [&](float x) { return ActivationScalar(a, p, x); };
  EXPECT_TRUE(std::isnan(f(kNaN)));
  EXPECT_TRUE(std::isnan(f(-kNaN)));
  for (float x : SpecialValues()) {
    if (!std::isfinite(x)) continue;
    EXPECT_FALSE(std::isnan(f(x))) << ActivationName(a) << "(" << x << ")";
    EXPECT_FALSE(std::isinf(f(x))) << ActivationName(a) << "(" << x << ")";
  }
  const float pos_inf = f(kInf), neg_inf = f(-kInf);
  switch (a) {
    case Activation::kRelu:
      EXPECT_EQ(pos_inf, kInf);
      EXPECT_EQ(neg_inf, 0.0f);
      EXPECT_EQ(f(-0.0f), 0.0f);
      break;
    case Activation::kLeakyRelu:
    case Activation::kPrelu:
    case Activation::kRrelu:
      EXPECT_EQ(pos_inf, kInf);
      EXPECT_EQ(neg_inf, -kInf);
      EXPECT_TRUE(std::signbit(f(-0.0f)));
      break;
    case Activation::kElu:
      EXPECT_EQ(pos_inf, kInf);
      EXPECT_EQ(neg_inf, -p.elu_alpha);
      EXPECT_TRUE(std::signbit(f(-0.0f)));
      break;
    case Activation::kSigmoid:
      EXPECT_EQ(pos_inf, 1.0f);
      EXPECT_EQ(neg_inf, 0.0f);
      EXPECT_EQ(f(0.0f), 0.5f);
      EXPECT_EQ(f(-0.0f), 0.5f);
      EXPECT_EQ(f(89.0f), 1.0f);
      EXPECT_GT(f(-88.0f), 0.0f);  // e^-88 is still a (denormal) float
      break;
    case Activation::kTanh:
      EXPECT_EQ(pos_inf, 1.0f);
      EXPECT_EQ(neg_inf, -1.0f);
      EXPECT_TRUE(std::signbit(f(-0.0f)));
      EXPECT_EQ(f(150.0f), 1.0f);
      EXPECT_EQ(f(-150.0f), -1.0f);
      break;
    case Activation::kGelu:
    case Activation::kGeluTanh:
    case Activation::kSilu:
    case Activation::kQuickGelu:
      EXPECT_EQ(pos_inf, kInf);
      EXPECT_EQ(neg_inf, 0.0f);  // -0 or 0
      EXPECT_TRUE(std::signbit(f(-0.0f)));
      EXPECT_EQ(f(1e30f), 1e30f);
      EXPECT_EQ(f(-1e30f), 0.0f);
      break;
    default:
      FAIL() << "not a plain activation";
  }
  EXPECT_FALSE(std::signbit(f(0.0f))) << ActivationName(a) << "(+0)";
}

// n = 0..33 at a pointer one float past a 64-byte boundary; the floats around
// the range must not be touched.
TEST_P(PlainActivationTest, RaggedLengthsAndUnalignedPointers) {
  const Activation a = GetParam();
  const ActivationParams p = DefaultParams();
  constexpr float kSentinel = -7.0f;  // changed by every activation
  std::mt19937 rng(static_cast<unsigned>(a) + 1);
  std::uniform_real_distribution<float> dist(-12.0f, 12.0f);
  for (size_t n = 0; n <= 33; ++n) {
    alignas(64) float buf[64];
    std::fill(std::begin(buf), std::end(buf), kSentinel);
    float* data = buf + 1;
    std::vector<float> in(n);
    for (size_t j = 0; j < n; ++j) in[j] = (j % 7 == 3) ? SpecialValues()[j % SpecialValues().size()] : dist(rng);
    std::copy(in.begin(), in.end(), data);
    ApplyActivationRows(a, p, data, 1, n, n);
    EXPECT_EQ(buf[0], kSentinel) << "n=" << n;
    for (size_t j = n + 1; j < 64; ++j) EXPECT_EQ(buf[j], kSentinel) << "n=" << n << " j=" << j;
    for (size_t j = 0; j < n; ++j) {
      const std::string error = CheckAgainstExact(
          IsExactFamily(a), data[j], ActivationReference(a, p, in[j]), std::isfinite(in[j]), nullptr, 0);
      EXPECT_TRUE(error.empty()) << ActivationName(a) << " n=" << n << " j=" << j << " x=" << in[j]
                                 << ": " << error;
    }
  }
}

TEST_P(PlainActivationTest, RowStrideLeavesGapUntouched) {
  const Activation a = GetParam();
  const ActivationParams p = DefaultParams();
  constexpr size_t kRows = 4, kCols = 13, kStride = 17;
  constexpr float kSentinel = -7.0f;
  std::vector<float> data(kRows * kStride, kSentinel);
  std::vector<float> in(kRows * kStride, kSentinel);
  for (size_t r = 0; r < kRows; ++r) {
    for (size_t j = 0; j < kCols; ++j) in[r * kStride + j] = 0.37f * static_cast<float>(j) - 2.0f + static_cast<float>(r);
  }
  data = in;
  ApplyActivationRows(a, p, data.data(), kRows, kCols, kStride);
  for (size_t r = 0; r < kRows; ++r) {
    for (size_t j = 0; j < kStride; ++j) {
      const size_t i = r * kStride + j;
      if (j >= kCols) {
        EXPECT_EQ(data[i], kSentinel) << "gap touched at row " << r << " col " << j;
      } else {
        const std::string error = CheckAgainstExact(IsExactFamily(a), data[i],
                                                    ActivationReference(a, p, in[i]), true, nullptr, 0);
        EXPECT_TRUE(error.empty()) << "row " << r << " col " << j << ": " << error;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, PlainActivationTest, ::testing::ValuesIn(PlainActivations().begin(), PlainActivations().end()),
                         ActivationTestName);

TEST(PreluTest, PerChannelSlopes) {
  constexpr size_t kRows = 3, kCols = 37, kStride = 40;
  std::vector<float> alpha(kCols);
  for (size_t j = 0; j < kCols; ++j) alpha[j] = 0.05f * static_cast<float>(j) - 0.5f;
  ActivationParams p;
  p.prelu_alpha = alpha;
  std::vector<float> in(kRows * kStride, -7.0f);
  for (size_t r = 0; r < kRows; ++r) {
    for (size_t j = 0; j < kCols; ++j) in[r * kStride + j] = (j % 2 ? -1.0f : 1.0f) * (1.0f + 0.1f * static_cast<float>(r * kCols + j));
  }
  std::vector<float> data = in;
  ApplyActivationRows(Activation::kPrelu, p, data.data(), kRows, kCols, kStride);
  for (size_t r = 0; r < kRows; ++r) {
    for (size_t j = 0; j < kStride; ++j) {
      const size_t i = r * kStride + j;
      if (j >= kCols) {
        EXPECT_EQ(data[i], -7.0f);
        continue;
      }
      const float want = static_cast<float>(ActivationReference(Activation::kPrelu, p, in[i], j));
      EXPECT_EQ(data[i], want) << "row " << r << " channel " << j;
      EXPECT_EQ(ActivationScalar(Activation::kPrelu, p, in[i], j), want) << "channel " << j;
      if (in[i] < 0) {
        EXPECT_EQ(want, alpha[j] * in[i]);
      }
    }
  }
}

// Gated: o = gate_act(g) · u against the fp64 product rounded once.
void CheckGated(Activation a, const ActivationParams& p, const float* g, const float* u,
                const float* o, size_t n, ErrorStats* stats, const std::string& where) {
  int failures = 0;
  for (size_t j = 0; j < n && failures < 10; ++j) {
    const double exact = ActivationReference(a, p, g[j], j) * static_cast<double>(u[j]);
    const std::string error = CheckAgainstExact(IsExactFamily(a), o[j], exact,
                                                std::isfinite(g[j]) && std::isfinite(u[j]), stats, g[j]);
    if (!error.empty()) {
      ADD_FAILURE() << ActivationName(a) << " " << where << " j=" << j << " g=" << g[j] << " ("
                    << Hex(g[j]) << ") u=" << u[j] << ": " << error;
      ++failures;
    }
  }
}

class GatedActivationTest : public ::testing::TestWithParam<Activation> {};

TEST_P(GatedActivationTest, SweepWithinStatedBound) {
  const Activation a = GetParam();
  const ActivationParams p = DefaultParams();
  const std::vector<float>& g = Sweep();
  std::vector<float> u(g.size());
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-8.0f, 8.0f);
  for (float& v : u) v = dist(rng);
  std::vector<float> o(g.size(), kNaN);
  ApplyGatedRows(a, p, g.data(), u.data(), o.data(), 1, g.size(), g.size(), g.size());
  CheckGated(a, p, g.data(), u.data(), o.data(), g.size(), &Observed()[ActivationName(a)], "sweep");

  // u = 1 isolates the gate function: the same bound as the plain one.
  std::vector<float> ones(g.size(), 1.0f);
  ApplyGatedRows(a, p, g.data(), ones.data(), o.data(), 1, g.size(), g.size(), g.size());
  CheckGated(a, p, g.data(), ones.data(), o.data(), g.size(), nullptr, "u=1");

  // Gate values of the sweep with u = 0, -0, NaN: NaN in (either) gives NaN out.
  for (float special_u : {0.0f, -0.0f, kNaN}) {
    std::vector<float> us(g.size(), special_u);
    ApplyGatedRows(a, p, g.data(), us.data(), o.data(), 1, g.size(), g.size(), g.size());
    CheckGated(a, p, g.data(), us.data(), o.data(), g.size(), nullptr, "special u");
  }
  // ActivationScalar of a gated activation is its gate function.
  for (float x : SpecialValues()) {
    const float want = ActivationScalar(GateFunction(a), p, x);
    const float got = ActivationScalar(a, p, x);
    EXPECT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want)) << x;
  }
}

TEST_P(GatedActivationTest, RaggedUnalignedAndStrided) {
  const Activation a = GetParam();
  const ActivationParams p = DefaultParams();
  constexpr float kSentinel = -7.0f;
  constexpr size_t kRows = 3;
  std::mt19937 rng(static_cast<unsigned>(a) + 5);
  std::uniform_real_distribution<float> dist(-10.0f, 10.0f);
  for (size_t n = 0; n <= 33; ++n) {
    const size_t in_stride = n + 5, out_stride = n + 3;
    // Each buffer starts one float past a 64-byte boundary.
    alignas(64) float gate_buf[1 + kRows * 40];
    alignas(64) float up_buf[1 + kRows * 40];
    alignas(64) float out_buf[1 + kRows * 40 + 8];
    std::fill(std::begin(gate_buf), std::end(gate_buf), 0.5f);
    std::fill(std::begin(up_buf), std::end(up_buf), 0.5f);
    std::fill(std::begin(out_buf), std::end(out_buf), kSentinel);
    float* gate = gate_buf + 1;
    float* up = up_buf + 1;
    float* out = out_buf + 1;
    for (size_t r = 0; r < kRows; ++r) {
      for (size_t j = 0; j < n; ++j) {
        gate[r * in_stride + j] = (j % 9 == 4) ? SpecialValues()[(r + j) % SpecialValues().size()] : dist(rng);
        up[r * in_stride + j] = dist(rng);
      }
    }
    ApplyGatedRows(a, p, gate, up, out, kRows, n, in_stride, out_stride);
    std::vector<bool> written(std::size(out_buf), false);
    for (size_t r = 0; r < kRows; ++r) {
      CheckGated(a, p, gate + r * in_stride, up + r * in_stride, out + r * out_stride, n, nullptr,
                 "n=" + std::to_string(n) + " row " + std::to_string(r));
      for (size_t j = 0; j < n; ++j) written[1 + r * out_stride + j] = true;
    }
    for (size_t k = 0; k < std::size(out_buf); ++k) {
      if (!written[k]) {
        EXPECT_EQ(out_buf[k], kSentinel) << "n=" << n << ": touched out_buf[" << k << "]";
      }
    }

    // out may alias gate (same strides): the engine's in-place use.
    std::vector<float> gate_copy(gate_buf, gate_buf + 1 + kRows * 40);
    ApplyGatedRows(a, p, gate, up, gate, kRows, n, in_stride, in_stride);
    for (size_t r = 0; r < kRows; ++r) {
      CheckGated(a, p, gate_copy.data() + 1 + r * in_stride, up + r * in_stride, gate + r * in_stride,
                 n, nullptr, "in place n=" + std::to_string(n));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, GatedActivationTest, ::testing::ValuesIn(GatedActivations().begin(), GatedActivations().end()),
                         ActivationTestName);

TEST(ActivationNamesTest, RoundTripAllSixteen) {
  const std::vector<std::string> names = {
      "relu",      "leaky_relu", "prelu",      "rrelu", "elu",    "sigmoid",
      "tanh",      "gelu",       "gelu_tanh",  "silu",  "quick_gelu",
      "glu",       "swiglu",     "geglu",      "geglu_tanh", "reglu"};
  ASSERT_EQ(AllActivations().size(), 16u);
  ASSERT_EQ(PlainActivations().size(), 11u);
  ASSERT_EQ(GatedActivations().size(), 5u);
  for (size_t i = 0; i < names.size(); ++i) {
    const Activation a = AllActivations()[i];
    EXPECT_EQ(std::string(ActivationName(a)), names[i]);
    const auto parsed = ParseActivation(names[i]);
    ASSERT_TRUE(parsed.has_value()) << names[i];
    EXPECT_EQ(*parsed, a) << names[i];
  }
  for (std::string_view bad : {"", "RELU", "relu ", " relu", "gelu-tanh", "swish", "unknown", "glu2",
                               "reg", "quickgelu", "quick-gelu", "geglu-tanh", "gelu_pytorch_tanh"}) {
    EXPECT_FALSE(ParseActivation(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(ActivationNamesTest, GatedAndGateFunction) {
  for (Activation a : PlainActivations()) {
    EXPECT_FALSE(IsGated(a)) << ActivationName(a);
  }
  for (Activation a : GatedActivations()) {
    EXPECT_TRUE(IsGated(a)) << ActivationName(a);
    EXPECT_FALSE(IsGated(GateFunction(a))) << ActivationName(a);
  }
  EXPECT_EQ(GateFunction(Activation::kGlu), Activation::kSigmoid);
  EXPECT_EQ(GateFunction(Activation::kSwiglu), Activation::kSilu);
  EXPECT_EQ(GateFunction(Activation::kGeglu), Activation::kGelu);
  EXPECT_EQ(GateFunction(Activation::kReglu), Activation::kRelu);
  EXPECT_EQ(GateFunction(Activation::kGegluTanh), Activation::kGeluTanh);
  EXPECT_TRUE(IsGated(Activation::kGegluTanh));
  EXPECT_FALSE(IsGated(Activation::kQuickGelu));
  // Plain and gated partition all activations.
  for (Activation a : AllActivations()) {
    const bool in_plain = std::count(PlainActivations().begin(), PlainActivations().end(), a) == 1;
    const bool in_gated = std::count(GatedActivations().begin(), GatedActivations().end(), a) == 1;
    EXPECT_NE(in_plain, in_gated) << ActivationName(a);
  }
}

// The enum's values are part of the ABI of anything that stored them: the two
// added activations come after reglu, and the older ones keep their numbers.
TEST(ActivationNamesTest, EnumValuesAreStable) {
  EXPECT_EQ(static_cast<int>(Activation::kRelu), 0);
  EXPECT_EQ(static_cast<int>(Activation::kGeluTanh), 8);
  EXPECT_EQ(static_cast<int>(Activation::kSilu), 9);
  EXPECT_EQ(static_cast<int>(Activation::kGeglu), 12);
  EXPECT_EQ(static_cast<int>(Activation::kReglu), 13);
  EXPECT_EQ(static_cast<int>(Activation::kQuickGelu), 14);
  EXPECT_EQ(static_cast<int>(Activation::kGegluTanh), 15);
}

// Values computed independently of reference.cc (mpmath, 40 digits), so that a
// wrong constant in the reference and the kernels alike cannot pass:
// quick_gelu(x) = x / (1 + e^(−1.702x)), gelu_tanh(x) = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
TEST(ActivationKnownValuesTest, QuickGeluAndGegluTanh) {
  const ActivationParams p = DefaultParams();
  const std::pair<float, double> quick_gelu[] = {
      {1.0f, 0.84579576593282129571},    {-1.0f, -0.15420423406717870429},
      {2.5f, 2.4650138349514299256},     {-3.0f, -0.018071309707785966513},
      {-20.0f, -3.2934102413993717283e-14}, {-50.0f, -5.5018607500563321232e-36},
  };
  for (const auto& [x, want] : quick_gelu) {
    const double ref = ActivationReference(Activation::kQuickGelu, p, x);
    EXPECT_NEAR(ref, want, 1e-14 * std::abs(want)) << "reference quick_gelu(" << x << ")";
    std::vector<float> row(17, x);  // a full AVX-512 vector and a tail
    ApplyActivationRows(Activation::kQuickGelu, p, row.data(), 1, row.size(), row.size());
    for (float y : {ActivationScalar(Activation::kQuickGelu, p, x), row[0], row[16]}) {
      EXPECT_LE(std::abs(y - want), FloatUlp(want)) << "quick_gelu(" << x << ") = " << y;
    }
  }
  // geglu_tanh's gate is gelu_tanh (not gelu: they differ by 1.5e-4 at g = 1).
  const std::pair<float, double> geglu_tanh[] = {{1.0f, 0.84119199060827670478},
                                                 {-2.0f, -0.045402305912224981219}};
  for (const auto& [g, want] : geglu_tanh) {
    std::vector<float> gate(17, g), up(17, 2.0f), out(17);
    ApplyGatedRows(Activation::kGegluTanh, p, gate.data(), up.data(), out.data(), 1, 17, 17, 17);
    for (float y : {out[0], out[16]}) {
      EXPECT_LE(std::abs(y - 2 * want), 2 * FloatUlp(want)) << "geglu_tanh(" << g << ", 2) = " << y;
    }
  }
}

TEST(ActivationParamsTest, RreluSlopeIsMidpoint) {
  ActivationParams p;
  EXPECT_FLOAT_EQ(p.rrelu_slope(), (1.0f / 8.0f + 1.0f / 3.0f) / 2.0f);
  EXPECT_EQ(p.leaky_relu_slope, 0.01f);
  EXPECT_EQ(p.elu_alpha, 1.0f);
}

// Prints the worst errors seen by the sweeps (runs last in this file's order
// only by name; it reports whatever has been recorded so far).
class ObservedErrorReporter : public ::testing::EmptyTestEventListener {
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    if (Observed().empty()) return;
    std::printf("\nObserved worst errors against the fp64 reference (default params):\n");
    std::printf("  %-11s %12s %12s %16s %14s %10s\n", "activation", "max ULP", "max ULP", "max abs err",
                "worst x", "points");
    std::printf("  %-11s %12s %12s %16s %14s %10s\n", "", "(|y|>=1e-6)", "(normal)", "(|y|<1e-6)", "", "");
    for (const auto& [name, s] : Observed()) {
      std::printf("  %-11s %12.4f %12.4f %16.3g %14.7g %10lld\n", name.c_str(), s.max_ulp,
                  s.max_ulp_normal, s.max_abs_tiny, s.worst_x, static_cast<long long>(s.checked));
    }
  }
};

[[maybe_unused]] const bool kReporterInstalled = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new ObservedErrorReporter);
  return true;
}();

}  // namespace
}  // namespace ffn
