#include "ffn/common/huggingface.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ffn/common/safetensors.h"
#include "ffn/common/status_macros.h"
#include "nlohmann/json.hpp"

namespace ffn {
namespace {

using nlohmann::json;

// The MLP shapes this reader knows, by config.json's model_type.
enum class Family {
  kGateUpDown,  // llama, mistral, qwen2, qwen3, gemma, gemma2
  kFusedGateUp,  // phi3
  kConv1D,       // gpt2
  kNeoX,         // gpt_neox
  kOpt,          // opt
  kBert,         // bert, roberta
  kT5,           // t5
  kMoe,          // mixtral, qwen2_moe, qwen3_moe: experts, each gate/up/down
};

std::optional<Family> FamilyOf(std::string_view model_type) {
  static const std::map<std::string_view, Family> kFamilies = {
      {"llama", Family::kGateUpDown}, {"mistral", Family::kGateUpDown},
      {"qwen2", Family::kGateUpDown}, {"qwen3", Family::kGateUpDown},
      {"gemma", Family::kGateUpDown}, {"gemma2", Family::kGateUpDown},
      {"phi3", Family::kFusedGateUp}, {"gpt2", Family::kConv1D},
      {"gpt_neox", Family::kNeoX},    {"opt", Family::kOpt},
      {"bert", Family::kBert},        {"roberta", Family::kBert},
      {"t5", Family::kT5},
      {"mixtral", Family::kMoe},      {"qwen2_moe", Family::kMoe},
      {"qwen3_moe", Family::kMoe},
  };
  auto it = kFamilies.find(model_type);
  if (it == kFamilies.end()) return std::nullopt;
  return it->second;
}

// config.json's names for d_model, d_ff and the layer count.
struct DimensionKeys {
  const char* d_model;
  const char* d_ff;
  const char* layers;
};

DimensionKeys DimensionKeysOf(Family family, std::string_view model_type) {
  if (family == Family::kMoe && model_type != "mixtral") {
    return {"hidden_size", "moe_intermediate_size", "num_hidden_layers"};
  }
  switch (family) {
    case Family::kConv1D: return {"n_embd", "n_inner", "n_layer"};
    case Family::kOpt: return {"hidden_size", "ffn_dim", "num_hidden_layers"};
    case Family::kT5: return {"d_model", "d_ff", "num_layers"};
    default: return {"hidden_size", "intermediate_size", "num_hidden_layers"};
  }
}

const char* SupportedModelTypes() {
  return "llama, mistral, qwen2, qwen3, gemma, gemma2, phi3, gpt2, gpt_neox, opt, bert, roberta, "
         "t5, mixtral, qwen2_moe, qwen3_moe";
}

bool IsGemma(const std::string& model_type) { return model_type.starts_with("gemma"); }

// The MLP's tensor names within a layer (after HuggingFaceLayer::prefix).
struct MlpNames {
  std::string up;    // plain: the first projection; gated: the up half
  std::string gate;  // gated; phi3: the fused gate_up
  std::string down;
  std::string up_bias, down_bias;  // plain models with biases
  bool transposed = false;  // Conv1D: stored [in, out]
};

MlpNames NamesFor(Family family, bool gated) {
  switch (family) {
    case Family::kGateUpDown:
      return {"mlp.up_proj.weight", "mlp.gate_proj.weight", "mlp.down_proj.weight", "", ""};
    case Family::kFusedGateUp:
      return {"", "mlp.gate_up_proj.weight", "mlp.down_proj.weight", "", ""};
    case Family::kConv1D:
      return {"mlp.c_fc.weight", "", "mlp.c_proj.weight", "mlp.c_fc.bias", "mlp.c_proj.bias", true};
    case Family::kNeoX:
      return {"mlp.dense_h_to_4h.weight", "", "mlp.dense_4h_to_h.weight", "mlp.dense_h_to_4h.bias",
              "mlp.dense_4h_to_h.bias"};
    case Family::kOpt: return {"fc1.weight", "", "fc2.weight", "fc1.bias", "fc2.bias"};
    case Family::kBert:
      return {"intermediate.dense.weight", "", "output.dense.weight", "intermediate.dense.bias",
              "output.dense.bias"};
    case Family::kMoe: return {"", "", "", "", ""};  // per expert: MoeNames
    case Family::kT5:
      if (gated) {
        return {"DenseReluDense.wi_1.weight", "DenseReluDense.wi_0.weight",
                "DenseReluDense.wo.weight", "", ""};
      }
      return {"DenseReluDense.wi.weight", "", "DenseReluDense.wo.weight", "", ""};
  }
  return {};
}

// The norm before the MLP (or after the residual, for post-norm models).
std::string NormTensorName(Family family, std::string_view model_type) {
  switch (family) {
    case Family::kGateUpDown:
      return model_type == "gemma2" ? "pre_feedforward_layernorm" : "post_attention_layernorm";
    case Family::kFusedGateUp:
    case Family::kMoe:
    case Family::kNeoX: return "post_attention_layernorm";
    case Family::kConv1D: return "ln_2";
    case Family::kOpt: return "final_layer_norm";
    case Family::kBert: return "output.LayerNorm";
    case Family::kT5: return "layer_norm";
  }
  return "";
}

// A mixture-of-experts layer's tensor names (after the layer prefix).
struct MoeNames {
  std::string router;
  std::string gate, up, down;  // expert e's: with {} for its number
  std::string shared_gate_proj, shared_up, shared_down, shared_gate;  // qwen2_moe
};

MoeNames MoeNamesFor(std::string_view model_type) {
  if (model_type == "mixtral") {
    return {"block_sparse_moe.gate.weight", "block_sparse_moe.experts.{}.w1.weight",
            "block_sparse_moe.experts.{}.w3.weight", "block_sparse_moe.experts.{}.w2.weight",
            "", "", "", ""};
  }
  return {"mlp.gate.weight",
          "mlp.experts.{}.gate_proj.weight",
          "mlp.experts.{}.up_proj.weight",
          "mlp.experts.{}.down_proj.weight",
          "mlp.shared_expert.gate_proj.weight",
          "mlp.shared_expert.up_proj.weight",
          "mlp.shared_expert.down_proj.weight",
          "mlp.shared_expert_gate.weight"};
}

// `pattern` with {} replaced by expert e.
std::string ExpertTensor(const std::string& pattern, int64_t e) {
  const size_t at = pattern.find("{}");
  return pattern.substr(0, at) + std::to_string(e) + pattern.substr(at + 2);
}

absl::Status Invalid(const std::string& file, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", message));
}

absl::StatusOr<json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  json parsed = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return Invalid(path, "is not a JSON object");
  }
  return parsed;
}

// config[key] as an integer in [1, max]; `fallback` when absent or null
// (0: required).
absl::StatusOr<int64_t> ReadDim(const json& config, const std::string& file, const char* key,
                                int64_t fallback = 0, int64_t max = int64_t{1} << 17) {
  auto it = config.find(key);
  const bool given = it != config.end() && !it->is_null();
  if (!given && fallback == 0) return Invalid(file, absl::StrCat("no '", key, "'"));
  if (given && !it->is_number_integer()) {
    return Invalid(file, absl::StrCat("'", key, "' is not an integer"));
  }
  // A default derived from other keys is bounded like a given value.
  const int64_t value = given ? it->get<int64_t>() : fallback;
  if (value < 1 || value > max) {
    return Invalid(file, absl::StrCat("'", key, "' is ", value, given ? "" : " (its default)",
                                      ", not in [1, ", max, "]"));
  }
  return value;
}

absl::StatusOr<float> ReadEps(const json& config, const std::string& file, const char* key,
                              float fallback) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_number()) return Invalid(file, absl::StrCat("'", key, "' is not a number"));
  const double value = it->get<double>();
  if (!(value > 0 && value < 1)) return Invalid(file, absl::StrCat("'", key, "' is not in (0, 1)"));
  return static_cast<float>(value);
}

absl::StatusOr<bool> ReadBool(const json& config, const std::string& file, const char* key,
                              bool fallback) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return Invalid(file, absl::StrCat("'", key, "' is not true or false"));
  return it->get<bool>();
}

absl::StatusOr<std::string> ReadString(const json& config, const std::string& file,
                                       const char* key) {
  auto it = config.find(key);
  if (it == config.end() || !it->is_string()) {
    return Invalid(file, absl::StrCat("no '", key, "' string"));
  }
  return it->get<std::string>();
}

std::string DtypeName(const std::string& safetensors_dtype) {
  return absl::AsciiStrToLower(safetensors_dtype);
}

}  // namespace

std::optional<Activation> ActivationForHiddenAct(std::string_view hidden_act) {
  // The tanh approximation goes by several names in transformers' ACT2FN;
  // gelu_fast is the same formula with sqrt(2/pi) written out.
  static const std::map<std::string_view, std::string_view> kNames = {
      {"relu", "relu"},           {"gelu", "gelu"},
      {"gelu_new", "gelu_tanh"},  {"gelu_pytorch_tanh", "gelu_tanh"},
      {"gelu_fast", "gelu_tanh"}, {"quick_gelu", "quick_gelu"},
      {"silu", "silu"},           {"swish", "silu"},
      {"sigmoid", "sigmoid"},     {"tanh", "tanh"},
  };
  auto it = kNames.find(hidden_act);
  if (it == kNames.end()) return std::nullopt;
  return ParseActivation(it->second);
}

namespace {

// The gated activation whose gate function is `plain`.
std::optional<Activation> GatedWith(Activation plain) {
  for (Activation gated : GatedActivations()) {
    if (GateFunction(gated) == plain) return gated;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HuggingFaceCheckpoint>> HuggingFaceCheckpoint::Open(
    const std::string& dir) {
  std::unique_ptr<HuggingFaceCheckpoint> checkpoint(new HuggingFaceCheckpoint());
  checkpoint->dir_ = dir;
  if (!std::filesystem::is_directory(dir)) {
    return absl::NotFoundError(absl::StrCat("Hugging Face checkpoint ", dir, ": not a folder"));
  }
  RETURN_IF_ERROR(checkpoint->ReadConfig());
  RETURN_IF_ERROR(checkpoint->IndexWeights());
  RETURN_IF_ERROR(checkpoint->FindLayers());
  return checkpoint;
}

absl::Status HuggingFaceCheckpoint::ReadConfig() {
  const std::string file = (std::filesystem::path(dir_) / "config.json").string();
  ASSIGN_OR_RETURN(const json config, ReadJson(file));
  ASSIGN_OR_RETURN(model_type_, ReadString(config, file, "model_type"));
  const std::optional<Family> family = FamilyOf(model_type_);
  if (!family) {
    return Invalid(file, absl::StrCat("model_type '", model_type_, "' is not supported (one of ",
                                      SupportedModelTypes(), ")"));
  }
  architecture_ = model_type_;
  if (auto it = config.find("architectures");
      it != config.end() && it->is_array() && !it->empty() && (*it)[0].is_string()) {
    architecture_ = (*it)[0].get<std::string>();
  }
  // Dimensions and layer counts (GPT-2's n_inner may be null: 4 × n_embd),
  // then eps, biases, norms and activation under each family's keys.
  const DimensionKeys keys = DimensionKeysOf(*family, model_type_);
  ASSIGN_OR_RETURN(d_model_, ReadDim(config, file, keys.d_model));
  const int64_t default_d_ff = *family == Family::kConv1D ? 4 * d_model_ : 0;
  ASSIGN_OR_RETURN(d_ff_, ReadDim(config, file, keys.d_ff, default_d_ff));
  ASSIGN_OR_RETURN(num_layers_, ReadDim(config, file, keys.layers, 0, 4096));
  bool gated = false;
  const char* act_key = "hidden_act";
  switch (*family) {
    case Family::kGateUpDown:
    case Family::kFusedGateUp:
    case Family::kNeoX:
    case Family::kBert: {
      gated = *family == Family::kGateUpDown || *family == Family::kFusedGateUp;
      const bool rms = gated;
      ASSIGN_OR_RETURN(norm_eps_, ReadEps(config, file, rms ? "rms_norm_eps" : "layer_norm_eps",
                                          *family == Family::kBert ? 1e-12f : 1e-5f));
      has_bias_ = !gated;
      post_norm_ = *family == Family::kBert;
      if (gated) {
        ASSIGN_OR_RETURN(const bool mlp_bias, ReadBool(config, file, "mlp_bias", false));
        if (mlp_bias) return Invalid(file, "mlp_bias true: gated MLPs with biases are not supported");
      }
      // Gemma checkpoints name their MLP activation hidden_activation (their
      // hidden_act, "gelu", predates it); without either, Gemma's default
      // is the tanh GELU.
      if (IsGemma(model_type_)) {
        auto is_string = [&](const char* key) {
          auto it = config.find(key);
          return it != config.end() && it->is_string();
        };
        act_key = is_string("hidden_activation") ? "hidden_activation"
                  : is_string("hidden_act")      ? "hidden_act"
                                                 : nullptr;
      }
      break;
    }
    case Family::kMoe: {
      gated = true;
      ASSIGN_OR_RETURN(norm_eps_, ReadEps(config, file, "rms_norm_eps", 1e-6f));
      const bool has_local = config.contains("num_local_experts") &&
                             !config["num_local_experts"].is_null();
      ASSIGN_OR_RETURN(experts_, ReadDim(config, file, has_local ? "num_local_experts" : "num_experts",
                                         0, 1024));
      ASSIGN_OR_RETURN(top_k_, ReadDim(config, file, "num_experts_per_tok", 0, experts_));
      // Mixtral always renormalizes the top-k weights; Qwen by norm_topk_prob.
      if (model_type_ == "mixtral") {
        normalize_top_k_ = true;
      } else {
        ASSIGN_OR_RETURN(normalize_top_k_, ReadBool(config, file, "norm_topk_prob", false));
        ASSIGN_OR_RETURN(const int64_t step, ReadDim(config, file, "decoder_sparse_step", 1));
        auto dense = config.find("mlp_only_layers");
        const bool some_dense = dense != config.end() && dense->is_array() && !dense->empty();
        if (step != 1 || some_dense) {
          return Invalid(file, "decoder_sparse_step > 1 or mlp_only_layers: checkpoints mixing "
                               "dense and expert layers are not supported");
        }
      }
      if (model_type_ == "qwen2_moe") {
        auto shared = config.find("shared_expert_intermediate_size");
        if (shared != config.end() && !shared->is_null()) {
          ASSIGN_OR_RETURN(shared_d_ff_, ReadDim(config, file, "shared_expert_intermediate_size"));
        }
      }
      break;
    }
    case Family::kConv1D: {
      ASSIGN_OR_RETURN(norm_eps_, ReadEps(config, file, "layer_norm_epsilon", 1e-5f));
      has_bias_ = true;
      act_key = "activation_function";
      break;
    }
    case Family::kOpt: {
      ASSIGN_OR_RETURN(has_bias_, ReadBool(config, file, "enable_bias", true));
      ASSIGN_OR_RETURN(const bool norm_before, ReadBool(config, file, "do_layer_norm_before", true));
      post_norm_ = !norm_before;
      ASSIGN_OR_RETURN(norm_affine_,
                       ReadBool(config, file, "layer_norm_elementwise_affine", true));
      norm_eps_ = 1e-5f;  // OPT's LayerNorms use PyTorch's default
      act_key = "activation_function";
      break;
    }
    case Family::kT5: {
      ASSIGN_OR_RETURN(num_decoder_layers_,
                       ReadDim(config, file, "num_decoder_layers", num_layers_, 4096));
      ASSIGN_OR_RETURN(norm_eps_, ReadEps(config, file, "layer_norm_epsilon", 1e-6f));
      // feed_forward_proj is "ACT" or "gated-ACT"; T5 v1.1's "gated-gelu"
      // runs the tanh GELU (T5Config maps it to gelu_new).
      std::string proj = "relu";
      if (auto it = config.find("feed_forward_proj"); it != config.end() && it->is_string()) {
        proj = it->get<std::string>();
      }
      gated = proj.starts_with("gated-");
      hidden_act_ = gated ? proj.substr(6) : proj;
      if (proj == "gated-gelu") hidden_act_ = "gelu_new";
      act_key = nullptr;
      break;
    }
  }
  if (act_key != nullptr) {
    ASSIGN_OR_RETURN(hidden_act_, ReadString(config, file, act_key));
  } else if (hidden_act_.empty()) {
    hidden_act_ = "gelu_pytorch_tanh";  // Gemma without hidden_activation
  }
  const std::optional<Activation> plain = ActivationForHiddenAct(hidden_act_);
  std::optional<Activation> served = plain;
  if (plain && gated) served = GatedWith(*plain);
  if (!served) {
    return Invalid(file, absl::StrCat(gated ? "gated " : "", "activation '", hidden_act_,
                                      "' is not supported (silu, gelu, gelu_new, "
                                      "gelu_pytorch_tanh, gelu_fast, quick_gelu, relu)"));
  }
  activation_ = *served;
  return absl::OkStatus();
}

absl::Status HuggingFaceCheckpoint::IndexWeights() {
  namespace fs = std::filesystem;
  const fs::path folder(dir_);
  const fs::path single = folder / "model.safetensors";
  const fs::path index = folder / "model.safetensors.index.json";
  if (fs::exists(index)) {
    ASSIGN_OR_RETURN(const json parsed, ReadJson(index.string()));
    auto map = parsed.find("weight_map");
    if (map == parsed.end() || !map->is_object()) {
      return Invalid(index.string(), "no 'weight_map' object");
    }
    std::set<std::string> checked;
    for (const auto& [tensor, shard] : map->items()) {
      if (!shard.is_string()) {
        return Invalid(index.string(), absl::StrCat("the shard of '", tensor, "' is not a string"));
      }
      const std::string name = shard.get<std::string>();
      // A shard is a file in this folder, never a path out of it.
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
        return Invalid(index.string(), absl::StrCat("shard '", name, "' is not a file name"));
      }
      const std::string path = (folder / name).string();
      if (checked.insert(path).second && !fs::is_regular_file(path)) {
        return absl::NotFoundError(
            absl::StrCat(index.string(), ": shard ", name, " (of tensor '", tensor, "') is missing"));
      }
      shard_of_.emplace(tensor, path);
    }
    return absl::OkStatus();
  }
  if (fs::exists(single)) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(single.string()));
    for (const std::string& name : file->Names()) shard_of_.emplace(name, single.string());
    return absl::OkStatus();
  }
  if (fs::exists(folder / "pytorch_model.bin") || fs::exists(folder / "pytorch_model.bin.index.json")) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir_, ": has only PyTorch pickle weights (pytorch_model.bin); save the model with "
              "safe_serialization=True to get model.safetensors"));
  }
  return absl::NotFoundError(
      absl::StrCat(dir_, ": no model.safetensors nor model.safetensors.index.json"));
}

absl::Status HuggingFaceCheckpoint::FindLayers() {
  const Family family = *FamilyOf(model_type_);
  const MlpNames names = NamesFor(family, kind() == FfnKind::kGated);
  struct Stack {
    std::string name;  // "" or "encoder"/"decoder"
    std::string layer_prefix;  // before the index
    std::string layer_suffix;  // after it
    int64_t count;
  };
  std::vector<Stack> stacks;
  switch (family) {
    case Family::kGateUpDown:
    case Family::kFusedGateUp:
    case Family::kMoe:
    case Family::kNeoX: stacks.push_back({"", "layers.", ".", num_layers_}); break;
    case Family::kConv1D: stacks.push_back({"", "h.", ".", num_layers_}); break;
    case Family::kOpt: stacks.push_back({"", "decoder.layers.", ".", num_layers_}); break;
    case Family::kBert: stacks.push_back({"", "encoder.layer.", ".", num_layers_}); break;
    case Family::kT5:
      stacks.push_back({"encoder", "encoder.block.", ".layer.1.", num_layers_});
      stacks.push_back({"decoder", "decoder.block.", ".layer.2.", num_decoder_layers_});
      break;
  }
  // The prefix before the stack (the head class's: "model.", "bert.",
  // "transformer.", ...), found from the first layer's down projection.
  const MoeNames moe = MoeNamesFor(model_type_);
  const std::string first = absl::StrCat(stacks[0].layer_prefix, 0, stacks[0].layer_suffix,
                                         family == Family::kMoe ? moe.router : names.down);
  std::vector<std::string> bases;
  for (const auto& [tensor, shard] : shard_of_) {
    if (tensor == first) {
      bases.push_back("");
    } else if (tensor.ends_with("." + first)) {
      bases.push_back(tensor.substr(0, tensor.size() - first.size()));
    }
  }
  if (bases.empty()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": no tensor named '", first,
                                            "' (with any prefix): not a ", model_type_,
                                            " checkpoint, or its MLP is named otherwise"));
  }
  if (bases.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(dir_, ": '", first, "' is there under ",
                                                   bases.size(), " prefixes (",
                                                   absl::StrJoin(bases, ", "), ")"));
  }
  base_prefix_ = bases[0];
  for (const Stack& stack : stacks) {
    for (int64_t i = 0; i < stack.count; ++i) {
      HuggingFaceLayer layer;
      layer.id = stack.name.empty() ? absl::StrCat(i) : absl::StrCat(stack.name, ".", i);
      layer.index = i;
      layer.prefix = absl::StrCat(base_prefix_, stack.layer_prefix, i, stack.layer_suffix);
      // Every layer config.json promises must have its MLP, or start-up
      // fails here naming it rather than at its first request.
      std::vector<std::string> roles = {names.up, names.gate, names.down};
      if (family == Family::kMoe) {
        roles = {moe.router};
        for (int64_t e = 0; e < experts_; ++e) {
          for (const std::string* pattern : {&moe.gate, &moe.up, &moe.down}) {
            roles.push_back(ExpertTensor(*pattern, e));
          }
        }
        if (shared_d_ff_ > 0) {
          roles.insert(roles.end(), {moe.shared_gate_proj, moe.shared_up, moe.shared_down,
                                     moe.shared_gate});
        }
      }
      for (const std::string& role : roles) {
        if (role.empty()) continue;
        const std::string tensor = layer.prefix + role;
        if (!shard_of_.contains(tensor)) {
          return absl::NotFoundError(absl::StrCat(
              dir_, ": layer ", layer.id, " has no tensor '", tensor, "' (config.json gives ",
              stack.count, " layers", stack.name.empty() ? "" : " in the " + stack.name, ")"));
        }
      }
      layers_.push_back(std::move(layer));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<HuggingFaceLayer>> HuggingFaceCheckpoint::Select(
    bool all, const std::vector<int64_t>& indices) const {
  if (all) return layers_;
  std::vector<HuggingFaceLayer> selected;
  for (int64_t index : indices) {
    const size_t before = selected.size();
    for (const HuggingFaceLayer& layer : layers_) {
      if (layer.index == index) selected.push_back(layer);
    }
    if (selected.size() == before) {
      return absl::InvalidArgumentError(absl::StrCat(dir_, ": has no layer ", index, " (",
                                                     num_layers_, " layers)"));
    }
  }
  return selected;
}

namespace {

// Reads tensors of one layer, each shard opened (mapped) once per layer and
// unmapped when the reader goes: only this layer's pages are touched.
class TensorReader {
 public:
  explicit TensorReader(const std::map<std::string, std::string, std::less<>>& shard_of)
      : shard_of_(shard_of) {}

  bool Has(const std::string& name) const { return shard_of_.contains(name); }

  absl::StatusOr<SafetensorsEntry> Entry(const std::string& name) {
    ASSIGN_OR_RETURN(const SafetensorsFile* file, FileOf(name));
    return file->Get(name);
  }

  // f32 values (converted exactly), or with T = uint16_t a BF16 tensor's bits.
  template <typename T = float>
  absl::StatusOr<std::vector<T>> Read(const std::string& name, std::vector<int64_t> shape) {
    ASSIGN_OR_RETURN(const SafetensorsFile* file, FileOf(name));
    if constexpr (sizeof(T) == 2) {
      return file->ReadFiniteBf16(name, shape);
    } else {
      return file->ReadFiniteFloat(name, shape);
    }
  }

 private:
  absl::StatusOr<const SafetensorsFile*> FileOf(const std::string& name) {
    auto shard = shard_of_.find(name);
    if (shard == shard_of_.end()) {
      return absl::NotFoundError(absl::StrCat("no tensor '", name, "' in the checkpoint"));
    }
    auto& file = open_[shard->second];
    if (!file) {
      ASSIGN_OR_RETURN(file, SafetensorsFile::Open(shard->second));
    }
    return file.get();
  }

  const std::map<std::string, std::string, std::less<>>& shard_of_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> open_;
};

template <typename T>
std::vector<T> Transpose(const std::vector<T>& in, int64_t rows, int64_t cols) {
  std::vector<T> out(in.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out[static_cast<size_t>(c * rows + r)] = in[static_cast<size_t>(r * cols + c)];
  }
  return out;
}

}  // namespace

absl::StatusOr<DataType> HuggingFaceCheckpoint::MatrixType(std::string_view id) const {
  auto layer = std::find_if(layers_.begin(), layers_.end(),
                            [&](const HuggingFaceLayer& l) { return l.id == id; });
  if (layer == layers_.end()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": no layer '", std::string(id), "'"));
  }
  const Family family = *FamilyOf(model_type_);
  const bool gated = kind() == FfnKind::kGated;
  const MlpNames names = NamesFor(family, gated);
  std::vector<std::string> matrices = {names.down, names.gate};
  if (gated && family != Family::kFusedGateUp) matrices.push_back(names.up);
  if (!gated) matrices = {names.down, names.up};
  if (family == Family::kMoe) {
    const MoeNames moe = MoeNamesFor(model_type_);
    matrices.clear();
    for (int64_t e = 0; e < experts_; ++e) {
      for (const std::string* pattern : {&moe.gate, &moe.up, &moe.down}) {
        matrices.push_back(ExpertTensor(*pattern, e));
      }
    }
  }
  TensorReader reader(shard_of_);
  for (const std::string& name : matrices) {
    ASSIGN_OR_RETURN(const SafetensorsEntry entry, reader.Entry(layer->prefix + name));
    if (entry.dtype != "BF16") return DataType::kF32;
  }
  return DataType::kBf16;
}

namespace {

// A layer's matrices in nn.Linear layout, as T (f32, or bf16 bits).
template <typename T>
struct Matrices {
  std::vector<T> w1, wg, wu, w2;
};

template <typename T>
absl::StatusOr<Matrices<T>> ReadMatrices(TensorReader& reader, const std::string& p,
                                         const MlpNames& names, bool fused_gate_up, bool gated,
                                         int64_t dm, int64_t dff) {
  Matrices<T> m;
  ASSIGN_OR_RETURN(m.w2, names.transposed ? reader.Read<T>(p + names.down, {dff, dm})
                                          : reader.Read<T>(p + names.down, {dm, dff}));
  if (names.transposed) m.w2 = Transpose(m.w2, dff, dm);
  if (fused_gate_up) {
    // Phi-3: rows [0, d_ff) are the gate, [d_ff, 2·d_ff) the up projection.
    ASSIGN_OR_RETURN(std::vector<T> gate_up, reader.Read<T>(p + names.gate, {2 * dff, dm}));
    const auto half = gate_up.begin() + dff * dm;
    m.wg.assign(gate_up.begin(), half);
    m.wu.assign(half, gate_up.end());
  } else if (gated) {
    ASSIGN_OR_RETURN(m.wg, reader.Read<T>(p + names.gate, {dff, dm}));
    ASSIGN_OR_RETURN(m.wu, reader.Read<T>(p + names.up, {dff, dm}));
  } else {
    ASSIGN_OR_RETURN(m.w1, names.transposed ? reader.Read<T>(p + names.up, {dm, dff})
                                            : reader.Read<T>(p + names.up, {dff, dm}));
    if (names.transposed) m.w1 = Transpose(m.w1, dm, dff);
  }
  return m;
}

}  // namespace

absl::StatusOr<HuggingFaceLayerWeights> HuggingFaceCheckpoint::ReadLayer(std::string_view id,
                                                                         bool sublayer,
                                                                         bool keep_bf16) const {
  auto layer = std::find_if(layers_.begin(), layers_.end(),
                            [&](const HuggingFaceLayer& l) { return l.id == id; });
  if (layer == layers_.end()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": no layer '", std::string(id), "'"));
  }
  const Family family = *FamilyOf(model_type_);
  if (family == Family::kMoe) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir_, ": a ", model_type_, " layer is a mixture of experts (ReadMoeLayer)"));
  }
  const bool gated = kind() == FfnKind::kGated;
  const bool fused_gate_up = family == Family::kFusedGateUp;
  const MlpNames names = NamesFor(family, gated);
  const std::string& p = layer->prefix;
  const int64_t dm = d_model_, dff = d_ff_;
  TensorReader reader(shard_of_);
  HuggingFaceLayerWeights out;
  FfnWeights& w = out.weights;
  w.kind = kind();
  w.d_model = dm;
  w.d_ff = dff;
  ASSIGN_OR_RETURN(const SafetensorsEntry down, reader.Entry(p + names.down));
  out.stored_dtype = DtypeName(down.dtype);
  bool bf16 = false;
  if (keep_bf16) {
    ASSIGN_OR_RETURN(const DataType type, MatrixType(id));
    bf16 = type == DataType::kBf16;
  }
  if (bf16) {
    ASSIGN_OR_RETURN(Matrices<uint16_t> m,
                     ReadMatrices<uint16_t>(reader, p, names, fused_gate_up, gated, dm, dff));
    w.matrix_type = DataType::kBf16;
    w.w1_bf16 = std::move(m.w1);
    w.wg_bf16 = std::move(m.wg);
    w.wu_bf16 = std::move(m.wu);
    w.w2_bf16 = std::move(m.w2);
  } else {
    ASSIGN_OR_RETURN(Matrices<float> m,
                     ReadMatrices<float>(reader, p, names, fused_gate_up, gated, dm, dff));
    w.w1 = std::move(m.w1);
    w.wg = std::move(m.wg);
    w.wu = std::move(m.wu);
    w.w2 = std::move(m.w2);
  }
  if (!gated) {
    w.has_bias = has_bias_;
    if (has_bias_) {
      ASSIGN_OR_RETURN(w.b1, reader.Read(p + names.up_bias, {dff}));
      ASSIGN_OR_RETURN(w.b2, reader.Read(p + names.down_bias, {dm}));
    }
    w.prelu_alpha = {0.25f};
  }
  if (!sublayer) return out;

  // The norms around the MLP and the residual.
  const bool rms = family == Family::kGateUpDown || family == Family::kFusedGateUp ||
                   family == Family::kT5;
  const NormKind norm_kind = rms ? NormKind::kRmsNorm : NormKind::kLayerNorm;
  const bool gemma = IsGemma(model_type_);
  auto read_norm = [&](const std::string& name, std::vector<float>& gamma,
                       std::vector<float>& beta) -> absl::Status {
    if (!norm_affine_) {
      gamma.assign(static_cast<size_t>(dm), 1.0f);
      beta.assign(static_cast<size_t>(dm), 0.0f);
      return absl::OkStatus();
    }
    // Early BERT checkpoints name LayerNorm's parameters gamma and beta.
    const bool old_names = family == Family::kBert && !reader.Has(p + name + ".weight") &&
                           reader.Has(p + name + ".gamma");
    ASSIGN_OR_RETURN(gamma, reader.Read(p + name + (old_names ? ".gamma" : ".weight"), {dm}));
    // Gemma scales by (1 + w), computed in fp32 as Gemma does.
    if (gemma) {
      for (float& g : gamma) g = 1.0f + g;
    }
    if (norm_kind == NormKind::kLayerNorm) {
      ASSIGN_OR_RETURN(beta, reader.Read(p + name + (old_names ? ".beta" : ".bias"), {dm}));
    }
    return absl::OkStatus();
  };
  const std::string norm = NormTensorName(family, model_type_);
  w.residual = true;
  if (post_norm_) {
    w.out_norm = norm_kind;
    w.out_norm_place = OutputNormPlace::kAfterResidual;
    w.out_norm_eps = norm_eps_;
    RETURN_IF_ERROR(read_norm(norm, w.out_norm_gamma, w.out_norm_beta));
    return out;
  }
  w.norm = norm_kind;
  w.norm_eps = norm_eps_;
  RETURN_IF_ERROR(read_norm(norm, w.norm_gamma, w.norm_beta));
  if (model_type_ == "gemma2") {
    w.out_norm = NormKind::kRmsNorm;
    w.out_norm_place = OutputNormPlace::kBeforeResidual;
    w.out_norm_eps = norm_eps_;
    RETURN_IF_ERROR(read_norm("post_feedforward_layernorm", w.out_norm_gamma, w.out_norm_beta));
  }
  return out;
}

absl::StatusOr<HuggingFaceMoeLayerWeights> HuggingFaceCheckpoint::ReadMoeLayer(
    std::string_view id, bool sublayer, bool keep_bf16) const {
  auto layer = std::find_if(layers_.begin(), layers_.end(),
                            [&](const HuggingFaceLayer& l) { return l.id == id; });
  if (layer == layers_.end()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": no layer '", std::string(id), "'"));
  }
  if (!is_moe()) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir_, ": a ", model_type_, " layer is not a mixture of experts (ReadLayer)"));
  }
  const MoeNames names = MoeNamesFor(model_type_);
  const std::string& p = layer->prefix;
  const int64_t dm = d_model_, dff = d_ff_;
  TensorReader reader(shard_of_);
  HuggingFaceMoeLayerWeights out;
  MoeWeights& w = out.weights;
  w.outer.kind = FfnKind::kGated;
  w.outer.d_model = dm;
  w.outer.d_ff = dff;
  w.top_k = top_k_;
  w.normalize_top_k = normalize_top_k_;
  ASSIGN_OR_RETURN(w.router, reader.Read(p + names.router, {experts_, dm}));
  ASSIGN_OR_RETURN(const SafetensorsEntry down0, reader.Entry(p + ExpertTensor(names.down, 0)));
  out.stored_dtype = DtypeName(down0.dtype);
  bool bf16 = false;
  if (keep_bf16) {
    ASSIGN_OR_RETURN(const DataType type, MatrixType(id));
    bf16 = type == DataType::kBf16;
  }
  // One gated FFN from three tensors, as stored (bf16) or widened.
  auto read_ffn = [&](const std::string& gate, const std::string& up, const std::string& down,
                      int64_t d_ff) -> absl::StatusOr<FfnWeights> {
    FfnWeights f;
    f.kind = FfnKind::kGated;
    f.d_model = dm;
    f.d_ff = d_ff;
    if (bf16) {
      f.matrix_type = DataType::kBf16;
      ASSIGN_OR_RETURN(f.wg_bf16, reader.Read<uint16_t>(gate, {d_ff, dm}));
      ASSIGN_OR_RETURN(f.wu_bf16, reader.Read<uint16_t>(up, {d_ff, dm}));
      ASSIGN_OR_RETURN(f.w2_bf16, reader.Read<uint16_t>(down, {dm, d_ff}));
    } else {
      ASSIGN_OR_RETURN(f.wg, reader.Read(gate, {d_ff, dm}));
      ASSIGN_OR_RETURN(f.wu, reader.Read(up, {d_ff, dm}));
      ASSIGN_OR_RETURN(f.w2, reader.Read(down, {dm, d_ff}));
    }
    return f;
  };
  for (int64_t e = 0; e < experts_; ++e) {
    ASSIGN_OR_RETURN(FfnWeights expert,
                     read_ffn(p + ExpertTensor(names.gate, e), p + ExpertTensor(names.up, e),
                              p + ExpertTensor(names.down, e), dff));
    w.experts.push_back(std::move(expert));
  }
  if (shared_d_ff_ > 0) {
    ASSIGN_OR_RETURN(w.shared, read_ffn(p + names.shared_gate_proj, p + names.shared_up,
                                        p + names.shared_down, shared_d_ff_));
    ASSIGN_OR_RETURN(w.shared_gate, reader.Read(p + names.shared_gate, {1, dm}));
  }
  if (sublayer) {
    // x + MoE(RMSNorm(x)), the decoder layer's post_attention_layernorm.
    w.outer.norm = NormKind::kRmsNorm;
    w.outer.norm_eps = norm_eps_;
    w.outer.residual = true;
    ASSIGN_OR_RETURN(w.outer.norm_gamma,
                     reader.Read(p + NormTensorName(Family::kMoe, model_type_) + ".weight", {dm}));
  }
  return out;
}

}  // namespace ffn
