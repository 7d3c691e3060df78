// The models the request fuzz targets validate against: a plain, a gated
// (max 4 tokens) and a mixture-of-experts model, loaded once.
#ifndef FFN_TESTS_FUZZ_FUZZ_MODELS_H_
#define FFN_TESTS_FUZZ_FUZZ_MODELS_H_

#include <cstdlib>

#include "ffn/server/config.h"
#include "ffn/server/model_registry.h"

namespace ffn::fuzz {

inline const ModelRegistry& Registry() {
  static const ModelRegistry* registry = [] {
    auto config = ParseConfig(R"(
server: {max_tokens_per_request: 64}
models:
  - {name: plain, d_model: 16, d_ff: 32, activation: gelu, weights: {random: {seed: 1}}}
  - {name: gated, d_model: 8, d_ff: 16, activation: swiglu, max_tokens: 4,
     weights: {random: {seed: 2}}}
  - {name: moe, d_model: 8, d_ff: 16, activation: swiglu, max_tokens: 8,
     weights: {random: {seed: 3}}, moe: {experts: 4, top_k: 2}}
)", "");
    if (!config.ok()) std::abort();
    auto loaded = ModelRegistry::Load(*config, 1);
    if (!loaded.ok()) std::abort();
    return loaded->release();
  }();
  return *registry;
}

}  // namespace ffn::fuzz

#endif  // FFN_TESTS_FUZZ_FUZZ_MODELS_H_
