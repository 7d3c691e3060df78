// AVX2 + FMA lanes of 8 floats, with the operations the generic kernels in
// *-inl.h use. Include only from a translation unit compiled with
// -mavx2 -mfma.
#ifndef FFN_KERNELS_SRC_SIMD_AVX2_H_
#define FFN_KERNELS_SRC_SIMD_AVX2_H_

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ffn::simd_avx2 {

struct V {
  __m256 v;
};
struct M {
  __m256 m;  // all-ones lanes are true
};
inline constexpr size_t kLanes = 8;

inline __m256i FirstN(size_t n) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), iota);
}

inline V Set(float x) { return {_mm256_set1_ps(x)}; }
inline V Load(const float* p) { return {_mm256_loadu_ps(p)}; }
inline V LoadN(const float* p, size_t n) { return {_mm256_maskload_ps(p, FirstN(n))}; }
inline void Store(float* p, V a) { _mm256_storeu_ps(p, a.v); }
inline void StoreN(float* p, V a, size_t n) { _mm256_maskstore_ps(p, FirstN(n), a.v); }

// fp32 → bf16 with round to nearest even; NaN stays a (quiet) NaN.
inline __m128i ToBf16(V a) {
  const __m256i bits = _mm256_castps_si256(a.v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  __m256i rounded = _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q));
  const __m256i quiet = _mm256_or_si256(bits, _mm256_set1_epi32(0x00400000));
  rounded = _mm256_blendv_epi8(rounded, quiet, nan);
  const __m256i halves = _mm256_srli_epi32(rounded, 16);
  // packus works within 128-bit lanes: pack, then gather the two low quads.
  const __m256i packed = _mm256_packus_epi32(halves, halves);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0b1000));
}
inline void StoreBf16(uint16_t* p, V a) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), ToBf16(a));
}
inline void StoreBf16N(uint16_t* p, V a, size_t n) {
  alignas(16) uint16_t lanes[8];
  _mm_store_si128(reinterpret_cast<__m128i*>(lanes), ToBf16(a));
  std::memcpy(p, lanes, n * sizeof(uint16_t));
}

inline V Add(V a, V b) { return {_mm256_add_ps(a.v, b.v)}; }
inline V Sub(V a, V b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline V Mul(V a, V b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline V Div(V a, V b) { return {_mm256_div_ps(a.v, b.v)}; }
inline V ApproxRecip(V a) { return {_mm256_rcp_ps(a.v)}; }  // 12 bits
inline V MulAdd(V a, V b, V c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }     // a·b + c
inline V NegMulAdd(V a, V b, V c) { return {_mm256_fnmadd_ps(a.v, b.v, c.v)}; }  // c − a·b
inline V MulSub(V a, V b, V c) { return {_mm256_fmsub_ps(a.v, b.v, c.v)}; }     // a·b − c
// min/max return the second operand when either is NaN.
inline V Min(V a, V b) { return {_mm256_min_ps(a.v, b.v)}; }
inline V Max(V a, V b) { return {_mm256_max_ps(a.v, b.v)}; }
inline V Abs(V a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
inline V Xor(V a, V b) { return {_mm256_xor_ps(a.v, b.v)}; }
inline V SignBit(V a) { return {_mm256_and_ps(a.v, _mm256_set1_ps(-0.0f))}; }
inline V Round(V a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
inline V Floor(V a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)}; }

inline M Lt(V a, V b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ)}; }
inline M Le(V a, V b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LE_OQ)}; }
inline M Gt(V a, V b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ)}; }
inline M IsZero(V a) { return {_mm256_cmp_ps(a.v, _mm256_setzero_ps(), _CMP_EQ_OQ)}; }  // ±0
inline M IsNan(V a) { return {_mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q)}; }
inline M Or(M a, M b) { return {_mm256_or_ps(a.m, b.m)}; }
// mask ? yes : no, per lane.
inline V Select(M mask, V yes, V no) { return {_mm256_blendv_ps(no.v, yes.v, mask.m)}; }

// 2^n for integer-valued n in [-126, 127].
inline __m256 Pow2(__m256 n) {
  const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}

// a·2^n for integer-valued n in [-252, 254], rounded once (denormal results
// included): two normal factors 2^⌊n/2⌋ and 2^(n − ⌊n/2⌋).
inline V ScaleByPow2(V a, V n) {
  const __m256 n1 = _mm256_round_ps(_mm256_mul_ps(n.v, _mm256_set1_ps(0.5f)),
                                    _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  return {_mm256_mul_ps(_mm256_mul_ps(a.v, Pow2(n1)), Pow2(_mm256_sub_ps(n.v, n1)))};
}

// Newton steps after ApproxRecip's 12 bits: two reach 2^-48.
inline constexpr int kRecipNewtonSteps = 2;

// Per-lane lookup in a 16-entry table by an integer-valued index in [0, 15]:
// two 8-entry permutes and a blend on index >= 8.
struct Index {
  __m256i i;
  __m256 high;  // lanes with index >= 8
};
inline Index ToIndex(V integral) {
  const __m256i i = _mm256_cvttps_epi32(integral.v);
  return {i, _mm256_castsi256_ps(_mm256_cmpgt_epi32(i, _mm256_set1_epi32(7)))};
}
inline V Lookup16(const float* table, Index index) {
  // permutevar8x32 uses the low 3 bits of each index.
  const __m256 low = _mm256_permutevar8x32_ps(_mm256_loadu_ps(table), index.i);
  const __m256 high = _mm256_permutevar8x32_ps(_mm256_loadu_ps(table + 8), index.i);
  return {_mm256_blendv_ps(low, high, index.high)};
}

}  // namespace ffn::simd_avx2

#endif  // FFN_KERNELS_SRC_SIMD_AVX2_H_
