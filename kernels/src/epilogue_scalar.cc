// The scalar epilogue kernels: the reference the vector kernels are compared
// with, and the fallback on CPUs without AVX2. As in the vector kernels, the
// activation is chosen once per call, not per element.
#include "dispatch.h"
#include "scalar_math.h"

namespace ffn {
namespace {

// Calls f with a functor act(float x, size_t column) -> float for
// `activation` (a gated one means its gate function).
template <typename F>
void WithScalarActivation(Activation activation, const ActivationParams& params, F&& f) {
  switch (GateFunction(activation)) {
    case Activation::kRelu: return f([](float x, size_t) { return scalar::Relu(x); });
    case Activation::kLeakyRelu:
    case Activation::kRrelu: {
      const float slope = activation == Activation::kRrelu ? params.rrelu_slope()
                                                           : params.leaky_relu_slope;
      return f([slope](float x, size_t) { return scalar::LeakyRelu(x, slope); });
    }
    case Activation::kPrelu: {
      if (params.prelu_alpha.size() == 1) {
        const float slope = params.prelu_alpha[0];
        return f([slope](float x, size_t) { return scalar::LeakyRelu(x, slope); });
      }
      const float* alpha = params.prelu_alpha.data();
      return f([alpha](float x, size_t j) { return scalar::LeakyRelu(x, alpha[j]); });
    }
    case Activation::kElu: {
      const float alpha = params.elu_alpha;
      return f([alpha](float x, size_t) { return scalar::Elu(x, alpha); });
    }
    case Activation::kSigmoid: return f([](float x, size_t) { return scalar::Sigmoid(x); });
    case Activation::kTanh: return f([](float x, size_t) { return scalar::Tanh(x); });
    case Activation::kGelu: return f([](float x, size_t) { return scalar::Gelu(x); });
    case Activation::kGeluTanh: return f([](float x, size_t) { return scalar::GeluTanh(x); });
    case Activation::kSilu: return f([](float x, size_t) { return scalar::Silu(x); });
    case Activation::kQuickGelu: return f([](float x, size_t) { return scalar::QuickGelu(x); });
    case Activation::kGlu:
    case Activation::kSwiglu:
    case Activation::kGeglu:
    case Activation::kGegluTanh:
    case Activation::kReglu: break;  // GateFunction never returns these
  }
}

inline float StoreAs(float v, float*) { return v; }
inline uint16_t StoreAs(float v, uint16_t*) { return FloatToBf16(v); }

template <typename Out>
void BiasAct(Activation activation, const ActivationParams& params, const float* in,
             size_t in_stride, const float* bias, Out* out, size_t out_stride, size_t rows,
             size_t cols) {
  WithScalarActivation(activation, params, [&](auto act) {
    for (size_t r = 0; r < rows; ++r) {
      const float* x = in + r * in_stride;
      Out* y = out + r * out_stride;
      for (size_t j = 0; j < cols; ++j) {
        y[j] = StoreAs(act(bias != nullptr ? x[j] + bias[j] : x[j], j), y);
      }
    }
  });
}

template <typename Out>
void Gated(Activation activation, const ActivationParams& params, const float* gate,
           const float* up, size_t in_stride, Out* out, size_t out_stride, size_t rows,
           size_t cols) {
  WithScalarActivation(activation, params, [&](auto act) {
    for (size_t r = 0; r < rows; ++r) {
      const float* g = gate + r * in_stride;
      const float* u = up + r * in_stride;
      Out* y = out + r * out_stride;
      for (size_t j = 0; j < cols; ++j) y[j] = StoreAs(act(g[j], j) * u[j], y);
    }
  });
}

}  // namespace

const EpilogueKernels& ScalarEpilogueKernels() {
  static const EpilogueKernels kernels = {Isa::kScalar, BiasAct<float>, BiasAct<uint16_t>,
                                          Gated<float>, Gated<uint16_t>};
  return kernels;
}

}  // namespace ffn
