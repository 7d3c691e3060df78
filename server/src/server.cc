#include "ffn/server/server.h"

#include <sched.h>

#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "ffn/server/executor.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/service.h"
#include "ffn/server/stats.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"
#include "spdlog/spdlog.h"

namespace ffn {

int DefaultThreadCount() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

struct FfnServer::Impl {
  std::unique_ptr<ModelRegistry> registry;
  std::unique_ptr<ServerStats> stats;
  std::unique_ptr<Executor> executor;
  std::unique_ptr<FfnServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  bool stopped = false;
};

FfnServer::FfnServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FfnServer::~FfnServer() { Shutdown(std::chrono::milliseconds(0)); }

absl::StatusOr<std::unique_ptr<FfnServer>> FfnServer::Start(const ServerConfig& config) {
  auto impl = std::make_unique<Impl>();
  auto registry = ModelRegistry::Load(config);
  if (!registry.ok()) return registry.status();
  impl->registry = std::move(*registry);
  const int threads = config.server.threads > 0 ? config.server.threads : DefaultThreadCount();
  impl->executor = std::make_unique<Executor>(threads, config.server.max_queue_requests);

  // Warm-up on the executor thread, so its OpenMP pool and every model's
  // one-token primitives exist before the first request.
  for (const auto& model : impl->registry->models()) {
    absl::Notification done;
    absl::Status warm;
    const Model* m = model.get();
    absl::Status submitted = impl->executor->Submit([m, &warm, &done] {
      std::vector<float> x(static_cast<size_t>(m->config.d_model), 0.5f);
      std::vector<float> y(x.size());
      warm = m->block->Run(m->config.default_activation, x.data(), 1, y.data());
      done.Notify();
    });
    if (!submitted.ok()) return submitted;
    done.WaitForNotification();
    if (!warm.ok()) {
      return absl::Status(warm.code(), absl::StrCat("warming model '", m->config.name, "': ",
                                                    warm.message()));
    }
    auto impl_name = m->block->ImplementationFor(1);
    spdlog::info("model {}: {} d_model={} d_ff={} default={} weights={} matmuls(M=1)={}",
                 m->config.name, m->config.kind == FfnKind::kGated ? "gated" : "plain",
                 m->config.d_model, m->config.d_ff, ActivationName(m->config.default_activation),
                 m->config.random_weights ? absl::StrCat("random seed ", m->config.seed)
                                          : m->config.safetensors_path,
                 impl_name.ok() ? *impl_name : impl_name.status().ToString());
  }

  impl->stats = std::make_unique<ServerStats>(config.server.stats_window_seconds);
  impl->service = std::make_unique<FfnServiceImpl>(*impl->registry, *impl->executor, *impl->stats);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.server.address, grpc::InsecureServerCredentials(), &impl->port);
  builder.RegisterService(impl->service.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.server.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config.server.max_message_bytes));
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    impl->executor->Shutdown();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config.server.address, " (in use, or not a valid HOST:PORT)"));
  }
  impl->server->GetHealthCheckService()->SetServingStatus(true);
  spdlog::info("serving {} model(s) on port {} with {} compute thread(s); {}",
               impl->registry->models().size(), impl->port, threads, OneDnnDescription());
  return std::unique_ptr<FfnServer>(new FfnServer(std::move(impl)));
}

int FfnServer::port() const { return impl_->port; }

void FfnServer::Shutdown(std::chrono::milliseconds drain) {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->server->GetHealthCheckService()->SetServingStatus(false);
  impl_->server->Shutdown(std::chrono::system_clock::now() + drain);
  // Every accepted call was queued; the executor finishes them before it exits.
  impl_->executor->Shutdown();
  impl_->server->Wait();
}

}  // namespace ffn
