// The real ffn-server as a process among others: a busy port, bad
// addresses, idle connections to the metrics and gRPC ports, signals during
// start-up and drain, and what it exposes under a bearer token.
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "ffn/v1/ffn.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "process.h"

namespace ffn {
namespace {

using testing::CommandResult;
using testing::RunClient;
using testing::ServerProcess;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

bool Contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

// A one-model config that loads in well under a second.
std::string TinyConfig(const TempDir& dir) {
  std::ofstream(dir.File("tiny.yaml")) << R"(
models:
  - {name: tiny, d_model: 16, d_ff: 40, activation: gelu, strategy: fused, weights: {random: {seed: 3}}}
)";
  return dir.File("tiny.yaml");
}

TEST(ProcessHardeningTest, SecondServerOnABusyPortFailsAndTheFirstKeepsServing) {
  TempDir dir;
  const std::string config = TinyConfig(dir);
  ServerProcess first({"--config", config});
  ASSERT_TRUE(first.WaitReady()) << first.Log();
  ServerProcess second({"--config", config}, first.target());
  EXPECT_EQ(second.WaitExit(30), 1) << "a second server started on a busy port:\n" << second.Log();
  EXPECT_TRUE(Contains(second.Log(), "in use")) << second.Log();
  // Every new connection still reaches the first server.
  for (int i = 0; i < 4; ++i) {
    CommandResult r = RunClient({"models", "--target", first.target(), "--timeout", "10"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
  EXPECT_EQ(first.Stop(SIGTERM), 0) << first.Log();
}

TEST(ProcessHardeningTest, AnAddressOutOfRangeIsAUsageError) {
  TempDir dir;
  const std::string config = TinyConfig(dir);
  ServerProcess server({"--config", config}, "127.0.0.1:99999");
  EXPECT_EQ(server.WaitExit(30), 2) << server.Log();
  EXPECT_TRUE(Contains(server.Log(), "127.0.0.1:99999")) << server.Log();
  ServerProcess metrics({"--config", config, "--metrics-address", "localhost:http"});
  EXPECT_EQ(metrics.WaitExit(30), 2) << metrics.Log();
  EXPECT_TRUE(Contains(metrics.Log(), "localhost:http")) << metrics.Log();
}

}  // namespace
}  // namespace ffn
