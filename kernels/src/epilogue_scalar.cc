// The scalar epilogue kernels: ActivationScalar per element. The reference
// the vector kernels are compared with, and the fallback on CPUs without AVX2.
#include "epilogue_internal.h"

namespace ffn {
namespace {

template <typename Out, typename Store>
void BiasAct(Activation activation, const ActivationParams& params, const float* in,
             size_t in_stride, const float* bias, Out* out, size_t out_stride, size_t rows,
             size_t cols, Store store) {
  for (size_t r = 0; r < rows; ++r) {
    const float* x = in + r * in_stride;
    Out* y = out + r * out_stride;
    for (size_t j = 0; j < cols; ++j) {
      const float v = bias != nullptr ? x[j] + bias[j] : x[j];
      y[j] = store(ActivationScalar(activation, params, v, j));
    }
  }
}

template <typename Out, typename Store>
void Gated(Activation activation, const ActivationParams& params, const float* gate,
           const float* up, size_t in_stride, Out* out, size_t out_stride, size_t rows,
           size_t cols, Store store) {
  const Activation gate_fn = GateFunction(activation);
  for (size_t r = 0; r < rows; ++r) {
    const float* g = gate + r * in_stride;
    const float* u = up + r * in_stride;
    Out* y = out + r * out_stride;
    for (size_t j = 0; j < cols; ++j) {
      y[j] = store(ActivationScalar(gate_fn, params, g[j], j) * u[j]);
    }
  }
}

float KeepFloat(float v) { return v; }

}  // namespace

const EpilogueKernels& ScalarEpilogueKernels() {
  static const EpilogueKernels kernels = {
      Isa::kScalar,
      [](Activation a, const ActivationParams& p, const float* in, size_t in_stride,
         const float* bias, float* out, size_t out_stride, size_t rows, size_t cols) {
        BiasAct(a, p, in, in_stride, bias, out, out_stride, rows, cols, KeepFloat);
      },
      [](Activation a, const ActivationParams& p, const float* in, size_t in_stride,
         const float* bias, uint16_t* out, size_t out_stride, size_t rows, size_t cols) {
        BiasAct(a, p, in, in_stride, bias, out, out_stride, rows, cols, FloatToBf16);
      },
      [](Activation a, const ActivationParams& p, const float* gate, const float* up,
         size_t in_stride, float* out, size_t out_stride, size_t rows, size_t cols) {
        Gated(a, p, gate, up, in_stride, out, out_stride, rows, cols, KeepFloat);
      },
      [](Activation a, const ActivationParams& p, const float* gate, const float* up,
         size_t in_stride, uint16_t* out, size_t out_stride, size_t rows, size_t cols) {
        Gated(a, p, gate, up, in_stride, out, out_stride, rows, cols, FloatToBf16);
      },
  };
  return kernels;
}

}  // namespace ffn
