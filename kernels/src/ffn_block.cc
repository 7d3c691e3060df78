#include "ffn/kernels/ffn_block.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "ffn/kernels/epilogue.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "small_m.h"

namespace ffn {
namespace {

using dnnl::memory;
using dt = dnnl::memory::data_type;

// Column tile of the unfused activation pass: small enough to split one
// token's d_ff over threads, large enough to amortise the loop overhead.
constexpr int64_t kActivationTileCols = 512;
// Distinct matmul shapes whose primitives are kept; past it the cache restarts.
constexpr size_t kMaxCachedMatmuls = 2048;
// Before tuning, auto runs fused for single tokens (the dot-product kernels
// match or beat oneDNN there on every shape measured, by 1.3-1.5x where the
// weights stream from memory) and unfused above.
constexpr int64_t kUntunedFusedTokens = 1;
// Tune() prefers postops (oneDNN's activation approximations) only when it
// is faster than the better of unfused and fused by more than this share.
constexpr double kPostopsMargin = 0.03;
// Tune() times each strategy over about this many ms (3 to 11 runs).
constexpr double kTuneSampleMs = 10;
// Token counts Tune() measures.
constexpr int64_t kTuneProbes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

dnnl::engine& CpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dt OneDnnType(DataType type) { return type == DataType::kBf16 ? dt::bf16 : dt::f32; }

// The post-op chain of one matmul.
enum class PostOp { kNone, kSum, kEltwise, kEltwiseThenMul };

// One matmul: dst [m, n] (+)= src [m, k] · Wᵀ, where W holds n rows of k
// values `w_stride` apart (nn.Linear layout for w_stride = k; a column block
// of a wider matrix otherwise), with an optional f32 bias [n] and post-ops.
// The primitive reads W in the blocked layout oneDNN prefers for (k, n,
// dtype) — the same at every m on this oneDNN — packed once per weight view
// (FfnBlock::Impl::Packed). Measured on the 768×3072 bf16 matmul: 20 % faster
// than the nn.Linear layout at M=32, 7 % at 128, 4 % at 512.
struct MatmulSpec {
  int64_t m = 0, k = 0, n = 0;
  int64_t src_stride = 0, w_stride = 0, dst_stride = 0;
  DataType in = DataType::kF32, out = DataType::kF32;
  bool bias = false;
  PostOp post = PostOp::kNone;
  dnnl::algorithm eltwise = dnnl::algorithm::eltwise_relu;
  float alpha = 0, beta = 0;

  auto Tie() const {
    return std::tie(m, k, n, src_stride, w_stride, dst_stride, in, out, bias, post, eltwise, alpha,
                    beta);
  }
  bool operator==(const MatmulSpec& o) const { return Tie() == o.Tie(); }
  template <typename H>
  friend H AbslHashValue(H h, const MatmulSpec& s) {
    return H::combine(std::move(h), s.m, s.k, s.n, s.src_stride, s.w_stride, s.dst_stride, s.in,
                      s.out, s.bias, s.post, s.eltwise, s.alpha, s.beta);
  }
};

struct Matmul {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul primitive;
};

Matmul BuildMatmul(const MatmulSpec& s) {
  const dt in = OneDnnType(s.in);
  memory::desc src({s.m, s.k}, in, memory::dims{s.src_stride, 1});
  memory::desc weights({s.k, s.n}, in, memory::format_tag::any);
  memory::desc dst({s.m, s.n}, OneDnnType(s.out), memory::dims{s.dst_stride, 1});
  dnnl::post_ops ops;
  switch (s.post) {
    case PostOp::kNone: break;
    case PostOp::kSum: ops.append_sum(1.0f); break;
    case PostOp::kEltwise: ops.append_eltwise(1.0f, s.eltwise, s.alpha, s.beta); break;
    case PostOp::kEltwiseThenMul:
      ops.append_eltwise(1.0f, s.eltwise, s.alpha, s.beta);
      ops.append_binary(dnnl::algorithm::binary_mul,
                        memory::desc({s.m, s.n}, dt::f32, memory::dims{s.n, 1}));
      break;
  }
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  dnnl::matmul::primitive_desc pd =
      s.bias ? dnnl::matmul::primitive_desc(
                   dnnl::matmul::desc(src, weights,
                                      memory::desc({1, s.n}, dt::f32, memory::dims{s.n, 1}), dst),
                   attr, CpuEngine())
             : dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), attr,
                                            CpuEngine());
  return Matmul{pd, dnnl::matmul(pd)};
}

// Runs a matmul on user buffers and packed weights. `extra` is the
// binary-mul operand, if the spec has one.
void Execute(const Matmul& mm, const MatmulSpec& s, dnnl::stream& stream, const void* src,
             const memory& weights, void* dst, const float* bias, const float* extra) {
  dnnl::engine& engine = CpuEngine();
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, memory(mm.pd.src_desc(), engine, const_cast<void*>(src))},
      {DNNL_ARG_WEIGHTS, weights},
      {DNNL_ARG_DST, memory(mm.pd.dst_desc(), engine, dst)}};
  if (s.bias) {
    args.emplace(DNNL_ARG_BIAS, memory(mm.pd.bias_desc(), engine, const_cast<float*>(bias)));
  }
  if (s.post == PostOp::kEltwiseThenMul) {
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1,
                 memory(memory::desc({s.m, s.n}, dt::f32, memory::dims{s.n, 1}), engine,
                        const_cast<float*>(extra)));
  }
  mm.primitive.execute(stream, args);
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

// oneDNN's eltwise algorithm and parameters for a plain activation.
struct EltwiseOp {
  dnnl::algorithm algorithm;
  float alpha = 0, beta = 0;
};
EltwiseOp OneDnnEltwise(Activation activation, const ActivationParams& p) {
  using dnnl::algorithm;
  switch (activation) {
    case Activation::kRelu: return {algorithm::eltwise_relu};
    case Activation::kLeakyRelu: return {algorithm::eltwise_relu, p.leaky_relu_slope};
    case Activation::kPrelu: return {algorithm::eltwise_relu, p.prelu_alpha[0]};
    case Activation::kRrelu: return {algorithm::eltwise_relu, p.rrelu_slope()};
    case Activation::kElu: return {algorithm::eltwise_elu, p.elu_alpha};
    case Activation::kSigmoid: return {algorithm::eltwise_logistic};
    case Activation::kTanh: return {algorithm::eltwise_tanh};
    case Activation::kGelu: return {algorithm::eltwise_gelu_erf};
    case Activation::kGeluTanh: return {algorithm::eltwise_gelu_tanh};
    case Activation::kSilu: return {algorithm::eltwise_swish, 1.0f};
    default: return OneDnnEltwise(GateFunction(activation), p);
  }
}

// Per-thread scratch reused across calls, grown on demand. OpenMP workers
// have their own thread_locals: parallel regions use pointers taken before.
struct Scratch {
  std::vector<float> hidden, product, x_f32, y_f32, x_in_f32, x_normed, gate_up;
  std::vector<uint16_t> x_bf16, act_bf16;

  template <typename T>
  static T* Get(std::vector<T>& v, int64_t n) {
    if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
    return v.data();
  }
};

}  // namespace

const char* StrategyName(Strategy strategy) {
  switch (strategy) {
    case Strategy::kUnfused: return "unfused";
    case Strategy::kPostops: return "postops";
    case Strategy::kFused: return "fused";
    case Strategy::kAuto: return "auto";
  }
  return "unknown";
}

std::optional<Strategy> ParseStrategy(std::string_view name) {
  for (Strategy s : {Strategy::kUnfused, Strategy::kPostops, Strategy::kFused, Strategy::kAuto}) {
    if (name == StrategyName(s)) return s;
  }
  return std::nullopt;
}

std::vector<Strategy> ConcreteStrategies() {
  return {Strategy::kUnfused, Strategy::kPostops, Strategy::kFused};
}

std::string TuneResult::ToString() const {
  std::string out;
  for (const Probe& p : probes) {
    absl::StrAppend(&out, out.empty() ? "" : "; ", DataTypeName(p.compute), " m=", p.m, " ",
                    StrategyName(p.chosen), " (");
    for (int i = 0; i < 3; ++i) {
      absl::StrAppend(&out, i ? ", " : "", StrategyName(ConcreteStrategies()[i]), " ",
                      p.ms[i] < 0 ? std::string("n/a") : absl::StrFormat("%.3g", p.ms[i]));
    }
    absl::StrAppend(&out, " ms)");
  }
  return out;
}

// The core of a call: y_f32 [m, d_model] = FFN(x) + b2 with x [m, d_model]
// dense in the compute type. Norm, residual and output conversion are Run's.
struct CoreCall {
  Activation activation;
  DataType compute;
  const void* x;
  int64_t m;
  float* y;
  bool skip_epilogue;
};

// One probe of the auto plan: the strategy for token counts near `m`, and
// the faster of ours for activations postops cannot run.
struct PlanEntry {
  int64_t m;
  Strategy chosen, ours;
};

// Whether oneDNN post-ops can run `activation`: not per-channel PReLU, whose
// prelu post-op oneDNN 2.6 offers only with its reference matmul, which
// then fails to execute.
bool PostopsSupports(Activation activation, const ActivationParams& params) {
  return !(activation == Activation::kPrelu && params.prelu_alpha.size() > 1);
}

struct FfnBlock::Impl {
  FfnWeights weights;
  ActivationParams params;
  // Gated first-matmul weights [Wg_0; Wu_0; Wg_1; ...] interleaved by
  // kColumnBlock rows (plain models read weights.w1), and the bf16 copies.
  std::vector<float> w_up;
  std::vector<uint16_t> w_up_bf16, w2_bf16;
  // The first- and second-matmul weights packed 16 rows to a vector for the
  // small-M kernels (small_m.h), made at their first call (SmallMWeights).
  mutable std::vector<float> up_packed_f32, w2_packed_f32;
  mutable std::vector<uint16_t> up_packed_bf16, w2_packed_bf16;
  mutable std::once_flag packed_f32_once, packed_bf16_once;

  mutable absl::Mutex mu;
  mutable absl::flat_hash_map<MatmulSpec, std::shared_ptr<const Matmul>> matmuls
      ABSL_GUARDED_BY(mu);
  // Auto plan per compute dtype: (probe m, strategy), ascending m; empty
  // until Tune().
  mutable std::vector<PlanEntry> plan[2] ABSL_GUARDED_BY(mu);
  // Weight views (first element, k, n, row stride, dtype) packed into the
  // layout their matmuls read; built on first use (Tune uses them all).
  using PackKey = std::tuple<const void*, int64_t, int64_t, int64_t, DataType>;
  mutable absl::flat_hash_map<PackKey, std::shared_ptr<const memory>> packs ABSL_GUARDED_BY(mu);

  bool gated() const { return weights.kind == FfnKind::kGated; }
  int64_t up_cols() const { return gated() ? 2 * weights.d_ff : weights.d_ff; }
  int64_t blocks() const { return (weights.d_ff + kColumnBlock - 1) / kColumnBlock; }
  // Column block j of d_ff: first column and width.
  int64_t block_col(int64_t j) const { return j * kColumnBlock; }
  int64_t block_cols(int64_t j) const { return std::min(kColumnBlock, weights.d_ff - j * kColumnBlock); }
  // The first row of block j in the first-matmul weights (its gate half for
  // gated models; the up half follows after block_cols(j) rows).
  int64_t block_row(int64_t j) const { return gated() ? 2 * block_col(j) : block_col(j); }
  const void* up_weights(DataType t) const {
    if (t == DataType::kBf16) return w_up_bf16.data();
    return gated() ? w_up.data() : weights.w1.data();
  }
  const void* down_weights(DataType t) const {
    return t == DataType::kBf16 ? static_cast<const void*>(w2_bf16.data()) : weights.w2.data();
  }
  const float* b1() const { return !gated() && weights.has_bias ? weights.b1.data() : nullptr; }
  const float* b2() const { return !gated() && weights.has_bias ? weights.b2.data() : nullptr; }

  const Matmul& Get(const MatmulSpec& spec, std::shared_ptr<const Matmul>& holder) const {
    {
      absl::MutexLock lock(&mu);
      auto it = matmuls.find(spec);
      if (it != matmuls.end()) {
        holder = it->second;
        return *holder;
      }
    }
    holder = std::make_shared<const Matmul>(BuildMatmul(spec));
    absl::MutexLock lock(&mu);
    if (matmuls.size() >= kMaxCachedMatmuls) matmuls.clear();
    matmuls.emplace(spec, holder);
    return *holder;
  }

  // The weights of `s` starting at `w`, in the layout `mm` reads.
  std::shared_ptr<const memory> Packed(const Matmul& mm, const MatmulSpec& s, const void* w,
                                       dnnl::stream& stream) const {
    const PackKey key{w, s.k, s.n, s.w_stride, s.in};
    const memory::desc want = mm.pd.weights_desc();
    {
      absl::MutexLock lock(&mu);
      auto it = packs.find(key);
      if (it != packs.end() && it->second->get_desc() == want) return it->second;
    }
    memory plain(memory::desc({s.k, s.n}, OneDnnType(s.in), memory::dims{1, s.w_stride}),
                 CpuEngine(), const_cast<void*>(w));
    auto packed = std::make_shared<memory>(want, CpuEngine());
    dnnl::reorder(plain, *packed).execute(stream, plain, *packed);
    stream.wait();
    absl::MutexLock lock(&mu);
    packs[key] = packed;
    return packed;
  }

  // Executes `spec` with the weights starting at `w`.
  void Exec(const MatmulSpec& spec, dnnl::stream& stream, const void* src, const void* w,
            void* dst, const float* bias, const float* extra) const {
    std::shared_ptr<const Matmul> hold;
    const Matmul& mm = Get(spec, hold);
    const std::shared_ptr<const memory> packed = Packed(mm, spec, w, stream);
    Execute(mm, spec, stream, src, *packed, dst, bias, extra);
  }

  // The epilogue of a [rows, cols] block at column `col0` of d_ff: plain
  // act(in + b1) or gated act(gate)·up (up at `up_offset` after gate), into
  // f32 or bf16 `out`.
  void Epilogue(Activation activation, DataType out_type, const float* in, int64_t in_stride,
                int64_t up_offset, int64_t col0, void* out, int64_t out_stride, int64_t rows,
                int64_t cols, const float* bias) const {
    const EpilogueKernels& k = ActiveKernels();
    ActivationParams p = params;
    if (p.prelu_alpha.size() > 1) p.prelu_alpha = p.prelu_alpha.subspan(static_cast<size_t>(col0));
    const size_t is = static_cast<size_t>(in_stride), os = static_cast<size_t>(out_stride);
    const size_t r = static_cast<size_t>(rows), c = static_cast<size_t>(cols);
    const float* b = bias != nullptr ? bias + col0 : nullptr;
    if (out_type == DataType::kBf16) {
      auto* o = static_cast<uint16_t*>(out);
      if (gated()) {
        k.gated_bf16(activation, p, in, in + up_offset, is, o, os, r, c);
      } else {
        k.bias_act_bf16(activation, p, in, is, b, o, os, r, c);
      }
    } else {
      auto* o = static_cast<float*>(out);
      if (gated()) {
        k.gated(activation, p, in, in + up_offset, is, o, os, r, c);
      } else {
        k.bias_act(activation, p, in, is, b, o, os, r, c);
      }
    }
  }

  void RunUnfused(const CoreCall& c, Scratch& scratch, dnnl::stream& stream) const;
  void RunPostops(const CoreCall& c, Scratch& scratch, dnnl::stream& stream) const;
  void RunFusedSmall(const CoreCall& c, Scratch& scratch) const;
  // The packed copies for `compute`, made on first use: only models that run
  // the small-M kernels pay their memory.
  void PackSmallM(DataType compute) const {
    if (compute == DataType::kBf16) {
      std::call_once(packed_bf16_once, [&] {
        up_packed_bf16 = PackRows(w_up_bf16.data(), up_cols(), weights.d_model);
        w2_packed_bf16 = PackRows(w2_bf16.data(), weights.d_model, weights.d_ff);
      });
    } else {
      std::call_once(packed_f32_once, [&] {
        up_packed_f32 = PackRows(static_cast<const float*>(up_weights(DataType::kF32)), up_cols(),
                                      weights.d_model);
        w2_packed_f32 = PackRows(weights.w2.data(), weights.d_model, weights.d_ff);
      });
    }
  }
  void RunFusedBlocks(const CoreCall& c, Scratch& scratch, dnnl::stream& stream) const;
  // The second matmul over the dense activated block: y = act · W2ᵀ + b2.
  void RunDown(const CoreCall& c, const void* activated, dnnl::stream& stream) const;
  // The strategy a call runs: `requested`, or for kAuto the plan's for m
  // (its fallback where postops cannot run `activation`).
  Strategy Resolve(Strategy requested, int64_t m, DataType compute, Activation activation) const;
};

// True where the small-M kernels run: AVX-512 (bf16 also needs AVX512-BF16),
// unless FFN_ISA forces a narrower ISA.
bool SmallMAvailable(DataType compute) {
  if (ActiveIsa() != Isa::kAvx512) return false;
  return compute == DataType::kF32 || __builtin_cpu_supports("avx512bf16");
}

Strategy FfnBlock::Impl::Resolve(Strategy requested, int64_t m, DataType compute,
                                 Activation activation) const {
  if (requested != Strategy::kAuto) return requested;
  absl::MutexLock lock(&mu);
  const auto& p = plan[compute == DataType::kBf16];
  if (p.empty()) return m <= kUntunedFusedTokens ? Strategy::kFused : Strategy::kUnfused;
  // The probe nearest to m on a log scale.
  const double lm = std::log(static_cast<double>(m));
  const PlanEntry* best = &p.front();
  for (const PlanEntry& entry : p) {
    if (std::abs(std::log(static_cast<double>(entry.m)) - lm) <
        std::abs(std::log(static_cast<double>(best->m)) - lm)) {
      best = &entry;
    }
  }
  if (best->chosen == Strategy::kPostops && !PostopsSupports(activation, params)) return best->ours;
  return best->chosen;
}

void FfnBlock::Impl::RunDown(const CoreCall& c, const void* activated, dnnl::stream& stream) const {
  const int64_t d_ff = weights.d_ff, d_model = weights.d_model;
  MatmulSpec spec{c.m, d_ff, d_model, d_ff, d_ff, d_model, c.compute, DataType::kF32, b2() != nullptr};
  Exec(spec, stream, activated, down_weights(c.compute), c.y, b2(), nullptr);
}

void FfnBlock::Impl::RunUnfused(const CoreCall& c, Scratch& scratch, dnnl::stream& stream) const {
  const int64_t m = c.m, d_ff = weights.d_ff, d_model = weights.d_model, cols = up_cols();
  float* hidden = Scratch::Get(scratch.hidden, m * cols);
  MatmulSpec up{m, d_model, cols, d_model, d_model, cols, c.compute, DataType::kF32, b1() != nullptr};
  Exec(up, stream, c.x, up_weights(c.compute), hidden, b1(), nullptr);
  stream.wait();
  // A separate pass of the activation kernels over the whole intermediate.
  // f32 plain: in place; otherwise into a dense [m, d_ff] block.
  void* activated = hidden;
  if (c.compute == DataType::kBf16) {
    activated = Scratch::Get(scratch.act_bf16, m * d_ff);
  } else if (gated()) {
    activated = Scratch::Get(scratch.product, m * d_ff);
  }
  const int64_t col_tiles = gated() ? blocks() : (d_ff + kActivationTileCols - 1) / kActivationTileCols;
  const int64_t tiles = c.skip_epilogue ? 0 : m * col_tiles;
  const size_t out_size = ElementBytes(c.compute);
#pragma omp parallel for schedule(static) if (tiles > 1)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t row = t / col_tiles, tile = t % col_tiles;
    int64_t col0, ncols, in_col, up_offset = 0;
    if (gated()) {
      col0 = block_col(tile);
      ncols = block_cols(tile);
      in_col = block_row(tile);
      up_offset = ncols;
    } else {
      col0 = tile * kActivationTileCols;
      ncols = std::min(kActivationTileCols, d_ff - col0);
      in_col = col0;
    }
    char* out = static_cast<char*>(activated) + static_cast<size_t>(row * d_ff + col0) * out_size;
    Epilogue(c.activation, c.compute, hidden + row * cols + in_col, cols, up_offset, col0, out, d_ff,
             1, ncols, nullptr);
  }
  RunDown(c, activated, stream);
}

void FfnBlock::Impl::RunPostops(const CoreCall& c, Scratch& scratch, dnnl::stream& stream) const {
  const int64_t m = c.m, d_ff = weights.d_ff, d_model = weights.d_model;
  void* activated = c.compute == DataType::kBf16
                        ? static_cast<void*>(Scratch::Get(scratch.act_bf16, m * d_ff))
                        : static_cast<void*>(Scratch::Get(scratch.product, m * d_ff));
  if (!gated()) {
    // (Per-channel PReLU never gets here: see PostopsSupports.)
    const EltwiseOp op = OneDnnEltwise(c.activation, params);
    MatmulSpec up{m, d_model, d_ff, d_model, d_model, d_ff, c.compute, c.compute, b1() != nullptr,
                  PostOp::kEltwise, op.algorithm, op.alpha, op.beta};
    Exec(up, stream, c.x, up_weights(c.compute), activated, b1(), nullptr);
    RunDown(c, activated, stream);
    return;
  }
  // Gated, per column block: u = x·Wu_jᵀ, then act(x·Wg_jᵀ)·u as eltwise
  // and binary-mul post-ops into a dense block (oneDNN 2.6 falls back to
  // its reference matmul when a binary post-op writes a strided
  // destination), multiplied into y at once.
  const EltwiseOp op = OneDnnEltwise(c.activation, params);
  float* u = Scratch::Get(scratch.gate_up, m * kColumnBlock);
  const char* w = static_cast<const char*>(up_weights(c.compute));
  const char* w2 = static_cast<const char*>(down_weights(c.compute));
  const size_t es = ElementBytes(c.compute);
  for (int64_t j = 0; j < blocks(); ++j) {
    const int64_t nb = block_cols(j), row = block_row(j);
    MatmulSpec up_spec{m, d_model, nb, d_model, d_model, nb, c.compute, DataType::kF32, false};
    MatmulSpec gate_spec{m, d_model, nb, d_model, d_model, nb, c.compute, c.compute, false,
                         PostOp::kEltwiseThenMul, op.algorithm, op.alpha, op.beta};
    MatmulSpec down{m, nb, d_model, nb, d_ff, d_model, c.compute, DataType::kF32, false,
                    j == 0 ? PostOp::kNone : PostOp::kSum};
    Exec(up_spec, stream, c.x,
            w + static_cast<size_t>((row + nb) * d_model) * es, u, nullptr, nullptr);
    Exec(gate_spec, stream, c.x,
            w + static_cast<size_t>(row * d_model) * es, activated, nullptr, u);
    Exec(down, stream, activated,
            w2 + static_cast<size_t>(block_col(j)) * es, c.y, nullptr, nullptr);
  }
}

void FfnBlock::Impl::RunFusedSmall(const CoreCall& c, Scratch& scratch) const {
  const int64_t m = c.m, d_ff = weights.d_ff, d_model = weights.d_model;
  const bool bf16 = c.compute == DataType::kBf16;
  const size_t es = ElementBytes(c.compute);
  void* activated = bf16 ? static_cast<void*>(Scratch::Get(scratch.act_bf16, m * d_ff))
                         : static_cast<void*>(Scratch::Get(scratch.product, m * d_ff));
  PackSmallM(c.compute);
  const float* bias1 = b1();
  const float* bias2 = b2();
  const int64_t nblocks = blocks();
  // y = x · (rows [row0, row0 + n) of the packed matrix)ᵀ; row0 is a
  // multiple of kPackRows (block starts and the thread split below are).
  auto dot = [&](const void* x, int64_t x_stride, bool up, int64_t row0, int64_t k, int64_t n,
                 float* y, int64_t y_stride) {
    if (bf16) {
      SmallMPackedBf16(static_cast<const uint16_t*>(x), x_stride, m,
                       (up ? up_packed_bf16 : w2_packed_bf16).data(), k, row0 / kPackRows, n, y,
                       y_stride);
    } else {
      SmallMPackedF32(static_cast<const float*>(x), x_stride, m,
                      (up ? up_packed_f32 : w2_packed_f32).data(), k, row0 / kPackRows, n, y,
                      y_stride);
    }
  };
#pragma omp parallel
  {
    const int threads = omp_get_num_threads(), t = omp_get_thread_num();
    // Phase 1: this thread's column blocks of d_ff: the first matmul's rows
    // (gate and up side by side for gated models) into a cache-resident
    // tile, the epilogue straight into the activated block.
    alignas(64) float tile[kSmallMaxTokens * 2 * kColumnBlock];
    const int64_t b0 = nblocks * t / threads, b1 = nblocks * (t + 1) / threads;
    for (int64_t j = b0; j < b1; ++j) {
      const int64_t nb = block_cols(j), rows = gated() ? 2 * nb : nb;
      dot(c.x, d_model, /*up=*/true, block_row(j), d_model, rows, tile, rows);
      if (!c.skip_epilogue) {
        Epilogue(c.activation, c.compute, tile, rows, nb, block_col(j),
                 static_cast<char*>(activated) + static_cast<size_t>(block_col(j)) * es, d_ff, m, nb,
                 bias1);
      }
    }
#pragma omp barrier
    // Phase 2: this thread's rows of W2 (output columns), b2 added.
    const int64_t groups = (d_model + kPackRows - 1) / kPackRows;
    const int64_t r0 = groups * t / threads * kPackRows;
    const int64_t r1 = std::min(d_model, groups * (t + 1) / threads * kPackRows);
    if (r1 > r0) {
      dot(activated, d_ff, /*up=*/false, r0, d_ff, r1 - r0, c.y + r0, d_model);
      if (bias2 != nullptr) {
        for (int64_t r = 0; r < m; ++r) {
          for (int64_t j = r0; j < r1; ++j) c.y[r * d_model + j] += bias2[j];
        }
      }
    }
  }
}

void FfnBlock::Impl::RunFusedBlocks(const CoreCall& c, Scratch& scratch, dnnl::stream& stream) const {
  const int64_t m = c.m, d_ff = weights.d_ff, d_model = weights.d_model;
  const size_t es = ElementBytes(c.compute);
  float* tile = Scratch::Get(scratch.hidden, m * (gated() ? 2 : 1) * kColumnBlock);
  void* act = c.compute == DataType::kBf16
                  ? static_cast<void*>(Scratch::Get(scratch.act_bf16, m * kColumnBlock))
                  : static_cast<void*>(Scratch::Get(scratch.product, m * kColumnBlock));
  const char* w_up_bytes = static_cast<const char*>(up_weights(c.compute));
  const char* w2_bytes = static_cast<const char*>(down_weights(c.compute));
  for (int64_t j = 0; j < blocks(); ++j) {
    const int64_t nb = block_cols(j), rows = gated() ? 2 * nb : nb;
    // First matmul for this block's columns (+ b1 in the epilogue).
    MatmulSpec up{m, d_model, rows, d_model, d_model, rows, c.compute, DataType::kF32, false};
    Exec(up, stream, c.x,
            w_up_bytes + static_cast<size_t>(block_row(j) * d_model) * es, tile, nullptr, nullptr);
    stream.wait();
    if (!c.skip_epilogue) {
#pragma omp parallel for schedule(static) if (m > 1)
      for (int64_t r = 0; r < m; ++r) {
        Epilogue(c.activation, c.compute, tile + r * rows, rows, nb, block_col(j),
                 static_cast<char*>(act) + static_cast<size_t>(r * nb) * es, nb, 1, nb, b1());
      }
    }
    // y (+)= act_j · W2[:, block]ᵀ; the first block also adds b2.
    MatmulSpec down{m, nb, d_model, nb, d_ff, d_model, c.compute, DataType::kF32,
                    j == 0 && b2() != nullptr, j == 0 ? PostOp::kNone : PostOp::kSum};
    Exec(down, stream, act,
            w2_bytes + static_cast<size_t>(block_col(j)) * es, c.y, b2(), nullptr);
  }
}

FfnBlock::FfnBlock(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FfnBlock::~FfnBlock() = default;

absl::StatusOr<std::unique_ptr<FfnBlock>> FfnBlock::Create(FfnWeights weights,
                                                           ActivationParams params) {
  if (absl::Status s = weights.Validate(); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->weights = std::move(weights);
  FfnWeights& w = impl->weights;
  if (w.kind == FfnKind::kGated) {
    // [Wg_0; Wu_0; Wg_1; Wu_1; ...] by column blocks; the interleaved copy is
    // the one the engine reads, so Wg and Wu are released.
    impl->w_up.resize(w.wg.size() + w.wu.size());
    const size_t row = static_cast<size_t>(w.d_model);
    for (int64_t j = 0; j < impl->blocks(); ++j) {
      const size_t col0 = static_cast<size_t>(impl->block_col(j)), nb = static_cast<size_t>(impl->block_cols(j));
      float* dst = impl->w_up.data() + static_cast<size_t>(impl->block_row(j)) * row;
      std::copy_n(w.wg.data() + col0 * row, nb * row, dst);
      std::copy_n(w.wu.data() + col0 * row, nb * row, dst + nb * row);
    }
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
  if (absl::Status s = block->Prepare(1); !s.ok()) return s;
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
  // Runs one call per token count and dtype with the planned strategy, which
  // builds and caches its primitives.
  const Activation activation = kind() == FfnKind::kGated ? Activation::kSwiglu : Activation::kRelu;
  std::vector<float> x(static_cast<size_t>(max_m * d_model()), 0.5f), y(x.size());
  for (int64_t m = 1; m <= max_m; ++m) {
    for (DataType compute : {DataType::kF32, DataType::kBf16}) {
      if (absl::Status s = Run({activation, compute, x.data(), DataType::kF32, m, y.data(),
                                DataType::kF32});
          !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

void FfnBlock::SetStrategy(Strategy strategy) const {
  absl::MutexLock lock(&impl_->mu);
  for (auto& plan : impl_->plan) {
    plan.clear();
    if (strategy != Strategy::kAuto) {
      plan.push_back({1, strategy, strategy == Strategy::kPostops ? Strategy::kUnfused : strategy});
    }
  }
}

Strategy FfnBlock::PlannedStrategy(int64_t m, DataType compute) const {
  return impl_->Resolve(Strategy::kAuto, m, compute, kind() == FfnKind::kGated ? Activation::kSwiglu : Activation::kGelu);
}

absl::StatusOr<TuneResult> FfnBlock::Tune(int64_t max_m) const {
  const Activation activation = kind() == FfnKind::kGated ? Activation::kSwiglu : Activation::kGelu;
  std::vector<int64_t> probes;
  for (int64_t p : kTuneProbes) {
    if (p < max_m) probes.push_back(p);
  }
  const int64_t last = std::min<int64_t>(max_m, kTuneProbes[std::size(kTuneProbes) - 1]);
  if (probes.empty() || probes.back() != last) probes.push_back(last);
  std::vector<float> x(static_cast<size_t>(probes.back() * d_model())), y(x.size());
  FillUniform(11, RandomStream::kInput, kRandomInputScale, x);
  TuneResult result;
  std::vector<PlanEntry> plans[2];
  for (DataType compute : {DataType::kF32, DataType::kBf16}) {
    for (int64_t m : probes) {
      TuneResult::Probe probe{compute, m, {-1, -1, -1}, Strategy::kUnfused};
      const auto strategies = ConcreteStrategies();
      for (size_t i = 0; i < strategies.size(); ++i) {
        FfnRun run{activation, compute, x.data(), DataType::kF32, m, y.data(), DataType::kF32};
        run.strategy = strategies[i];
        // The warm-up builds primitives and packs weights, and sizes the
        // sample: an odd count of at least 3 runs, more for short calls.
        const auto warm = std::chrono::steady_clock::now();
        if (absl::Status s = Run(run); !s.ok()) return s;
        const double warm_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - warm).count();
        const int reps = std::clamp(static_cast<int>(kTuneSampleMs / std::max(warm_ms, 1e-3)), 1, 5) * 2 + 1;
        std::vector<double> ms;
        for (int rep = 0; rep < reps; ++rep) {
          const auto start = std::chrono::steady_clock::now();
          if (absl::Status s = Run(run); !s.ok()) return s;
          ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        }
        std::nth_element(ms.begin(), ms.begin() + reps / 2, ms.end());
        probe.ms[i] = ms[static_cast<size_t>(reps / 2)];
      }
      // Our kernels unless oneDNN's post-ops are clearly faster: within the
      // noise of a few runs, the more accurate activation wins.
      const double ours = std::min(probe.ms[0], probe.ms[2]);
      probe.chosen = probe.ms[2] <= probe.ms[0] ? Strategy::kFused : Strategy::kUnfused;
      if (probe.ms[1] < ours * (1.0 - kPostopsMargin)) probe.chosen = Strategy::kPostops;
      plans[compute == DataType::kBf16].push_back(
          {m, probe.chosen, probe.ms[2] <= probe.ms[0] ? Strategy::kFused : Strategy::kUnfused});
      result.probes.push_back(probe);
    }
  }
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->plan[0] = std::move(plans[0]);
    impl_->plan[1] = std::move(plans[1]);
    // Keep only the packed weights the plan reads: drop them all and let one
    // planned call per probe pack what it needs again.
    impl_->packs.clear();
  }
  for (const TuneResult::Probe& probe : result.probes) {
    if (absl::Status s = Run({activation, probe.compute, x.data(), DataType::kF32, probe.m,
                              y.data(), DataType::kF32});
        !s.ok()) {
      return s;
    }
  }
  return result;
}

size_t FfnBlock::PackedWeightBytes() const {
  absl::MutexLock lock(&impl_->mu);
  size_t bytes = 0;
  for (const auto& [key, packed] : impl_->packs) bytes += packed->get_desc().get_size();
  return bytes;
}

absl::StatusOr<std::string> FfnBlock::ImplementationFor(int64_t m, DataType compute) const {
  const Strategy strategy = PlannedStrategy(m, compute);
  if (strategy == Strategy::kFused && m <= kSmallMaxTokens && SmallMAvailable(compute)) {
    return absl::StrCat("fused: ffnserve avx512 ", DataTypeName(compute), " dot products");
  }
  const Impl& i = *impl_;
  const int64_t n = strategy == Strategy::kFused ? i.block_cols(0) * (i.gated() ? 2 : 1) : i.up_cols();
  try {
    MatmulSpec up{m, d_model(), n, d_model(), d_model(), n, compute, DataType::kF32, false};
    MatmulSpec down{m, d_ff(), d_model(), d_ff(), d_ff(), d_model(), compute, DataType::kF32, false};
    std::shared_ptr<const Matmul> a, b;
    return absl::StrCat(StrategyName(strategy), ": ", i.Get(up, a).pd.impl_info_str(), " / ",
                        i.Get(down, b).pd.impl_info_str());
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
  }
}

absl::Status FfnBlock::Run(const FfnRun& run) const {
  const FfnWeights& w = impl_->weights;
  const int64_t m = run.m;
  if (m <= 0) return absl::InvalidArgumentError(absl::StrCat("token count must be positive, got ", m));
  if (IsGated(run.activation) != (w.kind == FfnKind::kGated)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "activation ", std::string(ActivationName(run.activation)), " needs a ",
        IsGated(run.activation) ? "gated" : "plain", " model; this one is ",
        w.kind == FfnKind::kGated ? "gated" : "plain"));
  }
  const Strategy strategy = impl_->Resolve(run.strategy, m, run.compute, run.activation);
  if (strategy == Strategy::kPostops && !PostopsSupports(run.activation, impl_->params)) {
    return absl::UnimplementedError(
        "strategy postops cannot run per-channel prelu: oneDNN 2.6 has its prelu post-op only "
        "in the reference matmul, which fails; use unfused or fused");
  }
  const int64_t d_model = w.d_model;
  const int64_t io_size = m * d_model;
  thread_local Scratch scratch;
  try {
    dnnl::stream stream(CpuEngine());
    // Pre-norm and residual read the input in f32.
    const void* x = run.x;
    DataType x_type = run.x_type;
    const float* x_original = nullptr;
    if (w.norm != NormKind::kNone || w.residual) {
      if (run.x_type == DataType::kBf16) {
        x_original = Scratch::Get(scratch.x_in_f32, io_size);
        Convert(stream, run.x, DataType::kBf16, scratch.x_in_f32.data(), DataType::kF32, m, d_model);
        stream.wait();
      } else {
        x_original = static_cast<const float*>(run.x);
      }
      x = x_original;
      x_type = DataType::kF32;
      if (w.norm != NormKind::kNone) {
        float* normed = Scratch::Get(scratch.x_normed, io_size);
        NormRows(w, x_original, normed, m, d_model);
        x = normed;
      }
    }
    // The source in the compute type.
    if (x_type != run.compute) {
      void* converted = run.compute == DataType::kBf16
                            ? static_cast<void*>(Scratch::Get(scratch.x_bf16, io_size))
                            : static_cast<void*>(Scratch::Get(scratch.x_f32, io_size));
      Convert(stream, x, x_type, converted, run.compute, m, d_model);
      stream.wait();
      x = converted;
    }
    // The core writes f32: into y, or into scratch to convert to bf16.
    float* y_out = run.y_type == DataType::kBf16 ? Scratch::Get(scratch.y_f32, io_size)
                                                 : static_cast<float*>(run.y);
    const CoreCall core{run.activation, run.compute, x, m, y_out, run.skip_epilogue_for_timing};
    switch (strategy) {
      case Strategy::kUnfused: impl_->RunUnfused(core, scratch, stream); break;
      case Strategy::kPostops: impl_->RunPostops(core, scratch, stream); break;
      case Strategy::kFused:
      case Strategy::kAuto:
        if (m <= kSmallMaxTokens && SmallMAvailable(run.compute)) {
          impl_->RunFusedSmall(core, scratch);
        } else {
          impl_->RunFusedBlocks(core, scratch, stream);
        }
        break;
    }
    stream.wait();
    if (w.residual) {
#pragma omp parallel for schedule(static) if (io_size > 65536)
      for (int64_t i = 0; i < io_size; ++i) y_out[i] += x_original[i];
    }
    if (run.y_type == DataType::kBf16) {
      Convert(stream, y_out, DataType::kF32, run.y, DataType::kBf16, m, d_model);
      stream.wait();
    }
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN failed: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory for the ", m, "-token intermediate buffers"));
  }
  return absl::OkStatus();
}

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
