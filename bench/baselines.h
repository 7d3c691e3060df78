// The baselines the activation benchmarks compare ffnserve's kernels with:
// the glibc float formulas a C programmer would write, and oneDNN 2.6's
// eltwise algorithms. Shared by activation_accuracy.cc and activation_bench.cc.
#ifndef FFN_BENCH_BASELINES_H_
#define FFN_BENCH_BASELINES_H_

#include <cmath>
#include <cstddef>
#include <memory>
#include <optional>

#include "ffn/kernels/activation.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace ffn::bench {

inline const float kPreluSlope[] = {0.25f};

// PyTorch's defaults, with PReLU's one shared slope of 0.25.
inline ActivationParams BenchParams() {
  ActivationParams params;
  params.prelu_alpha = kPreluSlope;
  return params;
}

// The glibc float formulation of a plain activation, one libm call per
// element (prelu and rrelu are leaky_relu with their slope). Gated
// activations are not handled: out is left alone.
inline void GlibcApply(Activation activation, const ActivationParams& params, const float* in,
                       float* out, size_t n) {
  constexpr float kSqrtHalf = 0.707106781186547524f;
  switch (activation) {
    case Activation::kRelu:
      for (size_t i = 0; i < n; ++i) out[i] = in[i] > 0 ? in[i] : 0.0f;
      return;
    case Activation::kLeakyRelu:
    case Activation::kPrelu:
    case Activation::kRrelu: {
      const float slope = activation == Activation::kLeakyRelu ? params.leaky_relu_slope
                          : activation == Activation::kPrelu   ? params.prelu_alpha[0]
                                                               : params.rrelu_slope();
      for (size_t i = 0; i < n; ++i) out[i] = in[i] > 0 ? in[i] : slope * in[i];
      return;
    }
    case Activation::kElu:
      for (size_t i = 0; i < n; ++i) out[i] = in[i] > 0 ? in[i] : params.elu_alpha * expm1f(in[i]);
      return;
    case Activation::kSigmoid:
      for (size_t i = 0; i < n; ++i) out[i] = 1.0f / (1.0f + expf(-in[i]));
      return;
    case Activation::kTanh:
      for (size_t i = 0; i < n; ++i) out[i] = tanhf(in[i]);
      return;
    case Activation::kGelu:
      for (size_t i = 0; i < n; ++i) out[i] = 0.5f * in[i] * (1.0f + erff(in[i] * kSqrtHalf));
      return;
    case Activation::kGeluTanh:
      for (size_t i = 0; i < n; ++i) {
        const float x = in[i];
        out[i] = 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
      }
      return;
    case Activation::kSilu:
      for (size_t i = 0; i < n; ++i) out[i] = in[i] / (1.0f + expf(-in[i]));
      return;
    case Activation::kQuickGelu:
      for (size_t i = 0; i < n; ++i) out[i] = in[i] / (1.0f + expf(-1.702f * in[i]));
      return;
    default: return;
  }
}

struct OnednnAlgorithm {
  dnnl::algorithm algorithm;
  float alpha;
};

// oneDNN 2.6 eltwise algorithm for an activation; prelu (one shared slope)
// and rrelu (inference slope) are eltwise_relu with that slope.
inline std::optional<OnednnAlgorithm> OnednnFor(Activation activation, const ActivationParams& params) {
  using dnnl::algorithm;
  switch (activation) {
    case Activation::kRelu: return OnednnAlgorithm{algorithm::eltwise_relu, 0.0f};
    case Activation::kLeakyRelu:
      return OnednnAlgorithm{algorithm::eltwise_relu, params.leaky_relu_slope};
    case Activation::kPrelu: return OnednnAlgorithm{algorithm::eltwise_relu, params.prelu_alpha[0]};
    case Activation::kRrelu: return OnednnAlgorithm{algorithm::eltwise_relu, params.rrelu_slope()};
    case Activation::kElu: return OnednnAlgorithm{algorithm::eltwise_elu, params.elu_alpha};
    case Activation::kSigmoid: return OnednnAlgorithm{algorithm::eltwise_logistic, 0.0f};
    case Activation::kTanh: return OnednnAlgorithm{algorithm::eltwise_tanh, 0.0f};
    case Activation::kGelu: return OnednnAlgorithm{algorithm::eltwise_gelu_erf, 0.0f};
    case Activation::kGeluTanh: return OnednnAlgorithm{algorithm::eltwise_gelu_tanh, 0.0f};
    case Activation::kSilu: return OnednnAlgorithm{algorithm::eltwise_swish, 1.0f};
    case Activation::kQuickGelu: return OnednnAlgorithm{algorithm::eltwise_swish, 1.702f};
    default: return std::nullopt;
  }
}

// One oneDNN eltwise forward_inference primitive over n floats with its own
// memory objects; Run only swaps the data pointers. Inside an OpenMP
// parallel region oneDNN runs it on the calling thread alone.
class OnednnEltwise {
 public:
  OnednnEltwise(const dnnl::engine& engine, OnednnAlgorithm algo, size_t n) : stream_(engine) {
    const dnnl::memory::desc md({static_cast<dnnl::memory::dim>(n)}, dnnl::memory::data_type::f32,
                                dnnl::memory::format_tag::a);
    const dnnl::eltwise_forward::desc desc(dnnl::prop_kind::forward_inference, algo.algorithm, md,
                                           algo.alpha, 0.0f);
    primitive_ = dnnl::eltwise_forward(dnnl::eltwise_forward::primitive_desc(desc, engine));
    src_ = dnnl::memory(md, engine, DNNL_MEMORY_NONE);
    dst_ = dnnl::memory(md, engine, DNNL_MEMORY_NONE);
  }
  // in and out hold n floats.
  void Run(const float* in, float* out) {
    src_.set_data_handle(const_cast<float*>(in));
    dst_.set_data_handle(out);
    primitive_.execute(stream_, {{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}});
    stream_.wait();
  }

 private:
  dnnl::stream stream_;
  dnnl::eltwise_forward primitive_;
  dnnl::memory src_, dst_;
};

}  // namespace ffn::bench

#endif  // FFN_BENCH_BASELINES_H_
