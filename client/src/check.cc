#include "ffn/client/check.h"

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ffn/client/request.h"
#include "ffn/common/huggingface.h"
#include "ffn/common/safetensors.h"
#include "ffn/common/status_macros.h"

namespace ffn::client {
namespace {

absl::Status WithModel(const v1::ModelInfo& info, const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrCat("model '", info.name(), "': ", std::string(status.message())));
}

// Reads the tensors of a safetensors model the way the server's registry
// does (server/src/model_registry.cc): same roles, same shapes.
class SafetensorsReader {
 public:
  SafetensorsReader(const SafetensorsFile& file, const v1::SafetensorsWeights& source)
      : file_(file), source_(source) {}

  bool Has(const std::string& role) const { return source_.tensors().contains(role); }

  absl::Status Read(const std::string& role, const std::vector<int64_t>& shape,
                    std::vector<float>& out) const {
    if (!Has(role)) {
      return absl::InvalidArgumentError(absl::StrCat("no tensor named for role ", role));
    }
    auto values = file_.ReadFloat(source_.tensors().at(role), shape);
    if (!values.ok()) {
      return absl::Status(
          values.status().code(),
          absl::StrCat("weight ", role, ": ", std::string(values.status().message())));
    }
    out = std::move(*values);
    return absl::OkStatus();
  }

  // PyTorch stores PReLU's weight as [1] or [num_parameters].
  absl::Status ReadAlpha(int64_t d_ff, std::vector<float>& out) const {
    auto entry = file_.Get(source_.tensors().at("alpha"));
    if (!entry.ok()) return entry.status();
    const int64_t n = entry->shape.empty() ? 1 : entry->shape[0];
    if (entry->shape.size() > 1 || (n != 1 && n != d_ff)) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight alpha: shape must be [1] or [d_ff = ", d_ff, "]"));
    }
    return Read("alpha", entry->shape, out);
  }

 private:
  const SafetensorsFile& file_;
  const v1::SafetensorsWeights& source_;
};

absl::Status ReadSafetensors(const SafetensorsReader& reader, FfnWeights& w) {
  const int64_t dm = w.d_model, dff = w.d_ff;
  if (w.norm != NormKind::kNone) {
    if (auto s = reader.Read("norm_weight", {dm}, w.norm_gamma); !s.ok()) return s;
    if (w.norm == NormKind::kLayerNorm) {
      if (auto s = reader.Read("norm_bias", {dm}, w.norm_beta); !s.ok()) return s;
    }
  }
  if (auto s = reader.Read("w2", {dm, dff}, w.w2); !s.ok()) return s;
  if (w.kind == FfnKind::kGated) {
    if (auto s = reader.Read("wg", {dff, dm}, w.wg); !s.ok()) return s;
    return reader.Read("wu", {dff, dm}, w.wu);
  }
  if (auto s = reader.Read("w1", {dff, dm}, w.w1); !s.ok()) return s;
  w.has_bias = reader.Has("b1");
  if (w.has_bias) {
    if (auto s = reader.Read("b1", {dff}, w.b1); !s.ok()) return s;
    if (auto s = reader.Read("b2", {dm}, w.b2); !s.ok()) return s;
  }
  if (reader.Has("alpha")) return reader.ReadAlpha(dff, w.prelu_alpha);
  return absl::OkStatus();
}

// The model's pre-norm, as ListModels reports it ("" from older servers).
NormKind NormFromInfo(const v1::ModelInfo& info) {
  if (info.norm() == "layernorm") return NormKind::kLayerNorm;
  if (info.norm() == "rmsnorm") return NormKind::kRmsNorm;
  return NormKind::kNone;
}

absl::StatusOr<FfnWeights> BuildWeights(const v1::ModelInfo& info,
                                        const std::string& weights_override) {
  if (info.kind() != v1::PLAIN && info.kind() != v1::GATED) {
    return absl::InvalidArgumentError("reports no model kind (PLAIN or GATED)");
  }
  const FfnKind kind = info.kind() == v1::GATED ? FfnKind::kGated : FfnKind::kPlain;
  if (info.d_model() <= 0 || info.d_ff() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("reports d_model ", info.d_model(), " and d_ff ", info.d_ff()));
  }
  if (info.has_random()) {
    if (!weights_override.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "has random weights (seed ", info.random().seed(), "); a weights file does not apply"));
    }
    FfnWeights w = RandomFfnWeights(kind, info.d_model(), info.d_ff(), info.random().seed());
    const auto& alpha = info.params().prelu_alpha();
    if (kind == FfnKind::kPlain && !alpha.empty()) w.prelu_alpha.assign(alpha.begin(), alpha.end());
    AddRandomNorm(w, NormFromInfo(info), info.random().seed());
    w.norm_eps = info.norm_eps();
    w.residual = info.residual();
    return w;
  }
  if (info.has_huggingface()) {
    // The same reader the server loads the layer with, on the same folder
    // (or --weights, a copy of it where the client runs).
    const v1::HuggingFaceWeights& source = info.huggingface();
    const std::string dir = weights_override.empty() ? source.path() : weights_override;
    auto checkpoint = HuggingFaceCheckpoint::Open(dir);
    if (!checkpoint.ok()) return checkpoint.status();
    auto layer = (*checkpoint)->ReadLayer(source.layer(), source.sublayer());
    if (!layer.ok()) return layer.status();
    return std::move(layer->weights);
  }
  if (!info.has_safetensors()) return absl::InvalidArgumentError("reports no weight source");
  const std::string path = weights_override.empty() ? info.safetensors().path() : weights_override;
  auto file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  FfnWeights w;
  w.kind = kind;
  w.d_model = info.d_model();
  w.d_ff = info.d_ff();
  w.norm = NormFromInfo(info);
  w.norm_eps = info.norm_eps();
  w.residual = info.residual();
  if (auto s = ReadSafetensors(SafetensorsReader(**file, info.safetensors()), w); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", std::string(s.message())));
  }
  if (w.prelu_alpha.empty()) w.prelu_alpha = {0.25f};
  return w;
}

}  // namespace

absl::StatusOr<FfnWeights> WeightsForModel(const v1::ModelInfo& info,
                                           const std::string& weights_override) {
  auto weights = BuildWeights(info, weights_override);
  if (!weights.ok()) return WithModel(info, weights.status());
  if (auto s = weights->Validate(); !s.ok()) return WithModel(info, s);
  return weights;
}

ActivationParams ParamsForModel(const v1::ModelInfo& info, const FfnWeights& weights) {
  static constexpr float kDefaultPreluAlpha[] = {0.25f};
  const v1::ActivationParams& p = info.params();
  ActivationParams params;
  params.leaky_relu_slope = p.leaky_relu_slope();
  params.rrelu_lower = p.rrelu_lower();
  params.rrelu_upper = p.rrelu_upper();
  params.elu_alpha = p.elu_alpha();
  if (!p.prelu_alpha().empty()) {
    params.prelu_alpha = std::span<const float>(p.prelu_alpha().data(), p.prelu_alpha().size());
  } else if (!weights.prelu_alpha.empty()) {
    params.prelu_alpha = weights.prelu_alpha;
  } else {
    params.prelu_alpha = kDefaultPreluAlpha;
  }
  return params;
}

namespace {

// A response's answer to `input` checked for shape: the activation that ran,
// the token count and the output values.
struct Answer {
  Activation activation;
  int64_t tokens;
  std::vector<float> output;
};

absl::StatusOr<Answer> ReadAnswer(const std::string& activation, int64_t d_model,
                                  std::span<const float> input, const v1::InferResponse& response) {
  const std::optional<Activation> parsed = ParseActivation(activation);
  if (!parsed)
    return absl::InvalidArgumentError(absl::StrCat("unknown activation '", activation, "'"));
  if (d_model <= 0 || input.empty() || input.size() % static_cast<size_t>(d_model) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input has ", input.size(), " values, not a positive multiple of d_model = ", d_model));
  }
  const int64_t tokens = static_cast<int64_t>(input.size()) / d_model;
  const v1::Tensor& out = response.output();
  if (out.shape_size() != 2 || out.shape(0) != tokens || out.shape(1) != d_model) {
    return absl::InvalidArgumentError(
        absl::StrCat("output shape is not [tokens = ", tokens, ", d_model = ", d_model, "]"));
  }
  ASSIGN_OR_RETURN(std::vector<float> output, TensorFloats(out));
  return Answer{*parsed, tokens, std::move(output)};
}

}  // namespace

CheckBound CheckBoundFor(const v1::ModelInfo& info, v1::DType compute) {
  if (info.quantization() == "int8") return kInt8Check;
  return compute == v1::BFLOAT16 ? kBf16Check : kFp32Check;
}

absl::StatusOr<ReferenceComparison> CompareAnswer(const v1::ModelInfo& info,
                                                  const FfnWeights& weights,
                                                  const std::string& activation,
                                                  std::span<const float> input,
                                                  const v1::InferResponse& response) {
  ASSIGN_OR_RETURN(const Answer answer, ReadAnswer(activation, weights.d_model, input, response));
  const ActivationParams params = ParamsForModel(info, weights);
  const std::vector<double> reference =
      ReferenceFfn(weights, answer.activation, params, input.data(), answer.tokens);
  return CompareToReference(answer.output.data(), reference);
}

absl::StatusOr<MoeWeights> MoeWeightsForModel(const v1::ModelInfo& info,
                                              const std::string& weights_override) {
  if (!info.has_moe()) return WithModel(info, absl::InvalidArgumentError("is not a mixture of experts"));
  if (info.has_huggingface()) {
    // The server's reader on the same folder (or --weights, a copy of it).
    const v1::HuggingFaceWeights& source = info.huggingface();
    auto checkpoint =
        HuggingFaceCheckpoint::Open(weights_override.empty() ? source.path() : weights_override);
    if (!checkpoint.ok()) return WithModel(info, checkpoint.status());
    auto layer = (*checkpoint)->ReadMoeLayer(source.layer(), source.sublayer());
    if (!layer.ok()) return WithModel(info, layer.status());
    return std::move(layer->weights);
  }
  if (!info.has_random() || !weights_override.empty()) {
    return WithModel(info, absl::InvalidArgumentError(
                               "is a mixture of experts whose weights the client cannot rebuild "
                               "(random or Hugging Face checkpoints only; no weights file)"));
  }
  const v1::MoeInfo& m = info.moe();
  MoeWeights w = RandomMoeWeights({info.d_model(), info.d_ff(), m.experts(), m.top_k(), m.shared_d_ff()},
                                  info.random().seed());
  w.normalize_top_k = m.normalize_top_k();
  AddRandomNorm(w.outer, NormFromInfo(info), info.random().seed());
  w.outer.norm_eps = info.norm_eps();
  w.outer.residual = info.residual();
  if (auto s = w.Validate(); !s.ok()) return WithModel(info, s);
  return w;
}

absl::StatusOr<ReferenceComparison> CompareMoeAnswer(const v1::ModelInfo& info,
                                                     const MoeWeights& weights,
                                                     const std::string& activation,
                                                     std::span<const float> input,
                                                     const v1::InferResponse& response) {
  ASSIGN_OR_RETURN(const Answer answer,
                   ReadAnswer(activation, weights.outer.d_model, input, response));
  const int64_t tokens = answer.tokens;
  MoeRouting routing{weights.top_k,
                     {response.routing().expert_ids().begin(), response.routing().expert_ids().end()},
                     {response.routing().expert_weights().begin(),
                      response.routing().expert_weights().end()}};
  if (auto s = ValidateRouting(routing, tokens, weights.num_experts(), weights.top_k); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the answer's routing: ", std::string(s.message())));
  }
  if (weights.outer.norm == NormKind::kNone && response.variant().dtype() != v1::BFLOAT16) {
    const MoeRouting mine = RouteTokens(weights, input.data(), tokens, DataType::kF32);
    if (mine.ids != routing.ids) {
      return absl::InvalidArgumentError("the server chose other experts than the router does");
    }
  }
  const std::vector<double> reference =
      ReferenceMoe(weights, answer.activation, ActivationParams{}, input.data(), tokens, routing);
  return CompareToReference(answer.output.data(), reference);
}

}  // namespace ffn::client
