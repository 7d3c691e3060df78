#include "prepared_weights.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "small_m.h"

namespace ffn {

template <typename T>
void PreparedWeights::Count(const Pair<T>& pair) const {
  bytes_.fetch_add((pair.up.size() + pair.down.size()) * sizeof(T), std::memory_order_relaxed);
}

namespace {

// Empties `v` and gives its memory back (`v = {}` would keep the capacity).
template <typename T>
void Release(std::vector<T>& v) {
  std::vector<T>().swap(v);
}

// Row `row` of the first matmul's weights: w1's, or for gated models the
// interleaved matrix's (block j = row / (2·kColumnBlock), the gate's rows
// first, then the up projection's).
template <typename T>
const T* UpRow(const PreparedWeights& geometry, const std::vector<T>& w1, const std::vector<T>& wg,
               const std::vector<T>& wu, int64_t row) {
  const int64_t dm = geometry.d_model();
  if (!geometry.gated()) return w1.data() + row * dm;
  const int64_t j = row / (2 * kColumnBlock), in_block = row - geometry.block_row(j);
  const int64_t nb = geometry.block_cols(j);
  const std::vector<T>& from = in_block < nb ? wg : wu;
  const int64_t col = geometry.block_col(j) + (in_block < nb ? in_block : in_block - nb);
  return from.data() + col * dm;
}

// Packs `w`'s matrices, of type T, into `pair` and empties them: gated Wg and
// Wu interleaved by column block as they are packed.
template <typename T, typename Pair>
void PackMatrices(const PreparedWeights& geometry, std::vector<T>& w1, std::vector<T>& wg,
                  std::vector<T>& wu, std::vector<T>& w2, Pair& pair) {
  const int64_t dm = geometry.d_model();
  pair.up = PackRowsFrom<T>([&](int64_t row) { return UpRow(geometry, w1, wg, wu, row); },
                            geometry.up_cols(), dm);
  Release(w1);
  Release(wg);
  Release(wu);
  pair.down = PackRows(w2.data(), dm, geometry.d_ff());
  Release(w2);
}

float Widen(float v) { return v; }
float Widen(uint16_t v) { return Bf16ToFloat(v); }

// An [n, k] matrix quantized by rows (PreparedWeights::Int8Matrix).
template <typename T, typename RowAt>
PreparedWeights::Int8Matrix QuantizeRows(RowAt row_at, int64_t n, int64_t k) {
  PreparedWeights::Int8Matrix out;
  out.scale.resize(static_cast<size_t>(n));
  std::vector<uint8_t> rows(static_cast<size_t>(n * k));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const T* w = row_at(r);
    double largest = 0;
    for (int64_t i = 0; i < k; ++i) largest = std::max(largest, std::fabs(double{Widen(w[i])}));
    uint8_t* q = rows.data() + r * k;
    for (int64_t i = 0; i < k; ++i) {
      const double v = largest > 0 ? std::nearbyint(double{Widen(w[i])} * 127.0 / largest) : 0.0;
      q[i] = static_cast<uint8_t>(static_cast<int32_t>(std::clamp(v, -127.0, 127.0)) +
                                  kInt8WeightOffset);
    }
    out.scale[static_cast<size_t>(r)] = static_cast<float>(largest / 127.0);
  }
  out.packed = PackRows(rows.data(), n, k);
  return out;
}

// Quantizes `w`'s matrices, of type T, and empties them.
template <typename T>
void QuantizeMatrices(const PreparedWeights& geometry, std::vector<T>& w1, std::vector<T>& wg,
                      std::vector<T>& wu, std::vector<T>& w2, PreparedWeights::Int8Matrix& up,
                      PreparedWeights::Int8Matrix& down) {
  const int64_t dm = geometry.d_model(), d_ff = geometry.d_ff();
  up = QuantizeRows<T>([&](int64_t row) { return UpRow(geometry, w1, wg, wu, row); },
                       geometry.up_cols(), dm);
  Release(w1);
  Release(wg);
  Release(wu);
  down = QuantizeRows<T>([&](int64_t row) { return w2.data() + row * d_ff; }, dm, d_ff);
  Release(w2);
}

// An int8 matrix back in f32: q · scale, row by row.
std::vector<float> Dequantize(const PreparedWeights::Int8Matrix& m, int64_t n, int64_t k) {
  const std::vector<uint8_t> q = UnpackRows<uint8_t, uint8_t>(m.packed.data(), n, k);
  std::vector<float> out(q.size());
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < k; ++i) {
      const size_t at = static_cast<size_t>(r * k + i);
      out[at] = static_cast<float>(int32_t{q[at]} - kInt8WeightOffset) * m.scale[static_cast<size_t>(r)];
    }
  }
  return out;
}

size_t Int8Bytes(const PreparedWeights::Int8Matrix& m) {
  return m.packed.size() + m.scale.size() * sizeof(float);
}

}  // namespace

PreparedWeights::PreparedWeights(FfnWeights weights, const ActivationParams& params, bool int8)
    : weights_(std::move(weights)), params_(params), stored_(weights_.matrix_type), int8_(int8) {
  FfnWeights& w = weights_;
  if (w.prelu_alpha.empty()) w.prelu_alpha = {0.25f};
  params_.prelu_alpha = w.prelu_alpha;
  if (int8_) {
    if (stored_ == DataType::kBf16) {
      QuantizeMatrices(*this, w.w1_bf16, w.wg_bf16, w.wu_bf16, w.w2_bf16, int8_up_, int8_down_);
    } else {
      QuantizeMatrices(*this, w.w1, w.wg, w.wu, w.w2, int8_up_, int8_down_);
    }
    bytes_.fetch_add(Int8Bytes(int8_up_) + Int8Bytes(int8_down_), std::memory_order_relaxed);
  } else if (stored_ == DataType::kBf16) {
    std::call_once(packed_bf16_.once, [&] {
      PackMatrices(*this, w.w1_bf16, w.wg_bf16, w.wu_bf16, w.w2_bf16, packed_bf16_);
    });
    Count(packed_bf16_);
  } else {
    std::call_once(packed_f32_.once,
                   [&] { PackMatrices(*this, w.w1, w.wg, w.wu, w.w2, packed_f32_); });
    Count(packed_f32_);
  }
}

PreparedWeights::SmallMPacks PreparedWeights::SmallM(DataType compute) const {
  if (stored_ == DataType::kBf16) {
    return {packed_bf16_.up.data(), packed_bf16_.down.data(), DataType::kBf16};
  }
  if (compute == DataType::kF32) {
    return {packed_f32_.up.data(), packed_f32_.down.data(), DataType::kF32};
  }
  // bf16 compute of f32 matrices: the packs rounded to bf16.
  std::call_once(packed_bf16_.once, [&] {
    packed_bf16_.up = PackRows(UnpackRows<uint16_t>(packed_f32_.up.data(), up_cols(), d_model()).data(),
                               up_cols(), d_model());
    packed_bf16_.down = PackRows(UnpackRows<uint16_t>(packed_f32_.down.data(), d_model(), d_ff()).data(),
                                 d_model(), d_ff());
    Count(packed_bf16_);
  });
  return {packed_bf16_.up.data(), packed_bf16_.down.data(), DataType::kBf16};
}

namespace {

// The plain rows of both matrices in U, unpacked from the kept copy.
template <typename U, typename T, typename Pair, typename Packed>
void Unpack(const PreparedWeights& w, const Packed& from, Pair& to) {
  to.up = UnpackRows<U, T>(from.up.data(), w.up_cols(), w.d_model());
  to.down = UnpackRows<U, T>(from.down.data(), w.d_model(), w.d_ff());
}

}  // namespace

const void* PreparedWeights::up(DataType type) const {
  if (type == DataType::kBf16) {
    std::call_once(rows_bf16_.once, [&] {
      if (stored_ == DataType::kBf16) {
        Unpack<uint16_t, uint16_t>(*this, packed_bf16_, rows_bf16_);
      } else {
        Unpack<uint16_t, float>(*this, packed_f32_, rows_bf16_);
      }
      Count(rows_bf16_);
    });
    return rows_bf16_.up.data();
  }
  std::call_once(rows_f32_.once, [&] {
    if (stored_ == DataType::kBf16) {
      Unpack<float, uint16_t>(*this, packed_bf16_, rows_f32_);
    } else {
      Unpack<float, float>(*this, packed_f32_, rows_f32_);
    }
    Count(rows_f32_);
  });
  return rows_f32_.up.data();
}

const void* PreparedWeights::down(DataType type) const {
  up(type);  // makes both
  return type == DataType::kBf16 ? static_cast<const void*>(rows_bf16_.down.data())
                                 : static_cast<const void*>(rows_f32_.down.data());
}

FfnWeights PreparedWeights::Unpacked() const {
  FfnWeights out = weights_;
  std::vector<float> up_rows;
  if (int8_) {
    up_rows = Dequantize(int8_up_, up_cols(), d_model());
    out.w2 = Dequantize(int8_down_, d_model(), d_ff());
  } else if (stored_ == DataType::kBf16) {
    up_rows = UnpackRows<float, uint16_t>(packed_bf16_.up.data(), up_cols(), d_model());
    out.w2 = UnpackRows<float, uint16_t>(packed_bf16_.down.data(), d_model(), d_ff());
  } else {
    up_rows = UnpackRows<float, float>(packed_f32_.up.data(), up_cols(), d_model());
    out.w2 = UnpackRows<float, float>(packed_f32_.down.data(), d_model(), d_ff());
  }
  out.matrix_type = DataType::kF32;
  const size_t row = static_cast<size_t>(d_model());
  if (!gated()) {
    out.w1 = up_rows;
    return out;
  }
  out.wg.resize(static_cast<size_t>(d_ff()) * row);
  out.wu.resize(out.wg.size());
  for (int64_t j = 0; j < blocks(); ++j) {
    const size_t col0 = static_cast<size_t>(block_col(j)), nb = static_cast<size_t>(block_cols(j));
    const float* from = up_rows.data() + static_cast<size_t>(block_row(j)) * row;
    std::copy_n(from, nb * row, out.wg.data() + col0 * row);
    std::copy_n(from + nb * row, nb * row, out.wu.data() + col0 * row);
  }
  return out;
}

}  // namespace ffn
