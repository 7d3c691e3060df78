// The Open Inference Protocol (KServe v2) over HTTP/REST on its own address
// (--http-address), served by cpp-httplib: /v2/health/live,
// /v2/health/ready, /v2, /v2/models/{m}[/versions/{v}] with /ready,
// /config, /stats and /infer (JSON tensors, and the binary tensor data
// extension with Inference-Header-Content-Length).
//
// Requests take the gRPC service's path (server/src/kserve_infer.h, then
// InferCall): the same validation and messages, memory budget, scheduler
// and statistics; the bearer token and TLS settings apply here too (health
// excepted). An HTTP worker thread waits for its request's answer.
// Errors are {"error": "<message>"} with 400 (invalid), 401
// (unauthenticated), 404 (no such model), 429 (over a limit), 503
// (unavailable, draining), 504 (deadline) or 500.
//
// Example:
//   absl::Status ServeRest(const ffn::ModelRegistry& registry, ffn::Scheduler& scheduler,
//                          ffn::ServerStats& stats) {
//     ffn::HttpOptions options;
//     options.address = "127.0.0.1:0";
//     auto http = ffn::KServeHttpServer::Start(options, registry, scheduler, stats, nullptr);
//     if (!http.ok()) return http.status();
//     (*http)->Stop();
//     return absl::OkStatus();
//   }
#ifndef FFN_SERVER_KSERVE_HTTP_H_
#define FFN_SERVER_KSERVE_HTTP_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "ffn/server/memory_budget.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/scheduler.h"
#include "ffn/server/stats.h"

namespace ffn {

struct HttpOptions {
  std::string address;  // HOST:PORT; port 0 picks a free one
  // PEM files: TLS when tls_cert is set; with tls_client_ca, clients must
  // present a certificate it signed.
  std::string tls_cert, tls_key, tls_client_ca;
  // "Authorization: Bearer <token>" every non-health request must carry;
  // empty: none.
  std::string auth_token;
  int64_t max_body_bytes = 64 << 20;
  // Requests answered at once (each waits on its worker thread); more
  // connections queue for a worker.
  int worker_threads = 64;
};

class KServeHttpServer {
 public:
  // Binds and starts serving. UNAVAILABLE if the address cannot be bound,
  // INVALID_ARGUMENT for a bad address or unreadable TLS files. `budget`
  // may be null (unbounded); every reference outlives the server.
  static absl::StatusOr<std::unique_ptr<KServeHttpServer>> Start(const HttpOptions& options,
                                                                 const ModelRegistry& registry,
                                                                 Scheduler& scheduler,
                                                                 ServerStats& stats,
                                                                 MemoryBudget* budget);
  ~KServeHttpServer();  // Stop()s

  int port() const;
  // Whether /v2/health/ready and model readiness answer ready.
  void SetReady(bool ready);
  // Stops listening and waits for the requests being answered. Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit KServeHttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ffn

#endif  // FFN_SERVER_KSERVE_HTTP_H_
