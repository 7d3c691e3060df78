// The fp64 reference FFN: what every answer of the engine is checked against.
//
// Computes the same math as FfnBlock with double accumulation and double
// activation functions, from the fp32 weights and inputs. Slow (a plain
// triple loop); meant for tests and for `ffn-client infer --check`.
#ifndef FFN_KERNELS_REFERENCE_H_
#define FFN_KERNELS_REFERENCE_H_

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "ffn/kernels/activation.h"
#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/moe.h"

namespace ffn {

// The activation at x in double precision (prelu: channel's slope).
double ActivationReference(Activation activation, const ActivationParams& params, double x,
                           size_t channel = 0);

// y = FFN(x) for x [m, d_model] in double; returns [m, d_model].
std::vector<double> ReferenceFfn(const FfnWeights& weights, Activation activation,
                                 const ActivationParams& params, const float* x, int64_t m);

// y = MoE(x) in double along `routing` (its experts and weights), with the
// norms and residual of weights.outer.
std::vector<double> ReferenceMoe(const MoeWeights& weights, Activation activation,
                                 const ActivationParams& params, const float* x, int64_t m,
                                 const MoeRouting& routing);

// How far fp32 output `y` is from `reference`.
//
// Tolerance: element-wise |y − ref| <= tolerance · (|ref| + rms(ref)). The
// rms term gives outputs that cancel to near zero an absolute floor at the
// scale of the whole output. The engine's fp32 answers stay within 1e-4,
// its bf16-compute answers within 5e-2.
struct ReferenceComparison {
  double max_abs_error = 0;
  double max_scaled_error = 0;  // max |y − ref| / (|ref| + rms(ref))
  double rms_reference = 0;
  // ‖y − ref‖ / ‖ref‖ over the whole output (Frobenius norms).
  double relative_frobenius = 0;
  int64_t worst_index = -1;
  bool within(double tolerance) const { return max_scaled_error <= tolerance; }
};
inline constexpr double kFp32CheckTolerance = 1e-4;
// bf16 compute rounds inputs, weights and the activated block to 8
// significant bits (relative 2^-9 each); observed scaled errors are about
// 1-2e-2 on the default models.
inline constexpr double kBf16CheckTolerance = 5e-2;
// int8 models round every weight (per row) and every token and activated
// row (per group of 32 values) to 8 bits: a relative error up to 2^-8 of the
// largest value of its row or group each. Observed on the seeded random
// models, M = 1 to 512: relative Frobenius 0.8-1.4e-2 and scaled errors up
// to 0.063 (docs/ACCURACY.md, bench/int8_error: llama.cpp's Q8_0 scheme
// measures within 5 % of that); the check allows 0.15 and 2.5e-2.
inline constexpr double kInt8CheckTolerance = 0.15;
inline constexpr double kInt8FrobeniusTolerance = 2.5e-2;

// The check an answer of one compute path must pass: the scaled error
// (ReferenceComparison::within) and, for int8, the relative Frobenius error.
struct CheckBound {
  const char* name;  // "fp32", "bf16", "int8"
  double scaled;
  double frobenius = std::numeric_limits<double>::infinity();
  bool Passes(const ReferenceComparison& c) const {
    return c.within(scaled) && c.relative_frobenius <= frobenius;
  }
  // "0.15 scaled, 0.025 relative Frobenius".
  std::string ToString() const;
};
inline constexpr CheckBound kFp32Check{"fp32", kFp32CheckTolerance};
inline constexpr CheckBound kBf16Check{"bf16", kBf16CheckTolerance};
inline constexpr CheckBound kInt8Check{"int8", kInt8CheckTolerance, kInt8FrobeniusTolerance};

ReferenceComparison CompareToReference(const float* y, const std::vector<double>& reference);

}  // namespace ffn

#endif  // FFN_KERNELS_REFERENCE_H_
