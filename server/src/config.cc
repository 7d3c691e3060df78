#include "ffn/server/config.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
  const std::set<std::string> roles = model.kind == FfnKind::kPlain
                                          ? std::set<std::string>{"w1", "b1", "w2", "b2", "alpha"}
                                          : std::set<std::string>{"wg", "wu", "w2"};
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
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseModel(const YAML::Node& node, const std::string& where,
                                       const std::string& base_dir) {
  if (auto s = CheckKeys(node, {"name", "d_model", "d_ff", "activation", "dtype", "weights",
                                "max_tokens", "debug_delay_us"},
                         where);
      !s.ok()) {
    return s;
  }
  ModelConfig model;
  for (const char* key : {"name", "d_model", "d_ff", "activation", "weights"}) {
    if (!node[key]) return Invalid(where, absl::StrCat("missing '", key, "'"));
  }
  auto name = Scalar<std::string>(node["name"], where + ".name");
  if (!name.ok()) return name.status();
  if (name->empty()) return Invalid(where + ".name", "must not be empty");
  model.name = *name;
  const std::string at = absl::StrCat("model '", model.name, "'");
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
  if (node["dtype"]) {
    auto dtype = Scalar<std::string>(node["dtype"], at + ".dtype");
    if (!dtype.ok()) return dtype.status();
    if (*dtype != "f32") return Invalid(at + ".dtype", "'" + *dtype + "' is not supported (f32)");
    model.dtype = *dtype;
  }
  if (node["max_tokens"]) {
    auto max_tokens = Scalar<int64_t>(node["max_tokens"], at + ".max_tokens");
    if (!max_tokens.ok()) return max_tokens.status();
    if (*max_tokens <= 0) return Invalid(at + ".max_tokens", "must be positive");
    model.max_tokens = *max_tokens;
  }
  if (node["debug_delay_us"]) {
    auto delay = Scalar<int64_t>(node["debug_delay_us"], at + ".debug_delay_us");
    if (!delay.ok()) return delay.status();
    if (*delay < 0 || *delay > 10'000'000) return Invalid(at + ".debug_delay_us", "must be in [0, 10000000]");
    model.debug_delay_us = *delay;
  }
  if (auto s = ParseWeights(node["weights"], at + ".weights", base_dir, model); !s.ok()) return s;
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
  if (auto s = CheckKeys(root, {"server", "models"}, "top level"); !s.ok()) return s;
  if (const YAML::Node server = root["server"]) {
    if (auto s = CheckKeys(server,
                           {"address", "threads", "max_tokens_per_request", "max_queue_requests",
                            "max_message_bytes", "stats_window_seconds"},
                           "server");
        !s.ok()) {
      return s;
    }
    ServerSettings& st = config.server;
    if (server["address"]) {
      auto v = Scalar<std::string>(server["address"], "server.address");
      if (!v.ok()) return v.status();
      st.address = *v;
    }
    if (server["threads"]) {
      auto v = Scalar<int>(server["threads"], "server.threads");
      if (!v.ok()) return v.status();
      if (*v < 0) return Invalid("server.threads", "must be >= 0 (0: all cores)");
      st.threads = *v;
    }
    for (auto [key, field] : {std::pair{"max_tokens_per_request", &st.max_tokens_per_request},
                              std::pair{"max_queue_requests", &st.max_queue_requests},
                              std::pair{"max_message_bytes", &st.max_message_bytes}}) {
      if (!server[key]) continue;
      auto v = Scalar<int64_t>(server[key], absl::StrCat("server.", key));
      if (!v.ok()) return v.status();
      if (*v <= 0) return Invalid(absl::StrCat("server.", key), "must be positive");
      *field = *v;
    }
    if (server["stats_window_seconds"]) {
      auto v = Scalar<double>(server["stats_window_seconds"], "server.stats_window_seconds");
      if (!v.ok()) return v.status();
      if (*v < 1 || *v > 3600) return Invalid("server.stats_window_seconds", "must be in [1, 3600]");
      st.stats_window_seconds = *v;
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
)";
  return yaml;
}

}  // namespace ffn
