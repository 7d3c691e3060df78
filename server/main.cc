// ffn-server: serves FFN blocks over gRPC. See README.md for the flags.
#include <csignal>
#include <cstdio>
#include <fstream>

#include "CLI/CLI.hpp"
#include "ffn/server/config.h"
#include "ffn/server/server.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  CLI::App app{"ffn-server: transformer FFN blocks over gRPC, on CPU"};
  std::string config_path, address, log_level = "info", port_file;
  int threads = -1;
  int64_t max_tokens = 0;
  double drain_seconds = 10;
  app.add_option("--config", config_path, "YAML config file (default: the embedded models)")
      ->check(CLI::ExistingFile);
  app.add_option("--address", address, "HOST:PORT to listen on; port 0 picks one "
                                        "(default 127.0.0.1:50051, or the config's)");
  app.add_option("--threads", threads, "compute threads for oneDNN (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-tokens", max_tokens, "largest tokens per request (default 8192)")
      ->check(CLI::PositiveNumber);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--port-file", port_file, "write the bound port to this file once serving");
  app.add_option("--drain-timeout", drain_seconds, "seconds to finish calls in flight on SIGTERM")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  auto config = config_path.empty() ? ffn::ParseConfig(ffn::DefaultConfigYaml(), "")
                                    : ffn::LoadConfigFile(config_path);
  if (!config.ok()) {
    spdlog::error("{}", std::string(config.status().message()));
    return 2;
  }
  if (!address.empty()) config->server.address = address;
  if (threads >= 0) config->server.threads = threads;
  if (max_tokens > 0) config->server.max_tokens_per_request = max_tokens;

  // Signals are taken by sigwait below; block them before any thread starts
  // so no other thread receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = ffn::FfnServer::Start(*config);
  if (!server.ok()) {
    spdlog::error("{}", std::string(server.status().message()));
    return 1;
  }
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << (*server)->port() << "\n";
    std::rename(tmp.c_str(), port_file.c_str());  // readers never see a partial file
  }
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("{} received: draining (up to {} s)", strsignal(signal_number), drain_seconds);
  (*server)->Shutdown(std::chrono::milliseconds(static_cast<int64_t>(drain_seconds * 1000)));
  spdlog::info("stopped");
  return 0;
}
