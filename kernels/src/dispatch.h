// The kernel tables: each ISA's epilogue kernels, defined in their own
// translation unit (compiled with that ISA's -m flags), and the one table
// an engine call runs with, chosen once in dispatch.cc from CPUID and
// FFN_ISA.
#ifndef FFN_KERNELS_SRC_DISPATCH_H_
#define FFN_KERNELS_SRC_DISPATCH_H_

#include <cstdint>

#include "ffn/kernels/epilogue.h"

namespace ffn {

const EpilogueKernels& ScalarEpilogueKernels();
const EpilogueKernels& Avx2EpilogueKernels();    // needs AVX2 + FMA
const EpilogueKernels& Avx512EpilogueKernels();  // needs AVX-512 F/BW/DQ/VL

// The small-M dot products of small_m.h, by element type.
using SmallMF32Kernel = void (*)(const float* x, int64_t x_stride, int64_t m, const float* packed,
                                 int64_t k, int64_t group0, int64_t n, float* y, int64_t y_stride);
using SmallMBf16Kernel = void (*)(const uint16_t* x, int64_t x_stride, int64_t m,
                                  const uint16_t* packed, int64_t k, int64_t group0, int64_t n,
                                  float* y, int64_t y_stride);

// f32 tokens on bf16 packed weights (f32 compute for weights kept in bf16).
using SmallMF32Bf16WeightsKernel = void (*)(const float* x, int64_t x_stride, int64_t m,
                                            const uint16_t* packed, int64_t k, int64_t group0,
                                            int64_t n, float* y, int64_t y_stride);

// s8 tokens in scaled groups on u8-stored weights (int8 models, SmallMPackedInt8).
using SmallMInt8Kernel = void (*)(const int8_t* x, int64_t x_stride, const float* scale,
                                  int64_t scale_stride, const float* correction, int64_t m,
                                  const uint8_t* packed, int64_t k, int64_t group0, int64_t n,
                                  float* y, int64_t y_stride);

using QuantizeInt8Kernel = void (*)(const float* x, int64_t x_stride, int64_t rows, int64_t k,
                                    int8_t* q, int64_t q_stride, float* scale,
                                    int64_t scale_stride, float* correction);

struct SmallMKernels {
  SmallMF32Kernel f32 = nullptr;
  SmallMBf16Kernel bf16 = nullptr;
  SmallMF32Bf16WeightsKernel f32_bf16_weights = nullptr;
  SmallMInt8Kernel int8 = nullptr;
  QuantizeInt8Kernel quantize_int8 = nullptr;
};
SmallMKernels Avx2SmallMKernels();    // the portable loops, AVX2 + FMA
SmallMKernels ScalarSmallMKernels();  // the portable loops, any x86-64

// Everything the engine dispatches on.
struct KernelTable {
  const EpilogueKernels* epilogue;
  // The small-M dot products for every ISA: the AVX-512 (+BF16) kernels
  // where the active ISA has them, else the portable loops (AVX2 or scalar).
  SmallMKernels small_m;
  // Whether small_m is the AVX-512 kernel for that dtype: only those beat
  // oneDNN for few tokens, so only they run fused's small-M path outside
  // batch-invariant calls.
  bool small_m_native_f32 = false, small_m_native_bf16 = false;
  // Whether small_m.int8 is the AVX512-VNNI kernel.
  bool small_m_native_int8 = false;

  bool HasNativeSmallM(DataType compute) const {
    return compute == DataType::kBf16 ? small_m_native_bf16 : small_m_native_f32;
  }
};

// The table for ActiveIsa(), built at first call.
const KernelTable& ActiveKernelTable();

}  // namespace ffn

#endif  // FFN_KERNELS_SRC_DISPATCH_H_
