// ffn-server: serves FFN blocks over gRPC. See README.md for the flags.
#include <malloc.h>
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ffn/server/config.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/server.h"
#include "spdlog/spdlog.h"

namespace {

// Flags override the config file; unset flags leave it alone.
struct Overrides {
  std::string address, metrics_address, http_address, tls_cert, tls_key, tls_client_ca, auth_token_file,
      plan_cache;
  std::optional<ffn::Strategy> strategy;
  std::optional<bool> batch_invariant;
  std::string call_threads;
  int threads = -1, executors = 0, threads_per_executor = 0;
  int64_t max_tokens = 0, max_batch_tokens = 0, max_queue_delay_us = -1, max_queue_tokens = 0,
          max_inflight_bytes = 0;

  void ApplyTo(ffn::ServerSettings& s) const {
    if (!address.empty()) s.address = address;
    if (strategy) s.strategy = *strategy;
    if (batch_invariant) s.batch_invariant = *batch_invariant;
    if (!call_threads.empty()) s.adaptive_call_threads = call_threads == "adaptive";
    if (!metrics_address.empty()) s.metrics_address = metrics_address;
    if (!http_address.empty()) s.http_address = http_address;
    if (!tls_cert.empty()) s.tls_cert = tls_cert;
    if (!tls_key.empty()) s.tls_key = tls_key;
    if (!tls_client_ca.empty()) s.tls_client_ca = tls_client_ca;
    if (!auth_token_file.empty()) s.auth_token_file = auth_token_file;
    if (!plan_cache.empty()) s.plan_cache = plan_cache;
    if (threads >= 0) s.threads = threads;
    if (executors > 0) s.executors = executors;
    if (threads_per_executor > 0) s.threads_per_executor = threads_per_executor;
    if (max_tokens > 0) s.max_tokens_per_request = max_tokens;
    if (max_batch_tokens > 0) s.batching.max_batch_tokens = max_batch_tokens;
    if (max_queue_delay_us >= 0) s.batching.max_queue_delay_us = max_queue_delay_us;
    if (max_queue_tokens > 0) s.batching.max_queue_tokens = max_queue_tokens;
    if (max_inflight_bytes > 0) s.max_inflight_bytes = max_inflight_bytes;
  }
};

// SIGTERM, SIGINT and SIGHUP, taken by one thread with sigwait. Before the
// server serves, a signal exits at once with 128 + the signal: nothing has
// been accepted, so there is nothing to drain. While serving, the first
// signal starts the drain (WaitForStop returns it) and a second one exits at
// once.
class StopSignals {
 public:
  // Blocks the signals in the calling thread, and so in every thread it
  // starts from then on, and starts the watcher. Call once, before any other
  // thread exists.
  static StopSignals& Install() {
    static StopSignals* signals = new StopSignals();  // the watcher uses it until exit
    return *signals;
  }

  // From now on the first signal drains instead of exiting.
  void Serving() {
    absl::MutexLock lock(&mu_);
    phase_ = Phase::kServing;
  }

  // Waits up to `timeout` for the signal that starts the drain: returns it,
  // or 0 if none came.
  int WaitForStop(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(
        +[](Phase* phase) { return *phase == Phase::kDraining; }, &phase_), timeout);
    return phase_ == Phase::kDraining ? received_ : 0;
  }

 private:
  enum class Phase { kStarting, kServing, kDraining };

  StopSignals() {
    sigemptyset(&set_);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set_, s);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    std::thread([this] { Watch(); }).detach();
  }

  void Watch() {
    for (;;) {
      int signal_number = 0;
      if (sigwait(&set_, &signal_number) != 0) continue;
      absl::MutexLock lock(&mu_);
      switch (phase_) {
        case Phase::kStarting:
          spdlog::warn("{} received during start-up: exiting before serving",
                       strsignal(signal_number));
          std::_Exit(128 + signal_number);
        case Phase::kServing:
          received_ = signal_number;
          phase_ = Phase::kDraining;
          break;
        case Phase::kDraining:
          spdlog::warn("{} received again: exiting without draining", strsignal(signal_number));
          std::_Exit(128 + signal_number);
      }
    }
  }

  sigset_t set_;
  absl::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kStarting;
  int received_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

int main(int argc, char** argv) {
  // Request and answer buffers of 4 MiB and more get their own mappings and
  // go back to the system when freed. Otherwise glibc raises its mmap
  // threshold after the first large free and keeps such buffers in per-thread
  // arenas: RSS would stay at the peak of every gRPC thread's arena, well
  // above the bytes max_inflight_bytes bounds.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  CLI::App app{"ffn-server: transformer FFN blocks over gRPC, on CPU"};
  std::string config_path, log_level = "info", port_file;
  double drain_seconds = 10;
  Overrides o;
  auto* config_option =
      app.add_option("--config", config_path, "YAML config file (default: the embedded models)")
          ->check(CLI::ExistingFile);
  std::vector<std::string> model_dirs;
  app.add_option("--model-dir", model_dirs,
                 "serve every FFN layer of this Hugging Face checkpoint folder (config.json + "
                 "safetensors) as models NAME.LAYER, NAME the folder's name; repeatable; "
                 "instead of --config")
      ->check(CLI::ExistingDirectory)
      ->excludes(config_option);
  app.add_option("--address", o.address, "HOST:PORT to listen on; port 0 picks one "
                                          "(default 127.0.0.1:50051, or the config's)");
  app.add_option("--threads", o.threads, "compute threads in all (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--executors", o.executors, "executors, each running one batch at a time (1)")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads-per-executor", o.threads_per_executor,
                 "OpenMP threads of each executor (default: threads / executors)")
      ->check(CLI::PositiveNumber);
  app.add_option("--call-threads", o.call_threads,
                 "adaptive (default): an engine call of a batch-invariant model taken with no "
                 "other request waiting runs on the thread count (1, 2, 4, ... up to threads per "
                 "executor) such calls of its size have been fastest on; under a backlog, and "
                 "with all, every call on every thread of its executor")
      ->check(CLI::IsMember({"adaptive", "all"}));
  app.add_option("--max-tokens", o.max_tokens, "largest tokens per request (8192)")
      ->check(CLI::Range(int64_t{1}, ffn::kMaxTokensLimit));
  app.add_option("--max-batch-tokens", o.max_batch_tokens, "most tokens in one batch (512)")
      ->check(CLI::Range(int64_t{1}, ffn::kMaxTokensLimit));
  app.add_option("--max-queue-delay-us", o.max_queue_delay_us,
                 "how long a small batch may wait for more requests (0)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-queue-tokens", o.max_queue_tokens,
                 "tokens a variant's queue may hold before RESOURCE_EXHAUSTED (65536)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app.add_option("--max-inflight-bytes", o.max_inflight_bytes,
                 "bytes held for requests in flight (each charged 4x its tensor), beyond which "
                 "new requests get RESOURCE_EXHAUSTED (default: a quarter of available memory)")
      ->check(CLI::Range(int64_t{1} << 20, int64_t{1} << 50));
  std::string strategy_name;
  app.add_option("--strategy", strategy_name,
                 "engine strategy of models without their own: auto (measure at load, default), "
                 "unfused, postops, fused")
      ->check(CLI::IsMember({"auto", "unfused", "postops", "fused"}));
  app.add_option("--batch-invariant", o.batch_invariant,
                 "true (default): an answer's bits do not depend on what it is batched with, for "
                 "models running auto or fused; false: auto may pick faster order-dependent paths");
  app.add_option("--plan-cache", o.plan_cache,
                 "JSON file of tuned engine plans: read at start, written after tuning a model it "
                 "lacked, so a restart neither re-tunes nor changes its plan");
  bool tune_only = false;
  app.add_flag("--tune-only", tune_only,
               "load and tune the models, write --plan-cache, and exit without serving");
  app.add_option("--metrics-address", o.metrics_address,
                 "HOST:PORT for Prometheus metrics at /metrics (default: off)");
  app.add_option("--http-address", o.http_address,
                 "HOST:PORT for the KServe v2 REST API at /v2 (default: off)");
  std::string http_port_file;
  app.add_option("--http-port-file", http_port_file,
                 "write the bound REST port to this file once serving");
  app.add_option("--tls-cert", o.tls_cert, "PEM certificate chain: serve TLS");
  app.add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", o.tls_client_ca,
                 "PEM CA: require client certificates it signed (mutual TLS)");
  app.add_option("--auth-token-file", o.auth_token_file,
                 "file with the bearer token FfnService calls must carry");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--port-file", port_file, "write the bound port to this file once serving");
  app.add_option("--drain-timeout", drain_seconds,
                 "seconds to finish accepted calls after SIGTERM, SIGINT or SIGHUP (10)")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  if (!strategy_name.empty()) o.strategy = ffn::ParseStrategy(strategy_name);

  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  // Before any thread starts (loading runs OpenMP), so the signals reach only
  // the watcher: start-up (loading, tuning) can take tens of seconds and must
  // stay stoppable.
  StopSignals& signals = StopSignals::Install();

  auto config = !model_dirs.empty()     ? ffn::CheckpointFoldersConfig(model_dirs)
                : config_path.empty() ? ffn::ParseConfig(ffn::DefaultConfigYaml(), "")
                                      : ffn::LoadConfigFile(config_path);
  if (!config.ok()) {
    spdlog::error("{}", std::string(config.status().message()));
    return 2;
  }
  o.ApplyTo(config->server);
  if (absl::Status settings = ffn::ValidateServerSettings(config->server); !settings.ok()) {
    spdlog::error("{}", std::string(settings.message()));
    return 2;
  }
  if (tune_only) {
    if (config->server.plan_cache.empty()) {
      spdlog::error("--tune-only needs a plan cache (--plan-cache FILE or server.plan_cache)");
      return 2;
    }
    auto registry = ffn::ModelRegistry::Load(
        *config, config->server.ThreadsPerExecutor(ffn::DefaultThreadCount()));
    if (!registry.ok()) {
      spdlog::error("{}", std::string(registry.status().message()));
      return 1;
    }
    for (const auto& model : (*registry)->models()) {
      spdlog::info("model {}: {}", model->config.name,
                   model->tuning.empty() ? "not tuned (fixed strategy)" : model->tuning);
    }
    spdlog::info("plans in {}", config->server.plan_cache);
    return 0;
  }

  auto server = ffn::FfnServer::Start(*config);
  if (!server.ok()) {
    spdlog::error("{}", std::string(server.status().message()));
    return 1;
  }
  signals.Serving();
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << (*server)->port() << "\n";
    std::rename(tmp.c_str(), port_file.c_str());  // readers never see a partial file
  }
  if (!http_port_file.empty()) {
    const std::string tmp = http_port_file + ".tmp";
    std::ofstream(tmp) << (*server)->http_port() << "\n";
    std::rename(tmp.c_str(), http_port_file.c_str());
  }
  int signal_number = 0;
  while ((signal_number = signals.WaitForStop(absl::Seconds(1))) == 0) {
    (*server)->ReleaseMemoryIfIdle();
  }
  spdlog::info("{} received: draining (up to {} s); a second signal exits at once",
               strsignal(signal_number), drain_seconds);
  (*server)->Shutdown(std::chrono::milliseconds(static_cast<int64_t>(drain_seconds * 1000)));
  spdlog::info("stopped");
  return 0;
}
