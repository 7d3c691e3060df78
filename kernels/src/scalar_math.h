// The scalar fp32 activation functions: transcendental ones evaluated in
// double and rounded once to float, which keeps each within 1 ULP of the
// exact value. ActivationScalar (activation.cc) and the scalar epilogue
// (epilogue_scalar.cc) are both made of these; the vector kernels are
// tested against them.
#ifndef FFN_KERNELS_SRC_SCALAR_MATH_H_
#define FFN_KERNELS_SRC_SCALAR_MATH_H_

#include <cmath>

namespace ffn::scalar {

inline float Relu(float x) { return x > 0.0f ? x : (std::isnan(x) ? x : 0.0f); }
inline float LeakyRelu(float x, float slope) { return x > 0.0f ? x : slope * x; }
inline float Elu(float x, float alpha) {
  return x > 0.0f ? x : static_cast<float>(alpha * std::expm1(static_cast<double>(x)));
}
inline float Sigmoid(float x) {
  return static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(x))));
}
inline float Tanh(float x) { return static_cast<float>(std::tanh(static_cast<double>(x))); }
inline float Silu(float x) {
  if (std::isinf(x)) return x > 0 ? x : -0.0f;  // x·σ(x) → -0 as x → -inf
  const double xd = x;
  return static_cast<float>(xd / (1.0 + std::exp(-xd)));
}
// x·σ(1.702·x), Hugging Face's QuickGELU. 1.702·x is exact enough in double
// (its rounding error is about 1e-16·|1.702x| in the exponent).
inline float QuickGelu(float x) {
  if (std::isinf(x)) return x > 0 ? x : -0.0f;
  const double xd = x;
  return static_cast<float>(xd / (1.0 + std::exp(-1.702 * xd)));
}
inline float Gelu(float x) {
  if (std::isinf(x)) return x > 0 ? x : -0.0f;
  const double xd = x;
  // 0.5·x·erfc(-x/√2) avoids the cancellation of 1 + erf(x/√2) for x < 0.
  return static_cast<float>(0.5 * xd * std::erfc(-xd * 0.70710678118654752440));
}
inline float GeluTanh(float x) {
  if (std::isinf(x)) return x > 0 ? x : -0.0f;
  const double xd = x;
  const double inner = 0.79788456080286535588 * (xd + 0.044715 * xd * xd * xd);
  // 0.5·x·(1 + tanh(u)) = x·σ(2u), without cancellation for x < 0.
  return static_cast<float>(xd / (1.0 + std::exp(-2.0 * inner)));
}

}  // namespace ffn::scalar

#endif  // FFN_KERNELS_SRC_SCALAR_MATH_H_
