// The small-M dot-product kernels (small_m.h) for AVX-512 and AVX512-BF16.
// Compiled with those -m flags only; dispatch checks the CPU first.
#include <immintrin.h>

#include <algorithm>

#include "small_m.h"

namespace ffn {
namespace {

// One k step of 16 fp32 or 32 bf16 values. `Full` loads whole vectors; the
// masked form reads only the first `left` values and zeroes the rest.
struct F32 {
  using T = float;
  static constexpr int64_t kStep = 16;
  static __m512 Load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 LoadTail(const float* p, int64_t left) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << left) - 1), p);
  }
  static __m512 Madd(__m512 acc, __m512 x, __m512 w) { return _mm512_fmadd_ps(x, w, acc); }
};

struct Bf16 {
  using T = uint16_t;
  static constexpr int64_t kStep = 32;
  static __m512 Load(const uint16_t* p) { return _mm512_castsi512_ps(_mm512_loadu_si512(p)); }
  static __m512 LoadTail(const uint16_t* p, int64_t left) {
    return _mm512_castsi512_ps(
        _mm512_maskz_loadu_epi16(static_cast<__mmask32>((uint64_t{1} << left) - 1), p));
  }
  static __m512 Madd(__m512 acc, __m512 x, __m512 w) {
    return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh&>(x), reinterpret_cast<__m512bh&>(w));
  }
};

// The NB weight rows are NB sequential streams, which the hardware
// prefetchers follow: software prefetch 1 KiB ahead measured 5-10 % slower
// on LLaMA's FFN at M=1.
// MB tokens × NB weight rows, accumulated in MB·NB registers over all of k.
template <typename Op, int MB, int NB>
inline void DotTile(const typename Op::T* x, int64_t x_stride, const typename Op::T* w, int64_t k,
                    float* y, int64_t y_stride) {
  __m512 acc[MB][NB];
#pragma GCC unroll 8
  for (int r = 0; r < MB; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i + Op::kStep <= k; i += Op::kStep) {
    __m512 wv[NB];
#pragma GCC unroll 8
    for (int j = 0; j < NB; ++j) wv[j] = Op::Load(w + j * k + i);
#pragma GCC unroll 8
    for (int r = 0; r < MB; ++r) {
      const __m512 xv = Op::Load(x + r * x_stride + i);
#pragma GCC unroll 8
      for (int j = 0; j < NB; ++j) acc[r][j] = Op::Madd(acc[r][j], xv, wv[j]);
    }
  }
  if (i < k) {
    const int64_t left = k - i;
    __m512 wv[NB];
#pragma GCC unroll 8
    for (int j = 0; j < NB; ++j) wv[j] = Op::LoadTail(w + j * k + i, left);
#pragma GCC unroll 8
    for (int r = 0; r < MB; ++r) {
      const __m512 xv = Op::LoadTail(x + r * x_stride + i, left);
#pragma GCC unroll 8
      for (int j = 0; j < NB; ++j) acc[r][j] = Op::Madd(acc[r][j], xv, wv[j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MB; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < NB; ++j) y[r * y_stride + j] = _mm512_reduce_add_ps(acc[r][j]);
  }
}

// Weight rows per tile for MB tokens: as many as the 32 vector registers
// hold with MB·NB accumulators, NB weight vectors and one token vector, and
// at least 6 (streams in flight) up to 4 tokens.
constexpr int RowsPerTile(int mb) {
  constexpr int kRows[] = {0, 8, 8, 6, 6, 4, 4, 3, 3};
  return kRows[mb];
}

// NB weight rows for all m tokens: token groups of up to 8 share each tile
// of NB rows, which stays in L1 between groups, so weights stream once.
// NB is as many rows as the registers hold next to MB accumulators each.
template <typename Op, int MB>
void DotGroup(const typename Op::T* x, int64_t x_stride, const typename Op::T* w, int64_t k,
              float* y, int64_t y_stride, bool one_row) {
  constexpr int NB = RowsPerTile(MB);
  if (one_row) {
    DotTile<Op, MB, 1>(x, x_stride, w, k, y, y_stride);
  } else {
    DotTile<Op, MB, NB>(x, x_stride, w, k, y, y_stride);
  }
}

template <typename Op>
void Dot(const typename Op::T* x, int64_t x_stride, int64_t m, const typename Op::T* w, int64_t k,
         int64_t n, float* y, int64_t y_stride) {
  // Row tiles as wide as the widest group allows (the last group may be
  // narrower and then takes the same rows in a few tiles).
  const int64_t first = m >= 8 ? 8 : m;
  const int64_t nb = RowsPerTile(static_cast<int>(first));
  for (int64_t j = 0; j < n; j += nb) {
    const int64_t rows = std::min(nb, n - j);
    for (int64_t r = 0; r < m; r += 8) {
      const int64_t mb = std::min<int64_t>(8, m - r);
      const int64_t group_nb = RowsPerTile(static_cast<int>(mb));
      // Each call covers group_nb rows, or one row when fewer are left.
      for (int64_t jj = j; jj < j + rows;) {
        const bool one = j + rows - jj < group_nb;
        const auto* xr = x + r * x_stride;
        const auto* wr = w + jj * k;
        float* yr = y + r * y_stride + jj;
        switch (mb) {
          case 1: DotGroup<Op, 1>(xr, x_stride, wr, k, yr, y_stride, one); break;
          case 2: DotGroup<Op, 2>(xr, x_stride, wr, k, yr, y_stride, one); break;
          case 3: DotGroup<Op, 3>(xr, x_stride, wr, k, yr, y_stride, one); break;
          case 4: DotGroup<Op, 4>(xr, x_stride, wr, k, yr, y_stride, one); break;
          case 5: DotGroup<Op, 5>(xr, x_stride, wr, k, yr, y_stride, one); break;
          case 6: DotGroup<Op, 6>(xr, x_stride, wr, k, yr, y_stride, one); break;
          case 7: DotGroup<Op, 7>(xr, x_stride, wr, k, yr, y_stride, one); break;
          default: DotGroup<Op, 8>(xr, x_stride, wr, k, yr, y_stride, one); break;
        }
        jj += one ? 1 : group_nb;
      }
    }
  }
}

}  // namespace

void SmallMDotF32(const float* x, int64_t x_stride, int64_t m, const float* w, int64_t k,
                  int64_t n, float* y, int64_t y_stride) {
  Dot<F32>(x, x_stride, m, w, k, n, y, y_stride);
}

void SmallMDotBf16(const uint16_t* x, int64_t x_stride, int64_t m, const uint16_t* w, int64_t k,
                   int64_t n, float* y, int64_t y_stride) {
  Dot<Bf16>(x, x_stride, m, w, k, n, y, y_stride);
}

}  // namespace ffn
