// Weights of one FFN block and the seeded generator for random ones.
//
// Layout is PyTorch nn.Linear's: a projection from `in` to `out` features is
// a row-major [out, in] matrix.
//   plain: w1 [d_ff, d_model], b1 [d_ff], w2 [d_model, d_ff], b2 [d_model]
//   gated: wg [d_ff, d_model], wu [d_ff, d_model], w2 [d_model, d_ff]
//
// The random generator is documented in docs/API.md so that a client can
// recompute any random model's weights from its seed:
//   SplitMix64 with state₀ = seed + stream·0xD1B54A32D192ED69; each value
//   advances state by 0x9E3779B97F4A7C15, mixes it, keeps the top 24 bits as
//   u ∈ [0, 1) and returns scale·(2u − 1).
#ifndef FFN_KERNELS_FFN_WEIGHTS_H_
#define FFN_KERNELS_FFN_WEIGHTS_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "ffn/kernels/dtype.h"

namespace ffn {

enum class FfnKind { kPlain, kGated };

// Optional pre-norm of a transformer FFN sub-layer, y = x + FFN(norm(x)):
//   layernorm: (x − mean) / √(var + eps) · gamma + beta   (var: biased)
//   rmsnorm:   x / √(mean(x²) + eps) · gamma
enum class NormKind { kNone, kLayerNorm, kRmsNorm };
const char* NormName(NormKind norm);  // "none", "layernorm", "rmsnorm"

// Where a norm of the block's output sits (Hugging Face sub-layers):
//   before the residual: y = x + norm_out(FFN(...))  (Gemma 2's
//                        post_feedforward_layernorm)
//   after the residual:  y = norm_out(x + FFN(...))  (post-norm: BERT,
//                        RoBERTa, OPT with do_layer_norm_before false)
enum class OutputNormPlace { kBeforeResidual, kAfterResidual };

struct FfnWeights {
  FfnKind kind = FfnKind::kPlain;
  int64_t d_model = 0;
  int64_t d_ff = 0;
  bool has_bias = false;             // plain only; gated models have no biases
  std::vector<float> w1, b1, b2;     // plain
  std::vector<float> wg, wu;         // gated
  std::vector<float> w2;             // both
  // The type the matrices come in. kBf16 (weights stored in bf16, as most
  // checkpoints are): w1, wg, wu and w2 stay empty and their *_bf16 twins
  // hold them; the engine then keeps one bf16 copy and computes f32 with its
  // values widened, which is exact. Vectors and norms are f32 either way.
  DataType matrix_type = DataType::kF32;
  std::vector<uint16_t> w1_bf16, wg_bf16, wu_bf16, w2_bf16;
  std::vector<float> prelu_alpha;    // plain: 1 or d_ff slopes; empty means {0.25}
  NormKind norm = NormKind::kNone;
  float norm_eps = 1e-5f;
  std::vector<float> norm_gamma;     // [d_model] with a norm
  std::vector<float> norm_beta;      // [d_model] with layernorm
  bool residual = false;             // y = x + FFN(...)
  // Optional norm of the output, placed as out_norm_place says.
  NormKind out_norm = NormKind::kNone;
  OutputNormPlace out_norm_place = OutputNormPlace::kAfterResidual;
  float out_norm_eps = 1e-5f;
  std::vector<float> out_norm_gamma;  // [d_model] with an output norm
  std::vector<float> out_norm_beta;   // [d_model] with a layernorm output norm

  // OK if every tensor present has the size its role needs. INVALID_ARGUMENT
  // naming the tensor otherwise.
  absl::Status Validate() const;
};

// Makes bf16 matrices f32 (exactly; matrix_type becomes kF32), for code that
// reads w1, wg, wu and w2 (the fp64 reference). No-op for f32 matrices.
void WidenMatrices(FfnWeights& weights);

// Generator streams: each tensor of a random model draws from its own stream.
enum class RandomStream : uint64_t {
  kW1 = 1, kB1 = 2, kW2 = 3, kB2 = 4, kWg = 5, kWu = 6, kNormGamma = 7, kNormBeta = 8,
  kInput = 100,  // the clients' seeded request inputs
};

// Fills `out` with scale·U(-1, 1) values from (seed, stream).
void FillUniform(uint64_t seed, RandomStream stream, float scale, std::span<float> out);

// Unit-variance-preserving random weights: every matrix U(-a, a) with
// a = √(3 / fan_in); biases U(-1/√fan_in, 1/√fan_in) as PyTorch's default;
// prelu_alpha {0.25}. Plain models have biases; gated ones do not.
FfnWeights RandomFfnWeights(FfnKind kind, int64_t d_model, int64_t d_ff, uint64_t seed);

// Adds a random pre-norm to `weights`: gamma = 1 + 0.1·U(-1, 1) (stream 7),
// beta = 0.1·U(-1, 1) (stream 8, layernorm only).
void AddRandomNorm(FfnWeights& weights, NormKind norm, uint64_t seed);

// The scale of random request inputs: U(-√3, √3) has unit variance.
inline constexpr float kRandomInputScale = 1.7320508f;

}  // namespace ffn

#endif  // FFN_KERNELS_FFN_WEIGHTS_H_
