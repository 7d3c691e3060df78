// The avx2 epilogue kernels: the generic loops and math instantiated over
// simd/avx2.h lanes. Compiled with this ISA's -m flags only.
#include "dispatch.h"
#include "simd/avx2.h"
#include "simd/poly_constants.h"

namespace ffn::simd_avx2 {
#include "simd/activation_math-inl.h"
#include "simd/epilogue-inl.h"
}  // namespace ffn::simd_avx2

namespace ffn {

const EpilogueKernels& Avx2EpilogueKernels() {
  static const EpilogueKernels kernels = simd_avx2::MakeKernels(Isa::kAvx2);
  return kernels;
}

}  // namespace ffn
