// Server configuration: the YAML file format, the embedded default, flags.
//
// Example:
//   ASSIGN_OR_RETURN(ffn::ServerConfig config, ffn::ParseConfig(R"(
//     server: {address: "127.0.0.1:50051", threads: 2}
//     models:
//       - name: tiny-swiglu
//         d_model: 64
//         d_ff: 172
//         activation: swiglu       # default activation; gated ones make a gated model
//         dtype: f32
//         weights: {random: {seed: 7}}
//   )", /*base_dir=*/"/etc/ffn"));
//
// Paths inside the file are relative to the file's folder (base_dir). See
// docs/CONFIG.md.
#ifndef FFN_SERVER_CONFIG_H_
#define FFN_SERVER_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ffn/kernels/activation.h"
#include "ffn/kernels/ffn_block.h"
#include "ffn/kernels/ffn_weights.h"

namespace ffn {

// Token-level dynamic batching of one variant's queue.
struct BatchingSettings {
  // Most tokens (rows) in one engine call. A request larger than this runs
  // alone; with 1 (or any value below every request's size) every request
  // runs alone.
  int64_t max_batch_tokens = 512;
  // How long a batch below max_batch_tokens may wait for more requests while
  // an executor is free. 0: an executor takes what is queued at once (under
  // load, requests still batch while the executors are busy).
  int64_t max_queue_delay_us = 0;
  // Tokens a variant's queue may hold; beyond it Infer answers
  // RESOURCE_EXHAUSTED at once.
  int64_t max_queue_tokens = 65536;
};

// Per-model overrides of the server's batching defaults.
struct BatchingOverrides {
  std::optional<int64_t> max_batch_tokens, max_queue_delay_us, max_queue_tokens;
  BatchingSettings Over(const BatchingSettings& defaults) const {
    return {max_batch_tokens.value_or(defaults.max_batch_tokens),
            max_queue_delay_us.value_or(defaults.max_queue_delay_us),
            max_queue_tokens.value_or(defaults.max_queue_tokens)};
  }
};

// A model entry that serves the FFN layers of a Hugging Face checkpoint
// folder (common/include/ffn/common/huggingface.h). The registry expands it
// into one model per selected layer, named NAME.LAYER.
struct HuggingFaceSource {
  std::string path;  // the folder: absolute, or relative to the cwd
  bool all_layers = true;
  std::vector<int64_t> layers;  // the selected layer numbers unless all_layers
  // true: the FFN sub-layer (the norm(s) and residual around the MLP).
  bool sublayer = false;
  // Set on an expanded model: its layer's id ("3", "encoder.3").
  std::string layer;
};

// A mixture-of-experts model of random weights: `experts` gated experts of
// the model's d_ff, top_k of them per token, and an optional shared expert.
struct MoeSettings {
  int64_t experts = 0;
  int64_t top_k = 0;
  int64_t shared_d_ff = 0;  // 0: none
};

struct ModelConfig {
  std::string name;
  int64_t d_model = 0;
  int64_t d_ff = 0;
  Activation default_activation = Activation::kGelu;
  FfnKind kind = FfnKind::kPlain;  // from the default activation
  DataType dtype = DataType::kF32;  // the default compute dtype
  // Exactly one weight source: a seed, a safetensors file, or a Hugging Face
  // checkpoint (whose config.json then gives d_model, d_ff and activation).
  std::optional<HuggingFaceSource> huggingface;
  // Set for a mixture of experts (random weights only).
  std::optional<MoeSettings> moe;
  bool random_weights = true;
  uint64_t seed = 0;
  std::string safetensors_path;               // absolute, or relative to the cwd
  std::map<std::string, std::string> tensors;  // role (w1, b1, ...) -> tensor name
  int64_t max_tokens = 0;                      // 0: the server's default
  // Extra time each engine call of this model takes, for load-test
  // experiments (a deliberately slow model). 0 in production.
  int64_t debug_delay_us = 0;
  BatchingOverrides batching;
  // How the engine runs this model (unset: the server's strategy).
  std::optional<Strategy> strategy;
  // Batch-invariant answers (unset: the server's setting); true needs the
  // strategy auto or fused.
  std::optional<bool> batch_invariant;
  // kInt8: the matrices (a mixture's experts) quantized to int8 at load
  // (FfnBlock's Quantization); strategy auto or fused.
  Quantization quantization = Quantization::kNone;
  // Optional pre-norm and residual add: y = x + FFN(norm(x)).
  NormKind norm = NormKind::kNone;
  float norm_eps = 1e-5f;
  bool residual = false;
};

// The most tokens a request or a batch may be given: with d_model <= 2^17,
// a request's element count stays far from overflowing 64 bits.
inline constexpr int64_t kMaxTokensLimit = int64_t{1} << 24;
// gRPC takes message limits as an int.
inline constexpr int64_t kMaxMessageBytesLimit = (int64_t{1} << 31) - 1;

struct ServerSettings {
  std::string address = "127.0.0.1:50051";
  // Compute threads in all (0: every core the process may use), split evenly
  // over `executors` unless threads_per_executor is set.
  int threads = 0;
  int executors = 1;
  int threads_per_executor = 0;
  int64_t max_tokens_per_request = 8192;
  int64_t max_message_bytes = 64 << 20;
  BatchingSettings batching;  // defaults for every model
  // Engine strategy of every model without its own: auto times unfused and
  // fused at load and picks per M range.
  Strategy strategy = Strategy::kAuto;
  // A request's answer has the same bits whatever it is batched with (models
  // running auto or fused; see FfnRun::batch_invariant). Models may override.
  bool batch_invariant = true;
  // call_threads: adaptive (true, the default): an engine call of a
  // batch-invariant model taken with no other request waiting runs on the
  // thread count (1, 2, 4, ..., threads_per_executor) such calls of its size
  // have been fastest on (CallThreads); under a backlog, and with all
  // (false), every call on threads_per_executor.
  bool adaptive_call_threads = true;
  // JSON file of tuned plans (PlanCache): read at start, written after
  // tuning a model it lacked. Empty: tune at every start.
  std::string plan_cache;
  // Every this many seconds, tuned models' served compute is compared with
  // their plan, and a probe whose served time stayed above 1.5x the plan for
  // three checks running is timed again (PlanWatcher). 0: never.
  int64_t plan_check_seconds = 10;
  // Requests one InferStream call may have in flight before the server stops
  // reading from it.
  int64_t max_stream_inflight = 256;
  // Bytes held for requests in flight (queued, computing, in stream slots,
  // answers not yet read), each charged 4 × its tensor bytes; beyond it new
  // requests get RESOURCE_EXHAUSTED. 0: DefaultInflightBytes() at start.
  int64_t max_inflight_bytes = 0;
  double stats_window_seconds = 10;
  // HOST:PORT of the Prometheus /metrics endpoint; empty: none.
  std::string metrics_address;
  // HOST:PORT of the KServe v2 REST front end (/v2/...); empty: off.
  std::string http_address;
  // TLS: a PEM certificate chain and key; with a client CA, clients must
  // present a certificate it signed (mutual TLS).
  std::string tls_cert, tls_key, tls_client_ca;
  // A file holding the bearer token FfnService calls must carry; empty: none.
  std::string auth_token_file;

  // Compute threads of each executor.
  int ThreadsPerExecutor(int cores) const;
};

struct ServerConfig {
  ServerSettings server;
  std::vector<ModelConfig> models;
};

// Parses a config document. `base_dir` resolves relative weight paths.
// INVALID_ARGUMENT with the offending key for any error.
absl::StatusOr<ServerConfig> ParseConfig(const std::string& yaml_text, const std::string& base_dir);
// Checks the settings that flags may change after parsing: the listening
// addresses (server.address / --address, server.metrics_address /
// --metrics-address) must be HOST:PORT (ParseListenAddress),
// max_message_bytes within gRPC's int and max_tokens_per_request within
// kMaxTokensLimit.
// INVALID_ARGUMENT naming the setting and the value otherwise.
absl::Status ValidateServerSettings(const ServerSettings& settings);
// Reads and parses a config file.
absl::StatusOr<ServerConfig> LoadConfigFile(const std::string& path);
// A config serving every layer of each Hugging Face checkpoint folder, the
// models named after the folder (--model-dir), with default settings.
// INVALID_ARGUMENT if two folders have the same name.
absl::StatusOr<ServerConfig> CheckpointFoldersConfig(const std::vector<std::string>& dirs);
// The embedded default: ffn-768 (768×3072, gelu, biases), glu-768
// (768×2048, swiglu) and moe-768 (8 swiglu experts of 768×1024, top 2),
// random weights.
const std::string& DefaultConfigYaml();

}  // namespace ffn

#endif  // FFN_SERVER_CONFIG_H_
