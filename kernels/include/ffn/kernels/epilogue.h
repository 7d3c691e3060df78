// Fused activation epilogues and their per-ISA kernels.
//
// An epilogue turns a block of the first matmul's output into the second
// matmul's input while the block is still in cache:
//   plain: out[r, j] = act(in[r, j] + bias[j])          (bias may be null)
//   gated: out[r, j] = gate_act(gate[r, j]) · up[r, j]
// with an fp32 output, or a bf16 output rounded to nearest-even once.
//
// Each entry point exists per ISA (scalar reference, AVX2+FMA, AVX-512); the
// dispatching functions at the bottom use ActiveIsa(), chosen once from
// CPUID, or from the environment variable FFN_ISA=scalar|avx2|avx512 (for
// tests and benchmarks; an ISA the CPU lacks falls back to the best it has).
//
// Example:
//   ffn::ActivationParams params;
//   std::vector<float> acc(2 * 64, 0.5f), bias(64), out(acc.size());
//   const ffn::EpilogueKernels& k = ffn::KernelsFor(ffn::Isa::kAvx512);
//   k.bias_act(ffn::Activation::kGelu, params, acc.data(), 64, bias.data(), out.data(), 64,
//              /*rows=*/2, /*cols=*/64);
//   ffn::ApplyActivationRows(ffn::Activation::kGelu, params, acc.data(), 2, 64, 64);
//
// Accuracy against the fp64 reference (ActivationReference), every ISA: see
// docs/ACCURACY.md and the bounds in tests/kernels/epilogue_test.cc.
#ifndef FFN_KERNELS_EPILOGUE_H_
#define FFN_KERNELS_EPILOGUE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "ffn/kernels/activation.h"
#include "ffn/kernels/dtype.h"

namespace ffn {

enum class Isa { kScalar, kAvx2, kAvx512 };

const char* IsaName(Isa isa);  // "scalar", "avx2", "avx512"
std::optional<Isa> ParseIsa(std::string_view name);
// The ISAs this CPU runs, scalar first.
std::vector<Isa> SupportedIsas();
// The ISA the dispatching functions use (fixed at first call).
Isa ActiveIsa();

// Row-major blocks: `rows` rows of `cols` values, rows `*_stride` elements
// apart. Column j is PReLU channel j. In-place use (out == in, same stride)
// is allowed for the fp32 outputs; gated out may alias gate but not up.
// No allocation, no exceptions; runs on the calling thread.
struct EpilogueKernels {
  Isa isa;
  void (*bias_act)(Activation activation, const ActivationParams& params, const float* in,
                   size_t in_stride, const float* bias, float* out, size_t out_stride,
                   size_t rows, size_t cols);
  void (*bias_act_bf16)(Activation activation, const ActivationParams& params, const float* in,
                        size_t in_stride, const float* bias, uint16_t* out, size_t out_stride,
                        size_t rows, size_t cols);
  void (*gated)(Activation activation, const ActivationParams& params, const float* gate,
                const float* up, size_t in_stride, float* out, size_t out_stride, size_t rows,
                size_t cols);
  void (*gated_bf16)(Activation activation, const ActivationParams& params, const float* gate,
                     const float* up, size_t in_stride, uint16_t* out, size_t out_stride,
                     size_t rows, size_t cols);
};

// The kernels of `isa`; an unsupported ISA gives the best supported one.
const EpilogueKernels& KernelsFor(Isa isa);
// KernelsFor(ActiveIsa()).
const EpilogueKernels& ActiveKernels();

// The vectorized row forms of the activations, on ActiveKernels():
//
// Applies a plain activation in place to a row-major [rows, cols] block whose
// rows are `row_stride` floats apart (row_stride >= cols). Column j is
// channel j for prelu. Runs on the calling thread.
void ApplyActivationRows(Activation activation, const ActivationParams& params,
                         float* __restrict data, size_t rows, size_t cols, size_t row_stride);

// Gated: out[r, j] = gate_act(gate[r, j]) * up[r, j] for a [rows, cols] block.
// `gate` and `up` rows are `in_stride` floats apart, `out` rows `out_stride`.
// `activation` must be gated. out may alias gate (same strides) but not up.
void ApplyGatedRows(Activation activation, const ActivationParams& params,
                    const float* gate, const float* __restrict up, float* out, size_t rows,
                    size_t cols, size_t in_stride, size_t out_stride);

}  // namespace ffn

#endif  // FFN_KERNELS_EPILOGUE_H_
