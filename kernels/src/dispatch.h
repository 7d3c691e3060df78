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

// Everything the engine dispatches on.
struct KernelTable {
  const EpilogueKernels* epilogue;
  // Null where the active ISA lacks them: f32 needs AVX-512, bf16 also
  // AVX512-BF16 (so FFN_ISA=avx2 turns both off).
  SmallMF32Kernel small_m_f32;
  SmallMBf16Kernel small_m_bf16;

  bool HasSmallM(DataType compute) const {
    return compute == DataType::kBf16 ? small_m_bf16 != nullptr : small_m_f32 != nullptr;
  }
};

// The table for ActiveIsa(), built at first call.
const KernelTable& ActiveKernelTable();

}  // namespace ffn

#endif  // FFN_KERNELS_SRC_DISPATCH_H_
