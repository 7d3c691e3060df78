#include "ffn/kernels/activation.h"

#include <array>
#include <cmath>

namespace ffn {
namespace {

constexpr std::array kAll = {
    Activation::kRelu,  Activation::kLeakyRelu, Activation::kPrelu, Activation::kRrelu,
    Activation::kElu,   Activation::kSigmoid,   Activation::kTanh,  Activation::kGelu,
    Activation::kGeluTanh, Activation::kSilu,   Activation::kGlu,   Activation::kSwiglu,
    Activation::kGeglu, Activation::kReglu,
};
constexpr std::array kPlain = {
    Activation::kRelu, Activation::kLeakyRelu, Activation::kPrelu, Activation::kRrelu,
    Activation::kElu,  Activation::kSigmoid,   Activation::kTanh,  Activation::kGelu,
    Activation::kGeluTanh, Activation::kSilu,
};
constexpr std::array kGated = {Activation::kGlu, Activation::kSwiglu, Activation::kGeglu,
                               Activation::kReglu};

// The transcendental functions are evaluated in double and rounded once to
// float, which keeps every one within 1 ULP of the exact value. The vectorized
// fp32 kernels of a later stage are tested against these.
inline float Sigmoid(float x) {
  return static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(x))));
}
inline float Silu(float x) {
  if (std::isinf(x)) return x > 0 ? x : -0.0f;  // x·σ(x) → -0 as x → -inf
  const double xd = x;
  return static_cast<float>(xd / (1.0 + std::exp(-xd)));
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
inline float Relu(float x) { return x > 0.0f ? x : (std::isnan(x) ? x : 0.0f); }

}  // namespace

const char* ActivationName(Activation activation) {
  switch (activation) {
    case Activation::kRelu: return "relu";
    case Activation::kLeakyRelu: return "leaky_relu";
    case Activation::kPrelu: return "prelu";
    case Activation::kRrelu: return "rrelu";
    case Activation::kElu: return "elu";
    case Activation::kSigmoid: return "sigmoid";
    case Activation::kTanh: return "tanh";
    case Activation::kGelu: return "gelu";
    case Activation::kGeluTanh: return "gelu_tanh";
    case Activation::kSilu: return "silu";
    case Activation::kGlu: return "glu";
    case Activation::kSwiglu: return "swiglu";
    case Activation::kGeglu: return "geglu";
    case Activation::kReglu: return "reglu";
  }
  return "unknown";
}

std::optional<Activation> ParseActivation(std::string_view name) {
  for (Activation a : kAll) {
    if (ActivationName(a) == name) return a;
  }
  return std::nullopt;
}

bool IsGated(Activation activation) {
  return activation == Activation::kGlu || activation == Activation::kSwiglu ||
         activation == Activation::kGeglu || activation == Activation::kReglu;
}

Activation GateFunction(Activation gated) {
  switch (gated) {
    case Activation::kGlu: return Activation::kSigmoid;
    case Activation::kSwiglu: return Activation::kSilu;
    case Activation::kGeglu: return Activation::kGelu;
    case Activation::kReglu: return Activation::kRelu;
    default: return gated;
  }
}

std::span<const Activation> AllActivations() { return kAll; }
std::span<const Activation> PlainActivations() { return kPlain; }
std::span<const Activation> GatedActivations() { return kGated; }

float ActivationScalar(Activation activation, const ActivationParams& params, float x,
                       size_t channel) {
  switch (activation) {
    case Activation::kRelu: return Relu(x);
    case Activation::kLeakyRelu: return x > 0.0f ? x : params.leaky_relu_slope * x;
    case Activation::kPrelu: {
      const float alpha =
          params.prelu_alpha.size() == 1 ? params.prelu_alpha[0] : params.prelu_alpha[channel];
      return x > 0.0f ? x : alpha * x;
    }
    case Activation::kRrelu: return x > 0.0f ? x : params.rrelu_slope() * x;
    case Activation::kElu:
      return x > 0.0f ? x
                      : static_cast<float>(params.elu_alpha * std::expm1(static_cast<double>(x)));
    case Activation::kSigmoid: return Sigmoid(x);
    case Activation::kTanh: return static_cast<float>(std::tanh(static_cast<double>(x)));
    case Activation::kGelu: return Gelu(x);
    case Activation::kGeluTanh: return GeluTanh(x);
    case Activation::kSilu: return Silu(x);
    case Activation::kGlu:
    case Activation::kSwiglu:
    case Activation::kGeglu:
    case Activation::kReglu: return ActivationScalar(GateFunction(activation), params, x, channel);
  }
  return x;
}

}  // namespace ffn
