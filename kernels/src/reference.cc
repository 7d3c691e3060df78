#include "ffn/kernels/reference.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace ffn {
namespace {

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

double ActivationReference(Activation activation, const ActivationParams& params, double x,
                           size_t channel) {
  if (std::isnan(x)) return x;
  switch (activation) {
    case Activation::kRelu: return x > 0 ? x : 0.0;
    case Activation::kLeakyRelu: return x > 0 ? x : params.leaky_relu_slope * x;
    case Activation::kPrelu: {
      const double alpha =
          params.prelu_alpha.size() == 1 ? params.prelu_alpha[0] : params.prelu_alpha[channel];
      return x > 0 ? x : alpha * x;
    }
    case Activation::kRrelu:
      // The slope is the fp32 value the model serves (and ListModels reports).
      return x > 0 ? x : static_cast<double>(params.rrelu_slope()) * x;
    case Activation::kElu: return x > 0 ? x : params.elu_alpha * std::expm1(x);
    case Activation::kSigmoid: return Sigmoid(x);
    case Activation::kTanh: return std::tanh(x);
    case Activation::kGelu:
      if (std::isinf(x)) return x > 0 ? x : -0.0;
      return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    case Activation::kGeluTanh: {
      if (std::isinf(x)) return x > 0 ? x : -0.0;
      const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
      // 0.5·x·(1 + tanh(u)) = x·σ(2u), without cancellation for x < 0.
      return x / (1.0 + std::exp(-2.0 * u));
    }
    case Activation::kSilu:
      if (std::isinf(x)) return x > 0 ? x : -0.0;
      return x * Sigmoid(x);
    case Activation::kQuickGelu:
      if (std::isinf(x)) return x > 0 ? x : -0.0;
      return x * Sigmoid(1.702 * x);
    case Activation::kGlu:
    case Activation::kSwiglu:
    case Activation::kGeglu:
    case Activation::kGegluTanh:
    case Activation::kReglu:
      return ActivationReference(GateFunction(activation), params, x, channel);
  }
  return x;
}

namespace {

// row = norm(row) in fp64: layernorm (x − mean)/√(var + eps)·gamma + beta, or
// rmsnorm x/√(mean(x²) + eps)·gamma.
void NormInPlace(NormKind norm, float eps, const std::vector<float>& gamma,
                 const std::vector<float>& beta, std::vector<double>& row) {
  const double n = static_cast<double>(row.size());
  double mean = 0, square = 0;
  for (double v : row) {
    mean += v;
    square += v * v;
  }
  mean /= n;
  square /= n;
  const bool layer = norm == NormKind::kLayerNorm;
  const double scale = 1.0 / std::sqrt((layer ? square - mean * mean : square) + eps);
  for (size_t k = 0; k < row.size(); ++k) {
    row[k] = ((layer ? row[k] - mean : row[k]) * scale) * gamma[k] + (layer ? beta[k] : 0.0);
  }
}

}  // namespace

namespace {

// out = MLP(xr) of `w` (f32 matrices) in double; h is scratch.
void MlpRow(const FfnWeights& w, Activation activation, const ActivationParams& params,
            const std::vector<double>& xr, std::vector<double>& h, std::vector<double>& out) {
  const int64_t dm = w.d_model, dff = w.d_ff;
  h.resize(static_cast<size_t>(dff));
  out.assign(static_cast<size_t>(dm), 0.0);
  for (int64_t j = 0; j < dff; ++j) {
    if (w.kind == FfnKind::kPlain) {
      double acc = w.has_bias ? w.b1[j] : 0.0;
      const float* wrow = w.w1.data() + j * dm;
      for (int64_t k = 0; k < dm; ++k) acc += static_cast<double>(wrow[k]) * xr[k];
      h[j] = ActivationReference(activation, params, acc, static_cast<size_t>(j));
    } else {
      double g = 0, u = 0;
      const float* grow = w.wg.data() + j * dm;
      const float* urow = w.wu.data() + j * dm;
      for (int64_t k = 0; k < dm; ++k) {
        g += static_cast<double>(grow[k]) * xr[k];
        u += static_cast<double>(urow[k]) * xr[k];
      }
      h[j] = ActivationReference(activation, params, g, static_cast<size_t>(j)) * u;
    }
  }
  for (int64_t i = 0; i < dm; ++i) {
    double acc = (w.kind == FfnKind::kPlain && w.has_bias) ? w.b2[i] : 0.0;
    const float* wrow = w.w2.data() + i * dff;
    for (int64_t j = 0; j < dff; ++j) acc += static_cast<double>(wrow[j]) * h[j];
    out[i] = acc;
  }
}

// Rows of x through `outer`'s norm, core(xr, out), then its residual and
// output norm.
template <typename Core>
std::vector<double> AroundRows(const FfnWeights& outer, const float* x, int64_t m, Core core) {
  const int64_t dm = outer.d_model;
  std::vector<double> y(static_cast<size_t>(m * dm));
  std::vector<double> out;
  for (int64_t r = 0; r < m; ++r) {
    const float* x_row = x + r * dm;
    // The FFN's input: the row, or its norm.
    std::vector<double> xr(x_row, x_row + dm);
    if (outer.norm != NormKind::kNone) {
      NormInPlace(outer.norm, outer.norm_eps, outer.norm_gamma, outer.norm_beta, xr);
    }
    core(r, xr, out);
    const bool out_norm = outer.out_norm != NormKind::kNone;
    if (out_norm && outer.out_norm_place == OutputNormPlace::kBeforeResidual) {
      NormInPlace(outer.out_norm, outer.out_norm_eps, outer.out_norm_gamma, outer.out_norm_beta, out);
    }
    if (outer.residual) {
      for (int64_t i = 0; i < dm; ++i) out[i] += static_cast<double>(x_row[i]);
    }
    if (out_norm && outer.out_norm_place == OutputNormPlace::kAfterResidual) {
      NormInPlace(outer.out_norm, outer.out_norm_eps, outer.out_norm_gamma, outer.out_norm_beta, out);
    }
    std::copy(out.begin(), out.end(), y.begin() + r * dm);
  }
  return y;
}

}  // namespace

std::vector<double> ReferenceFfn(const FfnWeights& w, Activation activation,
                                 const ActivationParams& params, const float* x, int64_t m) {
  if (w.matrix_type == DataType::kBf16) {
    FfnWeights widened = w;
    WidenMatrices(widened);
    return ReferenceFfn(widened, activation, params, x, m);
  }
  std::vector<double> h;
  return AroundRows(w, x, m, [&](int64_t, const std::vector<double>& xr, std::vector<double>& out) {
    MlpRow(w, activation, params, xr, h, out);
  });
}

std::vector<double> ReferenceMoe(const MoeWeights& weights, Activation activation,
                                 const ActivationParams& params, const float* x, int64_t m,
                                 const MoeRouting& routing) {
  // Widened copies of whatever the experts hold in bf16.
  MoeWeights w = weights;
  for (FfnWeights& e : w.experts) WidenMatrices(e);
  if (w.shared) WidenMatrices(*w.shared);
  const int64_t dm = w.outer.d_model, k = routing.top_k;
  std::vector<double> h, part;
  return AroundRows(w.outer, x, m, [&](int64_t r, const std::vector<double>& xr,
                                       std::vector<double>& out) {
    out.assign(static_cast<size_t>(dm), 0.0);
    for (int64_t i = 0; i < k; ++i) {
      const size_t at = static_cast<size_t>(r * k + i);
      MlpRow(w.experts[static_cast<size_t>(routing.ids[at])], activation, params, xr, h, part);
      for (int64_t j = 0; j < dm; ++j) out[j] += static_cast<double>(routing.weights[at]) * part[j];
    }
    if (w.shared) {
      double g = 0;
      for (int64_t j = 0; j < dm; ++j) g += static_cast<double>(w.shared_gate[j]) * xr[j];
      const double scale = 1.0 / (1.0 + std::exp(-g));
      MlpRow(*w.shared, activation, params, xr, h, part);
      for (int64_t j = 0; j < dm; ++j) out[j] += scale * part[j];
    }
  });
}

std::string CheckBound::ToString() const {
  std::ostringstream out;
  out << scaled << " scaled";
  if (std::isfinite(frobenius)) out << ", " << frobenius << " relative Frobenius";
  return out.str();
}

ReferenceComparison CompareToReference(const float* y, const std::vector<double>& reference) {
  ReferenceComparison c;
  double sum_sq = 0, error_sq = 0;
  for (double v : reference) sum_sq += v * v;
  c.rms_reference = reference.empty() ? 0.0 : std::sqrt(sum_sq / reference.size());
  for (size_t i = 0; i < reference.size(); ++i) {
    const double err = std::abs(static_cast<double>(y[i]) - reference[i]);
    const double scale = std::abs(reference[i]) + c.rms_reference;
    const double scaled = scale > 0 ? err / scale : (err > 0 ? INFINITY : 0.0);
    // A NaN answer must fail the check, never pass it.
    if (std::isnan(err) || scaled > c.max_scaled_error) {
      c.max_scaled_error = std::isnan(err) ? INFINITY : scaled;
      c.worst_index = static_cast<int64_t>(i);
    }
    if (std::isnan(err) || err > c.max_abs_error) c.max_abs_error = std::isnan(err) ? INFINITY : err;
    error_sq += err * err;
  }
  c.relative_frobenius = sum_sq > 0 ? std::sqrt(error_sq / sum_sq) : (error_sq > 0 ? INFINITY : 0.0);
  if (std::isnan(error_sq)) c.relative_frobenius = INFINITY;
  return c;
}

}  // namespace ffn
