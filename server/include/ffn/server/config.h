// Server configuration: the YAML file format, the embedded default, flags.
//
//   server: {address: "127.0.0.1:50051", threads: 2}
//   models:
//     - name: tiny-swiglu
//       d_model: 64
//       d_ff: 172
//       activation: swiglu       # default activation; gated ones make a gated model
//       dtype: f32
//       weights: {random: {seed: 7}}
//
// Paths inside the file are relative to the file's folder. See docs/CONFIG.md.
#ifndef FFN_SERVER_CONFIG_H_
#define FFN_SERVER_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ffn/kernels/activation.h"
#include "ffn/kernels/ffn_weights.h"

namespace ffn {

struct ModelConfig {
  std::string name;
  int64_t d_model = 0;
  int64_t d_ff = 0;
  Activation default_activation = Activation::kGelu;
  FfnKind kind = FfnKind::kPlain;  // from the default activation
  std::string dtype = "f32";
  // Exactly one weight source: a seed, or a safetensors file.
  bool random_weights = true;
  uint64_t seed = 0;
  std::string safetensors_path;               // absolute, or relative to the cwd
  std::map<std::string, std::string> tensors;  // role (w1, b1, ...) -> tensor name
  int64_t max_tokens = 0;                      // 0: the server's default
  // Extra time each engine call of this model takes, for load-test
  // experiments (a deliberately slow model). 0 in production.
  int64_t debug_delay_us = 0;
};

struct ServerSettings {
  std::string address = "127.0.0.1:50051";
  int threads = 0;                  // oneDNN/OpenMP threads; 0: all cores
  int64_t max_tokens_per_request = 8192;
  int64_t max_queue_requests = 1024;  // beyond it Infer answers RESOURCE_EXHAUSTED
  int64_t max_message_bytes = 64 << 20;
  double stats_window_seconds = 10;
};

struct ServerConfig {
  ServerSettings server;
  std::vector<ModelConfig> models;
};

// Parses a config document. `base_dir` resolves relative weight paths.
// INVALID_ARGUMENT with the offending key for any error.
absl::StatusOr<ServerConfig> ParseConfig(const std::string& yaml_text, const std::string& base_dir);
// Reads and parses a config file.
absl::StatusOr<ServerConfig> LoadConfigFile(const std::string& path);
// The embedded default: ffn-768 (768×3072, gelu, biases) and glu-768
// (768×2048, swiglu), random weights.
const std::string& DefaultConfigYaml();

}  // namespace ffn

#endif  // FFN_SERVER_CONFIG_H_
