#include "prepared_weights.h"

#include <utility>

#include "small_m.h"

namespace ffn {
namespace {

std::vector<uint16_t> ToBf16(const std::vector<float>& values) {
  std::vector<uint16_t> out(values.size());
  CopyConverting(values.data(), DataType::kF32, out.data(), DataType::kBf16, values.size());
  return out;
}

}  // namespace

PreparedWeights::PreparedWeights(FfnWeights weights, const ActivationParams& params)
    : weights_(std::move(weights)), params_(params) {
  FfnWeights& w = weights_;
  if (gated()) {
    w_up_.resize(w.wg.size() + w.wu.size());
    const size_t row = static_cast<size_t>(w.d_model);
    for (int64_t j = 0; j < blocks(); ++j) {
      const size_t col0 = static_cast<size_t>(block_col(j));
      const size_t nb = static_cast<size_t>(block_cols(j));
      float* dst = w_up_.data() + static_cast<size_t>(block_row(j)) * row;
      std::copy_n(w.wg.data() + col0 * row, nb * row, dst);
      std::copy_n(w.wu.data() + col0 * row, nb * row, dst + nb * row);
    }
    w.wg = {};
    w.wu = {};
  }
  if (w.prelu_alpha.empty()) w.prelu_alpha = {0.25f};
  w_up_bf16_ = ToBf16(gated() ? w_up_ : w.w1);
  w2_bf16_ = ToBf16(w.w2);
  params_.prelu_alpha = w.prelu_alpha;
}

const void* PreparedWeights::up(DataType type) const {
  if (type == DataType::kBf16) return w_up_bf16_.data();
  return gated() ? w_up_.data() : weights_.w1.data();
}

const void* PreparedWeights::down(DataType type) const {
  if (type == DataType::kBf16) return w2_bf16_.data();
  return weights_.w2.data();
}

PreparedWeights::SmallMPacks PreparedWeights::SmallM(DataType type) const {
  if (type == DataType::kBf16) {
    std::call_once(packed_bf16_once_, [&] {
      up_packed_bf16_ = PackRows(w_up_bf16_.data(), up_cols(), d_model());
      w2_packed_bf16_ = PackRows(w2_bf16_.data(), d_model(), d_ff());
    });
    return {up_packed_bf16_.data(), w2_packed_bf16_.data()};
  }
  std::call_once(packed_f32_once_, [&] {
    up_packed_f32_ = PackRows(static_cast<const float*>(up(DataType::kF32)), up_cols(), d_model());
    w2_packed_f32_ = PackRows(weights_.w2.data(), d_model(), d_ff());
  });
  return {up_packed_f32_.data(), w2_packed_f32_.data()};
}

}  // namespace ffn
