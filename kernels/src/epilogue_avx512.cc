// The avx512 epilogue kernels: the generic loops and math instantiated over
// simd/avx512.h lanes. Compiled with this ISA's -m flags only.
#include "dispatch.h"
#include "simd/avx512.h"
#include "simd/poly_constants.h"

namespace ffn::simd_avx512 {
#include "simd/activation_math-inl.h"
#include "simd/epilogue-inl.h"
}  // namespace ffn::simd_avx512

namespace ffn {

const EpilogueKernels& Avx512EpilogueKernels() {
  static const EpilogueKernels kernels = simd_avx512::MakeKernels(Isa::kAvx512);
  return kernels;
}

}  // namespace ffn
