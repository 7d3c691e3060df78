// The engine's oneDNN plumbing: one matmul described by value (MatmulSpec),
// its primitive and packed weights cached by MatmulCache, f32/bf16 row
// conversion, and oneDNN's eltwise form of our activations (for the postops
// strategy). oneDNN exceptions (dnnl::error) pass through; FfnBlock::Run
// catches them at the engine boundary.
#ifndef FFN_KERNELS_SRC_ONEDNN_MATMUL_H_
#define FFN_KERNELS_SRC_ONEDNN_MATMUL_H_

#include <cstdint>
#include <memory>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "ffn/kernels/activation.h"
#include "ffn/kernels/dtype.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace ffn {

// The CPU engine every primitive and memory of the process uses.
dnnl::engine& CpuEngine();

// The post-op chain of one matmul.
enum class PostOp { kNone, kSum, kEltwise, kEltwiseThenMul };

// One matmul: dst [m, n] (+)= src [m, k] · Wᵀ, where W holds n rows of k
// values `w_stride` apart (nn.Linear layout for w_stride = k; a column block
// of a wider matrix otherwise), with an optional f32 bias [n] and post-ops.
// kEltwiseThenMul multiplies by an extra dense f32 [m, n] operand.
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

// Primitives and packed weights, built on first use and shared by every
// thread. The primitive reads W in the blocked layout oneDNN prefers for
// (k, n, dtype) — the same at every m on this oneDNN — packed once per
// weight view. Measured on the 768×3072 bf16 matmul: 20 % faster than the
// nn.Linear layout at M=32, 7 % at 128, 4 % at 512.
class MatmulCache {
 public:
  // Runs `spec` on `stream` (asynchronously: wait before reading dst) with
  // the weights starting at `w`; `bias` if spec.bias, `extra` the binary-mul
  // operand of kEltwiseThenMul.
  void Execute(const MatmulSpec& spec, dnnl::stream& stream, const void* src, const void* w,
               void* dst, const float* bias, const float* extra) const;
  // oneDNN's implementation name for `spec`, e.g. "brg:avx512_core".
  std::string ImplementationName(const MatmulSpec& spec) const;
  // Bytes of the packed weight copies held now.
  size_t PackedBytes() const;
  // Drops every packed copy; the next Execute of a view packs it again.
  void DropPacked();

 private:
  struct Matmul;
  std::shared_ptr<const Matmul> Get(const MatmulSpec& spec) const;
  std::shared_ptr<const dnnl::memory> Packed(const Matmul& mm, const MatmulSpec& spec,
                                             const void* w, dnnl::stream& stream) const;

  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<MatmulSpec, std::shared_ptr<const Matmul>> matmuls_
      ABSL_GUARDED_BY(mu_);
  // Weight views (first element, k, n, row stride, dtype) in the layout
  // their matmuls read.
  using PackKey = std::tuple<const void*, int64_t, int64_t, int64_t, DataType>;
  mutable absl::flat_hash_map<PackKey, std::shared_ptr<const dnnl::memory>> packs_
      ABSL_GUARDED_BY(mu_);
};

// Converts a dense [rows, cols] block between f32 and bf16 with a oneDNN
// reorder (vectorized, parallel; bf16 rounds to nearest even), on `stream`.
void ConvertRows(dnnl::stream& stream, const void* from, DataType from_type, void* to,
                 DataType to_type, int64_t rows, int64_t cols);

// oneDNN's eltwise algorithm and parameters for a plain activation (a gated
// one: its gate function). Per-channel PReLU has none (see PostopsSupports).
struct EltwiseOp {
  dnnl::algorithm algorithm;
  float alpha = 0, beta = 0;
};
EltwiseOp OneDnnEltwise(Activation activation, const ActivationParams& params);

// Whether oneDNN post-ops can run `activation`: not per-channel PReLU, whose
// prelu post-op oneDNN 2.6 offers only with its reference matmul, which
// then fails to execute.
bool PostopsSupports(Activation activation, const ActivationParams& params);

}  // namespace ffn

#endif  // FFN_KERNELS_SRC_ONEDNN_MATMUL_H_
