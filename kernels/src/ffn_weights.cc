#include "ffn/kernels/ffn_weights.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace ffn {

void FillUniform(uint64_t seed, RandomStream stream, float scale, std::span<float> out) {
  uint64_t state = seed + static_cast<uint64_t>(stream) * 0xD1B54A32D192ED69ull;
  for (float& value : out) {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * 0x1.0p-24f;  // exact, in [0, 1)
    value = scale * (2.0f * u - 1.0f);
  }
}

FfnWeights RandomFfnWeights(FfnKind kind, int64_t d_model, int64_t d_ff, uint64_t seed) {
  FfnWeights w;
  w.kind = kind;
  w.d_model = d_model;
  w.d_ff = d_ff;
  const size_t up_size = static_cast<size_t>(d_ff * d_model);
  const float up_scale = std::sqrt(3.0f / static_cast<float>(d_model));
  const float down_scale = std::sqrt(3.0f / static_cast<float>(d_ff));
  w.w2.resize(up_size);
  FillUniform(seed, RandomStream::kW2, down_scale, w.w2);
  if (kind == FfnKind::kPlain) {
    w.has_bias = true;
    w.w1.resize(up_size);
    w.b1.resize(static_cast<size_t>(d_ff));
    w.b2.resize(static_cast<size_t>(d_model));
    FillUniform(seed, RandomStream::kW1, up_scale, w.w1);
    FillUniform(seed, RandomStream::kB1, 1.0f / std::sqrt(static_cast<float>(d_model)), w.b1);
    FillUniform(seed, RandomStream::kB2, 1.0f / std::sqrt(static_cast<float>(d_ff)), w.b2);
    w.prelu_alpha = {0.25f};
  } else {
    w.wg.resize(up_size);
    w.wu.resize(up_size);
    FillUniform(seed, RandomStream::kWg, up_scale, w.wg);
    FillUniform(seed, RandomStream::kWu, up_scale, w.wu);
  }
  return w;
}

const char* NormName(NormKind norm) {
  switch (norm) {
    case NormKind::kNone: return "none";
    case NormKind::kLayerNorm: return "layernorm";
    case NormKind::kRmsNorm: return "rmsnorm";
  }
  return "none";
}

void AddRandomNorm(FfnWeights& weights, NormKind norm, uint64_t seed) {
  weights.norm = norm;
  weights.norm_gamma.clear();
  weights.norm_beta.clear();
  if (norm == NormKind::kNone) return;
  weights.norm_gamma.resize(static_cast<size_t>(weights.d_model));
  FillUniform(seed, RandomStream::kNormGamma, 0.1f, weights.norm_gamma);
  for (float& g : weights.norm_gamma) g += 1.0f;
  if (norm == NormKind::kLayerNorm) {
    weights.norm_beta.resize(static_cast<size_t>(weights.d_model));
    FillUniform(seed, RandomStream::kNormBeta, 0.1f, weights.norm_beta);
  }
}

absl::Status FfnWeights::Validate() const {
  if (d_model <= 0 || d_ff <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("d_model and d_ff must be positive (got ", d_model, ", ", d_ff, ")"));
  }
  const size_t matrix = static_cast<size_t>(d_model * d_ff);
  auto check = [](const char* name, const auto& t, size_t want) -> absl::Status {
    if (t.size() != want) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", name, " has ", t.size(), " values, expected ", want));
    }
    return absl::OkStatus();
  };
  if (matrix_type != DataType::kF32 && matrix_type != DataType::kBf16) {
    return absl::InvalidArgumentError("matrices must be f32 or bf16");
  }
  const bool bf16 = matrix_type == DataType::kBf16;
  // The other type's matrices must be empty: one copy is the point.
  for (const size_t other : {bf16 ? w1.size() : w1_bf16.size(), bf16 ? wg.size() : wg_bf16.size(),
                             bf16 ? wu.size() : wu_bf16.size(), bf16 ? w2.size() : w2_bf16.size()}) {
    if (other != 0) {
      return absl::InvalidArgumentError(absl::StrCat("matrices are ", DataTypeName(matrix_type),
                                                     " but some are given in the other type too"));
    }
  }
  absl::Status s = bf16 ? check("w2", w2_bf16, matrix) : check("w2", w2, matrix);
  if (kind == FfnKind::kPlain) {
    if (s.ok()) s = bf16 ? check("w1", w1_bf16, matrix) : check("w1", w1, matrix);
    if (s.ok() && has_bias) s = check("b1", b1, static_cast<size_t>(d_ff));
    if (s.ok() && has_bias) s = check("b2", b2, static_cast<size_t>(d_model));
    if (s.ok() && !prelu_alpha.empty() && prelu_alpha.size() != 1 &&
        prelu_alpha.size() != static_cast<size_t>(d_ff)) {
      s = absl::InvalidArgumentError(absl::StrCat("prelu alpha has ", prelu_alpha.size(),
                                                  " values, expected 1 or d_ff = ", d_ff));
    }
  } else {
    if (s.ok()) s = bf16 ? check("wg", wg_bf16, matrix) : check("wg", wg, matrix);
    if (s.ok()) s = bf16 ? check("wu", wu_bf16, matrix) : check("wu", wu, matrix);
  }
  if (s.ok() && norm != NormKind::kNone) {
    s = check("norm_weight", norm_gamma, static_cast<size_t>(d_model));
    if (s.ok() && norm == NormKind::kLayerNorm) s = check("norm_bias", norm_beta, static_cast<size_t>(d_model));
    if (s.ok() && !(norm_eps > 0.0f)) s = absl::InvalidArgumentError("norm eps must be positive");
  }
  if (s.ok() && out_norm != NormKind::kNone) {
    s = check("out_norm_weight", out_norm_gamma, static_cast<size_t>(d_model));
    if (s.ok() && out_norm == NormKind::kLayerNorm) {
      s = check("out_norm_bias", out_norm_beta, static_cast<size_t>(d_model));
    }
    if (s.ok() && !(out_norm_eps > 0.0f)) {
      s = absl::InvalidArgumentError("output norm eps must be positive");
    }
  }
  return s;
}

void WidenMatrices(FfnWeights& weights) {
  if (weights.matrix_type != DataType::kBf16) return;
  auto widen = [](std::vector<uint16_t>& from, std::vector<float>& to) {
    to.resize(from.size());
    CopyConverting(from.data(), DataType::kBf16, to.data(), DataType::kF32, from.size());
    std::vector<uint16_t>().swap(from);  // gives the memory back
  };
  widen(weights.w1_bf16, weights.w1);
  widen(weights.wg_bf16, weights.wg);
  widen(weights.wu_bf16, weights.wu);
  widen(weights.w2_bf16, weights.w2);
  weights.matrix_type = DataType::kF32;
}

}  // namespace ffn
