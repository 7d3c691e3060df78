// The weights in the forms the strategies read, made once when a block is
// created: gated Wg and Wu interleaved by column block, bf16 copies of both
// matrices, and the small-M kernels' packed copies. Nothing changes after
// creation except that the packed copies of a dtype are made the first time
// the small-M kernels run in it (so models that never run them never pay
// their memory); that is thread-safe.
#ifndef FFN_KERNELS_SRC_PREPARED_WEIGHTS_H_
#define FFN_KERNELS_SRC_PREPARED_WEIGHTS_H_

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <vector>

#include "ffn/kernels/activation.h"
#include "ffn/kernels/dtype.h"
#include "ffn/kernels/ffn_block.h"
#include "ffn/kernels/ffn_weights.h"

namespace ffn {

class PreparedWeights {
 public:
  // `weights` must have passed Validate(). Gated models: Wg and Wu move into
  // the interleaved matrix, so weights().wg and wu are left empty. An empty
  // prelu_alpha becomes PyTorch's default {0.25}; params().prelu_alpha
  // points into weights().prelu_alpha.
  PreparedWeights(FfnWeights weights, const ActivationParams& params);
  PreparedWeights(const PreparedWeights&) = delete;
  PreparedWeights& operator=(const PreparedWeights&) = delete;

  const FfnWeights& weights() const { return weights_; }
  const ActivationParams& params() const { return params_; }
  int64_t d_model() const { return weights_.d_model; }
  int64_t d_ff() const { return weights_.d_ff; }

  // Geometry. Gated first-matmul weights are [Wg_0; Wu_0; Wg_1; Wu_1; ...]
  // by blocks of kColumnBlock columns of d_ff, so one GEMM over a block
  // gives both halves side by side.
  bool gated() const { return weights_.kind == FfnKind::kGated; }
  // Rows of the first-matmul weights (columns of its output).
  int64_t up_cols() const { return gated() ? 2 * d_ff() : d_ff(); }
  int64_t blocks() const { return (d_ff() + kColumnBlock - 1) / kColumnBlock; }
  // Column block j of d_ff: first column and width.
  int64_t block_col(int64_t j) const { return j * kColumnBlock; }
  int64_t block_cols(int64_t j) const { return std::min(kColumnBlock, d_ff() - j * kColumnBlock); }
  // The first row of block j in the first-matmul weights (its gate half for
  // gated models; the up half follows after block_cols(j) rows).
  int64_t block_row(int64_t j) const { return gated() ? 2 * block_col(j) : block_col(j); }

  // The first matmul's [up_cols, d_model] and the second's [d_model, d_ff]
  // weights in `type`, nn.Linear layout.
  const void* up(DataType type) const;
  const void* down(DataType type) const;
  // Biases (plain models with biases; null otherwise).
  const float* b1() const { return !gated() && weights_.has_bias ? weights_.b1.data() : nullptr; }
  const float* b2() const { return !gated() && weights_.has_bias ? weights_.b2.data() : nullptr; }

  // Both matrices packed 16 rows to a vector for the small-M kernels
  // (small_m.h), made at the first call for `type`.
  struct SmallMPacks {
    const void* up;
    const void* down;
  };
  SmallMPacks SmallM(DataType type) const;

 private:
  FfnWeights weights_;
  ActivationParams params_;
  std::vector<float> w_up_;  // gated models: the interleaved matrix
  std::vector<uint16_t> w_up_bf16_, w2_bf16_;
  mutable std::vector<float> up_packed_f32_, w2_packed_f32_;
  mutable std::vector<uint16_t> up_packed_bf16_, w2_packed_bf16_;
  mutable std::once_flag packed_f32_once_, packed_bf16_once_;
};

}  // namespace ffn

#endif  // FFN_KERNELS_SRC_PREPARED_WEIGHTS_H_
