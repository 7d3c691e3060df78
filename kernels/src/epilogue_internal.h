// The per-ISA kernel tables, each defined in its own translation unit
// (compiled with that ISA's -m flags) and chosen in epilogue_dispatch.cc.
#ifndef FFN_KERNELS_SRC_EPILOGUE_INTERNAL_H_
#define FFN_KERNELS_SRC_EPILOGUE_INTERNAL_H_

#include "ffn/kernels/epilogue.h"

namespace ffn {

const EpilogueKernels& ScalarEpilogueKernels();
const EpilogueKernels& Avx2EpilogueKernels();    // needs AVX2 + FMA
const EpilogueKernels& Avx512EpilogueKernels();  // needs AVX-512 F/BW/DQ/VL

}  // namespace ffn

#endif  // FFN_KERNELS_SRC_EPILOGUE_INTERNAL_H_
