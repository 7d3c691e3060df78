// The small-M dot products for any x86-64 CPU: the portable loops with a
// separate multiply and add (no FMA unit assumed).
#include <algorithm>
#include <cmath>
#include <limits>

#include "dispatch.h"
#include "small_m.h"

namespace ffn {
namespace {
#define MULTIPLY_ADD(a, b, c) ((a) * (b) + (c))
#include "small_m_portable-inl.h"
#undef MULTIPLY_ADD
}  // namespace

SmallMKernels ScalarSmallMKernels() { return {PortableF32, PortableBf16, PortableF32Bf16Weights, PortableInt8,
          PortableQuantizeInt8}; }

}  // namespace ffn
