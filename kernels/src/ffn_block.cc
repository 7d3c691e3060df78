#include "ffn/kernels/ffn_block.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ffn/kernels/epilogue.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace ffn {
namespace {

using dnnl::memory;
using dt = dnnl::memory::data_type;

// Column tile of the activation pass: small enough to split one token's
// d_ff over threads, large enough to amortise the loop overhead.
constexpr int64_t kActivationTileCols = 512;
// Distinct token counts whose primitives are kept; past it the cache restarts.
constexpr size_t kMaxCachedShapes = 512;
// From this many tokens on, gated models write their product densely (below).
constexpr int64_t kDenseGatedMinTokens = 8;

dnnl::engine& CpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dt OneDnnType(DataType type) { return type == DataType::kBf16 ? dt::bf16 : dt::f32; }

// Matmul of a row-major [m, k] source (rows `src_stride` apart) with an
// nn.Linear weight [n, k], plus an optional f32 bias [n], into f32 [m, n].
// Source and weights are of type `in`.
dnnl::matmul::primitive_desc MatmulDesc(int64_t m, int64_t k, int64_t n, int64_t src_stride,
                                        bool bias, dt in) {
  memory::desc src({m, k}, in, memory::dims{src_stride, 1});
  memory::desc weights({k, n}, in, memory::dims{1, k});  // [n, k] row-major
  memory::desc dst({m, n}, dt::f32, memory::dims{n, 1});
  if (bias) {
    memory::desc bias_md({1, n}, dt::f32, memory::dims{n, 1});
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, bias_md, dst),
                                        CpuEngine());
  }
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), CpuEngine());
}

// Converts a dense [rows, cols] block between f32 and bf16 with a oneDNN
// reorder (vectorized, parallel; bf16 rounds to nearest even).
void Convert(dnnl::stream& stream, const void* from, DataType from_type, void* to,
             DataType to_type, int64_t rows, int64_t cols) {
  memory::desc from_md({rows, cols}, OneDnnType(from_type), memory::dims{cols, 1});
  memory::desc to_md({rows, cols}, OneDnnType(to_type), memory::dims{cols, 1});
  memory from_mem(from_md, CpuEngine(), const_cast<void*>(from));
  memory to_mem(to_md, CpuEngine(), to);
  dnnl::reorder(from_mem, to_mem).execute(stream, from_mem, to_mem);
}

std::vector<uint16_t> ToBf16(const float* values, size_t n) {
  std::vector<uint16_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = FloatToBf16(values[i]);
  return out;
}

// out[r] = norm(x[r]) for `rows` rows of `cols`, with double sums.
void NormRows(const FfnWeights& w, const float* x, float* out, int64_t rows, int64_t cols) {
  const bool layer = w.norm == NormKind::kLayerNorm;
#pragma omp parallel for schedule(static) if (rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * cols;
    float* o = out + r * cols;
    double sum = 0, square = 0;
    for (int64_t k = 0; k < cols; ++k) {
      sum += in[k];
      square += static_cast<double>(in[k]) * in[k];
    }
    const double mean = sum / static_cast<double>(cols);
    const double mean_square = square / static_cast<double>(cols);
    const double variance = layer ? std::max(0.0, mean_square - mean * mean) : mean_square;
    const float scale = static_cast<float>(1.0 / std::sqrt(variance + w.norm_eps));
    const float shift = layer ? static_cast<float>(mean) : 0.0f;
    for (int64_t k = 0; k < cols; ++k) {
      const float normed = (in[k] - shift) * scale * w.norm_gamma[static_cast<size_t>(k)];
      o[k] = layer ? normed + w.norm_beta[static_cast<size_t>(k)] : normed;
    }
  }
}

struct ShapePrimitives {
  dnnl::matmul::primitive_desc up_pd, down_pd;
  dnnl::matmul up, down;
};

}  // namespace

struct FfnBlock::Impl {
  FfnWeights weights;
  ActivationParams params;
  std::vector<float> w_up;  // gated: [Wg; Wu] stacked, [2·d_ff, d_model]
  // The same weights in bf16, for bf16 compute.
  std::vector<uint16_t> w_up_bf16, w2_bf16;

  mutable absl::Mutex mu;
  // By (tokens, compute type).
  mutable absl::flat_hash_map<std::pair<int64_t, DataType>, std::shared_ptr<const ShapePrimitives>>
      shapes ABSL_GUARDED_BY(mu);

  // Gated models write act(g)⊙u over the gate half in place (a strided
  // source for the down matmul, which oneDNN 2.6 runs with gemm:jit) for few
  // tokens, and into a dense block (brgemm) for more. Measured on the 768×2048
  // default: M=1 0.41 ms strided vs 0.63 dense; M=32 4.2 ms strided vs 2.4 dense.
  bool DenseGatedProduct(int64_t m) const {
    return weights.kind == FfnKind::kGated && m >= kDenseGatedMinTokens;
  }
  int64_t up_cols() const { return weights.kind == FfnKind::kGated ? 2 * weights.d_ff : weights.d_ff; }
  const float* up_weights() const {
    return weights.kind == FfnKind::kGated ? w_up.data() : weights.w1.data();
  }

  // The primitives for m tokens computed in `compute`, built on first use.
  std::shared_ptr<const ShapePrimitives> Primitives(int64_t m, DataType compute) const {
    const std::pair<int64_t, DataType> key{m, compute};
    {
      absl::MutexLock lock(&mu);
      auto it = shapes.find(key);
      if (it != shapes.end()) return it->second;
    }
    auto built = std::make_shared<ShapePrimitives>();
    const bool bias = weights.kind == FfnKind::kPlain && weights.has_bias;
    const dt in = OneDnnType(compute);
    // b1 is added by the activation epilogue, b2 by the down matmul. bf16
    // always writes a dense activated block.
    built->up_pd = MatmulDesc(m, weights.d_model, up_cols(), weights.d_model, /*bias=*/false, in);
    const bool dense = compute == DataType::kBf16 || DenseGatedProduct(m) ||
                       weights.kind == FfnKind::kPlain;
    built->down_pd = MatmulDesc(m, weights.d_ff, weights.d_model,
                                dense && weights.kind == FfnKind::kGated ? weights.d_ff : up_cols(),
                                bias, in);
    built->up = dnnl::matmul(built->up_pd);
    built->down = dnnl::matmul(built->down_pd);
    absl::MutexLock lock(&mu);
    if (shapes.size() >= kMaxCachedShapes) shapes.clear();
    shapes.emplace(key, built);
    return built;
  }
};

FfnBlock::FfnBlock(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FfnBlock::~FfnBlock() = default;

absl::StatusOr<std::unique_ptr<FfnBlock>> FfnBlock::Create(FfnWeights weights,
                                                           ActivationParams params) {
  if (absl::Status s = weights.Validate(); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->weights = std::move(weights);
  FfnWeights& w = impl->weights;
  if (w.kind == FfnKind::kGated) {
    impl->w_up.reserve(w.wg.size() + w.wu.size());
    impl->w_up.insert(impl->w_up.end(), w.wg.begin(), w.wg.end());
    impl->w_up.insert(impl->w_up.end(), w.wu.begin(), w.wu.end());
    // The stacked copy is the one the engine reads; keep a single copy.
    w.wg = {};
    w.wu = {};
  }
  if (w.prelu_alpha.empty()) w.prelu_alpha = {0.25f};
  const std::vector<float>& up = w.kind == FfnKind::kGated ? impl->w_up : w.w1;
  impl->w_up_bf16 = ToBf16(up.data(), up.size());
  impl->w2_bf16 = ToBf16(w.w2.data(), w.w2.size());
  impl->params = params;
  impl->params.prelu_alpha = w.prelu_alpha;
  std::unique_ptr<FfnBlock> block(new FfnBlock(std::move(impl)));
  try {
    block->impl_->Primitives(1, DataType::kF32);
    block->impl_->Primitives(1, DataType::kBf16);
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN cannot build the FFN matmuls: ", e.what()));
  }
  return block;
}

const FfnWeights& FfnBlock::weights() const { return impl_->weights; }
const ActivationParams& FfnBlock::params() const { return impl_->params; }

double FfnBlock::Flops(int64_t m) const {
  const double per_token = 2.0 * static_cast<double>(d_model()) * static_cast<double>(d_ff()) *
                           (kind() == FfnKind::kGated ? 3.0 : 2.0);
  return per_token * static_cast<double>(m);
}

absl::Status FfnBlock::Prepare(int64_t max_m) const {
  try {
    for (int64_t m = 1; m <= max_m; ++m) {
      impl_->Primitives(m, DataType::kF32);
      impl_->Primitives(m, DataType::kBf16);
    }
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN cannot build the FFN matmuls: ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FfnBlock::ImplementationFor(int64_t m, DataType compute) const {
  try {
    auto p = impl_->Primitives(m, compute);
    return absl::StrCat(p->up_pd.impl_info_str(), " / ", p->down_pd.impl_info_str());
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
  }
}

absl::Status FfnBlock::Run(const FfnRun& run) const {
  const FfnWeights& w = impl_->weights;
  const Activation activation = run.activation;
  const int64_t m = run.m;
  if (m <= 0) return absl::InvalidArgumentError(absl::StrCat("token count must be positive, got ", m));
  if (IsGated(activation) != (w.kind == FfnKind::kGated)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "activation ", std::string(ActivationName(activation)), " needs a ",
        IsGated(activation) ? "gated" : "plain", " model; this one is ",
        w.kind == FfnKind::kGated ? "gated" : "plain"));
  }
  const bool bf16 = run.compute == DataType::kBf16;
  const bool gated = w.kind == FfnKind::kGated;
  const int64_t d_ff = w.d_ff, d_model = w.d_model;
  const int64_t up_cols = impl_->up_cols();
  // f32: the activated block is written over the first matmul's output (the
  // gate half, for gated models with few tokens) or densely after it. bf16:
  // the epilogue writes a dense bf16 block.
  const bool dense_product = !bf16 && impl_->DenseGatedProduct(m);
  // Per-thread scratch reused across calls. OpenMP workers have their own
  // thread_locals: they must use the pointers taken here.
  thread_local std::vector<float> hidden, x_f32, y_f32, x_in_f32, x_normed;
  thread_local std::vector<uint16_t> x_bf16, act_bf16;
  const size_t hidden_size = static_cast<size_t>(m * (up_cols + (dense_product ? d_ff : 0)));
  if (hidden.size() < hidden_size) hidden.resize(hidden_size);
  float* const hidden_data = hidden.data();
  uint16_t* act16 = nullptr;
  if (bf16) {
    if (act_bf16.size() < static_cast<size_t>(m * d_ff)) act_bf16.resize(static_cast<size_t>(m * d_ff));
    act16 = act_bf16.data();
  }

  try {
    auto prims = impl_->Primitives(m, run.compute);
    dnnl::engine& engine = CpuEngine();
    dnnl::stream stream(engine);
    const size_t io_size = static_cast<size_t>(m * d_model);
    // Pre-norm and residual read the input in f32.
    const void* x = run.x;
    DataType x_type = run.x_type;
    const float* x_original = nullptr;
    if (w.norm != NormKind::kNone || w.residual) {
      if (run.x_type == DataType::kBf16) {
        if (x_in_f32.size() < io_size) x_in_f32.resize(io_size);
        Convert(stream, run.x, DataType::kBf16, x_in_f32.data(), DataType::kF32, m, d_model);
        stream.wait();
        x_original = x_in_f32.data();
      } else {
        x_original = static_cast<const float*>(run.x);
      }
      x = x_original;
      x_type = DataType::kF32;
      if (w.norm != NormKind::kNone) {
        if (x_normed.size() < io_size) x_normed.resize(io_size);
        NormRows(w, x_original, x_normed.data(), m, d_model);
        x = x_normed.data();
      }
    }
    // The source in the compute type.
    if (x_type != run.compute) {
      void* converted;
      if (bf16) {
        if (x_bf16.size() < static_cast<size_t>(m * d_model)) x_bf16.resize(static_cast<size_t>(m * d_model));
        converted = x_bf16.data();
      } else {
        if (x_f32.size() < static_cast<size_t>(m * d_model)) x_f32.resize(static_cast<size_t>(m * d_model));
        converted = x_f32.data();
      }
      Convert(stream, x, x_type, converted, run.compute, m, d_model);
      x = converted;
    }
    const void* up_weights = bf16 ? static_cast<const void*>(impl_->w_up_bf16.data())
                                  : static_cast<const void*>(impl_->up_weights());
    memory src_mem(prims->up_pd.src_desc(), engine, const_cast<void*>(x));
    memory up_w_mem(prims->up_pd.weights_desc(), engine, const_cast<void*>(up_weights));
    memory hidden_mem(prims->up_pd.dst_desc(), engine, hidden_data);
    prims->up.execute(stream, {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, up_w_mem},
                               {DNNL_ARG_DST, hidden_mem}});
    stream.wait();

    // The fused epilogue (b1 + activation, or the gated product; bf16 output
    // for bf16 compute) over column tiles of each row, in parallel, with the
    // kernels of the active ISA.
    const EpilogueKernels& kernels = ActiveKernels();
    const bool bias = w.kind == FfnKind::kPlain && w.has_bias;
    const float* b1 = bias ? w.b1.data() : nullptr;
    const int64_t col_tiles = (d_ff + kActivationTileCols - 1) / kActivationTileCols;
    const int64_t tiles = m * col_tiles;
    const ActivationParams& base = impl_->params;
    const bool per_channel = base.prelu_alpha.size() > 1;
#pragma omp parallel for schedule(static) if (tiles > 1 && !run.skip_epilogue_for_timing)
    for (int64_t t = 0; t < (run.skip_epilogue_for_timing ? 0 : tiles); ++t) {
      const int64_t row = t / col_tiles;
      const int64_t col0 = (t % col_tiles) * kActivationTileCols;
      const size_t cols = static_cast<size_t>(std::min(kActivationTileCols, d_ff - col0));
      float* gate = hidden_data + row * up_cols + col0;
      ActivationParams params = base;
      if (per_channel) params.prelu_alpha = base.prelu_alpha.subspan(static_cast<size_t>(col0));
      const float* tile_bias = b1 != nullptr ? b1 + col0 : nullptr;
      if (bf16) {
        uint16_t* out = act16 + row * d_ff + col0;
        if (gated) {
          kernels.gated_bf16(activation, params, gate, gate + d_ff, 0, out, 0, 1, cols);
        } else {
          kernels.bias_act_bf16(activation, params, gate, 0, tile_bias, out, 0, 1, cols);
        }
      } else if (gated) {
        float* product = dense_product ? hidden_data + m * up_cols + row * d_ff + col0 : gate;
        kernels.gated(activation, params, gate, gate + d_ff, 0, product, 0, 1, cols);
      } else {
        kernels.bias_act(activation, params, gate, 0, tile_bias, gate, 0, 1, cols);
      }
    }

    void* activated = bf16 ? static_cast<void*>(act16)
                           : static_cast<void*>(dense_product ? hidden_data + m * up_cols : hidden_data);
    const void* w2 = bf16 ? static_cast<const void*>(impl_->w2_bf16.data())
                          : static_cast<const void*>(w.w2.data());
    // The down matmul writes f32: into y, or into scratch to convert to bf16.
    float* y_out = static_cast<float*>(run.y);
    if (run.y_type == DataType::kBf16) {
      if (y_f32.size() < static_cast<size_t>(m * d_model)) y_f32.resize(static_cast<size_t>(m * d_model));
      y_out = y_f32.data();
    }
    memory act_mem(prims->down_pd.src_desc(), engine, activated);
    memory down_w_mem(prims->down_pd.weights_desc(), engine, const_cast<void*>(w2));
    memory y_mem(prims->down_pd.dst_desc(), engine, y_out);
    std::unordered_map<int, memory> down_args = {
        {DNNL_ARG_SRC, act_mem}, {DNNL_ARG_WEIGHTS, down_w_mem}, {DNNL_ARG_DST, y_mem}};
    if (bias) {
      down_args.emplace(DNNL_ARG_BIAS, memory(prims->down_pd.bias_desc(), engine,
                                              const_cast<float*>(w.b2.data())));
    }
    prims->down.execute(stream, down_args);
    if (w.residual) {
      stream.wait();
      const int64_t n = m * d_model;
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) y_out[i] += x_original[i];
    }
    if (run.y_type == DataType::kBf16) {
      Convert(stream, y_out, DataType::kF32, run.y, DataType::kBf16, m, d_model);
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN failed: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory for the ", m, "-token intermediate buffers"));
  }
  return absl::OkStatus();
}

const char* DataTypeName(DataType type) { return type == DataType::kBf16 ? "bf16" : "f32"; }

std::string OneDnnDescription() {
  const dnnl_version_t* v = dnnl_version();
  std::string isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx2_vnni: isa = "avx2_vnni"; break;
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    default: isa = "other"; break;
  }
  return absl::StrCat("oneDNN ", v->major, ".", v->minor, ".", v->patch, " (",
                      v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other", " runtime, max ISA ",
                      isa, ", ", omp_get_max_threads(), " threads)");
}

}  // namespace ffn
