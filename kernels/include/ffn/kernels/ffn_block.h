// FfnBlock: the feed-forward block of a transformer layer on oneDNN, in
// fp32 or bf16.
//
//   plain: y = act(x·W1ᵀ + b1)·W2ᵀ + b2
//   gated: y = (act(x·Wgᵀ) ⊙ (x·Wuᵀ))·W2ᵀ
//
// Matmuls run on oneDNN (f32, or bf16 with f32 accumulation, which oneDNN
// runs with AVX512-BF16 or AMX where the CPU has them); b1 and the activation (or the gated product)
// run in ffnserve's own fused epilogue kernels (epilogue.h) on the first
// matmul's output, tile by tile. The weights stay in their
// nn.Linear layout, which oneDNN reads as the transposed operand without a
// copy; gated models keep Wg and Wu stacked in one [2·d_ff, d_model] matrix
// so one matmul computes both halves. A bf16 copy of the weights is made at
// creation. Matmul primitives are created once per distinct token count M
// and compute type, and cached.
//
//   ASSIGN_OR_RETURN(auto block, FfnBlock::Create(RandomFfnWeights(...)));
//   RETURN_IF_ERROR(block->Run(Activation::kGelu, x, m, y));
//
// Run() may be called from several threads at once. Each call uses the
// calling thread's OpenMP thread count (omp_set_num_threads) for oneDNN and
// for the activation pass.
#ifndef FFN_KERNELS_FFN_BLOCK_H_
#define FFN_KERNELS_FFN_BLOCK_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ffn/kernels/activation.h"
#include "ffn/kernels/ffn_weights.h"

namespace ffn {

// Element types of tensors and of the computation.
enum class DataType { kF32, kBf16 };
const char* DataTypeName(DataType type);  // "f32", "bf16"

// One engine call: y [m, d_model] = FFN(x [m, d_model]).
//
// compute = kF32: fp32 matmuls and activation. compute = kBf16: bf16 inputs
// and weights with fp32 accumulation, the activation computed in fp32 and
// rounded once to bf16 for the second matmul, whose fp32 result is rounded
// to bf16 only if y is bf16. x and y may be f32 or bf16 in either mode (x is
// converted to the compute type first).
struct FfnRun {
  Activation activation = Activation::kRelu;
  DataType compute = DataType::kF32;
  const void* x = nullptr;
  DataType x_type = DataType::kF32;
  int64_t m = 0;
  void* y = nullptr;
  DataType y_type = DataType::kF32;
  // Benchmarks only: skip the epilogue (bias, activation, gated product) to
  // time the two matmuls alone. The answer is then meaningless.
  bool skip_epilogue_for_timing = false;
};

class FfnBlock {
 public:
  // Validates the weights and builds the M = 1 primitives. INVALID_ARGUMENT
  // for inconsistent weights, INTERNAL if oneDNN cannot build a primitive.
  static absl::StatusOr<std::unique_ptr<FfnBlock>> Create(FfnWeights weights,
                                                          ActivationParams params = {});
  ~FfnBlock();

  // Computes `run`. INVALID_ARGUMENT if m <= 0 or the activation's kind
  // (plain/gated) is not the model's; INTERNAL if oneDNN fails. x and y must
  // not overlap.
  absl::Status Run(const FfnRun& run) const;
  // fp32 in, fp32 compute, fp32 out.
  absl::Status Run(Activation activation, const float* x, int64_t m, float* y) const {
    return Run({activation, DataType::kF32, x, DataType::kF32, m, y, DataType::kF32});
  }

  // The weights; for gated models wg and wu are empty, their values having
  // moved into the stacked matrix the engine reads.
  const FfnWeights& weights() const;
  // The parameters with prelu_alpha pointing into weights().prelu_alpha.
  const ActivationParams& params() const;
  FfnKind kind() const { return weights().kind; }
  int64_t d_model() const { return weights().d_model; }
  int64_t d_ff() const { return weights().d_ff; }
  // Multiply-add count × 2 for m tokens.
  double Flops(int64_t m) const;
  // Builds the primitives for every token count in [1, max_m] and both
  // compute dtypes now (about 1 ms per count), so requests of those sizes
  // never pay for it. INTERNAL if oneDNN fails.
  absl::Status Prepare(int64_t max_m) const;
  // oneDNN's implementation names for the two matmuls at m tokens, e.g.
  // "brg:avx512_core / brg:avx512_core".
  absl::StatusOr<std::string> ImplementationFor(int64_t m,
                                                DataType compute = DataType::kF32) const;

 private:
  struct Impl;
  explicit FfnBlock(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "oneDNN 2.6.3 (cpu runtime OMP, isa avx512_core_amx)".
std::string OneDnnDescription();

}  // namespace ffn

#endif  // FFN_KERNELS_FFN_BLOCK_H_
