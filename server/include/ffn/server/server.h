// FfnServer: everything ffn-server runs, startable in-process for tests.
//
// Example:
//   ASSIGN_OR_RETURN(ffn::ServerConfig config, ffn::ParseConfig(ffn::DefaultConfigYaml(), ""));
//   config.server.address = "127.0.0.1:0";  // any free port; server->port() tells which
//   ASSIGN_OR_RETURN(std::unique_ptr<ffn::FfnServer> server, ffn::FfnServer::Start(config));
//   server->Shutdown(std::chrono::seconds(5));
#ifndef FFN_SERVER_SERVER_H_
#define FFN_SERVER_SERVER_H_

#include <chrono>
#include <memory>

#include "absl/status/statusor.h"
#include "ffn/server/config.h"

namespace ffn {

class FfnServer {
 public:
  // Loads and warms every model (one batch through the scheduler each), then
  // listens on config.server.address (port 0 picks a free port) with the
  // FfnService, health checking (SERVING once started), reflection, and the
  // metrics endpoint if configured. TLS and a bearer token as configured.
  static absl::StatusOr<std::unique_ptr<FfnServer>> Start(const ServerConfig& config);
  ~FfnServer();

  // The bound port.
  int port() const;
  // The metrics endpoint's port; 0 without one.
  int metrics_port() const;
  // The bound port of the KServe v2 REST front end; 0 when it is off.
  int http_port() const;
  // Call now and then from one thread (ffn-server: every second). Once no
  // request has arrived since the previous call and none is in flight, gives
  // the allocator's free pages back to the system, once per quiet spell:
  // after a burst of large requests RSS falls back to what is in use. Never
  // under load: trimming takes tens of ms with the allocator's arenas locked.
  // Returns whether it trimmed.
  bool ReleaseMemoryIfIdle();
  // Turns health NOT_SERVING, stops accepting calls, lets accepted calls
  // finish for up to `drain` (then cancels them), and stops the executors.
  // Idempotent and thread-safe.
  void Shutdown(std::chrono::milliseconds drain);

 private:
  struct Impl;
  explicit FfnServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Threads to use when the setting is 0: the CPUs this process may run on.
int DefaultThreadCount();

}  // namespace ffn

#endif  // FFN_SERVER_SERVER_H_
