// Matmul kernels for few tokens (decode-like M <= kSmallMaxTokens): every
// weight is read once, from a copy packed 16 rows to a vector (PackRows), and
// each load feeds the outputs of every token, so the matmul runs at the speed
// the weights stream from memory.
//
// x rows are `x_stride` elements apart, y rows `y_stride` floats apart;
// fp32 accumulation in both forms (bf16 pairs are multiplied and summed by
// VDPBF16PS, which treats bf16 denormals as zero). Compiled for AVX-512
// (+BF16) in its own translation unit; callers reach them through
// ActiveKernelTable() (dispatch.h), which holds them only where the CPU runs
// them; the portable loops (small_m_portable-inl.h) compute the same sums in
// the same order on other CPUs. Run on the calling thread.
#ifndef FFN_KERNELS_SRC_SMALL_M_H_
#define FFN_KERNELS_SRC_SMALL_M_H_

#include <cstdint>
#include <vector>

#include "ffn/kernels/dtype.h"

namespace ffn {

inline constexpr int64_t kSmallMaxTokens = 32;

// y[r, j] = Σ_k x[r, k] · w[16·group0 + j, k] for r < m, j < n, from w
// packed by PackRows: one weight vector holds 16 rows (f32) or 16 rows × a k
// pair (bf16), multiplied by a broadcast token value, so each load feeds 16
// outputs and no horizontal sums are needed. Token groups of up to 8 share
// each tile of up to 8·16 rows, which stays in L1/L2 between them.
inline constexpr int64_t kPackRows = 16;
void SmallMPackedF32(const float* x, int64_t x_stride, int64_t m, const float* packed, int64_t k,
                     int64_t group0, int64_t n, float* y, int64_t y_stride);
void SmallMPackedBf16(const uint16_t* x, int64_t x_stride, int64_t m, const uint16_t* packed,
                      int64_t k, int64_t group0, int64_t n, float* y, int64_t y_stride);
// f32 tokens on weights packed in bf16: the same sums, in the same order, as
// SmallMPackedF32 over the weights widened to f32 (bit for bit), reading
// half the bytes. Weights kept in bf16 serve f32 compute this way.
void SmallMPackedF32Bf16Weights(const float* x, int64_t x_stride, int64_t m,
                                const uint16_t* packed, int64_t k, int64_t group0, int64_t n,
                                float* y, int64_t y_stride);
// int8 models: s8 tokens quantized in groups of kInt8Group consecutive
// values, each group with its own scale (llama.cpp's Q8_0 block size), on
// weights stored as u8 = q + 128 and packed by PackRows (16 rows × a k quad
// per vector):
//   y[r, j] = Σ_g scale[r, g] · (Σ_{k in g} x[r, k] · w[16·group0 + j, k]) − correction[r]
// over the groups in order, one multiply-add each, where correction[r] =
// Σ_g scale[r, g] · 128 · Σ_{k in g} x[r, k] takes the weights' u8 offset
// out (the caller computes it with the tokens). A group's sum is exact in
// int32 (VPDPBUSD on AVX512-VNNI) and below 2^24 in magnitude, so exact in
// f32 too; the order of the float sums is fixed by k alone, so a token's
// answer does not depend on m. scale rows are scale_stride apart; x rows
// are read up to PaddedK<int8_t>(k) (pad them with 0).
inline constexpr int64_t kInt8Group = 32;
inline constexpr int64_t Int8KGroups(int64_t k) { return (k + kInt8Group - 1) / kInt8Group; }
// The weights' stored offset: u8 = q + kInt8WeightOffset.
inline constexpr int32_t kInt8WeightOffset = 128;
void SmallMPackedInt8(const int8_t* x, int64_t x_stride, const float* scale, int64_t scale_stride,
                      const float* correction, int64_t m, const uint8_t* packed, int64_t k,
                      int64_t group0, int64_t n, float* y, int64_t y_stride);
// The tokens for SmallMPackedInt8: `rows` rows of k f32 values (x_stride
// apart) to s8 rows q_stride (>= PaddedK<int8_t>(k)) apart, zero-padded, in
// groups of kInt8Group values: scale = max|v| / 127 and q = round(v / scale)
// to nearest even (scale_stride apart per row), and per row correction =
// Σ_g scale · 128 · Σ q, one multiply-add per group in order. A row holding
// a NaN or an infinity gets NaN scales and correction (its outputs become
// NaN). Every ISA computes the same bits.
void QuantizeInt8Rows(const float* x, int64_t x_stride, int64_t rows, int64_t k, int8_t* q,
                      int64_t q_stride, float* scale, int64_t scale_stride, float* correction);

// Values of one row per k step of a packed group (one 32-bit lane): f32 1,
// bf16 a pair, int8 a quad.
template <typename T>
constexpr int64_t kStepValues = 4 / static_cast<int64_t>(sizeof(T));
// k rounded up to whole steps.
template <typename T>
constexpr int64_t PaddedK(int64_t k) {
  return (k + kStepValues<T> - 1) / kStepValues<T> * kStepValues<T>;
}
// Where value i of lane `lane` sits in its group: [k/P][16][P] for P values
// per step.
template <typename T>
constexpr int64_t PackedAt(int64_t lane, int64_t i) {
  constexpr int64_t p = kStepValues<T>;
  return (i / p) * p * kPackRows + lane * p + i % p;
}

// Packs an [n, k] matrix for SmallMPacked*, zero-padded to whole groups of
// 16 rows (and to whole k steps); row_at(r) gives row r's k values. Plain
// C++: callable on any CPU.
template <typename T, typename RowAt>
std::vector<T> PackRowsFrom(RowAt row_at, int64_t n, int64_t k) {
  const int64_t kk = PaddedK<T>(k);
  const int64_t groups = (n + kPackRows - 1) / kPackRows;
  std::vector<T> out(static_cast<size_t>(groups * kPackRows * kk), T{0});
  for (int64_t row = 0; row < n; ++row) {
    const int64_t g = row / kPackRows, lane = row % kPackRows;
    T* base = out.data() + g * kPackRows * kk;
    const T* w = row_at(row);
    for (int64_t i = 0; i < k; ++i) base[PackedAt<T>(lane, i)] = w[i];
  }
  return out;
}

// The same for a row-major [n, k] matrix.
template <typename T>
std::vector<T> PackRows(const T* w, int64_t n, int64_t k) {
  return PackRowsFrom<T>([w, k](int64_t row) { return w + row * k; }, n, k);
}

// PackRows undone: the [n, k] matrix from its packed form, converted to U
// (bf16 → f32 exactly, f32 → bf16 rounded to nearest even).
template <typename U, typename T>
std::vector<U> UnpackRows(const T* packed, int64_t n, int64_t k) {
  const int64_t kk = PaddedK<T>(k);
  std::vector<U> out(static_cast<size_t>(n * k));
  for (int64_t row = 0; row < n; ++row) {
    const int64_t g = row / kPackRows, lane = row % kPackRows;
    const T* base = packed + g * kPackRows * kk;
    for (int64_t i = 0; i < k; ++i) {
      const T v = base[PackedAt<T>(lane, i)];
      U& o = out[static_cast<size_t>(row * k + i)];
      if constexpr (sizeof(U) == sizeof(T)) {
        o = v;
      } else if constexpr (sizeof(T) == 2) {
        o = Bf16ToFloat(v);
      } else {
        o = FloatToBf16(v);
      }
    }
  }
  return out;
}

}  // namespace ffn

#endif  // FFN_KERNELS_SRC_SMALL_M_H_
