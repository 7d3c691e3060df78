// Dot-product kernels for few tokens (decode-like M <= kSmallMaxTokens):
// every weight is read once, straight from its nn.Linear row, and each load
// feeds all M tokens, so the matmul runs at the speed the weights stream.
//
//   y[r, j] = Σ_k x[r, k] · w[j, k]    for r < m, j < n
//
// x rows are `x_stride` elements apart, w rows `k` apart (dense), y rows
// `y_stride` floats apart; fp32 accumulation in both forms (bf16 pairs are
// multiplied and summed by VDPBF16PS, which treats bf16 denormals as zero).
// Compiled for AVX-512 (+BF16) in its own translation unit; callers check
// SmallMAvailable() first. Run on the calling thread.
#ifndef FFN_KERNELS_SRC_SMALL_M_H_
#define FFN_KERNELS_SRC_SMALL_M_H_

#include <cstdint>

#include "ffn/kernels/ffn_block.h"

namespace ffn {

inline constexpr int64_t kSmallMaxTokens = 32;

// True when the CPU runs the kernel for `compute` (f32: AVX-512F; bf16:
// AVX-512 BF16) and FFN_ISA does not force a narrower ISA.
bool SmallMAvailable(DataType compute);

void SmallMDotF32(const float* x, int64_t x_stride, int64_t m, const float* w, int64_t k,
                  int64_t n, float* y, int64_t y_stride);
void SmallMDotBf16(const uint16_t* x, int64_t x_stride, int64_t m, const uint16_t* w, int64_t k,
                   int64_t n, float* y, int64_t y_stride);

}  // namespace ffn

#endif  // FFN_KERNELS_SRC_SMALL_M_H_
