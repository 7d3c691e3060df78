// The small-M dot-product kernels (small_m.h) for AVX-512 and AVX512-BF16.
// Compiled with those -m flags only; dispatch checks the CPU first.
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "small_m.h"

namespace ffn {
namespace {

// Weights packed 16 rows to a vector, so no horizontal sums are needed.
// f32: group g holds rows 16g..16g+15 as [k][16]; bf16: as [ceil(k/2)][16][2]
// (k pairs, the VDPBF16PS operand order). One vector of weights then feeds 16
// outputs of a token at once, broadcasting that token's x value (or pair).

// Tokens × NV groups of 16 rows, over all of k. `rows` (<= 16·NV) of the
// outputs are stored.
template <int MB, int NV>
void PackedTileF32(const float* x, int64_t x_stride, const float* w, int64_t k, float* y,
                   int64_t y_stride, int64_t rows) {
  __m512 acc[MB][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MB; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  const int64_t group = k * kPackRows;
  for (int64_t i = 0; i < k; ++i) {
    __m512 wv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) wv[v] = _mm512_loadu_ps(w + v * group + i * kPackRows);
#pragma GCC unroll 8
    for (int r = 0; r < MB; ++r) {
      const __m512 xv = _mm512_set1_ps(x[r * x_stride + i]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(xv, wv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const int64_t left = rows - v * kPackRows;
    if (left <= 0) break;
    const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1);
#pragma GCC unroll 8
    for (int r = 0; r < MB; ++r) _mm512_mask_storeu_ps(y + r * y_stride + v * kPackRows, mask, acc[r][v]);
  }
}

template <int MB, int NV>
void PackedTileBf16(const uint16_t* x, int64_t x_stride, const uint16_t* w, int64_t k, float* y,
                    int64_t y_stride, int64_t rows) {
  __m512 acc[MB][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MB; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  const int64_t pairs = (k + 1) / 2, group = pairs * 2 * kPackRows;
  for (int64_t p = 0; p < pairs; ++p) {
    __m512 wv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      wv[v] = _mm512_castsi512_ps(_mm512_loadu_si512(w + v * group + p * 2 * kPackRows));
    }
#pragma GCC unroll 8
    for (int r = 0; r < MB; ++r) {
      const uint16_t* xp = x + r * x_stride + 2 * p;
      uint32_t pair = xp[0];
      if (2 * p + 1 < k) pair |= static_cast<uint32_t>(xp[1]) << 16;
      const __m512 xv = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(pair)));
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        acc[r][v] = _mm512_dpbf16_ps(acc[r][v], reinterpret_cast<__m512bh&>(wv[v]),
                                     reinterpret_cast<const __m512bh&>(xv));
      }
    }
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const int64_t left = rows - v * kPackRows;
    if (left <= 0) break;
    const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1);
#pragma GCC unroll 8
    for (int r = 0; r < MB; ++r) _mm512_mask_storeu_ps(y + r * y_stride + v * kPackRows, mask, acc[r][v]);
  }
}

// Groups of 16 rows per tile for MB tokens (MB·NV accumulators, NV weight
// vectors and one broadcast within the 32 registers).
constexpr int GroupsPerTile(int mb) {
  constexpr int kGroups[] = {0, 8, 8, 6, 6, 4, 4, 3, 3};
  return kGroups[mb];
}

template <typename T, int MB>
void PackedGroup(const T* x, int64_t x_stride, const T* w, int64_t k, float* y, int64_t y_stride,
                 int64_t rows, int groups) {
  constexpr int NV = GroupsPerTile(MB);
  auto tile = [&](auto nv) {
    if constexpr (std::is_same_v<T, float>) {
      PackedTileF32<MB, decltype(nv)::value>(x, x_stride, w, k, y, y_stride, rows);
    } else {
      PackedTileBf16<MB, decltype(nv)::value>(x, x_stride, w, k, y, y_stride, rows);
    }
  };
  if (groups == NV) {
    tile(std::integral_constant<int, NV>{});
  } else {
    tile(std::integral_constant<int, 1>{});  // the remainder, one group at a time
  }
}

template <typename T>
void PackedDot(const T* x, int64_t x_stride, int64_t m, const T* packed, int64_t k, int64_t group0,
               int64_t n, float* y, int64_t y_stride) {
  const int64_t group_size = std::is_same_v<T, float> ? k * kPackRows : (k + 1) / 2 * 2 * kPackRows;
  const int64_t groups = (n + kPackRows - 1) / kPackRows;
  const int wide = GroupsPerTile(static_cast<int>(std::min<int64_t>(m, 8)));
  for (int64_t g = 0; g < groups;) {
    const int64_t tile_groups = groups - g >= wide ? wide : 1;
    const T* w = packed + (group0 + g) * group_size;
    const int64_t rows = std::min<int64_t>(n - g * kPackRows, tile_groups * kPackRows);
    for (int64_t r = 0; r < m; r += 8) {
      const int64_t mb = std::min<int64_t>(8, m - r);
      const T* xr = x + r * x_stride;
      float* yr = y + r * y_stride + g * kPackRows;
      const int tg = static_cast<int>(tile_groups == wide ? GroupsPerTile(static_cast<int>(mb)) : 1);
      // A narrower token group may take fewer groups per tile: split the tile.
      for (int64_t sub = 0; sub < tile_groups;) {
        const int take = static_cast<int>(std::min<int64_t>(tg, tile_groups - sub));
        const int use = take == GroupsPerTile(static_cast<int>(mb)) ? take : 1;
        const int64_t sub_rows = std::min<int64_t>(rows - sub * kPackRows, use * kPackRows);
        const T* ws = w + sub * group_size;
        float* ys = yr + sub * kPackRows;
        switch (mb) {
          case 1: PackedGroup<T, 1>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          case 2: PackedGroup<T, 2>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          case 3: PackedGroup<T, 3>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          case 4: PackedGroup<T, 4>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          case 5: PackedGroup<T, 5>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          case 6: PackedGroup<T, 6>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          case 7: PackedGroup<T, 7>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          default: PackedGroup<T, 8>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
        }
        sub += use;
      }
    }
    g += tile_groups;
  }
}

}  // namespace

void SmallMPackedF32(const float* x, int64_t x_stride, int64_t m, const float* packed, int64_t k,
                     int64_t group0, int64_t n, float* y, int64_t y_stride) {
  PackedDot<float>(x, x_stride, m, packed, k, group0, n, y, y_stride);
}

void SmallMPackedBf16(const uint16_t* x, int64_t x_stride, int64_t m, const uint16_t* packed,
                      int64_t k, int64_t group0, int64_t n, float* y, int64_t y_stride) {
  PackedDot<uint16_t>(x, x_stride, m, packed, k, group0, n, y, y_stride);
}

}  // namespace ffn
