// The strategy bodies (see ffn_block.h): free functions over the prepared
// weights, each computing the core of a call,
//   y_f32 [m, d_model] = FFN(x) (+ b2) with x [m, d_model] dense in the compute type,
// and leaving pre-norm, residual and output conversion to FfnBlock::Run.
// All may throw dnnl::error; Run catches it.
#ifndef FFN_KERNELS_SRC_STRATEGIES_H_
#define FFN_KERNELS_SRC_STRATEGIES_H_

#include <cstdint>
#include <vector>

#include "dispatch.h"
#include "ffn/kernels/activation.h"
#include "ffn/kernels/dtype.h"
#include "onednn_matmul.h"
#include "prepared_weights.h"

namespace ffn {

// Tokens per chunk of a batch-invariant call: the small-M kernels' sums do
// not depend on it; larger chunks read the weights fewer times (128 measured
// best of 32, 64, 128 and 256: docs/BENCHMARKS.md).
inline constexpr int64_t kInvariantChunkTokens = 128;

// Per-thread buffers reused across calls, grown on demand. OpenMP workers
// have their own thread_locals: parallel regions use pointers taken before.
struct Scratch {
  std::vector<float> hidden, product, x_f32, y_f32, x_in_f32, x_normed, gate_up, tiles;
  std::vector<uint16_t> x_bf16, act_bf16;
  std::vector<int8_t> tokens_s8;
  std::vector<float> token_scale, token_correction;
  std::vector<Activation> row_activation;

  template <typename T>
  static T* Get(std::vector<T>& v, int64_t n) {
    if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
    return v.data();
  }
};

// What a strategy computes, and with what.
struct CoreCall {
  const PreparedWeights& weights;
  const MatmulCache& matmuls;
  const KernelTable& kernels;
  // The activation of every row (m entries); postops runs only calls whose
  // rows share one, `activation`.
  const Activation* row_activation;
  Activation activation;
  DataType compute;
  const void* x;
  int64_t m;
  float* y;
  // Benchmarks only: skip the epilogue (the answer is then meaningless).
  bool skip_epilogue;
  // RunFused only: the small-M kernels at every m (FfnRun::batch_invariant).
  bool batch_invariant;
};

// oneDNN matmul (+ b1), one pass of our activation kernels over the whole
// intermediate, the second matmul.
void RunUnfused(const CoreCall& c, Scratch& scratch, dnnl::stream& stream);
// oneDNN's eltwise (and, gated, binary-mul) post-ops on the first matmul;
// rows whose input holds a NaN or an infinity go through RunUnfused, so
// they come back as on every other path. Not for per-channel PReLU
// (PostopsSupports); ignores skip_epilogue.
void RunPostops(const CoreCall& c, Scratch& scratch, dnnl::stream& stream);
// The intermediate never leaves the cache: the small-M dot-product kernels
// where FusedRunsSmallM or the call is batch-invariant (then in chunks of
// kInvariantChunkTokens tokens, at every m), otherwise column blocks through oneDNN.
void RunFused(const CoreCall& c, Scratch& scratch, dnnl::stream& stream);
bool FusedRunsSmallM(const KernelTable& kernels, int64_t m, DataType compute);
// int8 models (compute f32, x f32): each token quantized to s8 in groups of
// kInt8Group values with a scale each, multiplied by the int8 weights
// (SmallMPackedInt8: exact int32 per group, one f32 multiply-add per group),
// scaled by each weight row's scale in the epilogue before bias and
// activation; the activated row quantized the same way for the second
// matmul. Every value of a token depends only on that token, so the answers
// are batch-invariant at every m. A token holding a NaN or an infinity (or
// whose intermediate overflows) comes back as NaN.
void RunInt8(const CoreCall& c, Scratch& scratch);

}  // namespace ffn

#endif  // FFN_KERNELS_SRC_STRATEGIES_H_
