#include "ffn/server/server.h"

#include <grpc/grpc.h>
#include <malloc.h>
#include <sched.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "ffn/common/status_macros.h"
#include "ffn/kernels/epilogue.h"
#include "ffn/server/kserve_http.h"
#include "ffn/server/kserve_service.h"
#include "ffn/server/memory_budget.h"
#include "ffn/server/metrics.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/scheduler.h"
#include "ffn/server/service.h"
#include "ffn/server/stats.h"
#include "google/protobuf/stubs/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "grpcpp/server_builder.h"
#include "infer_call.h"
#include "plan_watcher.h"
#include "spdlog/spdlog.h"

namespace ffn {
namespace {

// Where a model's weights come from, for the start-up log.
std::string WeightSource(const v1::ModelInfo& info) {
  if (info.has_huggingface()) {
    const v1::HuggingFaceWeights& hf = info.huggingface();
    return absl::StrCat(hf.path(), " (", hf.architecture(), " layer ", hf.layer(), ", ",
                        hf.stored_dtype(), ", ", hf.hidden_act(),
                        hf.sublayer() ? ", sublayer" : "", ")");
  }
  if (info.has_safetensors()) return info.safetensors().path();
  return absl::StrCat("random seed ", info.random().seed());
}


absl::StatusOr<std::string> ReadWholeFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": cannot read"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Insecure, TLS, or mutual TLS, from the settings' PEM files.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerSettings& s) {
  if (s.tls_cert.empty() && s.tls_key.empty()) {
    if (!s.tls_client_ca.empty()) {
      return absl::InvalidArgumentError("tls_client_ca needs tls_cert and tls_key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (s.tls_cert.empty() || s.tls_key.empty()) {
    return absl::InvalidArgumentError("TLS needs both tls_cert and tls_key");
  }
  ASSIGN_OR_RETURN(std::string cert, ReadWholeFile(s.tls_cert, "TLS certificate"));
  ASSIGN_OR_RETURN(std::string key, ReadWholeFile(s.tls_key, "TLS key"));
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({key, cert});
  if (!s.tls_client_ca.empty()) {
    ASSIGN_OR_RETURN(options.pem_root_certs, ReadWholeFile(s.tls_client_ca, "TLS client CA"));
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

// Runs one token of `model`'s default variant through the request path.
absl::Status Warm(const Model& model, const InferBackend& backend) {
  v1::InferRequest request;
  request.set_model(model.config.name);
  v1::Tensor* input = request.mutable_input();
  input->set_dtype(v1::FLOAT32);
  input->add_shape(1);
  input->add_shape(model.config.d_model);
  const std::vector<float> x(static_cast<size_t>(model.config.d_model), 0.5f);
  input->set_data(x.data(), x.size() * sizeof(float));
  v1::InferResponse response;
  absl::Notification done;
  absl::Status warm;
  InferCall::Start(backend, request, &response, CallLimits{}, [&](const absl::Status& status) {
    warm = status;
    done.Notify();
  });
  done.WaitForNotification();
  return warm;
}

// libprotobuf logs an ERROR to stderr for every message with a string
// field that is not UTF-8. Such requests are answered INVALID_ARGUMENT and
// counted, so one client could flood the log: its lines go to the debug log.
void ProtobufLogToDebug(google::protobuf::LogLevel level, const char* file, int line,
                        const std::string& message) {
  if (level == google::protobuf::LOGLEVEL_FATAL) {
    spdlog::critical("libprotobuf {}:{}: {}", file, line, message);
  } else {
    spdlog::debug("libprotobuf {}:{}: {}", file, line, message);
  }
}

// Drops gRPC's reflection plugin from one ServerBuilder (the plugin is
// registered process-wide).
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    std::erase_if(*plugins, [](const auto& plugin) {
      return plugin->name() == "proto_server_reflection";
    });
  }
};

// How long a drain lets clients answer the server's GOAWAY and close their
// connections once no call is in flight: on a LAN, many round trips.
constexpr auto kGoawayGrace = std::chrono::milliseconds(250);
// How long the drain log waits for gRPC to report the last calls' ends.
constexpr auto kCallEndWait = std::chrono::seconds(2);

}  // namespace

int DefaultThreadCount() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

struct FfnServer::Impl {
  std::unique_ptr<ModelRegistry> registry;
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<ServerStats> stats;
  std::unique_ptr<MemoryBudget> budget;
  // ReleaseMemoryIfIdle's state: requests granted at its last call, and
  // whether it trimmed since that count last moved.
  int64_t granted_seen = -1;
  bool trimmed = false;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<FfnServiceImpl> service;
  std::unique_ptr<KServeServiceImpl> kserve;
  std::unique_ptr<KServeHttpServer> http;  // null without an http_address
  std::unique_ptr<grpc::Server> server;
  // Last: it reads the registry and the stats until it stops.
  std::unique_ptr<PlanWatcher> plan_watcher;
  int port = 0;
  absl::Mutex mu;
  bool stopped ABSL_GUARDED_BY(mu) = false;
};

FfnServer::FfnServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FfnServer::~FfnServer() { Shutdown(std::chrono::milliseconds(0)); }

absl::StatusOr<std::unique_ptr<FfnServer>> FfnServer::Start(const ServerConfig& config) {
  const ServerSettings& settings = config.server;
  google::protobuf::SetLogHandler(&ProtobufLogToDebug);
  RETURN_IF_ERROR(ValidateServerSettings(settings));
  auto impl = std::make_unique<Impl>();
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, Credentials(settings));
  ServiceOptions service_options;
  service_options.max_stream_inflight = settings.max_stream_inflight;

  if (!settings.auth_token_file.empty()) {
    ASSIGN_OR_RETURN(const std::string token,
                     ReadWholeFile(settings.auth_token_file, "auth token file"));
    service_options.auth_token = std::string(absl::StripAsciiWhitespace(token));
    if (service_options.auth_token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("auth token file ", settings.auth_token_file,
                                                     " is empty"));
    }
    if (settings.tls_cert.empty()) {
      spdlog::warn("a bearer token without TLS travels in clear text");
    }
  }

  SchedulerOptions scheduler_options;
  scheduler_options.executors = settings.executors;
  scheduler_options.threads_per_executor = settings.ThreadsPerExecutor(DefaultThreadCount());
  scheduler_options.adaptive_call_threads = settings.adaptive_call_threads;
  ASSIGN_OR_RETURN(impl->registry,
                   ModelRegistry::Load(config, scheduler_options.threads_per_executor));
  if (!settings.metrics_address.empty()) {
    ASSIGN_OR_RETURN(impl->metrics, Metrics::Start(settings.metrics_address, OneDnnDescription(),
                                                   IsaName(ActiveIsa())));
  }
  impl->stats = std::make_unique<ServerStats>(settings.stats_window_seconds, impl->metrics.get());
  impl->scheduler = std::make_unique<Scheduler>(scheduler_options, *impl->stats);

  // Warm-up through the real path: every model's primitives are built and
  // one batch has run before the server reports SERVING.
  ServerStats warmup_stats(1);
  Scheduler warmup(scheduler_options, warmup_stats);
  for (const auto& model : impl->registry->models()) {
    const Model* m = model.get();
    if (absl::Status warm = Warm(*m, {*impl->registry, warmup, warmup_stats}); !warm.ok()) {
      return absl::Status(warm.code(), absl::StrCat("warming model '", m->config.name, "': ",
                                                    warm.message()));
    }
    auto matmuls = m->block->ImplementationFor(1, DataType::kF32, m->batch_invariant);
    spdlog::info("model {}: {} d_model={} d_ff={} default={} weights={} batching: max {} tokens, "
                 "delay {} us, queue {} tokens; strategy {}{}; engine(M=1)={}; weights held {:.1f} MiB "
                 "({} matrices)",
                 m->config.name, m->config.kind == FfnKind::kGated ? "gated" : "plain",
                 m->config.d_model, m->config.d_ff, ActivationName(m->config.default_activation),
                 WeightSource(m->info),
                 m->batching.max_batch_tokens, m->batching.max_queue_delay_us,
                 m->batching.max_queue_tokens, StrategyName(m->strategy),
                 m->tuning.empty() ? std::string() : absl::StrCat(": ", m->tuning),
                 matmuls.ok() ? *matmuls : matmuls.status().ToString(),
                 static_cast<double>(m->block->WeightBytes()) / (1 << 20),
                 m->info.matrix_dtype());
  }
  warmup.Shutdown();

  // The default budget is a share of what is left once the models are in.
  impl->budget = std::make_unique<MemoryBudget>(
      settings.max_inflight_bytes > 0 ? settings.max_inflight_bytes : DefaultInflightBytes());
  service_options.budget = impl->budget.get();
  impl->service = std::make_unique<FfnServiceImpl>(*impl->registry, *impl->scheduler,
                                                   *impl->stats, service_options);
  impl->kserve = std::make_unique<KServeServiceImpl>(*impl->registry, *impl->scheduler,
                                                     *impl->stats, service_options);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (!service_options.auth_token.empty()) {
    // Reflection asks no token and lists every service and message: under a
    // token it would describe the API to anyone who can connect.
    builder.SetOption(std::make_unique<WithoutReflection>());
  }
  builder.AddListeningPort(settings.address, credentials, &impl->port);
  builder.RegisterService(impl->service.get());
  builder.RegisterService(impl->kserve.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(settings.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(settings.max_message_bytes));
  // Tolerate clients' keepalive pings, with or without calls in flight.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  // gRPC sets SO_REUSEPORT by default, so a second server on a busy port
  // would start and take half the new connections; without it the bind
  // fails and the second start reports the port in use.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    impl->scheduler->Shutdown();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", settings.address,
                                               ": the port is in use, or the host is not an "
                                               "address of this machine"));
  }
  if (!settings.http_address.empty()) {
    HttpOptions http;
    http.address = settings.http_address;
    http.tls_cert = settings.tls_cert;
    http.tls_key = settings.tls_key;
    http.tls_client_ca = settings.tls_client_ca;
    http.auth_token = service_options.auth_token;
    http.max_body_bytes = settings.max_message_bytes;
    auto rest = KServeHttpServer::Start(http, *impl->registry, *impl->scheduler, *impl->stats,
                                        impl->budget.get());
    if (!rest.ok()) {
      impl->server->Shutdown();
      impl->scheduler->Shutdown();
      return rest.status();
    }
    impl->http = std::move(*rest);
  }
  impl->plan_watcher = std::make_unique<PlanWatcher>(
      *impl->registry, *impl->stats, impl->metrics.get(),
      absl::Seconds(settings.plan_check_seconds), scheduler_options.threads_per_executor);
  // "" (the whole server) and the service by name, as probes may ask either.
  impl->server->GetHealthCheckService()->SetServingStatus(true);
  impl->server->GetHealthCheckService()->SetServingStatus(v1::FfnService::service_full_name(),
                                                          true);
  impl->server->GetHealthCheckService()->SetServingStatus(
      inference::GRPCInferenceService::service_full_name(), true);
  spdlog::info("serving {} model(s) on port {}{}{} with {} executor(s) x {} thread(s){}; "
               "kernels {}; {}; requests in flight up to {:.0f} MiB{}",
               impl->registry->models().size(), impl->port,
               settings.tls_cert.empty() ? "" : (settings.tls_client_ca.empty() ? " (TLS)" : " (mutual TLS)"),
               service_options.auth_token.empty() ? "" : " (bearer token)", scheduler_options.executors,
               scheduler_options.threads_per_executor,
               scheduler_options.adaptive_call_threads && scheduler_options.threads_per_executor > 1
                   ? " (adaptive per call)"
                   : "",
               IsaName(ActiveIsa()), OneDnnDescription(),
               static_cast<double>(impl->budget->capacity_bytes()) / (1 << 20),
               absl::StrCat(impl->metrics ? absl::StrCat("; metrics on port ", impl->metrics->port()) : "",
                            impl->http ? absl::StrCat("; KServe v2 REST on port ", impl->http->port()) : ""));
  return std::unique_ptr<FfnServer>(new FfnServer(std::move(impl)));
}

int FfnServer::port() const { return impl_->port; }
int FfnServer::metrics_port() const { return impl_->metrics ? impl_->metrics->port() : 0; }
int FfnServer::http_port() const { return impl_->http ? impl_->http->port() : 0; }

bool FfnServer::ReleaseMemoryIfIdle() {
  const int64_t granted = impl_->budget->granted();
  if (granted != impl_->granted_seen) {
    impl_->granted_seen = granted;
    impl_->trimmed = false;
    return false;
  }
  if (impl_->trimmed || impl_->budget->held_bytes() != 0) return false;
  malloc_trim(0);
  impl_->trimmed = true;
  return true;
}

void FfnServer::Shutdown(std::chrono::milliseconds drain) {
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  impl_->plan_watcher->Stop();  // no re-timing while draining
  // Every service NOT_SERVING, and no change after.
  impl_->server->GetHealthCheckService()->Shutdown();
  impl_->kserve->SetReady(false);
  // The REST front end stops taking requests and answers those it holds
  // while the scheduler still runs.
  if (impl_->http) impl_->http->Stop();
  // No new calls from here on; accepted ones run to completion (the
  // scheduler keeps computing) until `drain` has passed, then gRPC cancels
  // them and the scheduler drops them unread. gRPC's graceful shutdown also
  // waits for every connection to close, and a client that never answers the
  // GOAWAY ping (stopped, wedged, or not gRPC) would hold it to the deadline:
  // once no call is in flight and clients had a moment to close, the
  // connections left are cut.
  const auto deadline = std::chrono::system_clock::now() + drain;
  absl::Notification shut_down;
  std::thread closer([this, deadline, &shut_down] {
    if (shut_down.WaitForNotificationWithTimeout(absl::FromChrono(kGoawayGrace))) return;
    if (impl_->stats->AwaitNoCallsInFlight(absl::FromChrono(deadline)) &&
        !shut_down.HasBeenNotified()) {
      grpc_server_cancel_all_calls(impl_->server->c_server());
    }
  });
  impl_->server->Shutdown(deadline);
  shut_down.Notify();
  closer.join();
  impl_->scheduler->Shutdown();
  impl_->server->Wait();
  impl_->stats->AwaitNoCallsInFlight(absl::Now() + absl::FromChrono(kCallEndWait));
  // What the server accepted, and how it ended: an operator (and the drain
  // test) can check that no accepted request failed. A call cut off after its
  // answer was computed counts as answered and as cancelled.
  const v1::GetStatsResponse stats = impl_->stats->Snapshot();
  uint64_t answered = 0, failed = 0;
  for (const auto& v : stats.variants()) {
    answered += v.requests();
    failed += v.errors();
  }
  spdlog::info("drained: {} requests answered OK since start, {} failed, {} rejected; {} calls "
               "ended CANCELLED (the client went away, or the drain timed out)",
               answered, failed, stats.rejected_requests(), impl_->stats->cancelled_calls());
}

}  // namespace ffn
