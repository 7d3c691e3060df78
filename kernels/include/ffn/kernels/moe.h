// Mixture-of-experts FFN layers: the weights, their seeded generator, and
// the routing every MoE answer starts from (shared by the engine and the
// fp64 reference, so both choose the same experts).
//
//   logits = x·Wrᵀ                  router Wr [experts, d_model]
//   p      = softmax(logits)         in fp32 as transformers computes it
//   top_k experts by p (ties: the lower id), weights p_i, divided by their
//   sum where normalize_top_k (Mixtral, Qwen3-MoE; Qwen2-MoE by config)
//   y      = Σ_i w_i · expert_i(x)  in rank order
//          + σ(x·g) · shared(x)      where a shared expert is given (Qwen2-MoE)
//
// Every expert is a gated FFN (no biases) of the same d_ff; the shared
// expert may have its own d_ff.
//
// Example:
//   ffn::MoeWeights moe = ffn::RandomMoeWeights({768, 1024, 8, 2, 0}, /*seed=*/7);
//   std::vector<float> x(3 * 768, 0.5f);
//   ffn::MoeRouting routing = ffn::RouteTokens(moe, x.data(), 3, ffn::DataType::kF32);
#ifndef FFN_KERNELS_MOE_H_
#define FFN_KERNELS_MOE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ffn/kernels/dtype.h"
#include "ffn/kernels/ffn_weights.h"

namespace ffn {

struct MoeShape {
  int64_t d_model = 0;
  int64_t d_ff = 0;          // each expert's
  int64_t experts = 0;
  int64_t top_k = 0;
  int64_t shared_d_ff = 0;   // 0: no shared expert
};

struct MoeWeights {
  // d_model, d_ff (each expert's) and what surrounds the layer (norms,
  // residual); its matrices are empty.
  FfnWeights outer;
  int64_t top_k = 0;
  bool normalize_top_k = true;
  std::vector<float> router;          // [experts, d_model]
  std::vector<FfnWeights> experts;    // gated, d_model × d_ff each
  std::optional<FfnWeights> shared;   // gated, its own d_ff
  std::vector<float> shared_gate;     // [d_model], with a shared expert

  // The router's rows (the experts may have moved into an engine).
  int64_t num_experts() const {
    return outer.d_model > 0 ? static_cast<int64_t>(router.size()) / outer.d_model : 0;
  }
  // INVALID_ARGUMENT naming what does not fit: top_k outside [1, experts],
  // a router of the wrong size, an expert of another shape or kind.
  absl::Status Validate() const;
};

// Generator streams of the router and the shared expert's gate.
inline constexpr uint64_t kRouterStream = 9, kSharedGateStream = 10;

// Random weights, documented in docs/API.md so a client can rebuild them:
// expert e is RandomFfnWeights(gated, d_model, d_ff, seed + 1 + e), the
// shared expert RandomFfnWeights(gated, d_model, shared_d_ff, seed + 1 +
// experts); router and shared gate U(-a, a), a = √(3 / d_model), from
// (seed, streams 9 and 10). Top-k weights normalized.
MoeWeights RandomMoeWeights(const MoeShape& shape, uint64_t seed);

// Each token's experts and weights, top_k of each, rank order.
struct MoeRouting {
  int64_t top_k = 0;
  std::vector<int32_t> ids;     // [m, top_k]
  std::vector<float> weights;   // [m, top_k]
};

// The routing of x [m, d_model] (f32): logits summed in double and rounded
// to f32, or for bf16 compute from x and Wr rounded to bf16 with the logits
// and weights rounded to bf16 as a bf16 model computes them; softmax in
// double rounded to f32.
MoeRouting RouteTokens(const MoeWeights& weights, const float* x, int64_t m, DataType compute);

// A routing given by a caller for m tokens: INVALID_ARGUMENT unless it has
// m·top_k ids in [0, experts), no id twice for a token, and finite weights.
absl::Status ValidateRouting(const MoeRouting& routing, int64_t m, int64_t experts,
                             int64_t top_k);

}  // namespace ffn

#endif  // FFN_KERNELS_MOE_H_
