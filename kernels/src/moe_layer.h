// The experts of a mixture-of-experts FfnBlock (moe.h has the math): each
// expert, and the shared one, a dense gated FfnBlock of its own. A call
// routes every token, gathers the tokens of each expert that has any into
// one engine call of that expert (no work for the others), and combines
// each token's expert outputs in its rank order, so a token's answer does
// not depend on the other tokens of the call when the expert calls are
// batch-invariant.
#ifndef FFN_KERNELS_SRC_MOE_LAYER_H_
#define FFN_KERNELS_SRC_MOE_LAYER_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "ffn/kernels/ffn_block.h"
#include "ffn/kernels/moe.h"

namespace ffn {

class MoeLayer {
 public:
  // `weights` must have passed Validate(); its experts move into blocks,
  // kept as `quantization` says.
  static absl::StatusOr<std::unique_ptr<MoeLayer>> Create(MoeWeights weights,
                                                          const ActivationParams& params,
                                                          Quantization quantization);

  // y [m, d_model] = MoE(x [m, d_model]) in f32, row r's experts running
  // row_activation[r]; run gives compute, strategy, invariance, routing and
  // counters. Expert calls reuse the engine's per-thread scratch: the caller
  // must hold none of it across this call (row_activation included).
  absl::Status Run(const FfnRun& run, const Activation* row_activation, const float* x, int64_t m,
                   float* y) const;

  // Makes every expert's auto run `strategy` (FfnBlock::SetStrategy).
  void SetStrategy(Strategy strategy);

  const MoeWeights& meta() const { return meta_; }  // experts' matrices moved out
  const FfnBlock& expert(int64_t e) const { return *experts_[static_cast<size_t>(e)]; }
  const FfnBlock* shared() const { return shared_.get(); }
  int64_t num_experts() const { return static_cast<int64_t>(experts_.size()); }

 private:
  MoeWeights meta_;
  std::vector<std::unique_ptr<FfnBlock>> experts_;
  std::unique_ptr<FfnBlock> shared_;
};

}  // namespace ffn

#endif  // FFN_KERNELS_SRC_MOE_LAYER_H_
