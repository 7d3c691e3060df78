// The small-M dot products (small_m.h) in plain C++ over the same packed
// layout, for CPUs without AVX-512 (or AVX512-BF16): compiled once with AVX2
// + FMA flags (the 16-lane inner loops vectorize) and once without. No
// include guard: included by small_m_avx2.cc and small_m_scalar.cc, each with
// its own MULTIPLY_ADD.
//
// Each output's sum runs over k in order, one multiply-add per step (bf16:
// the pair's two values in turn, both exact in fp32), whatever m is, so the
// answers of a token do not depend on the other tokens of the call.

// y[r, j] for r < m, j < n: rows 16·group0 .. of the packed matrix. XT is
// the tokens' type, T the weights'.
template <typename XT, typename T, typename WidenX, typename WidenW>
void PortablePackedDot(const XT* x, int64_t x_stride, int64_t m, const T* packed, int64_t k,
                       int64_t group0, int64_t n, float* y, int64_t y_stride, WidenX widen_x,
                       WidenW widen_w) {
  constexpr bool kPairs = sizeof(T) == 2;
  // f32 tokens on bf16 weights: an odd k's padding is skipped, so the sums
  // are the f32 loop's over the widened weights, bit for bit.
  constexpr bool kMixed = sizeof(XT) != sizeof(T);
  const int64_t steps = kPairs ? (k + 1) / 2 : k;
  const int64_t step_elems = kPairs ? 2 * kPackRows : kPackRows;
  const int64_t group_size = steps * step_elems;
  const int64_t groups = (n + kPackRows - 1) / kPackRows;
  for (int64_t g = 0; g < groups; ++g) {
    const T* w = packed + (group0 + g) * group_size;
    const int64_t rows = std::min<int64_t>(kPackRows, n - g * kPackRows);
    for (int64_t r = 0; r < m; ++r) {
      const XT* xr = x + r * x_stride;
      float acc[kPackRows] = {};
      for (int64_t s = 0; s < steps; ++s) {
        const T* ws = w + s * step_elems;
        if constexpr (kPairs) {
          const bool whole = 2 * s + 1 < k;
          const float x0 = widen_x(xr[2 * s]);
          const float x1 = whole ? widen_x(xr[2 * s + 1]) : 0.0f;
          if (kMixed && !whole) {
            for (int64_t l = 0; l < kPackRows; ++l) acc[l] = MULTIPLY_ADD(x0, widen_w(ws[2 * l]), acc[l]);
            continue;
          }
          for (int64_t l = 0; l < kPackRows; ++l) {
            acc[l] = MULTIPLY_ADD(x1, widen_w(ws[2 * l + 1]), MULTIPLY_ADD(x0, widen_w(ws[2 * l]), acc[l]));
          }
        } else {
          const float xv = widen_x(xr[s]);
          for (int64_t l = 0; l < kPackRows; ++l) acc[l] = MULTIPLY_ADD(xv, widen_w(ws[l]), acc[l]);
        }
      }
      float* yr = y + r * y_stride + g * kPackRows;
      for (int64_t l = 0; l < rows; ++l) yr[l] = acc[l];
    }
  }
}

inline float WidenF32(float v) { return v; }
inline float WidenBf16(uint16_t v) { return Bf16ToFloat(v); }

void PortableF32(const float* x, int64_t x_stride, int64_t m, const float* packed, int64_t k,
                 int64_t group0, int64_t n, float* y, int64_t y_stride) {
  PortablePackedDot(x, x_stride, m, packed, k, group0, n, y, y_stride, WidenF32, WidenF32);
}

void PortableBf16(const uint16_t* x, int64_t x_stride, int64_t m, const uint16_t* packed,
                  int64_t k, int64_t group0, int64_t n, float* y, int64_t y_stride) {
  PortablePackedDot(x, x_stride, m, packed, k, group0, n, y, y_stride, WidenBf16, WidenBf16);
}

void PortableF32Bf16Weights(const float* x, int64_t x_stride, int64_t m, const uint16_t* packed,
                            int64_t k, int64_t group0, int64_t n, float* y, int64_t y_stride) {
  PortablePackedDot(x, x_stride, m, packed, k, group0, n, y, y_stride, WidenF32, WidenBf16);
}

// u8 tokens on s8 weights packed in k quads: exact int32 sums, the same
// integers as the AVX512-VNNI kernel (x rows read up to k rounded up to 4).
void PortableInt8(const uint8_t* x, int64_t x_stride, int64_t m, const int8_t* packed, int64_t k,
                  int64_t group0, int64_t n, int32_t* y, int64_t y_stride) {
  const int64_t kk = (k + 3) / 4 * 4;
  const int64_t group_size = kk * kPackRows;
  const int64_t groups = (n + kPackRows - 1) / kPackRows;
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* w = packed + (group0 + g) * group_size;
    const int64_t rows = std::min<int64_t>(kPackRows, n - g * kPackRows);
    for (int64_t r = 0; r < m; ++r) {
      const uint8_t* xr = x + r * x_stride;
      int32_t acc[kPackRows] = {};
      for (int64_t s = 0; s < kk; s += 4) {
        const int8_t* ws = w + s * kPackRows;
        for (int64_t l = 0; l < kPackRows; ++l) {
          for (int64_t q = 0; q < 4; ++q) acc[l] += int32_t{xr[s + q]} * int32_t{ws[4 * l + q]};
        }
      }
      int32_t* yr = y + r * y_stride + g * kPackRows;
      for (int64_t l = 0; l < rows; ++l) yr[l] = acc[l];
    }
  }
}
