// Activation functions of the FFN block: names, parameters and the scalar
// fp32 form every vector kernel (epilogue.h) must match.
//
// Plain activations act on one tensor; gated ones combine the gate and up
// projections: out = gate_act(gate) ⊙ up (the activated half is the gate,
// LLaMA's gate_proj).
//
// Example:
//   ffn::ActivationParams params;  // PyTorch's inference defaults
//   std::optional<ffn::Activation> gelu = ffn::ParseActivation("gelu");
//   float y = ffn::ActivationScalar(*gelu, params, 0.5f);
//
// Needs no oneDNN and no OpenMP (library ffn_math). Accuracy of these kernels against an fp64 reference (tested in
// tests/kernels/activation_test.cc over a dense sweep plus special values):
//   relu, leaky_relu, prelu, rrelu, reglu: exact (one rounding of a product).
//   elu, sigmoid, tanh, gelu, gelu_tanh, silu, quick_gelu, glu, swiglu, geglu,
//   geglu_tanh: at most 4 ULP, or 1e-7 absolute where the result is below
//   1e-6 in magnitude.
// Special values: NaN in gives NaN out; ±inf give the function's limits
// (relu(+inf)=+inf, sigmoid(-inf)=0, gelu(-inf)=-0 or 0, elu(-inf)=-α, ...);
// ±0 keep their sign where the function is odd at 0; no finite input gives
// NaN, and no finite input with a finite answer gives inf (|x| >= 88 included).
#ifndef FFN_KERNELS_ACTIVATION_H_
#define FFN_KERNELS_ACTIVATION_H_

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

namespace ffn {

enum class Activation {
  kRelu,
  kLeakyRelu,
  kPrelu,
  kRrelu,
  kElu,
  kSigmoid,
  kTanh,
  kGelu,
  kGeluTanh,
  kSilu,
  kGlu,
  kSwiglu,
  kGeglu,
  kReglu,
  // Appended so that the values above keep their numbers.
  kQuickGelu,  // x·σ(1.702·x): Hugging Face's QuickGELUActivation (CLIP)
  kGegluTanh,  // gelu_tanh(g) ⊙ u: Gemma's GeGLU, T5 v1.1's gated-gelu
};

// The API name ("relu", "gelu_tanh", "swiglu", ...).
const char* ActivationName(Activation activation);
// Parses an API name; nullopt if it is not exactly one of them.
std::optional<Activation> ParseActivation(std::string_view name);
// True for glu, swiglu, geglu, reglu, geglu_tanh.
bool IsGated(Activation activation);
// For a gated activation, the plain function applied to the gate
// (glu→sigmoid, swiglu→silu, geglu→gelu, reglu→relu, geglu_tanh→gelu_tanh).
Activation GateFunction(Activation gated);

std::span<const Activation> AllActivations();
std::span<const Activation> PlainActivations();
std::span<const Activation> GatedActivations();

// Inference-time parameters. Defaults are PyTorch's.
struct ActivationParams {
  float leaky_relu_slope = 0.01f;
  float rrelu_lower = 1.0f / 8.0f;
  float rrelu_upper = 1.0f / 3.0f;
  float elu_alpha = 1.0f;
  // PReLU slopes: one shared value, or one per channel (column). Never empty.
  std::span<const float> prelu_alpha;

  // RReLU in inference uses the fixed slope (lower + upper) / 2.
  float rrelu_slope() const { return (rrelu_lower + rrelu_upper) / 2.0f; }
};

// The fp32 value of a plain activation at x, for channel `channel` (used by
// prelu only). This is the scalar reference the vector kernels must match.
float ActivationScalar(Activation activation, const ActivationParams& params, float x,
                       size_t channel = 0);

}  // namespace ffn

#endif  // FFN_KERNELS_ACTIVATION_H_
