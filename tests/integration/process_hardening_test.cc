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

// A connection that sent the HTTP/2 preface and then went silent (a stopped
// or wedged client) never answers the server's GOAWAY ping; it must not hold
// the exit until the drain timeout.
TEST(ProcessHardeningTest, AnIdleConnectionDoesNotHoldTheDrain) {
  TempDir dir;
  ServerProcess server({"--config", TinyConfig(dir), "--drain-timeout", "10"});
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  const int fd = Connect(server.port());
  ASSERT_GE(fd, 0);
  const std::string preface = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
                              std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
  ASSERT_EQ(send(fd, preface.data(), preface.size(), 0), static_cast<ssize_t>(preface.size()));
  // A served call first, so the connections are surely set up.
  CommandResult r = RunClient({"models", "--target", server.target(), "--timeout", "10"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto start = Clock::now();
  EXPECT_EQ(server.Stop(SIGTERM, 20), 0) << server.Log();
  EXPECT_LT(SecondsSince(start), 1.5) << server.Log();
  close(fd);
}

// A call still computing when the drain times out is cut off by gRPC (the
// client sees UNAVAILABLE or CANCELLED); the drain log counts it as cancelled
// besides answered.
TEST(ProcessHardeningTest, DrainLogCountsCancelledCalls) {
  TempDir dir;
  std::ofstream(dir.File("slow.yaml")) << R"(
models:
  - {name: slow, d_model: 8, d_ff: 16, activation: relu, strategy: fused, debug_delay_us: 1500000,
     weights: {random: {seed: 13}}}
)";
  ServerProcess server({"--config", dir.File("slow.yaml"), "--drain-timeout", "0.3"});
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  auto stub = v1::FfnService::NewStub(
      grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials()));
  auto call = std::async(std::launch::async, [&] {
    v1::InferRequest request;
    request.set_model("slow");
    request.mutable_input()->set_dtype(v1::FLOAT32);
    request.mutable_input()->add_shape(1);
    request.mutable_input()->add_shape(8);
    const std::vector<float> x(8, 0.5f);
    request.mutable_input()->set_data(x.data(), x.size() * sizeof(float));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::InferResponse response;
    return stub->Infer(&context, request, &response);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the call is computing
  EXPECT_EQ(server.Stop(SIGTERM, 20), 0) << server.Log();
  const grpc::Status status = call.get();
  EXPECT_TRUE(status.error_code() == grpc::StatusCode::CANCELLED ||
              status.error_code() == grpc::StatusCode::UNAVAILABLE)
      << status.error_code() << " " << status.error_message();
  EXPECT_TRUE(Contains(server.Log(), "1 calls ended CANCELLED")) << server.Log();
}

// Reflection's list_services, sent as one message of its bidi stream.
grpc::Status ListServicesByReflection(const std::string& target, std::string* answer) {
  grpc::GenericStub stub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  const char list_services[] = {0x3a, 0x00};  // field 7 (list_services): ""
  grpc::Slice slice(list_services, sizeof(list_services));
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                 grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(status); });
  const grpc::Status status = done.get_future().get();
  std::vector<grpc::Slice> slices;
  if (status.ok() && response.Dump(&slices).ok()) {
    for (const auto& s : slices) answer->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return status;
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(const std::string& target,
                                                            const std::string& service,
                                                            grpc::StatusCode* code) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  *code = stub->Check(&context, request, &response).error_code();
  return response.status();
}

TEST(ProcessHardeningTest, HealthNamesTheServiceAndReflectionNeedsNoTokenOnlyWithoutOne) {
  TempDir dir;
  const std::string config = TinyConfig(dir);
  std::ofstream(dir.File("token")) << "s3cret\n";
  for (const bool with_token : {false, true}) {
    std::vector<std::string> args = {"--config", config};
    if (with_token) args.insert(args.end(), {"--auth-token-file", dir.File("token")});
    ServerProcess server(args);
    ASSERT_TRUE(server.WaitReady()) << server.Log();
    for (const std::string service : {"", "ffn.v1.FfnService"}) {
      grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
      EXPECT_EQ(Health(server.target(), service, &code),
                grpc::health::v1::HealthCheckResponse::SERVING)
          << "'" << service << "'";
      EXPECT_EQ(code, grpc::StatusCode::OK) << "'" << service << "'";
    }
    std::string answer;
    const grpc::Status reflection = ListServicesByReflection(server.target(), &answer);
    if (with_token) {
      // Reflection would list the services to anyone: off under a token.
      EXPECT_EQ(reflection.error_code(), grpc::StatusCode::UNIMPLEMENTED) << answer;
    } else {
      EXPECT_TRUE(reflection.ok()) << reflection.error_message();
      EXPECT_TRUE(Contains(answer, "ffn.v1.FfnService")) << answer;
    }
    EXPECT_EQ(server.Stop(SIGTERM), 0) << server.Log();
  }
}

}  // namespace
}  // namespace ffn
