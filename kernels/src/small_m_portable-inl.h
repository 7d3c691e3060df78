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

// int8 models (SmallMPackedInt8): the same int32 group sums, one
// multiply-add per group in the same order, and the correction.
void PortableInt8(const int8_t* x, int64_t x_stride, const float* scale, int64_t scale_stride,
                  const float* correction, int64_t m, const uint8_t* packed, int64_t k,
                  int64_t group0, int64_t n, float* y, int64_t y_stride) {
  const int64_t kk = (k + 3) / 4 * 4, kgroups = Int8KGroups(k);
  const int64_t group_size = kk * kPackRows;
  const int64_t groups = (n + kPackRows - 1) / kPackRows;
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* w = packed + (group0 + g) * group_size;
    const int64_t rows = std::min<int64_t>(kPackRows, n - g * kPackRows);
    for (int64_t r = 0; r < m; ++r) {
      const int8_t* xr = x + r * x_stride;
      float sum[kPackRows] = {};
      for (int64_t q = 0; q < kgroups; ++q) {
        int32_t acc[kPackRows] = {};
        for (int64_t s = q * kInt8Group; s < std::min(kk, (q + 1) * kInt8Group); s += 4) {
          const uint8_t* ws = w + s * kPackRows;
          for (int64_t l = 0; l < kPackRows; ++l) {
            for (int64_t b = 0; b < 4; ++b) acc[l] += int32_t{xr[s + b]} * int32_t{ws[4 * l + b]};
          }
        }
        const float group_scale = scale[r * scale_stride + q];
        for (int64_t l = 0; l < kPackRows; ++l) {
          sum[l] = MULTIPLY_ADD(static_cast<float>(acc[l]), group_scale, sum[l]);
        }
      }
      float* yr = y + r * y_stride + g * kPackRows;
      for (int64_t l = 0; l < rows; ++l) yr[l] = sum[l] - correction[r];
    }
  }
}

// QuantizeInt8Rows (small_m.h) in plain C++: the same bits as the AVX-512
// form (exact max, one rounding per product, round to nearest even).
void PortableQuantizeInt8(const float* x, int64_t x_stride, int64_t rows, int64_t k, int8_t* q,
                          int64_t q_stride, float* scale, int64_t scale_stride, float* correction) {
  const int64_t kgroups = Int8KGroups(k);
  for (int64_t r = 0; r < rows; ++r) {
    const float* v = x + r * x_stride;
    int8_t* out = q + r * q_stride;
    float* s = scale + r * scale_stride;
    std::fill(out, out + q_stride, int8_t{0});
    bool finite = true;
    for (int64_t i = 0; i < k; ++i) finite &= std::fabs(v[i]) < std::numeric_limits<float>::infinity();
    if (!finite) {
      std::fill(s, s + kgroups, std::numeric_limits<float>::quiet_NaN());
      correction[r] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    float total = 0;
    for (int64_t g = 0; g < kgroups; ++g) {
      const int64_t i0 = g * kInt8Group, i1 = std::min(k, i0 + kInt8Group);
      float largest = 0;
      for (int64_t i = i0; i < i1; ++i) largest = std::max(largest, std::fabs(v[i]));
      s[g] = largest / 127.0f;
      const float inverse = largest > 0 ? 127.0f / largest : 0.0f;
      int32_t sum = 0;
      for (int64_t i = i0; i < i1; ++i) {
        const float rounded = std::min(std::max(std::nearbyint(v[i] * inverse), -127.0f), 127.0f);
        out[i] = static_cast<int8_t>(rounded);
        sum += static_cast<int32_t>(rounded);
      }
      total = std::fma(static_cast<float>(kInt8WeightOffset * sum), s[g], total);
    }
    correction[r] = total;
  }
}
