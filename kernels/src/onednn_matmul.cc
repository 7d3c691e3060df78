#include "onednn_matmul.h"

#include <omp.h>

#include <string>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "ffn/kernels/ffn_block.h"

namespace ffn {
namespace {

using dnnl::memory;
using dt = dnnl::memory::data_type;

// Distinct matmul shapes whose primitives are kept; past it the cache restarts.
constexpr size_t kMaxCachedMatmuls = 2048;

dt OneDnnType(DataType type) { return type == DataType::kBf16 ? dt::bf16 : dt::f32; }

}  // namespace

dnnl::engine& CpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct MatmulCache::Matmul {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul primitive;

  explicit Matmul(const MatmulSpec& s) : pd(Describe(s)), primitive(pd) {}

  static dnnl::matmul::primitive_desc Describe(const MatmulSpec& s) {
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
    if (!s.bias) {
      return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), attr, CpuEngine());
    }
    memory::desc bias({1, s.n}, dt::f32, memory::dims{s.n, 1});
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, bias, dst), attr,
                                        CpuEngine());
  }
};

std::shared_ptr<const MatmulCache::Matmul> MatmulCache::Get(const MatmulSpec& spec) const {
  {
    absl::MutexLock lock(&mu_);
    auto it = matmuls_.find(spec);
    if (it != matmuls_.end()) return it->second;
  }
  // Built outside the lock: two threads may build the same primitive once
  // each, and the first one stored wins.
  auto built = std::make_shared<const Matmul>(spec);
  absl::MutexLock lock(&mu_);
  if (matmuls_.size() >= kMaxCachedMatmuls) matmuls_.clear();
  return matmuls_.emplace(spec, std::move(built)).first->second;
}

std::shared_ptr<const memory> MatmulCache::Packed(const Matmul& mm, const MatmulSpec& s,
                                                  const void* w, dnnl::stream& stream) const {
  const PackKey key{w, s.k, s.n, s.w_stride, s.in};
  const memory::desc want = mm.pd.weights_desc();
  {
    absl::MutexLock lock(&mu_);
    auto it = packs_.find(key);
    if (it != packs_.end() && it->second->get_desc() == want) return it->second;
  }
  memory plain(memory::desc({s.k, s.n}, OneDnnType(s.in), memory::dims{1, s.w_stride}),
               CpuEngine(), const_cast<void*>(w));
  auto packed = std::make_shared<memory>(want, CpuEngine());
  dnnl::reorder(plain, *packed).execute(stream, plain, *packed);
  stream.wait();
  absl::MutexLock lock(&mu_);
  packs_[key] = packed;
  return packed;
}

void MatmulCache::Execute(const MatmulSpec& s, dnnl::stream& stream, const void* src,
                          const void* w, void* dst, const float* bias, const float* extra) const {
  const std::shared_ptr<const Matmul> mm = Get(s);
  const std::shared_ptr<const memory> weights = Packed(*mm, s, w, stream);
  dnnl::engine& engine = CpuEngine();
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, memory(mm->pd.src_desc(), engine, const_cast<void*>(src))},
      {DNNL_ARG_WEIGHTS, *weights},
      {DNNL_ARG_DST, memory(mm->pd.dst_desc(), engine, dst)}};
  if (s.bias) {
    args.emplace(DNNL_ARG_BIAS, memory(mm->pd.bias_desc(), engine, const_cast<float*>(bias)));
  }
  if (s.post == PostOp::kEltwiseThenMul) {
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1,
                 memory(memory::desc({s.m, s.n}, dt::f32, memory::dims{s.n, 1}), engine,
                        const_cast<float*>(extra)));
  }
  mm->primitive.execute(stream, args);
}

std::string MatmulCache::ImplementationName(const MatmulSpec& spec) const {
  return Get(spec)->pd.impl_info_str();
}

size_t MatmulCache::PackedBytes() const {
  absl::MutexLock lock(&mu_);
  size_t bytes = 0;
  for (const auto& [key, packed] : packs_) bytes += packed->get_desc().get_size();
  return bytes;
}

void MatmulCache::DropPacked() {
  absl::MutexLock lock(&mu_);
  packs_.clear();
}

void ConvertRows(dnnl::stream& stream, const void* from, DataType from_type, void* to,
                 DataType to_type, int64_t rows, int64_t cols) {
  memory::desc from_md({rows, cols}, OneDnnType(from_type), memory::dims{cols, 1});
  memory::desc to_md({rows, cols}, OneDnnType(to_type), memory::dims{cols, 1});
  memory from_mem(from_md, CpuEngine(), const_cast<void*>(from));
  memory to_mem(to_md, CpuEngine(), to);
  dnnl::reorder(from_mem, to_mem).execute(stream, from_mem, to_mem);
}

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
    // swish is x·σ(alpha·x).
    case Activation::kQuickGelu: return {algorithm::eltwise_swish, 1.702f};
    default: return OneDnnEltwise(GateFunction(activation), p);
  }
}

bool PostopsSupports(Activation activation, const ActivationParams& params) {
  return !(activation == Activation::kPrelu && params.prelu_alpha.size() > 1);
}

namespace {

std::string OneDnnIsa() {
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
  return isa;
}

}  // namespace

std::string OneDnnVersion() {
  const dnnl_version_t* v = dnnl_version();
  return absl::StrCat(v->major, ".", v->minor, ".", v->patch, " ", OneDnnIsa());
}

std::string OneDnnDescription() {
  const dnnl_version_t* v = dnnl_version();
  return absl::StrCat("oneDNN ", v->major, ".", v->minor, ".", v->patch, " (",
                      v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other", " runtime, max ISA ",
                      OneDnnIsa(), ", ", omp_get_max_threads(), " threads)");
}

}  // namespace ffn
