// The weights in the forms the strategies read. One copy is kept for good:
// both matrices packed for the small-M kernels (small_m.h) in the type they
// came in (FfnWeights::matrix_type), gated Wg and Wu interleaved by column
// block. Every other form is made from it the first time a call needs it,
// and kept: the packs in bf16 for bf16 compute of f32 matrices, and the
// plain rows (nn.Linear layout) in either type for the oneDNN paths. Weights
// that came in bf16 serve f32 compute from their bf16 packs (the f32 tokens
// on bf16 weights kernel: exact), so a batch-invariant model of a bf16
// checkpoint holds its matrices once, in bf16. Making a form is thread-safe.
// An int8 model keeps only its int8 form (Int8Up/Int8Down): quantized at
// construction, the f32/bf16 forms are never made.
#ifndef FFN_KERNELS_SRC_PREPARED_WEIGHTS_H_
#define FFN_KERNELS_SRC_PREPARED_WEIGHTS_H_

#include <algorithm>
#include <atomic>
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
  // `weights` must have passed Validate(). Its matrices move into the packed
  // copy, so weights().w1, wg, wu, w2 (and their bf16 twins) are left empty.
  // An empty prelu_alpha becomes PyTorch's default {0.25};
  // params().prelu_alpha points into weights().prelu_alpha.
  // int8: keep the matrices quantized (Int8Up, Int8Down) instead.
  PreparedWeights(FfnWeights weights, const ActivationParams& params, bool int8 = false);
  PreparedWeights(const PreparedWeights&) = delete;
  PreparedWeights& operator=(const PreparedWeights&) = delete;

  const FfnWeights& weights() const { return weights_; }
  const ActivationParams& params() const { return params_; }
  int64_t d_model() const { return weights_.d_model; }
  int64_t d_ff() const { return weights_.d_ff; }
  // The type the matrices came in (and are kept in, unless int8()).
  DataType stored() const { return stored_; }
  bool int8() const { return int8_; }

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
  // weights in `type`, nn.Linear layout (made at the first call for `type`).
  const void* up(DataType type) const;
  const void* down(DataType type) const;
  // Biases (plain models with biases; null otherwise).
  const float* b1() const { return !gated() && weights_.has_bias ? weights_.b1.data() : nullptr; }
  const float* b2() const { return !gated() && weights_.has_bias ? weights_.b2.data() : nullptr; }

  // Both matrices packed 16 rows to a vector for the small-M kernels, for
  // `compute`: in `type` (compute's, or bf16 for f32 compute of matrices
  // kept in bf16).
  struct SmallMPacks {
    const void* up;
    const void* down;
    DataType type;
  };
  SmallMPacks SmallM(DataType compute) const;

  // One matrix of an int8 model: each row quantized symmetrically,
  // q = round(w / scale) in [-127, 127] with scale = max|w| / 127 (0 for a
  // row of zeros), stored as u8 = q + kInt8WeightOffset and packed in k
  // quads for SmallMPackedInt8.
  struct Int8Matrix {
    std::vector<uint8_t> packed;
    std::vector<float> scale;
  };
  // The first matmul's [up_cols, d_model] (gated: interleaved as above) and
  // the second's [d_model, d_ff]; int8() models only.
  const Int8Matrix& Int8Up() const { return int8_up_; }
  const Int8Matrix& Int8Down() const { return int8_down_; }

  // The matrices back in f32 and nn.Linear layout (int8: dequantized, the
  // values the engine multiplies by) (gated: wg and wu apart),
  // as FfnWeights; allocates.
  FfnWeights Unpacked() const;
  // Bytes of every form made so far (the packed copy, and the forms made
  // from it).
  size_t Bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  // One matrix pair in one type and layout, made once.
  template <typename T>
  struct Pair {
    std::vector<T> up, down;
    std::once_flag once;
  };
  template <typename T>
  void Count(const Pair<T>& pair) const;

  FfnWeights weights_;
  ActivationParams params_;
  DataType stored_ = DataType::kF32;
  bool int8_ = false;
  Int8Matrix int8_up_, int8_down_;
  mutable Pair<float> packed_f32_, rows_f32_;
  mutable Pair<uint16_t> packed_bf16_, rows_bf16_;
  mutable std::atomic<size_t> bytes_{0};
};

}  // namespace ffn

#endif  // FFN_KERNELS_SRC_PREPARED_WEIGHTS_H_
