// AVX-512 (F, BW, DQ, VL) lanes of 16 floats, with the operations the
// generic kernels in *-inl.h use. Include only from a translation unit
// compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma.
#ifndef FFN_KERNELS_SRC_SIMD_AVX512_H_
#define FFN_KERNELS_SRC_SIMD_AVX512_H_

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace ffn::simd_avx512 {

struct V {
  __m512 v;
};
struct M {
  __mmask16 m;
};
inline constexpr size_t kLanes = 16;

inline __mmask16 FirstN(size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

inline V Set(float x) { return {_mm512_set1_ps(x)}; }
inline V Load(const float* p) { return {_mm512_loadu_ps(p)}; }
inline V LoadN(const float* p, size_t n) { return {_mm512_maskz_loadu_ps(FirstN(n), p)}; }
inline void Store(float* p, V a) { _mm512_storeu_ps(p, a.v); }
inline void StoreN(float* p, V a, size_t n) { _mm512_mask_storeu_ps(p, FirstN(n), a.v); }

// fp32 → bf16 with round to nearest even; NaN stays a (quiet) NaN.
inline __m256i ToBf16(V a) {
  const __m512i bits = _mm512_castps_si512(a.v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  const __mmask16 nan = _mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q);
  rounded = _mm512_mask_or_epi32(rounded, nan, bits, _mm512_set1_epi32(0x00400000));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16));
}
inline void StoreBf16(uint16_t* p, V a) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), ToBf16(a));
}
inline void StoreBf16N(uint16_t* p, V a, size_t n) {
  _mm256_mask_storeu_epi16(p, FirstN(n), ToBf16(a));
}

inline V Add(V a, V b) { return {_mm512_add_ps(a.v, b.v)}; }
inline V Sub(V a, V b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline V Mul(V a, V b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline V Div(V a, V b) { return {_mm512_div_ps(a.v, b.v)}; }
inline V ApproxRecip(V a) { return {_mm512_rcp14_ps(a.v)}; }  // 14 bits
inline V MulAdd(V a, V b, V c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }     // a·b + c
inline V NegMulAdd(V a, V b, V c) { return {_mm512_fnmadd_ps(a.v, b.v, c.v)}; }  // c − a·b
inline V MulSub(V a, V b, V c) { return {_mm512_fmsub_ps(a.v, b.v, c.v)}; }     // a·b − c
// min/max return the second operand when either is NaN.
inline V Min(V a, V b) { return {_mm512_min_ps(a.v, b.v)}; }
inline V Max(V a, V b) { return {_mm512_max_ps(a.v, b.v)}; }
inline V Abs(V a) { return {_mm512_abs_ps(a.v)}; }
inline V Xor(V a, V b) { return {_mm512_xor_ps(a.v, b.v)}; }
inline V SignBit(V a) { return {_mm512_and_ps(a.v, _mm512_set1_ps(-0.0f))}; }
inline V Round(V a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
inline V Floor(V a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)}; }

inline M Lt(V a, V b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ)}; }
inline M Le(V a, V b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LE_OQ)}; }
inline M Gt(V a, V b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ)}; }
inline M IsZero(V a) { return {_mm512_cmp_ps_mask(a.v, _mm512_setzero_ps(), _CMP_EQ_OQ)}; }  // ±0
inline M IsNan(V a) { return {_mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q)}; }
inline M Or(M a, M b) { return {static_cast<__mmask16>(a.m | b.m)}; }
// mask ? yes : no, per lane.
inline V Select(M mask, V yes, V no) { return {_mm512_mask_blend_ps(mask.m, no.v, yes.v)}; }

// a·2^n for integer-valued n, rounded once (denormal results included);
// overflow gives ±inf.
inline V ScaleByPow2(V a, V n) { return {_mm512_scalef_ps(a.v, n.v)}; }

// Newton steps after ApproxRecip's 14 bits: one reaches 2^-28.
inline constexpr int kRecipNewtonSteps = 1;

// Per-lane lookup in a 16-entry table by an integer-valued index in [0, 15].
struct Index {
  __m512i i;
};
inline Index ToIndex(V integral) { return {_mm512_cvttps_epi32(integral.v)}; }
inline V Lookup16(const float* table, Index index) {
  return {_mm512_permutexvar_ps(index.i, _mm512_loadu_ps(table))};
}

}  // namespace ffn::simd_avx512

#endif  // FFN_KERNELS_SRC_SIMD_AVX512_H_
