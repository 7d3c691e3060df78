#include "ffn/kernels/activation.h"

#include <array>

#include "scalar_math.h"

namespace ffn {
namespace {

constexpr std::array kAll = {
    Activation::kRelu,      Activation::kLeakyRelu, Activation::kPrelu,  Activation::kRrelu,
    Activation::kElu,       Activation::kSigmoid,   Activation::kTanh,   Activation::kGelu,
    Activation::kGeluTanh,  Activation::kSilu,      Activation::kQuickGelu,
    Activation::kGlu,       Activation::kSwiglu,    Activation::kGeglu,  Activation::kGegluTanh,
    Activation::kReglu,
};
constexpr std::array kPlain = {
    Activation::kRelu,     Activation::kLeakyRelu, Activation::kPrelu, Activation::kRrelu,
    Activation::kElu,      Activation::kSigmoid,   Activation::kTanh,  Activation::kGelu,
    Activation::kGeluTanh, Activation::kSilu,      Activation::kQuickGelu,
};
constexpr std::array kGated = {Activation::kGlu, Activation::kSwiglu, Activation::kGeglu,
                               Activation::kGegluTanh, Activation::kReglu};

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
    case Activation::kQuickGelu: return "quick_gelu";
    case Activation::kGegluTanh: return "geglu_tanh";
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
         activation == Activation::kGeglu || activation == Activation::kReglu ||
         activation == Activation::kGegluTanh;
}

Activation GateFunction(Activation gated) {
  switch (gated) {
    case Activation::kGlu: return Activation::kSigmoid;
    case Activation::kSwiglu: return Activation::kSilu;
    case Activation::kGeglu: return Activation::kGelu;
    case Activation::kReglu: return Activation::kRelu;
    case Activation::kGegluTanh: return Activation::kGeluTanh;
    default: return gated;
  }
}

std::span<const Activation> AllActivations() { return kAll; }
std::span<const Activation> PlainActivations() { return kPlain; }
std::span<const Activation> GatedActivations() { return kGated; }

float ActivationScalar(Activation activation, const ActivationParams& params, float x,
                       size_t channel) {
  switch (activation) {
    case Activation::kRelu: return scalar::Relu(x);
    case Activation::kLeakyRelu: return scalar::LeakyRelu(x, params.leaky_relu_slope);
    case Activation::kPrelu:
      return scalar::LeakyRelu(
          x, params.prelu_alpha.size() == 1 ? params.prelu_alpha[0] : params.prelu_alpha[channel]);
    case Activation::kRrelu: return scalar::LeakyRelu(x, params.rrelu_slope());
    case Activation::kElu: return scalar::Elu(x, params.elu_alpha);
    case Activation::kSigmoid: return scalar::Sigmoid(x);
    case Activation::kTanh: return scalar::Tanh(x);
    case Activation::kGelu: return scalar::Gelu(x);
    case Activation::kGeluTanh: return scalar::GeluTanh(x);
    case Activation::kSilu: return scalar::Silu(x);
    case Activation::kQuickGelu: return scalar::QuickGelu(x);
    case Activation::kGlu:
    case Activation::kSwiglu:
    case Activation::kGeglu:
    case Activation::kGegluTanh:
    case Activation::kReglu: return ActivationScalar(GateFunction(activation), params, x, channel);
  }
  return x;
}

}  // namespace ffn
