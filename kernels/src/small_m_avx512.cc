// The small-M dot-product kernels (small_m.h) for AVX-512, AVX512-BF16 and
// AVX512-VNNI. Compiled with those -m flags only; dispatch checks the CPU
// for each kernel's extension first.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "small_m.h"

namespace ffn {
namespace {

// Weights packed 16 rows to a vector, so no horizontal sums are needed.
// f32: group g holds rows 16g..16g+15 as [k][16]; bf16: as [ceil(k/2)][16][2]
// (k pairs, the VDPBF16PS operand order). One vector of weights then feeds 16
// outputs of a token at once, broadcasting that token's x value (or pair).

// One k step of a packed group is one 64-byte vector: 16 rows × one f32
// value, or 16 rows × a bf16 pair. T is the weights' type, XT the tokens';
// W and X what a step loads of each.
struct PackedF32 {
  using T = float;
  using XT = float;
  using W = __m512;
  using X = __m512;
  static constexpr int64_t kStepElems = 16;
  static int64_t Steps(int64_t k) { return k; }
  static __m512 LoadW(const float* w) { return _mm512_loadu_ps(w); }
  static int64_t FullSteps(int64_t k) { return k; }
  static __m512 Broadcast(const float* x, int64_t step) { return _mm512_set1_ps(x[step]); }
  static __m512 BroadcastLast(const float* x, int64_t step, int64_t) { return Broadcast(x, step); }
  static __m512 Madd(__m512 acc, __m512 w, __m512 x) { return _mm512_fmadd_ps(x, w, acc); }
};

struct PackedBf16 {
  using T = uint16_t;
  using XT = uint16_t;
  using W = __m512;
  using X = __m512;
  static constexpr int64_t kStepElems = 32;
  static int64_t Steps(int64_t k) { return (k + 1) / 2; }
  static __m512 LoadW(const uint16_t* w) { return _mm512_castsi512_ps(_mm512_loadu_si512(w)); }
  // Steps whose pair is whole; an odd k leaves a last step with one value.
  static int64_t FullSteps(int64_t k) { return k / 2; }
  // The token's pair (x[2s], x[2s+1]) in every lane, one 32-bit broadcast load.
  static __m512 Broadcast(const uint16_t* x, int64_t step) {
    int32_t pair;
    std::memcpy(&pair, x + 2 * step, sizeof(pair));
    return _mm512_castsi512_ps(_mm512_set1_epi32(pair));
  }
  // The last step of an odd k: (x[k-1], 0).
  static __m512 BroadcastLast(const uint16_t* x, int64_t step, int64_t) {
    return _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(x[2 * step])));
  }
  static __m512 Madd(__m512 acc, __m512 w, __m512 x) {
    return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh&>(w), reinterpret_cast<__m512bh&>(x));
  }
};

// f32 tokens, bf16 weights: each pair vector widens (exactly) into its even-k
// and odd-k halves, multiplied in k order with one FMA each, as PackedF32
// does: the sums are PackedF32's over the widened weights, bit for bit, from
// half the bytes. Plain AVX-512F.
struct PackedF32Bf16Weights {
  using T = uint16_t;
  using XT = float;
  struct W {
    __m512 even, odd;
  };
  struct X {
    __m512 even, odd;
  };
  static constexpr int64_t kStepElems = 32;
  static int64_t Steps(int64_t k) { return (k + 1) / 2; }
  static int64_t FullSteps(int64_t k) { return k / 2; }
  static W LoadW(const uint16_t* w) {
    const __m512i pairs = _mm512_loadu_si512(w);
    // bf16 is the top half of an f32: even k sits in the low 16 bits.
    return {_mm512_castsi512_ps(_mm512_slli_epi32(pairs, 16)),
            _mm512_castsi512_ps(_mm512_and_si512(pairs, _mm512_set1_epi32(~0xffff)))};
  }
  static X Broadcast(const float* x, int64_t step) {
    return {_mm512_set1_ps(x[2 * step]), _mm512_set1_ps(x[2 * step + 1])};
  }
  // The last step of an odd k: its padding weight (+0) times −0 adds −0,
  // which leaves every sum as it was (signed zeros included).
  static X BroadcastLast(const float* x, int64_t step, int64_t) {
    return {_mm512_set1_ps(x[2 * step]), _mm512_set1_ps(-0.0f)};
  }
  static __m512 Madd(__m512 acc, W w, X x) {
    return _mm512_fmadd_ps(x.odd, w.odd, _mm512_fmadd_ps(x.even, w.even, acc));
  }
};

// u8 tokens, s8 weights: VPDPBUSD sums a k quad of 16 rows into 16 int32
// lanes, exactly. The accumulators are int32 lanes carried in __m512 (the
// tile below is written for floats; the casts cost nothing) and stored as
// int32 bits. Tokens are read in whole quads (x padded to PaddedK), so there
// is no partial last step.
struct PackedInt8 {
  using T = int8_t;
  using XT = uint8_t;
  using W = __m512;
  using X = __m512;
  static constexpr int64_t kStepElems = 64;
  static int64_t Steps(int64_t k) { return (k + 3) / 4; }
  static int64_t FullSteps(int64_t k) { return Steps(k); }
  static __m512 LoadW(const int8_t* w) { return _mm512_castsi512_ps(_mm512_loadu_si512(w)); }
  static __m512 Broadcast(const uint8_t* x, int64_t step) {
    int32_t quad;
    std::memcpy(&quad, x + 4 * step, sizeof(quad));
    return _mm512_castsi512_ps(_mm512_set1_epi32(quad));
  }
  static __m512 BroadcastLast(const uint8_t* x, int64_t step, int64_t) { return Broadcast(x, step); }
  static __m512 Madd(__m512 acc, __m512 w, __m512 x) {
    return _mm512_castsi512_ps(_mm512_dpbusd_epi32(_mm512_castps_si512(acc), _mm512_castps_si512(x),
                                                   _mm512_castps_si512(w)));
  }
};

// MB tokens × NV groups of 16 rows, over all of k; the first `rows`
// (<= 16·NV) outputs of each token are stored.
template <typename Op, int MB, int NV>
void PackedTile(const typename Op::XT* x, int64_t x_stride, const typename Op::T* w, int64_t k,
                float* y, int64_t y_stride, int64_t rows) {
  __m512 acc[MB][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MB; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  const int64_t steps = Op::Steps(k), group = steps * Op::kStepElems;
  const int64_t full = Op::FullSteps(k);
  for (int64_t step = 0; step < steps; ++step) {
    typename Op::W wv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) wv[v] = Op::LoadW(w + v * group + step * Op::kStepElems);
#pragma GCC unroll 8
    for (int r = 0; r < MB; ++r) {
      const typename Op::X xv = step < full ? Op::Broadcast(x + r * x_stride, step)
                                    : Op::BroadcastLast(x + r * x_stride, step, k);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = Op::Madd(acc[r][v], wv[v], xv);
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

// Groups of 16 rows per tile for MB tokens: MB·NV accumulators, the NV
// weight vectors (two each when widened from bf16) and the broadcasts within
// the 32 registers.
template <typename Op>
constexpr int GroupsPerTile(int mb) {
  constexpr bool kWidened = sizeof(typename Op::W) > sizeof(__m512);
  constexpr int kGroups[] = {0, 8, 8, 6, 6, 4, 4, 3, 3};
  constexpr int kWidenedGroups[] = {0, 8, 6, 5, 4, 4, 3, 3, 2};
  return kWidened ? kWidenedGroups[mb] : kGroups[mb];
}

template <typename Op, int MB>
void PackedGroup(const typename Op::XT* x, int64_t x_stride, const typename Op::T* w, int64_t k,
                 float* y, int64_t y_stride, int64_t rows, int groups) {
  constexpr int NV = GroupsPerTile<Op>(MB);
  if (groups == NV) {
    PackedTile<Op, MB, NV>(x, x_stride, w, k, y, y_stride, rows);
  } else {
    PackedTile<Op, MB, 1>(x, x_stride, w, k, y, y_stride, rows);  // one group at a time
  }
}

template <typename Op>
void PackedDot(const typename Op::XT* x, int64_t x_stride, int64_t m, const typename Op::T* packed,
               int64_t k, int64_t group0, int64_t n, float* y, int64_t y_stride) {
  using T = typename Op::T;
  const int64_t group_size = Op::Steps(k) * Op::kStepElems;
  const int64_t groups = (n + kPackRows - 1) / kPackRows;
  // Tiles as wide as the first (largest) token group takes; each tile is
  // read once from memory and again from cache for later token groups.
  const int wide = GroupsPerTile<Op>(static_cast<int>(std::min<int64_t>(m, 8)));
  for (int64_t g = 0; g < groups;) {
    const int64_t tile_groups = groups - g >= wide ? wide : 1;
    const T* w = packed + (group0 + g) * group_size;
    const int64_t rows = std::min<int64_t>(n - g * kPackRows, tile_groups * kPackRows);
    for (int64_t r = 0; r < m; r += 8) {
      const int64_t mb = std::min<int64_t>(8, m - r);
      const typename Op::XT* xr = x + r * x_stride;
      float* yr = y + r * y_stride + g * kPackRows;
      // The last token group may be smaller, with another tile width: it
      // then takes this tile one group at a time.
      const int nv = GroupsPerTile<Op>(static_cast<int>(mb));
      const int use = tile_groups == nv ? nv : 1;
      for (int64_t sub = 0; sub < tile_groups; sub += use) {
        const int64_t sub_rows = std::min<int64_t>(rows - sub * kPackRows, use * kPackRows);
        const T* ws = w + sub * group_size;
        float* ys = yr + sub * kPackRows;
        switch (mb) {
          case 1: PackedGroup<Op, 1>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          case 2: PackedGroup<Op, 2>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          case 3: PackedGroup<Op, 3>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          case 4: PackedGroup<Op, 4>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          case 5: PackedGroup<Op, 5>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          case 6: PackedGroup<Op, 6>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          case 7: PackedGroup<Op, 7>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
          default: PackedGroup<Op, 8>(xr, x_stride, ws, k, ys, y_stride, sub_rows, use); break;
        }
      }
    }
    g += tile_groups;
  }
}

}  // namespace

void SmallMPackedF32(const float* x, int64_t x_stride, int64_t m, const float* packed, int64_t k,
                     int64_t group0, int64_t n, float* y, int64_t y_stride) {
  PackedDot<PackedF32>(x, x_stride, m, packed, k, group0, n, y, y_stride);
}

void SmallMPackedBf16(const uint16_t* x, int64_t x_stride, int64_t m, const uint16_t* packed,
                      int64_t k, int64_t group0, int64_t n, float* y, int64_t y_stride) {
  PackedDot<PackedBf16>(x, x_stride, m, packed, k, group0, n, y, y_stride);
}

void SmallMPackedF32Bf16Weights(const float* x, int64_t x_stride, int64_t m,
                                const uint16_t* packed, int64_t k, int64_t group0, int64_t n,
                                float* y, int64_t y_stride) {
  PackedDot<PackedF32Bf16Weights>(x, x_stride, m, packed, k, group0, n, y, y_stride);
}

void SmallMPackedInt8(const uint8_t* x, int64_t x_stride, int64_t m, const int8_t* packed,
                      int64_t k, int64_t group0, int64_t n, int32_t* y, int64_t y_stride) {
  // The int32 sums travel as float bits through the tile's stores.
  PackedDot<PackedInt8>(x, x_stride, m, packed, k, group0, n, reinterpret_cast<float*>(y),
                        y_stride);
}

}  // namespace ffn
