// The small-M dot-product kernels (small_m.h) for AVX-512, AVX512-BF16 and
// AVX512-VNNI. Compiled with those -m flags only; dispatch checks the CPU
// for each kernel's extension first.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

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

// Stores a tile's MB × NV vectors of 16 outputs: the first `rows` (<= 16·NV)
// of each token's row, less subtract[r] for token r if given.
template <int MB, int NV>
void StoreTile(const __m512 (&acc)[MB][NV], const float* subtract, float* y, int64_t y_stride,
               int64_t rows) {
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const int64_t left = rows - v * kPackRows;
    if (left <= 0) break;
    const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1);
#pragma GCC unroll 8
    for (int r = 0; r < MB; ++r) {
      const __m512 out =
          subtract != nullptr ? _mm512_sub_ps(acc[r][v], _mm512_set1_ps(subtract[r])) : acc[r][v];
      _mm512_mask_storeu_ps(y + r * y_stride + v * kPackRows, mask, out);
    }
  }
}

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
  StoreTile<MB, NV>(acc, nullptr, y, y_stride, rows);
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

// int8 (SmallMPackedInt8): MB tokens × NV groups of 16 rows. Per k group,
// int32 sums by VPDPBUSD (u8 weights × s8 tokens, 16 rows × a k quad), then
// one FMA by the token's group scale into f32 sums; the token's correction
// comes off as they are stored.
template <int MB, int NV>
void Int8Tile(const int8_t* x, int64_t x_stride, const float* scale, int64_t scale_stride,
              const float* correction, const uint8_t* w, int64_t k, float* y, int64_t y_stride,
              int64_t rows) {
  const int64_t steps = (k + 3) / 4, group_bytes = steps * 64, kgroups = Int8KGroups(k);
  constexpr int64_t kStepsPerGroup = kInt8Group / 4;
  __m512 sum[MB][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MB; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) sum[r][v] = _mm512_setzero_ps();
  }
  for (int64_t g = 0; g < kgroups; ++g) {
    __m512i acc[MB][NV];
#pragma GCC unroll 8
    for (int r = 0; r < MB; ++r) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_si512();
    }
    const int64_t s1 = std::min(steps, (g + 1) * kStepsPerGroup);
    for (int64_t s = g * kStepsPerGroup; s < s1; ++s) {
      __m512i wv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) wv[v] = _mm512_loadu_si512(w + v * group_bytes + s * 64);
#pragma GCC unroll 8
      for (int r = 0; r < MB; ++r) {
        int32_t quad;
        std::memcpy(&quad, x + r * x_stride + 4 * s, sizeof(quad));
        const __m512i xv = _mm512_set1_epi32(quad);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], wv[v], xv);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MB; ++r) {
      const __m512 group_scale = _mm512_set1_ps(scale[r * scale_stride + g]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        sum[r][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][v]), group_scale, sum[r][v]);
      }
    }
  }
  StoreTile<MB, NV>(sum, correction, y, y_stride, rows);
}

// Groups of 16 rows per int8 tile for MB tokens (up to 4): 2·MB·NV
// accumulators, NV weight vectors and the broadcasts within 32 registers.
constexpr int kInt8GroupsPerTile[] = {0, 4, 4, 3, 3};
constexpr int64_t kInt8Tokens = 4;

template <int MB>
void Int8Group(const int8_t* x, int64_t x_stride, const float* scale, int64_t scale_stride,
               const float* correction, const uint8_t* w, int64_t k, float* y, int64_t y_stride,
               int64_t rows, int groups) {
  constexpr int NV = kInt8GroupsPerTile[MB];
  if (groups == NV) {
    Int8Tile<MB, NV>(x, x_stride, scale, scale_stride, correction, w, k, y, y_stride, rows);
  } else {
    Int8Tile<MB, 1>(x, x_stride, scale, scale_stride, correction, w, k, y, y_stride, rows);
  }
}

void Int8Dot(const int8_t* x, int64_t x_stride, const float* scale, int64_t scale_stride,
             const float* correction, int64_t m, const uint8_t* packed, int64_t k, int64_t group0,
             int64_t n, float* y, int64_t y_stride) {
  const int64_t group_bytes = (k + 3) / 4 * 64;
  const int64_t groups = (n + kPackRows - 1) / kPackRows;
  const int wide = kInt8GroupsPerTile[std::min<int64_t>(m, kInt8Tokens)];
  for (int64_t g = 0; g < groups;) {
    const int64_t tile_groups = groups - g >= wide ? wide : 1;
    const uint8_t* w = packed + (group0 + g) * group_bytes;
    const int64_t rows = std::min<int64_t>(n - g * kPackRows, tile_groups * kPackRows);
    for (int64_t r = 0; r < m; r += kInt8Tokens) {
      const int64_t mb = std::min<int64_t>(kInt8Tokens, m - r);
      const int8_t* xr = x + r * x_stride;
      const float* sr = scale + r * scale_stride;
      const float* cr = correction + r;
      float* yr = y + r * y_stride + g * kPackRows;
      const int nv = kInt8GroupsPerTile[mb];
      const int use = tile_groups == nv ? nv : 1;
      for (int64_t sub = 0; sub < tile_groups; sub += use) {
        const int64_t sub_rows = std::min<int64_t>(rows - sub * kPackRows, use * kPackRows);
        const uint8_t* ws = w + sub * group_bytes;
        float* ys = yr + sub * kPackRows;
        switch (mb) {
          case 1: Int8Group<1>(xr, x_stride, sr, scale_stride, cr, ws, k, ys, y_stride, sub_rows, use); break;
          case 2: Int8Group<2>(xr, x_stride, sr, scale_stride, cr, ws, k, ys, y_stride, sub_rows, use); break;
          case 3: Int8Group<3>(xr, x_stride, sr, scale_stride, cr, ws, k, ys, y_stride, sub_rows, use); break;
          default: Int8Group<4>(xr, x_stride, sr, scale_stride, cr, ws, k, ys, y_stride, sub_rows, use); break;
        }
      }
    }
    g += tile_groups;
  }
}

}  // namespace

void QuantizeInt8Rows(const float* x, int64_t x_stride, int64_t rows, int64_t k, int8_t* q,
                      int64_t q_stride, float* scale, int64_t scale_stride, float* correction) {
  const int64_t kgroups = Int8KGroups(k);
  const __m512 infinity = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  for (int64_t r = 0; r < rows; ++r) {
    const float* v = x + r * x_stride;
    int8_t* out = q + r * q_stride;
    float* s = scale + r * scale_stride;
    std::memset(out + k, 0, static_cast<size_t>(q_stride - k));
    // Every value finite: |v| < inf (false for NaN).
    __mmask16 finite = 0xffff;
    for (int64_t i = 0; i < k; i += 16) {
      const __mmask16 lanes = k - i >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (k - i)) - 1);
      const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(lanes, v + i));
      finite &= static_cast<__mmask16>(_mm512_cmp_ps_mask(a, infinity, _CMP_LT_OQ) | ~lanes);
    }
    if (finite != 0xffff) {
      std::memset(out, 0, static_cast<size_t>(k));
      std::fill(s, s + kgroups, std::numeric_limits<float>::quiet_NaN());
      correction[r] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    float total = 0;
    for (int64_t g = 0; g < kgroups; ++g) {
      const int64_t i0 = g * kInt8Group, n = std::min(kInt8Group, k - i0);
      const __mmask16 lo = n >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << n) - 1);
      const __mmask16 hi = n >= 32 ? __mmask16(0xffff)
                                   : n > 16 ? static_cast<__mmask16>((1u << (n - 16)) - 1) : __mmask16(0);
      const __m512 a = _mm512_maskz_loadu_ps(lo, v + i0);
      const __m512 b = _mm512_maskz_loadu_ps(hi, v + i0 + 16);
      const float largest = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
      s[g] = largest / 127.0f;
      const __m512 inverse = _mm512_set1_ps(largest > 0 ? 127.0f / largest : 0.0f);
      const __m512 low = _mm512_set1_ps(-127.0f), high = _mm512_set1_ps(127.0f);
      auto quantize = [&](__m512 values) {
        const __m512 rounded = _mm512_roundscale_ps(_mm512_mul_ps(values, inverse),
                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(rounded, low), high));
      };
      const __m512i qa = quantize(a), qb = quantize(b);
      _mm512_mask_cvtepi32_storeu_epi8(out + i0, lo, qa);
      _mm512_mask_cvtepi32_storeu_epi8(out + i0 + 16, hi, qb);
      const int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
      total = std::fma(static_cast<float>(kInt8WeightOffset * sum), s[g], total);
    }
    correction[r] = total;
  }
}

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

void SmallMPackedInt8(const int8_t* x, int64_t x_stride, const float* scale, int64_t scale_stride,
                      const float* correction, int64_t m, const uint8_t* packed, int64_t k,
                      int64_t group0, int64_t n, float* y, int64_t y_stride) {
  Int8Dot(x, x_stride, scale, scale_stride, correction, m, packed, k, group0, n, y, y_stride);
}

}  // namespace ffn
