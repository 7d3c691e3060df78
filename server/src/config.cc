#include "ffn/server/config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ffn/server/listen_address.h"
#include "yaml-cpp/yaml.h"

namespace ffn {
namespace {

absl::Status Invalid(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("config: ", where, ": ", what));
}

template <typename T>
absl::StatusOr<T> Scalar(const YAML::Node& node, const std::string& where) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    return Invalid(where, "not a valid value: '" + YAML::Dump(node) + "'");
  }
}

absl::Status CheckKeys(const YAML::Node& map, const std::set<std::string>& allowed,
                       const std::string& where) {
  if (!map.IsMap()) return Invalid(where, "must be a mapping");
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) return Invalid(where, "keys must be plain names");
    const auto key = kv.first.as<std::string>();
    if (!allowed.contains(key)) {
      return Invalid(where, absl::StrCat("unknown key '", key, "' (allowed: ",
                                         absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

// yaml-cpp keeps every entry of a repeated key and lookups see only the
// first, so `{name: a, name: b}` would quietly be model a. Refuse instead.
absl::Status CheckNoDuplicateKeys(const YAML::Node& node) {
  if (node.IsMap()) {
    std::set<std::string> seen;
    for (const auto& kv : node) {
      if (kv.first.IsScalar() && !seen.insert(kv.first.Scalar()).second) {
        return Invalid(absl::StrCat("line ", kv.first.Mark().line + 1),
                       absl::StrCat("duplicate key '", kv.first.Scalar(), "'"));
      }
      if (auto s = CheckNoDuplicateKeys(kv.second); !s.ok()) return s;
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) {
      if (auto s = CheckNoDuplicateKeys(item); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ParseWeights(const YAML::Node& node, const std::string& where,
                          const std::string& base_dir, ModelConfig& model) {
  if (auto s = CheckKeys(node, {"random", "safetensors", "tensors"}, where); !s.ok()) return s;
  if (node["random"] && node["safetensors"]) return Invalid(where, "give random or safetensors, not both");
  if (node["random"]) {
    if (auto s = CheckKeys(node["random"], {"seed"}, where + ".random"); !s.ok()) return s;
    model.random_weights = true;
    if (node["random"]["seed"]) {
      auto seed = Scalar<uint64_t>(node["random"]["seed"], where + ".random.seed");
      if (!seed.ok()) return seed.status();
      model.seed = *seed;
    }
    if (node["tensors"]) return Invalid(where, "tensors only go with safetensors");
    return absl::OkStatus();
  }
  if (!node["safetensors"]) return Invalid(where, "needs random: {seed: N} or safetensors: PATH");
  auto path = Scalar<std::string>(node["safetensors"], where + ".safetensors");
  if (!path.ok()) return path.status();
  std::filesystem::path p(*path);
  if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
  model.random_weights = false;
  model.safetensors_path = p.lexically_normal().string();
  const std::set<std::string> roles =
      model.kind == FfnKind::kPlain
          ? std::set<std::string>{"w1", "b1", "w2", "b2", "alpha", "norm_weight", "norm_bias"}
          : std::set<std::string>{"wg", "wu", "w2", "norm_weight", "norm_bias"};
  if (!node["tensors"]) return Invalid(where, "safetensors needs tensors: {role: name, ...}");
  if (auto s = CheckKeys(node["tensors"], roles, where + ".tensors"); !s.ok()) return s;
  for (const auto& kv : node["tensors"]) {
    auto name = Scalar<std::string>(kv.second, where + ".tensors." + kv.first.as<std::string>());
    if (!name.ok()) return name.status();
    model.tensors[kv.first.as<std::string>()] = *name;
  }
  const std::vector<std::string> required = model.kind == FfnKind::kPlain
                                                ? std::vector<std::string>{"w1", "w2"}
                                                : std::vector<std::string>{"wg", "wu", "w2"};
  for (const auto& role : required) {
    if (!model.tensors.contains(role)) return Invalid(where + ".tensors", "missing '" + role + "'");
  }
  if (model.tensors.contains("b1") != model.tensors.contains("b2")) {
    return Invalid(where + ".tensors", "give both b1 and b2, or neither");
  }
  const bool needs_gamma = model.norm != NormKind::kNone;
  const bool needs_beta = model.norm == NormKind::kLayerNorm;
  if (model.tensors.contains("norm_weight") != needs_gamma) {
    return Invalid(where + ".tensors", needs_gamma ? "the norm needs 'norm_weight'"
                                                   : "'norm_weight' given but the model has no norm");
  }
  if (model.tensors.contains("norm_bias") != needs_beta) {
    return Invalid(where + ".tensors", needs_beta ? "layernorm needs 'norm_bias'"
                                                  : "'norm_bias' needs norm: layernorm");
  }
  return absl::OkStatus();
}

// Reads an integer key into `field` if present, checking [min, max].
absl::Status ReadInt(const YAML::Node& map, const char* key, const std::string& where,
                     int64_t min, int64_t max, int64_t& field) {
  if (!map[key]) return absl::OkStatus();
  const std::string at = absl::StrCat(where, ".", key);
  auto v = Scalar<int64_t>(map[key], at);
  if (!v.ok()) return v.status();
  if (*v < min || *v > max) return Invalid(at, absl::StrCat("must be in [", min, ", ", max, "]"));
  field = *v;
  return absl::OkStatus();
}

absl::Status ReadString(const YAML::Node& map, const char* key, const std::string& where,
                        std::string& field) {
  if (!map[key]) return absl::OkStatus();
  auto v = Scalar<std::string>(map[key], absl::StrCat(where, ".", key));
  if (!v.ok()) return v.status();
  field = *v;
  return absl::OkStatus();
}

// An optional "strategy: auto|unfused|postops|fused" key.
absl::StatusOr<std::optional<Strategy>> ReadStrategy(const YAML::Node& map, const std::string& where) {
  if (!map["strategy"]) return std::nullopt;
  auto v = Scalar<std::string>(map["strategy"], where + ".strategy");
  if (!v.ok()) return v.status();
  auto strategy = ParseStrategy(*v);
  if (!strategy) {
    return Invalid(where + ".strategy",
                   "'" + *v + "' is not one of auto, unfused, postops, fused");
  }
  return strategy;
}

// The batching keys, shared by server defaults and model overrides.
absl::Status ParseBatching(const YAML::Node& map, const std::string& where,
                           BatchingOverrides& out) {
  struct Key {
    const char* name;
    int64_t min, max;
    std::optional<int64_t>* field;
  };
  for (const Key& key : {Key{"max_batch_tokens", 1, kMaxTokensLimit, &out.max_batch_tokens},
                         Key{"max_queue_delay_us", 0, 10'000'000, &out.max_queue_delay_us},
                         Key{"max_queue_tokens", 1, int64_t{1} << 30, &out.max_queue_tokens}}) {
    if (!map[key.name]) continue;
    int64_t value = 0;
    if (auto s = ReadInt(map, key.name, where, key.min, key.max, value); !s.ok()) return s;
    *key.field = value;
  }
  return absl::OkStatus();
}

absl::Status ParseServer(const YAML::Node& server, ServerSettings& st) {
  if (auto s = CheckKeys(server,
                         {"address", "threads", "executors", "threads_per_executor",
                          "max_tokens_per_request", "max_message_bytes", "max_batch_tokens",
                          "max_queue_delay_us", "max_queue_tokens", "max_stream_inflight", "max_inflight_bytes",
                          "stats_window_seconds", "metrics_address", "http_address", "tls_cert", "tls_key",
                          "tls_client_ca", "auth_token_file", "strategy", "batch_invariant", "plan_cache",
                          "plan_check_seconds", "call_threads"},
                         "server");
      !s.ok()) {
    return s;
  }
  if (auto strategy = ReadStrategy(server, "server"); !strategy.ok()) {
    return strategy.status();
  } else if (strategy->has_value()) {
    st.strategy = **strategy;
  }
  if (server["batch_invariant"]) {
    auto v = Scalar<bool>(server["batch_invariant"], "server.batch_invariant");
    if (!v.ok()) return v.status();
    st.batch_invariant = *v;
  }
  if (server["call_threads"]) {
    auto v = Scalar<std::string>(server["call_threads"], "server.call_threads");
    if (!v.ok()) return v.status();
    if (*v != "adaptive" && *v != "all") {
      return Invalid("server.call_threads", "'" + *v + "' is not one of adaptive, all");
    }
    st.adaptive_call_threads = *v == "adaptive";
  }
  int64_t threads = st.threads, executors = st.executors, per_executor = st.threads_per_executor;
  absl::Status s = ReadString(server, "address", "server", st.address);
  if (s.ok()) s = ReadInt(server, "threads", "server", 0, 1024, threads);
  if (s.ok()) s = ReadInt(server, "executors", "server", 1, 64, executors);
  if (s.ok()) s = ReadInt(server, "threads_per_executor", "server", 0, 1024, per_executor);
  if (s.ok()) s = ReadInt(server, "max_tokens_per_request", "server", 1, kMaxTokensLimit, st.max_tokens_per_request);
  if (s.ok()) s = ReadInt(server, "max_message_bytes", "server", 1024, kMaxMessageBytesLimit, st.max_message_bytes);
  if (s.ok()) s = ReadInt(server, "max_stream_inflight", "server", 1, 1 << 20, st.max_stream_inflight);
  if (s.ok()) s = ReadInt(server, "plan_check_seconds", "server", 0, 3600, st.plan_check_seconds);
  if (s.ok()) s = ReadInt(server, "max_inflight_bytes", "server", 1 << 20, int64_t{1} << 50, st.max_inflight_bytes);
  if (!s.ok()) return s;
  st.threads = static_cast<int>(threads);
  st.executors = static_cast<int>(executors);
  st.threads_per_executor = static_cast<int>(per_executor);
  BatchingOverrides batching;
  if (auto b = ParseBatching(server, "server", batching); !b.ok()) return b;
  st.batching = batching.Over(st.batching);
  if (server["stats_window_seconds"]) {
    auto v = Scalar<double>(server["stats_window_seconds"], "server.stats_window_seconds");
    if (!v.ok()) return v.status();
    if (*v < 1 || *v > 3600) return Invalid("server.stats_window_seconds", "must be in [1, 3600]");
    st.stats_window_seconds = *v;
  }
  for (auto [key, field] : {std::pair{"metrics_address", &st.metrics_address},
                            std::pair{"http_address", &st.http_address},
                            std::pair{"tls_cert", &st.tls_cert}, std::pair{"tls_key", &st.tls_key},
                            std::pair{"tls_client_ca", &st.tls_client_ca},
                            std::pair{"auth_token_file", &st.auth_token_file},
                            std::pair{"plan_cache", &st.plan_cache}}) {
    if (auto r = ReadString(server, key, "server", *field); !r.ok()) return r;
  }
  return absl::OkStatus();
}

// The keys every model entry may have: dtype, limits, engine, norm,
// batching.
absl::Status ParseModelSettings(const YAML::Node& node, const std::string& at, ModelConfig& model) {
  if (node["dtype"]) {
    auto dtype = Scalar<std::string>(node["dtype"], at + ".dtype");
    if (!dtype.ok()) return dtype.status();
    const std::optional<DataType> parsed = ParseDataType(*dtype);
    if (!parsed) return Invalid(at + ".dtype", "'" + *dtype + "' is not one of f32, bf16");
    model.dtype = *parsed;
  }
  if (node["max_tokens"]) {
    auto max_tokens = Scalar<int64_t>(node["max_tokens"], at + ".max_tokens");
    if (!max_tokens.ok()) return max_tokens.status();
    if (*max_tokens <= 0 || *max_tokens > kMaxTokensLimit) {
      return Invalid(at + ".max_tokens", absl::StrCat("must be in [1, ", kMaxTokensLimit, "]"));
    }
    model.max_tokens = *max_tokens;
  }
  if (auto strategy = ReadStrategy(node, at); !strategy.ok()) {
    return strategy.status();
  } else {
    model.strategy = *strategy;
  }
  if (node["batch_invariant"]) {
    auto v = Scalar<bool>(node["batch_invariant"], at + ".batch_invariant");
    if (!v.ok()) return v.status();
    if (*v && model.strategy && *model.strategy != Strategy::kAuto &&
        *model.strategy != Strategy::kFused) {
      return Invalid(at + ".batch_invariant",
                     absl::StrCat("needs strategy auto or fused; ", StrategyName(*model.strategy),
                                  " sums in an order that depends on the batch"));
    }
    model.batch_invariant = *v;
  }
  if (node["norm"]) {
    auto norm = Scalar<std::string>(node["norm"], at + ".norm");
    if (!norm.ok()) return norm.status();
    if (*norm == "layernorm") {
      model.norm = NormKind::kLayerNorm;
    } else if (*norm == "rmsnorm") {
      model.norm = NormKind::kRmsNorm;
    } else if (*norm != "none") {
      return Invalid(at + ".norm", "'" + *norm + "' is not one of none, layernorm, rmsnorm");
    }
  }
  if (node["norm_eps"]) {
    auto eps = Scalar<float>(node["norm_eps"], at + ".norm_eps");
    if (!eps.ok()) return eps.status();
    if (!(*eps > 0.0f && *eps < 1.0f)) return Invalid(at + ".norm_eps", "must be in (0, 1)");
    model.norm_eps = *eps;
  }
  if (node["residual"]) {
    auto residual = Scalar<bool>(node["residual"], at + ".residual");
    if (!residual.ok()) return residual.status();
    model.residual = *residual;
  }
  if (const YAML::Node batching = node["batching"]) {
    if (auto b = CheckKeys(batching, {"max_batch_tokens", "max_queue_delay_us", "max_queue_tokens"},
                           at + ".batching");
        !b.ok()) {
      return b;
    }
    if (auto b = ParseBatching(batching, at + ".batching", model.batching); !b.ok()) return b;
  }
  if (node["debug_delay_us"]) {
    auto delay = Scalar<int64_t>(node["debug_delay_us"], at + ".debug_delay_us");
    if (!delay.ok()) return delay.status();
    if (*delay < 0 || *delay > 10'000'000) return Invalid(at + ".debug_delay_us", "must be in [0, 10000000]");
    model.debug_delay_us = *delay;
  }
  return absl::OkStatus();
}

// `layers`: all, N, "A-B", or a list of numbers.
absl::Status ParseLayers(const YAML::Node& node, const std::string& where,
                         HuggingFaceSource& source) {
  constexpr int64_t kMaxLayer = 4095;
  auto add = [&](int64_t layer) -> absl::Status {
    if (layer < 0 || layer > kMaxLayer) {
      return Invalid(where, absl::StrCat("layer ", layer, " is not in [0, ", kMaxLayer, "]"));
    }
    if (std::find(source.layers.begin(), source.layers.end(), layer) != source.layers.end()) {
      return Invalid(where, absl::StrCat("layer ", layer, " is given twice"));
    }
    source.layers.push_back(layer);
    return absl::OkStatus();
  };
  source.all_layers = false;
  if (node.IsSequence()) {
    if (node.size() == 0) return Invalid(where, "an empty list selects no layer");
    for (size_t i = 0; i < node.size(); ++i) {
      auto layer = Scalar<int64_t>(node[i], absl::StrCat(where, "[", i, "]"));
      if (!layer.ok()) return layer.status();
      if (auto s = add(*layer); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  auto text = Scalar<std::string>(node, where);
  if (!text.ok()) return text.status();
  if (*text == "all") {
    source.all_layers = true;
    return absl::OkStatus();
  }
  int64_t first = 0, last = 0;
  const std::vector<std::string> ends = absl::StrSplit(*text, '-');
  if (ends.size() == 1 && absl::SimpleAtoi(ends[0], &first)) return add(first);
  if (ends.size() == 2 && absl::SimpleAtoi(ends[0], &first) && absl::SimpleAtoi(ends[1], &last) &&
      first <= last && first >= 0 && last <= kMaxLayer) {
    for (int64_t layer = first; layer <= last; ++layer) {
      if (auto s = add(layer); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  return Invalid(where, "'" + *text + "' is not all, a layer number, \"A-B\" or a list");
}

absl::Status ParseHuggingFace(const YAML::Node& node, const std::string& where,
                              const std::string& base_dir, ModelConfig& model) {
  if (auto s = CheckKeys(node, {"path", "layers", "sublayer"}, where); !s.ok()) return s;
  if (!node["path"]) return Invalid(where, "missing 'path' (the checkpoint folder)");
  auto path = Scalar<std::string>(node["path"], where + ".path");
  if (!path.ok()) return path.status();
  if (path->empty()) return Invalid(where + ".path", "must not be empty");
  std::filesystem::path p(*path);
  if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
  HuggingFaceSource source;
  source.path = p.lexically_normal().string();
  if (node["layers"]) {
    if (auto s = ParseLayers(node["layers"], where + ".layers", source); !s.ok()) return s;
  }
  if (node["sublayer"]) {
    auto sublayer = Scalar<bool>(node["sublayer"], where + ".sublayer");
    if (!sublayer.ok()) return sublayer.status();
    source.sublayer = *sublayer;
  }
  model.huggingface = std::move(source);
  model.random_weights = false;
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseModel(const YAML::Node& node, const std::string& where,
                                       const std::string& base_dir) {
  if (auto s = CheckKeys(node, {"name", "d_model", "d_ff", "activation", "dtype", "weights",
                                "max_tokens", "debug_delay_us", "batching", "norm", "norm_eps",
                                "residual", "strategy", "batch_invariant", "huggingface", "moe",
                                "quantization"},
                         where);
      !s.ok()) {
    return s;
  }
  ModelConfig model;
  if (!node["name"]) return Invalid(where, "missing 'name'");
  auto name = Scalar<std::string>(node["name"], where + ".name");
  if (!name.ok()) return name.status();
  if (name->empty()) return Invalid(where + ".name", "must not be empty");
  model.name = *name;
  const std::string at = absl::StrCat("model '", model.name, "'");
  // A checkpoint brings its own shape, activation, weights and norms.
  const bool huggingface = static_cast<bool>(node["huggingface"]);
  if (huggingface) {
    for (const char* key : {"d_model", "d_ff", "activation", "weights", "norm", "norm_eps", "residual"}) {
      if (node[key]) {
        return Invalid(at, absl::StrCat("'", key, "' does not go with huggingface (config.json ",
                                        "and the checkpoint give it)"));
      }
    }
    if (auto s = ParseHuggingFace(node["huggingface"], at + ".huggingface", base_dir, model); !s.ok()) {
      return s;
    }
  } else {
    for (const char* key : {"d_model", "d_ff", "activation", "weights"}) {
      if (!node[key]) return Invalid(where, absl::StrCat("missing '", key, "'"));
    }
  }
  if (huggingface) {
    if (auto s = ParseModelSettings(node, at, model); !s.ok()) return s;
    return model;
  }
  auto d_model = Scalar<int64_t>(node["d_model"], at + ".d_model");
  if (!d_model.ok()) return d_model.status();
  auto d_ff = Scalar<int64_t>(node["d_ff"], at + ".d_ff");
  if (!d_ff.ok()) return d_ff.status();
  constexpr int64_t kMaxDim = 1 << 17;
  if (*d_model <= 0 || *d_model > kMaxDim) return Invalid(at + ".d_model", absl::StrCat("must be in [1, ", kMaxDim, "]"));
  if (*d_ff <= 0 || *d_ff > kMaxDim) return Invalid(at + ".d_ff", absl::StrCat("must be in [1, ", kMaxDim, "]"));
  model.d_model = *d_model;
  model.d_ff = *d_ff;
  auto act_name = Scalar<std::string>(node["activation"], at + ".activation");
  if (!act_name.ok()) return act_name.status();
  auto act = ParseActivation(*act_name);
  if (!act) {
    std::vector<std::string> names;
    for (Activation a : AllActivations()) names.emplace_back(ActivationName(a));
    return Invalid(at + ".activation", absl::StrCat("unknown '", *act_name, "' (one of ",
                                                    absl::StrJoin(names, ", "), ")"));
  }
  model.default_activation = *act;
  model.kind = IsGated(*act) ? FfnKind::kGated : FfnKind::kPlain;
  if (auto s = ParseModelSettings(node, at, model); !s.ok()) return s;
  if (auto s = ParseWeights(node["weights"], at + ".weights", base_dir, model); !s.ok()) return s;
  if (const YAML::Node moe = node["moe"]) {
    const std::string where_moe = at + ".moe";
    if (!moe.IsMap()) return Invalid(where_moe, "must be a mapping {experts, top_k, shared}");
    if (auto s = CheckKeys(moe, {"experts", "top_k", "shared"}, where_moe); !s.ok()) return s;
    if (!moe["experts"] || !moe["top_k"]) return Invalid(where_moe, "needs experts and top_k");
    if (!model.random_weights) return Invalid(where_moe, "needs random weights");
    if (model.kind != FfnKind::kGated) {
      return Invalid(where_moe, "experts are gated: the activation must be a gated one");
    }
    MoeSettings settings;
    constexpr int64_t kMaxExperts = 1024;
    if (auto s = ReadInt(moe, "experts", where_moe, 1, kMaxExperts, settings.experts); !s.ok()) return s;
    if (auto s = ReadInt(moe, "top_k", where_moe, 1, settings.experts, settings.top_k); !s.ok()) return s;
    if (auto s = ReadInt(moe, "shared", where_moe, 0, kMaxDim, settings.shared_d_ff); !s.ok()) return s;
    model.moe = settings;
  }
  if (node["quantization"]) {
    auto text = Scalar<std::string>(node["quantization"], at + ".quantization");
    if (!text.ok()) return text.status();
    const std::optional<Quantization> q = ParseQuantization(*text);
    if (!q) return Invalid(at + ".quantization", "'" + *text + "' is not one of none, int8");
    if (*q == Quantization::kInt8) {
      if (model.strategy && *model.strategy != Strategy::kAuto && *model.strategy != Strategy::kFused) {
        return Invalid(at + ".quantization",
                       absl::StrCat("an int8 model runs its int8 path; strategy ",
                                    StrategyName(*model.strategy), " needs f32 or bf16 weights"));
      }
      if (model.batch_invariant == false) {
        return Invalid(at + ".quantization",
                       "an int8 model is always batch-invariant (its sums are exact integers)");
      }
    }
    model.quantization = *q;
  }
  return model;
}

}  // namespace

absl::StatusOr<ServerConfig> ParseConfig(const std::string& yaml_text, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return Invalid("YAML", e.what());
  }
  ServerConfig config;
  if (!root.IsMap()) return Invalid("top level", "must be a mapping with server and models");
  if (auto s = CheckNoDuplicateKeys(root); !s.ok()) return s;
  if (auto s = CheckKeys(root, {"server", "models"}, "top level"); !s.ok()) return s;
  if (const YAML::Node server = root["server"]) {
    if (auto s = ParseServer(server, config.server); !s.ok()) return s;
    if (auto s = ValidateServerSettings(config.server); !s.ok()) {
      return Invalid("server", std::string(s.message()));
    }
  }
  const YAML::Node models = root["models"];
  if (!models || !models.IsSequence() || models.size() == 0) {
    return Invalid("models", "needs a non-empty list of models");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < models.size(); ++i) {
    auto model = ParseModel(models[i], absl::StrCat("models[", i, "]"), base_dir);
    if (!model.ok()) return model.status();
    if (!names.insert(model->name).second) {
      return Invalid(absl::StrCat("models[", i, "]"), "duplicate name '" + model->name + "'");
    }
    config.models.push_back(std::move(*model));
  }
  return config;
}

absl::StatusOr<ServerConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config file ", path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  auto config = ParseConfig(text.str(), std::filesystem::path(path).parent_path().string());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

absl::Status ValidateServerSettings(const ServerSettings& settings) {
  if (settings.max_message_bytes < 1024 || settings.max_message_bytes > kMaxMessageBytesLimit) {
    return absl::InvalidArgumentError(absl::StrCat("max_message_bytes ", settings.max_message_bytes,
                                                   " is not in [1024, ", kMaxMessageBytesLimit, "]"));
  }
  if (settings.max_tokens_per_request < 1 || settings.max_tokens_per_request > kMaxTokensLimit) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens_per_request ",
                                                   settings.max_tokens_per_request, " is not in [1, ",
                                                   kMaxTokensLimit, "]"));
  }
  if (auto a = ParseListenAddress(settings.address); !a.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("address (--address): ", a.status().message()));
  }
  if (!settings.http_address.empty()) {
    if (auto a = ParseListenAddress(settings.http_address); !a.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("http_address (--http-address): ", a.status().message()));
    }
  }
  if (settings.metrics_address.empty()) return absl::OkStatus();
  if (auto a = ParseListenAddress(settings.metrics_address); !a.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_address (--metrics-address): ", a.status().message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<ServerConfig> CheckpointFoldersConfig(const std::vector<std::string>& dirs) {
  ServerConfig config;
  std::set<std::string> names;
  for (const std::string& dir : dirs) {
    std::filesystem::path path = std::filesystem::path(dir).lexically_normal();
    if (!path.has_filename()) path = path.parent_path();  // a trailing '/'
    ModelConfig model;
    model.name = std::filesystem::absolute(path).filename().string();
    if (!names.insert(model.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--model-dir: two folders are named '", model.name, "'"));
    }
    model.huggingface.emplace();
    model.huggingface->path = path.string();
    model.random_weights = false;
    config.models.push_back(std::move(model));
  }
  return config;
}

int ServerSettings::ThreadsPerExecutor(int cores) const {
  if (threads_per_executor > 0) return threads_per_executor;
  const int total = threads > 0 ? threads : cores;
  return std::max(1, total / std::max(1, executors));
}

const std::string& DefaultConfigYaml() {
  static const std::string yaml = R"(
server: {address: "127.0.0.1:50051"}
models:
  - name: ffn-768
    d_model: 768
    d_ff: 3072
    activation: gelu
    dtype: f32
    weights: {random: {seed: 1}}
  - name: glu-768
    d_model: 768
    d_ff: 2048
    activation: swiglu
    dtype: f32
    weights: {random: {seed: 2}}
  - name: moe-768
    d_model: 768
    d_ff: 1024
    activation: swiglu
    dtype: f32
    weights: {random: {seed: 3}}
    moe: {experts: 8, top_k: 2}
)";
  return yaml;
}

}  // namespace ffn
