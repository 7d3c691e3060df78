// The small-M dot products for AVX2 + FMA CPUs: the portable loops, whose
// 16-lane multiply-adds the compiler turns into two 8-lane FMAs.
#include <algorithm>
#include <cmath>
#include <limits>

#include "dispatch.h"
#include "small_m.h"

namespace ffn {
namespace {
#define MULTIPLY_ADD(a, b, c) std::fma(a, b, c)
#include "small_m_portable-inl.h"
#undef MULTIPLY_ADD
}  // namespace

SmallMKernels Avx2SmallMKernels() { return {PortableF32, PortableBf16, PortableF32Bf16Weights, PortableInt8,
          PortableQuantizeInt8}; }

}  // namespace ffn
