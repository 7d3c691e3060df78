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

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A one-model config that loads in well under a second.
std::string TinyConfig(const TempDir& dir) {
  std::ofstream(dir.File("tiny.yaml")) << R"(
models:
  - {name: tiny, d_model: 16, d_ff: 40, activation: gelu, strategy: fused, weights: {random: {seed: 3}}}
)";
  return dir.File("tiny.yaml");
}

// A TCP connection to 127.0.0.1:`port` (-1 on failure); receives time out
// after `timeout_s` so a test fails instead of hanging.
int Connect(int port, double timeout_s = 5) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{static_cast<time_t>(timeout_s),
             static_cast<suseconds_t>((timeout_s - static_cast<double>(static_cast<time_t>(timeout_s))) * 1e6)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// The metrics port from the server's start-up line.
int MetricsPort(const std::string& log) {
  std::smatch m;
  return std::regex_search(log, m, std::regex("metrics on port ([0-9]+)")) ? std::stoi(m[1]) : 0;
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

// prometheus-cpp's default of two civetweb threads with civetweb's 30 s
// request timeout let two idle connections hold /metrics for 30 s.
TEST(ProcessHardeningTest, IdleConnectionsDoNotBlockMetrics) {
  TempDir dir;
  ServerProcess server({"--config", TinyConfig(dir), "--metrics-address", "127.0.0.1:0"});
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  const int port = MetricsPort(server.Log());
  ASSERT_GT(port, 0) << server.Log();
  std::vector<int> idle;
  for (int i = 0; i < 6; ++i) {
    idle.push_back(Connect(port));
    ASSERT_GE(idle.back(), 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let civetweb take them
  const auto start = Clock::now();
  const int fd = Connect(port, 10);
  ASSERT_GE(fd, 0);
  const std::string get = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
  ASSERT_EQ(send(fd, get.data(), get.size(), 0), static_cast<ssize_t>(get.size()));
  std::string answer;
  char buffer[4096];
  for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) answer.append(buffer, n);
  const double seconds = SecondsSince(start);
  close(fd);
  for (int c : idle) close(c);
  EXPECT_TRUE(Contains(answer, "ffn_build_info")) << answer.substr(0, 200);
  EXPECT_LT(seconds, 2.0);
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.Log();
}

TEST(ProcessHardeningTest, WeightsThatAreAFifoAreAStartupError) {
  TempDir dir;
  ASSERT_EQ(mkfifo(dir.File("weights.safetensors").c_str(), 0600), 0);
  std::ofstream(dir.File("fifo.yaml")) << R"(
models:
  - name: fifo
    d_model: 16
    d_ff: 32
    activation: gelu
    weights: {safetensors: weights.safetensors, tensors: {w1: a, w2: b}}
)";
  ServerProcess server({"--config", dir.File("fifo.yaml")});
  EXPECT_EQ(server.WaitExit(15), 1) << "start-up hung on a FIFO:\n" << server.Log();
  EXPECT_TRUE(Contains(server.Log(), dir.File("weights.safetensors"))) << server.Log();
  EXPECT_TRUE(Contains(server.Log(), "not a regular file")) << server.Log();
}

// A model big enough that loading takes seconds (3 to 8 s on 2 cores).
TEST(ProcessHardeningTest, SigtermDuringStartupExitsPromptly) {
  TempDir dir;
  std::ofstream(dir.File("big.yaml")) << R"(
models:
  - {name: big, d_model: 3072, d_ff: 12288, activation: gelu, strategy: unfused, weights: {random: {seed: 5}}}
)";
  ServerProcess server({"--config", dir.File("big.yaml")});
  EXPECT_FALSE(server.WaitReady(1.0)) << "loaded too fast for this test:\n" << server.Log();
  const auto start = Clock::now();
  EXPECT_EQ(server.Stop(SIGTERM, 5), 128 + SIGTERM) << server.Log();
  EXPECT_LT(SecondsSince(start), 2.0) << server.Log();
  EXPECT_TRUE(Contains(server.Log(), "during start-up")) << server.Log();
}

TEST(ProcessHardeningTest, SighupDrainsLikeSigterm) {
  TempDir dir;
  ServerProcess server({"--config", TinyConfig(dir)});
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  EXPECT_EQ(server.Stop(SIGHUP), 0) << server.Log();
  EXPECT_TRUE(Contains(server.Log(), "Hangup received: draining")) << server.Log();
  EXPECT_TRUE(Contains(server.Log(), "drained:")) << server.Log();
}

}  // namespace
}  // namespace ffn
