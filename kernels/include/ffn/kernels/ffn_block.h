// FfnBlock: the feed-forward block of a transformer layer on oneDNN and
// ffnserve's own kernels, in fp32 or bf16.
//
//   plain: y = act(x·W1ᵀ + b1)·W2ᵀ + b2
//   gated: y = (act(x·Wgᵀ) ⊙ (x·Wuᵀ))·W2ᵀ
//   optionally y = x + FFN(norm(x)) (pre-norm and residual, per model)
//
// Three strategies run the activation between the two matmuls:
//   unfused  oneDNN matmul (+ b1), a separate pass of our activation kernels
//            over the whole [M, d_ff] (gated: [M, 2·d_ff]) intermediate, then
//            the second matmul.
//   postops  oneDNN's own eltwise / prelu / binary-mul post-ops on the first
//            matmul (gated: per column block, act(x·Wgᵀ) ⊙ (x·Wuᵀ) as an
//            eltwise then a binary-mul post-op).
//   fused    the intermediate never leaves the cache: for M <= 32
//            (decode-like) our AVX-512 dot-product kernels stream each
//            weight once, each thread owning a share of d_ff's column blocks
//            and applying the epilogue to a block as soon as it is computed;
//            for larger M (or without AVX-512), d_ff is cut into column
//            blocks of kColumnBlock whose first-matmul output gets the
//            epilogue while in L2 and is multiplied into y at once.
//   auto     per M range, the faster of unfused and fused as Tune() measured
//            (before tuning: fused for one token, unfused above). Never
//            postops, whose activations are less accurate: a model runs it
//            only by asking for it.
// Each strategy computes the same function; they differ in speed, and in the
// last bits (postops uses oneDNN's activation approximations; fused sums
// the second matmul in column blocks).
// Gated models keep Wg and Wu interleaved by column block ([Wg_0; Wu_0;
// Wg_1; Wu_1; ...], kColumnBlock rows each), so one GEMM over a block gives
// both halves side by side. The block keeps its matrices once, packed for
// the small-M kernels in the type they came in (FfnWeights::matrix_type:
// a bf16 checkpoint stays bf16, and its f32 compute widens the values,
// exactly); other forms (bf16 packs of f32 matrices, the nn.Linear rows
// oneDNN reads as the transposed operand) are made the first time a call
// needs them. oneDNN primitives are built once per shape and cached.
// The pieces, in kernels/src: prepared_weights (the weights in the forms the
// strategies read), onednn_matmul (primitives and packed weights),
// strategies (the bodies above), plan (auto's choice and its tuning).
//
// Example:
//   ASSIGN_OR_RETURN(std::unique_ptr<ffn::FfnBlock> block,
//                    ffn::FfnBlock::Create(ffn::RandomFfnWeights(ffn::FfnKind::kPlain, 768, 3072, 1)));
//   std::vector<float> x(4 * 768, 0.5f), y(x.size());
//   RETURN_IF_ERROR(block->Run(ffn::Activation::kGelu, x.data(), /*m=*/4, y.data()));
//
// Run() and the other const methods may be called from several threads at
// once; Tune() and SetStrategy() change the plan and belong before serving.
// Each Run uses the calling thread's OpenMP thread count (omp_set_num_threads).
#ifndef FFN_KERNELS_FFN_BLOCK_H_
#define FFN_KERNELS_FFN_BLOCK_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ffn/kernels/activation.h"
#include "ffn/kernels/dtype.h"
#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/moe.h"

namespace ffn {

// How the activation between the two matmuls is run (see the top).
enum class Strategy { kUnfused, kPostops, kFused, kAuto };
const char* StrategyName(Strategy strategy);  // "unfused", "postops", "fused", "auto"
std::optional<Strategy> ParseStrategy(std::string_view name);
// unfused, postops, fused: the ones a run can be forced to.
std::vector<Strategy> ConcreteStrategies();
// What a model running `strategy` promises about its answers, one line for
// ListModels (the measured figures are in docs/ACCURACY.md).
const char* StrategyAccuracy(Strategy strategy);

// How a block keeps its matrices. kInt8: each weight row quantized
// symmetrically to int8 with its own scale (per output channel), made at
// Create from the f32/bf16 matrices, which are then dropped; every call
// quantizes each token to int8 in groups of 32 values with a scale each (as
// llama.cpp's Q8_0 does), sums each group exactly in int32 (AVX512-VNNI
// where the CPU has it) and scales it into f32, applies the weight row's
// scale in the fused epilogue before bias and activation, and quantizes the
// activated row the same way for the second matmul. Half the bytes of
// bf16, a quarter of f32; the answers are batch-invariant, and their error
// is an int8 one (docs/ACCURACY.md).
enum class Quantization { kNone, kInt8 };
const char* QuantizationName(Quantization quantization);  // "none", "int8"
std::optional<Quantization> ParseQuantization(std::string_view name);

// Gated weights are interleaved by blocks of this many columns of d_ff; the
// fused strategy's large-M path cuts d_ff into blocks of the same size.
inline constexpr int64_t kColumnBlock = 256;

// Consecutive rows of a call that share an activation (FfnRun::segments).
struct ActivationSegment {
  int64_t rows = 0;
  Activation activation = Activation::kRelu;
};

// What a mixture-of-experts call did, per expert: tokens routed to it and
// the seconds its engine call took (0 and 0 for experts without tokens).
struct MoeCounters {
  std::vector<int64_t> tokens;
  std::vector<double> seconds;
};

// One engine call: y [m, d_model] = FFN(x [m, d_model]).
//
// compute = kF32: fp32 matmuls and activation. compute = kBf16: bf16 inputs
// and weights with fp32 accumulation, the activation computed in fp32 and
// rounded once to bf16 for the second matmul, whose fp32 result is rounded
// to bf16 only if y is bf16. x and y may be f32 or bf16 in either mode (x is
// converted to the compute type first).
struct FfnRun {
  // Every row's activation, unless `segments` says otherwise.
  Activation activation = Activation::kRelu;
  DataType compute = DataType::kF32;
  const void* x = nullptr;
  DataType x_type = DataType::kF32;
  int64_t m = 0;
  void* y = nullptr;
  DataType y_type = DataType::kF32;
  // kAuto: the block's plan for m tokens; otherwise forces that strategy.
  Strategy strategy = Strategy::kAuto;
  // Benchmarks only (unfused and fused; postops ignores it): skip the epilogue (bias, activation, gated product) to
  // time the two matmuls alone. The answer is then meaningless.
  bool skip_epilogue_for_timing = false;
  // true: each token's output bits do not depend on m nor on the other rows
  // (batch invariance): the fused strategy's small-M kernels run at every m,
  // in chunks of up to 128 tokens, so every sum over d_model and d_ff has the
  // same order (whatever the thread count, too). Needs strategy kAuto or
  // kFused (INVALID_ARGUMENT otherwise); the plan is not consulted.
  bool batch_invariant = false;
  // Rows with different activations in one call (requests of several
  // variants batched together): the first segment's rows, then the next's;
  // their rows must add up to m, each activation of the model's kind. Empty:
  // every row runs `activation`. The matmuls are shared; postops, whose
  // activation is part of the primitive, runs one call per segment.
  std::span<const ActivationSegment> segments = {};
  // Mixture-of-experts blocks only (ignored otherwise): the routing to use
  // instead of the router's (INVALID_ARGUMENT unless ValidateRouting
  // accepts it; a token whose first id is -1 takes the router's), where to
  // copy the routing used, and where to count each expert's work.
  const MoeRouting* routing = nullptr;
  MoeRouting* routing_out = nullptr;
  MoeCounters* counters = nullptr;
};

// What Tune() measured: per compute dtype and probe token count, the time of
// each strategy (the minimum over interleaved rounds) and the one chosen for
// that M range.
struct TuneResult {
  struct Probe {
    DataType compute;
    int64_t m;
    double ms[3];  // unfused, postops, fused; < 0 where not timed (postops, always)
    Strategy chosen;
  };
  std::vector<Probe> probes;
  // Points timed again for being far above what their neighbours allow.
  int retimed = 0;
  // "f32: m=1 fused (unfused 0.61, postops 0.64, fused 0.30 ms); ..."
  std::string ToString() const;
  // The chosen strategy's time in ms at m tokens of `compute`: linear
  // between the probes around m, the nearest probe's outside them; < 0
  // without probes of that dtype.
  double PlannedMs(DataType compute, double m) const;
};

class FfnBlock {
 public:
  // Validates the weights and packs them (Prepare builds the rest).
  // INVALID_ARGUMENT for inconsistent weights.
  static absl::StatusOr<std::unique_ptr<FfnBlock>> Create(
      FfnWeights weights, ActivationParams params = {},
      Quantization quantization = Quantization::kNone);
  // A mixture-of-experts block (moe.h): each expert a gated block of its
  // own, run on the tokens routed to it. INVALID_ARGUMENT for inconsistent
  // weights. Its weights() describe one expert's shape and the norms and
  // residual around the layer; Tune() has nothing to tune (experts run
  // batch-invariant, or the untuned rule).
  // kInt8: every expert (and the shared one) int8; the router stays f32.
  static absl::StatusOr<std::unique_ptr<FfnBlock>> CreateMoe(
      MoeWeights weights, ActivationParams params = {},
      Quantization quantization = Quantization::kNone);
  ~FfnBlock();

  // Mixture of experts: the router and settings (experts' matrices moved
  // out), and each expert's block; null and 0 for a dense block.
  const MoeWeights* moe() const;
  int64_t num_experts() const;
  const FfnBlock& expert(int64_t e) const;
  const FfnBlock* shared_expert() const;

  // Computes `run`. INVALID_ARGUMENT if m <= 0 or the activation's kind
  // (plain/gated) is not the model's; INTERNAL if oneDNN fails. x and y must
  // not overlap.
  absl::Status Run(const FfnRun& run) const;
  // fp32 in, fp32 compute, fp32 out.
  absl::Status Run(Activation activation, const float* x, int64_t m, float* y) const {
    return Run({activation, DataType::kF32, x, DataType::kF32, m, y, DataType::kF32});
  }

  // The weights without their matrices (w1, wg, wu, w2 and the bf16 twins
  // are empty: their values moved into the packed copy the engine reads).
  const FfnWeights& weights() const;
  // The matrices back in f32, as given (gated: wg and wu), with the rest of
  // weights(); allocates a copy. The type they are kept in: MatrixType().
  FfnWeights UnpackedWeights() const;
  DataType MatrixType() const;
  // kInt8: every call runs the int8 path, whatever its compute dtype and
  // strategy (kAuto or kFused; others are refused), batch-invariant.
  Quantization quantization() const;
  // The parameters with prelu_alpha pointing into weights().prelu_alpha.
  const ActivationParams& params() const;
  FfnKind kind() const { return weights().kind; }
  int64_t d_model() const { return weights().d_model; }
  int64_t d_ff() const { return weights().d_ff; }
  // Multiply-add count × 2 for m tokens.
  double Flops(int64_t m) const;
  // Builds what calls of every token count in [1, max_m] and both compute
  // dtypes need now (primitives: about 1 ms per count; weight forms), so
  // requests of those sizes never pay for it; batch_invariant: for
  // batch-invariant calls, which need no primitives. INTERNAL if oneDNN
  // fails.
  absl::Status Prepare(int64_t max_m, bool batch_invariant = false) const;
  // Times unfused and fused for both compute dtypes at token counts 1, 2,
  // 4, ..., 512 (those <= max_m, and max_m), in interleaved rounds keeping
  // each one's minimum, timing again any point more than 2x above what its
  // neighbouring counts allow (noise), with the model's representative
  // activation (gelu, or swiglu for gated models; also the one Prepare and
  // PlannedStrategy use), and makes the faster the auto plan for the M range
  // around each count, keeping only the packed weight copies the plan uses.
  // postops is neither timed nor chosen: auto only runs paths with our
  // activation kernels, whose accuracy docs/ACCURACY.md states. Takes about
  // 9 engine calls per count and dtype; call before serving.
  absl::StatusOr<TuneResult> Tune(int64_t max_m);
  // Makes kAuto run `strategy` at every M (kAuto: back to the untuned rule).
  void SetStrategy(Strategy strategy);
  // The plan kAuto runs, as Tune() or SetPlan() (or Retime()) left it;
  // nullopt when the block runs the untuned rule or a fixed strategy.
  std::optional<TuneResult> Plan() const;
  // Times unfused and fused again at the plan's probe of m tokens in
  // `compute` (as Tune() times a point) and swaps the faster in for that
  // probe: for a plan tuned under noise, or a machine that changed. Safe
  // while other threads Run (they see the old plan or the new one); both
  // strategies' weight forms then stay made. Returns the fresh probe;
  // NOT_FOUND if the plan has no probe at m for `compute`.
  absl::StatusOr<TuneResult::Probe> Retime(int64_t m, DataType compute);
  // Makes kAuto run the plan a Tune() of an identical block made before (a
  // plan cache): each probe's chosen strategy for its M range. INVALID_ARGUMENT
  // if a probe's m is not positive or its choice is not unfused or fused.
  absl::Status SetPlan(const TuneResult& tuned);
  // Bytes of weight copies packed for oneDNN.
  size_t PackedWeightBytes() const;
  // Bytes of every weight copy the block holds: the packed matrices, forms
  // made from them, oneDNN's packed copies.
  size_t WeightBytes() const;
  // The strategy kAuto runs for m tokens in `compute`.
  Strategy PlannedStrategy(int64_t m, DataType compute) const;

  // oneDNN's implementation names for the two matmuls at m tokens, e.g.
  // "brg:avx512_core / brg:avx512_core" (batch_invariant: the kernels such
  // a call runs instead).
  absl::StatusOr<std::string> ImplementationFor(int64_t m, DataType compute = DataType::kF32,
                                                bool batch_invariant = false) const;

 private:
  struct Impl;
  explicit FfnBlock(std::unique_ptr<Impl> impl);
  // Makes `tuned` the plan kAuto runs (SetPlan's checks), leaving Plan()
  // as it is.
  absl::Status ApplyPlan(const TuneResult& tuned);
  std::unique_ptr<Impl> impl_;
};

// "oneDNN 2.6.3 (OpenMP runtime, max ISA avx512_core_amx, 2 threads)".
std::string OneDnnDescription();
// "2.6.3 avx512_core_amx": the library's version and the ISA it runs.
std::string OneDnnVersion();

}  // namespace ffn

#endif  // FFN_KERNELS_FFN_BLOCK_H_
