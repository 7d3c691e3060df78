// The error of int8 models against the fp64 reference, per shape and M, next
// to f32 and bf16 compute of the same weights and to two schemes emulated in
// double: one scale per token (per-row activations, what ffnserve's int8 did
// first) and llama.cpp's Q8_0 (weights and activations in blocks of 32
// values, one scale each; the scale kept exact rather than rounded to fp16,
// which only flatters Q8_0). Prints a Markdown table for docs/ACCURACY.md.
//
//   build/bench/int8_error            # every shape
//   build/bench/int8_error ffn-768    # shapes whose name contains the argument
//
// Error columns: relative Frobenius ‖y − ref‖/‖ref‖, the max scaled error
// (|y − ref| / (|ref| + rms(ref)), reference.h) and max |y − ref| / rms(ref).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "ffn/kernels/ffn_block.h"
#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/reference.h"

namespace ffn {
namespace {

struct Shape {
  const char* name;
  FfnKind kind;
  Activation activation;
  int64_t d_model, d_ff;
  uint64_t seed;
  std::vector<int64_t> tokens;
};

// Each block of `block` consecutive values v gets d = max|v| / 127 and
// stores round(v / d) (Q8_0: blocks of 32); returns the dequantized values.
std::vector<double> Q8Blocks(const double* v, int64_t n, int64_t block) {
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t b = 0; b < n; b += block) {
    const int64_t e = std::min(n, b + block);
    double largest = 0;
    for (int64_t i = b; i < e; ++i) largest = std::max(largest, std::fabs(v[i]));
    const double d = largest / 127.0;
    for (int64_t i = b; i < e; ++i) out[static_cast<size_t>(i)] = d > 0 ? std::nearbyint(v[i] / d) * d : 0.0;
  }
  return out;
}

// A row-major [rows, k] f32 matrix with each row quantized as Q8_0.
std::vector<double> Q8Matrix(const std::vector<float>& w, int64_t rows, int64_t k, int64_t block) {
  std::vector<double> out(w.size());
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> row(w.begin() + r * k, w.begin() + (r + 1) * k);
    const std::vector<double> q = Q8Blocks(row.data(), k, block);
    std::copy(q.begin(), q.end(), out.begin() + r * k);
  }
  return out;
}

// y = FFN(x) in double with Q8_0 weights, and the tokens and the activated
// row quantized as Q8_0 before each matmul (as llama.cpp's CPU dot products
// quantize them).
std::vector<double> Q8Ffn(const FfnWeights& w, Activation activation, const float* x, int64_t m,
                          int64_t w_block, int64_t x_block) {
  const int64_t dm = w.d_model, dff = w.d_ff;
  const bool gated = w.kind == FfnKind::kGated;
  const std::vector<double> w1 = gated ? Q8Matrix(w.wg, dff, dm, w_block) : Q8Matrix(w.w1, dff, dm, w_block);
  const std::vector<double> wu = gated ? Q8Matrix(w.wu, dff, dm, w_block) : std::vector<double>();
  const std::vector<double> w2 = Q8Matrix(w.w2, dm, dff, w_block);
  const ActivationParams params;
  std::vector<double> y(static_cast<size_t>(m * dm));
#pragma omp parallel for schedule(dynamic)
  for (int64_t r = 0; r < m; ++r) {
    std::vector<double> xr(x + r * dm, x + (r + 1) * dm);
    const std::vector<double> xq = Q8Blocks(xr.data(), dm, x_block);
    std::vector<double> h(static_cast<size_t>(dff));
    for (int64_t j = 0; j < dff; ++j) {
      double g = gated ? 0.0 : (w.has_bias ? w.b1[static_cast<size_t>(j)] : 0.0), u = 0;
      for (int64_t k = 0; k < dm; ++k) {
        g += w1[static_cast<size_t>(j * dm + k)] * xq[static_cast<size_t>(k)];
        if (gated) u += wu[static_cast<size_t>(j * dm + k)] * xq[static_cast<size_t>(k)];
      }
      const double a = ActivationReference(activation, params, g, static_cast<size_t>(j));
      h[static_cast<size_t>(j)] = gated ? a * u : a;
    }
    const std::vector<double> hq = Q8Blocks(h.data(), dff, x_block);
    for (int64_t i = 0; i < dm; ++i) {
      double acc = !gated && w.has_bias ? w.b2[static_cast<size_t>(i)] : 0.0;
      for (int64_t j = 0; j < dff; ++j) acc += w2[static_cast<size_t>(i * dff + j)] * hq[static_cast<size_t>(j)];
      y[static_cast<size_t>(r * dm + i)] = acc;
    }
  }
  return y;
}

// Reference rows in parallel (ReferenceFfn is one thread).
std::vector<double> Reference(const FfnWeights& w, Activation activation, const std::vector<float>& x,
                              int64_t m) {
  std::vector<double> y(static_cast<size_t>(m * w.d_model));
#pragma omp parallel for schedule(dynamic)
  for (int64_t r = 0; r < m; ++r) {
    const std::vector<double> row = ReferenceFfn(w, activation, {}, x.data() + r * w.d_model, 1);
    std::copy(row.begin(), row.end(), y.begin() + r * w.d_model);
  }
  return y;
}

void PrintRow(const char* shape, int64_t m, const char* path, const ReferenceComparison& c) {
  std::printf("| %s | %ld | %s | %.3g | %.3g | %.3g |\n", shape, static_cast<long>(m), path,
              c.relative_frobenius, c.max_scaled_error, c.max_abs_error / c.rms_reference);
}

void Run(const Shape& s) {
  const FfnWeights weights = RandomFfnWeights(s.kind, s.d_model, s.d_ff, s.seed);
  auto dense = FfnBlock::Create(RandomFfnWeights(s.kind, s.d_model, s.d_ff, s.seed));
  auto int8 = FfnBlock::Create(RandomFfnWeights(s.kind, s.d_model, s.d_ff, s.seed), {},
                               Quantization::kInt8);
  if (!dense.ok() || !int8.ok()) {
    std::fprintf(stderr, "%s: cannot build the blocks\n", s.name);
    return;
  }
  for (int64_t m : s.tokens) {
    std::vector<float> x(static_cast<size_t>(m * s.d_model)), y(x.size());
    FillUniform(3, RandomStream::kInput, kRandomInputScale, x);
    const std::vector<double> ref = Reference(weights, s.activation, x, m);
    for (DataType compute : {DataType::kF32, DataType::kBf16}) {
      FfnRun run{s.activation, compute, x.data(), DataType::kF32, m, y.data(), DataType::kF32};
      run.batch_invariant = true;
      if ((*dense)->Run(run).ok()) {
        PrintRow(s.name, m, compute == DataType::kF32 ? "ffnserve f32" : "ffnserve bf16",
                 CompareToReference(y.data(), ref));
      }
    }
    if ((*int8)->Run(s.activation, x.data(), m, y.data()).ok()) {
      PrintRow(s.name, m, "**ffnserve int8**", CompareToReference(y.data(), ref));
    }
    const struct {
      const char* name;
      int64_t w_block, x_block;
    } schemes[] = {{"one scale per token (in double)", 1 << 30, 1 << 30},
                   {"Q8_0 (llama.cpp's scheme, in double)", 32, 32}};
    for (const auto& scheme : schemes) {
      const std::vector<double> q8 = Q8Ffn(weights, s.activation, x.data(), m, scheme.w_block, scheme.x_block);
      std::vector<float> q8f(q8.begin(), q8.end());
      PrintRow(s.name, m, scheme.name, CompareToReference(q8f.data(), ref));
    }
    std::fflush(stdout);
  }
}

}  // namespace
}  // namespace ffn

int main(int argc, char** argv) {
  using ffn::Activation;
  using ffn::FfnKind;
  const ffn::Shape shapes[] = {
      {"ffn-768", FfnKind::kPlain, Activation::kGelu, 768, 3072, 1, {1, 32, 512}},
      {"glu-768", FfnKind::kGated, Activation::kSwiglu, 768, 2048, 2, {1, 32, 512}},
      {"llama-7b", FfnKind::kGated, Activation::kSwiglu, 4096, 11008, 3, {1, 8, 32}},
  };
  std::printf("| shape | tokens | path | relative Frobenius | max scaled | max abs / rms |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const ffn::Shape& s : shapes) {
    if (argc > 1 && std::string(s.name).find(argv[1]) == std::string::npos) continue;
    ffn::Run(s);
  }
  return 0;
}
