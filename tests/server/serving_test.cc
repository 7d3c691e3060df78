// The production features of the service, in-process on loopback:
// InferStream, bearer token, Prometheus metrics, TLS and mutual TLS, and
// overload.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "ffn/kernels/epilogue.h"
#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/reference.h"
#include "ffn/server/config.h"
#include "ffn/server/server.h"
#include "ffn/v1/ffn.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "start_server.h"

namespace ffn {
namespace {

constexpr char kModels[] = R"(
models:
  - {name: plain, d_model: 32, d_ff: 80, activation: gelu, weights: {random: {seed: 11}}}
  - {name: gated, d_model: 24, d_ff: 40, activation: swiglu, weights: {random: {seed: 12}}}
  - {name: slow, d_model: 8, d_ff: 16, activation: relu, debug_delay_us: 30000,
     batching: {max_batch_tokens: 1, max_queue_tokens: 3}, weights: {random: {seed: 13}}}
)";

std::string TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "ffn-serving-XXXXXX").string();
  return mkdtemp(pattern.data());
}

std::unique_ptr<FfnServer> StartServer(const std::string& server_yaml) {
  auto config = ParseConfig("server: {address: \"127.0.0.1:0\", " + server_yaml + "}\n" + kModels, "");
  EXPECT_TRUE(config.ok()) << config.status();
  auto server = FfnServer::Start(*config);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

v1::InferRequest Request(const std::string& model, int64_t tokens, int64_t d_model,
                         const std::string& activation, uint64_t seed) {
  v1::InferRequest request;
  request.set_model(model);
  request.set_activation(activation);
  request.mutable_input()->set_dtype(v1::FLOAT32);
  request.mutable_input()->add_shape(tokens);
  request.mutable_input()->add_shape(d_model);
  std::vector<float> x(static_cast<size_t>(tokens * d_model));
  FillUniform(seed, RandomStream::kInput, kRandomInputScale, x);
  request.mutable_input()->set_data(x.data(), x.size() * sizeof(float));
  return request;
}

// The answer is within the fp32 tolerance of the fp64 reference.
void ExpectCorrect(const v1::InferRequest& request, const v1::InferResponse& response,
                   FfnKind kind, int64_t d_model, int64_t d_ff, uint64_t seed) {
  ASSERT_EQ(response.error_code(), 0) << response.error_message();
  FfnWeights w = RandomFfnWeights(kind, d_model, d_ff, seed);
  ActivationParams params;
  params.prelu_alpha = w.prelu_alpha;
  const int64_t tokens = request.input().shape(0);
  auto expected = ReferenceFfn(w, *ParseActivation(request.activation()), params,
                               reinterpret_cast<const float*>(request.input().data().data()), tokens);
  ASSERT_EQ(response.output().data().size(), expected.size() * sizeof(float));
  std::vector<float> y(expected.size());
  std::memcpy(y.data(), response.output().data().data(), response.output().data().size());
  EXPECT_TRUE(CompareToReference(y.data(), expected).within(kFp32CheckTolerance));
}

std::shared_ptr<grpc::Channel> Channel(int port) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
}

TEST(InferStreamTest, AnswersPipelinedRequestsInOrderWithErrorsInBand) {
  auto server = StartServer("max_stream_inflight: 8");
  ASSERT_NE(server, nullptr);
  auto stub = v1::FfnService::NewStub(Channel(server->port()));
  grpc::ClientContext context;
  auto stream = stub->InferStream(&context);
  // 40 requests written without waiting (more than max_stream_inflight), a
  // mix of variants and sizes, with one bad request in the middle.
  std::vector<v1::InferRequest> requests;
  for (int i = 0; i < 40; ++i) {
    if (i == 17) {
      requests.push_back(Request("plain", 2, 31, "relu", i));  // wrong d_model
    } else if (i % 3 == 0) {
      requests.push_back(Request("gated", 1 + i % 4, 24, i % 2 ? "geglu" : "swiglu", i));
    } else {
      requests.push_back(Request("plain", 1 + i % 5, 32, i % 2 ? "silu" : "relu", i));
    }
  }
  std::thread writer([&] {
    for (const auto& r : requests) ASSERT_TRUE(stream->Write(r));
    stream->WritesDone();
  });
  std::vector<v1::InferResponse> responses;
  v1::InferResponse response;
  while (stream->Read(&response)) responses.push_back(response);
  writer.join();
  ASSERT_TRUE(stream->Finish().ok());
  ASSERT_EQ(responses.size(), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    if (i == 17) {
      EXPECT_EQ(responses[i].error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_NE(responses[i].error_message().find("d_model = 32"), std::string::npos);
      continue;
    }
    const bool gated = requests[i].model() == "gated";
    EXPECT_EQ(responses[i].variant().activation(), requests[i].activation()) << i;
    ExpectCorrect(requests[i], responses[i], gated ? FfnKind::kGated : FfnKind::kPlain,
                  gated ? 24 : 32, gated ? 40 : 80, gated ? 12 : 11);
    EXPECT_GE(responses[i].batch_tokens(), requests[i].input().shape(0));
  }
  server->Shutdown(std::chrono::seconds(2));
}

TEST(AuthTest, TokenGuardsTheServiceButNotHealth) {
  const std::string dir = TempDir();
  std::ofstream(dir + "/token") << "s3cret-token\n";
  auto server = StartServer("auth_token_file: " + dir + "/token");
  ASSERT_NE(server, nullptr);
  auto channel = Channel(server->port());
  auto stub = v1::FfnService::NewStub(channel);
  auto call = [&](const std::string& token) {
    grpc::ClientContext context;
    if (!token.empty()) context.AddMetadata("authorization", token);
    v1::InferResponse response;
    return stub->Infer(&context, Request("plain", 1, 32, "relu", 1), &response);
  };
  EXPECT_EQ(call("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call("Bearer wrong-token!!").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call("Bearer s3cret-token-longer").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call("s3cret-token").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(call("Bearer s3cret-token").ok());
  {
    grpc::ClientContext context;
    v1::ListModelsResponse models;
    EXPECT_EQ(stub->ListModels(&context, {}, &models).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    auto stream = stub->InferStream(&context);
    v1::InferResponse response;
    EXPECT_FALSE(stream->Read(&response));
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckResponse health;
    ASSERT_TRUE(grpc::health::v1::Health::NewStub(channel)->Check(&context, {}, &health).ok());
    EXPECT_EQ(health.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  server->Shutdown(std::chrono::seconds(1));
  std::filesystem::remove_all(dir);
}

// GET http://127.0.0.1:port/metrics over a plain socket.
std::string Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string get = "GET /metrics HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  (void)!write(fd, get.data(), get.size());
  std::string reply;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) reply.append(buffer, static_cast<size_t>(n));
  close(fd);
  return reply;
}

// The value of the sample `name` whose labels are exactly `labels` (in any
// order), or -1 if there is none.
double Sample(const std::string& text, const std::string& name,
              std::map<std::string, std::string> labels) {
  std::istringstream lines(text);
  std::string line;
  const std::regex label(R"re(([a-z_]+)="([^"]*)")re");
  while (std::getline(lines, line)) {
    if (line.rfind(name + "{", 0) != 0) continue;
    const size_t close = line.find("} ");
    if (close == std::string::npos) continue;
    const std::string inside = line.substr(name.size() + 1, close - name.size() - 1);
    std::map<std::string, std::string> found;
    for (auto it = std::sregex_iterator(inside.begin(), inside.end(), label);
         it != std::sregex_iterator(); ++it) {
      found[(*it)[1]] = (*it)[2];
    }
    if (found == labels) return std::stod(line.substr(close + 2));
  }
  return -1;
}

TEST(MetricsTest, PrometheusEndpointCountsRequestsBatchesAndErrors) {
  auto server = StartServer("metrics_address: \"127.0.0.1:0\"");
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->metrics_port(), 0);
  auto stub = v1::FfnService::NewStub(Channel(server->port()));
  for (int i = 0; i < 5; ++i) {
    grpc::ClientContext context;
    v1::InferResponse response;
    ASSERT_TRUE(stub->Infer(&context, Request("plain", 3, 32, "tanh", i), &response).ok());
  }
  {
    grpc::ClientContext context;
    v1::InferResponse response;
    EXPECT_FALSE(stub->Infer(&context, Request("plain", 3, 30, "tanh", 1), &response).ok());
    grpc::ClientContext context2;
    EXPECT_FALSE(stub->Infer(&context2, Request("nope", 1, 30, "", 1), &response).ok());
  }
  const std::string text = Scrape(server->metrics_port());
  ASSERT_NE(text.find("200 OK"), std::string::npos) << text.substr(0, 200);
  const std::map<std::string, std::string> v = {
      {"model", "plain"}, {"activation", "tanh"}, {"dtype", "FLOAT32"}};
  auto with = [&v](std::map<std::string, std::string> extra) {
    extra.insert(v.begin(), v.end());
    return extra;
  };
  EXPECT_EQ(Sample(text, "ffn_requests_total", with({{"code", "OK"}})), 5) << text;
  EXPECT_EQ(Sample(text, "ffn_requests_total", with({{"code", "INVALID_ARGUMENT"}})), 1);
  EXPECT_EQ(Sample(text, "ffn_rejected_requests_total", {{"code", "NOT_FOUND"}}), 1);
  EXPECT_EQ(Sample(text, "ffn_tokens_total", v), 15);
  EXPECT_EQ(Sample(text, "ffn_request_duration_seconds_count", with({{"stage", "total"}})), 5);
  EXPECT_EQ(Sample(text, "ffn_request_duration_seconds_bucket",
                   with({{"stage", "compute"}, {"le", "10"}})),
            5);
  EXPECT_EQ(Sample(text, "ffn_request_duration_seconds_bucket",
                   with({{"stage", "queue"}, {"le", "+Inf"}})),
            5);
  EXPECT_GE(Sample(text, "ffn_batches_total", v), 1);
  EXPECT_EQ(Sample(text, "ffn_batch_tokens_sum", v), 15);
  EXPECT_EQ(Sample(text, "ffn_queue_tokens", v), 0);
  EXPECT_NE(text.find("ffn_build_info{"), std::string::npos);
  EXPECT_NE(text.find("# TYPE ffn_request_duration_seconds histogram"), std::string::npos);
  server->Shutdown(std::chrono::seconds(1));
}

TEST(MetricsTest, ExpiryInTheQueueIsCountedAsDeadlineExceeded) {
  // "slow" here computes one token per 300 ms batch: the second request
  // arrives well within its 100 ms deadline (even under a sanitizer on a
  // busy machine) and expires in the queue behind the first.
std::unique_ptr<FfnServer> server = StartSlowServer("metrics_address: \"127.0.0.1:0\"");
  ASSERT_NE(server, nullptr);
  auto stub = v1::FfnService::NewStub(Channel(server->port()));
  std::thread busy([&] {
    grpc::ClientContext context;
    v1::InferResponse response;
    EXPECT_TRUE(stub->Infer(&context, Request("slow", 1, 8, "", 1), &response).ok());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  v1::InferResponse response;
  EXPECT_EQ(stub->Infer(&context, Request("slow", 1, 8, "", 2), &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  busy.join();
  const std::map<std::string, std::string> slow = {
      {"model", "slow"}, {"activation", "relu"}, {"dtype", "FLOAT32"}};
  auto with_code = [&slow](const std::string& code) {
    auto labels = slow;
    labels.emplace("code", code);
    return labels;
  };
  // The executor drops the expired request when it reaches it.
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text = Scrape(server->metrics_port());
    if (Sample(text, "ffn_requests_total", with_code("DEADLINE_EXCEEDED")) == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(Sample(text, "ffn_requests_total", with_code("DEADLINE_EXCEEDED")), 1) << text;
  EXPECT_LT(Sample(text, "ffn_requests_total", with_code("CANCELLED")), 1) << text;  // -1: none
  server->Shutdown(std::chrono::seconds(1));
}

// A NaN in an input row makes the whole output row NaN (IEEE: NaN·w is NaN
// for every w), whatever the path, compute dtype or batch size. oneDNN's relu
// post-op used to map it to 0, so the row came back as b2.
TEST(NanTest, ANanRowComesBackNanOnEveryPath) {
  auto config = ParseConfig(R"(
server: {address: "127.0.0.1:0", threads: 2}
models:
  - {name: auto, d_model: 32, d_ff: 80, activation: relu, weights: {random: {seed: 1}}}
  - {name: fused, d_model: 32, d_ff: 80, activation: relu, strategy: fused, batch_invariant: false,
     weights: {random: {seed: 1}}}
  - {name: unfused, d_model: 32, d_ff: 80, activation: relu, strategy: unfused,
     weights: {random: {seed: 1}}}
  - {name: postops, d_model: 32, d_ff: 80, activation: relu, strategy: postops,
     weights: {random: {seed: 1}}}
  - {name: postops-gated, d_model: 24, d_ff: 40, activation: reglu, strategy: postops,
     weights: {random: {seed: 2}}}
)", "");
  ASSERT_TRUE(config.ok()) << config.status();
  auto server = FfnServer::Start(*config);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::FfnService::NewStub(Channel((*server)->port()));
  for (const auto& [model, d_model] : {std::pair<std::string, int64_t>{"auto", 32}, {"fused", 32},
                                       {"unfused", 32}, {"postops", 32}, {"postops-gated", 24}}) {
    for (v1::DType compute : {v1::FLOAT32, v1::BFLOAT16}) {
      for (int64_t tokens : {1, 3, 32, 64}) {
        v1::InferRequest request = Request(model, tokens, d_model, "", 7);
        request.set_compute_dtype(compute);
        const int64_t nan_row = tokens / 2;
        float* x = reinterpret_cast<float*>(request.mutable_input()->mutable_data()->data());
        x[nan_row * d_model + 5] = std::numeric_limits<float>::quiet_NaN();
        grpc::ClientContext context;
        v1::InferResponse response;
        ASSERT_TRUE(stub->Infer(&context, request, &response).ok());
        std::vector<float> y(static_cast<size_t>(tokens * d_model));
        std::memcpy(y.data(), response.output().data().data(), y.size() * sizeof(float));
        for (int64_t row = 0; row < tokens; ++row) {
          const auto first = y.begin() + row * d_model, last = first + d_model;
          if (row == nan_row) {
            EXPECT_TRUE(std::all_of(first, last, [](float v) { return std::isnan(v); }))
                << model << " " << v1::DType_Name(compute) << " M=" << tokens;
          } else {
            EXPECT_TRUE(std::all_of(first, last, [](float v) { return std::isfinite(v); }))
                << model << " " << v1::DType_Name(compute) << " M=" << tokens << " row " << row;
          }
        }
      }
    }
  }
  (*server)->Shutdown(std::chrono::seconds(1));
}

TEST(MetricsTest, CallsCutOffBeforeTheirRequestArrivedAreNotBadRequests) {
  // A deadline that passes while a request is still arriving leaves the
  // server a partial message: it was counted as a rejected INVALID_ARGUMENT
  // (about 6 % of 2 ms-deadline calls of 1-2 MB in a soak).
  auto server = StartServer("metrics_address: \"127.0.0.1:0\", max_tokens_per_request: 16384");
  ASSERT_NE(server, nullptr);
  auto stub = v1::FfnService::NewStub(Channel(server->port()));
  const v1::InferRequest big = Request("plain", 16384, 32, "", 3);  // 2 MiB
  std::vector<std::thread> clients;
  for (int c = 0; c < 2; ++c) {
    clients.emplace_back([&] {
      for (int i = 0; i < 150; ++i) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::microseconds(300 + 20 * i));
        v1::InferResponse response;
        stub->Infer(&context, big, &response).IgnoreError();
      }
    });
  }
  for (auto& client : clients) client.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::string text = Scrape(server->metrics_port());
  EXPECT_LT(Sample(text, "ffn_rejected_requests_total", {{"code", "INVALID_ARGUMENT"}}), 1) << text;
  server->Shutdown(std::chrono::seconds(1));
}

TEST(OverloadTest, ARequestOverTheMemoryBudgetIsResourceExhausted) {
  // 1 MiB budget: 8192 tokens × 32 floats is 1 MiB of data, charged 4 MiB.
  auto server = StartServer("max_inflight_bytes: 1048576");
  ASSERT_NE(server, nullptr);
  auto stub = v1::FfnService::NewStub(Channel(server->port()));
  grpc::ClientContext context;
  v1::InferResponse response;
  grpc::Status status = stub->Infer(&context, Request("plain", 8192, 32, "", 1), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("budget (max_inflight_bytes) is 1048576"),
            std::string::npos)
      << status.error_message();
  grpc::ClientContext small_context;
  EXPECT_TRUE(stub->Infer(&small_context, Request("plain", 64, 32, "", 1), &response).ok());
  server->Shutdown(std::chrono::seconds(1));
}

// GetStats gives each variant's engine calls by size, with the start-up
// plan's time where the model was tuned.
TEST(StatsTest, BatchSizeBucketsCarryThePlannedTimeOfTunedModels) {
  for (const bool invariant : {false, true}) {
    SCOPED_TRACE(invariant ? "batch-invariant (not tuned)" : "tuned");
    auto server = StartServer(invariant ? "" : "batch_invariant: false");
    ASSERT_NE(server, nullptr);
    auto stub = v1::FfnService::NewStub(Channel(server->port()));
    for (int tokens : {1, 3, 3, 40}) {
      grpc::ClientContext context;
      v1::InferResponse response;
      ASSERT_TRUE(stub->Infer(&context, Request("plain", tokens, 32, "", 5), &response).ok());
    }
    grpc::ClientContext context;
    v1::GetStatsResponse stats;
    ASSERT_TRUE(stub->GetStats(&context, {}, &stats).ok());
    const v1::VariantStats* plain = nullptr;
    for (const auto& v : stats.variants()) {
      if (v.variant().model() == "plain") plain = &v;
    }
    ASSERT_NE(plain, nullptr);
    EXPECT_GT(plain->last_success_unix_ms(), 0);
    // Requests ran one at a time: batches of 1, 3, 3 and 40 tokens.
    ASSERT_EQ(plain->batch_sizes_size(), 3);
    EXPECT_EQ(plain->batch_sizes(1).tokens_from(), 2);
    EXPECT_EQ(plain->batch_sizes(1).batches(), 2u);
    EXPECT_EQ(plain->batch_sizes(2).tokens_from(), 32);
    EXPECT_DOUBLE_EQ(plain->batch_sizes(2).mean_tokens(), 40);
    for (const auto& size : plain->batch_sizes()) {
      EXPECT_GT(size.compute_mean_us(), 0);
      if (invariant) {
        EXPECT_EQ(size.planned_us(), 0);
      } else {
        EXPECT_GT(size.planned_us(), 0);
      }
    }
    server->Shutdown(std::chrono::seconds(1));
  }
}

// A plan whose times the machine cannot meet (here: a cache edited to a
// microsecond's thousandth) is noticed while serving and its probe re-timed:
// the plan's time becomes a real one, logged and counted in the metrics.
TEST(PlanWatcherTest, APlanTheMachineDoesNotMeetIsRetimedWhileServing) {
  const std::string cache = TempDir() + "/plans.json";
  const std::string settings = "batch_invariant: false, plan_check_seconds: 1, plan_cache: \"" +
                               cache + "\", metrics_address: \"127.0.0.1:0\"";
  StartServer(settings)->Shutdown(std::chrono::seconds(1));  // tunes, writes the cache
  std::stringstream read;
  read << std::ifstream(cache).rdbuf();
  std::string text = read.str();
  text = std::regex_replace(text, std::regex(R"re(("(un)?fused_ms": )[0-9.e+-]+)re"), "$011e-06");
  ASSERT_NE(text.find("\"fused_ms\": 1e-06"), std::string::npos) << text;
  std::ofstream(cache, std::ios::trunc) << text;

  auto server = StartServer(settings);
  ASSERT_NE(server, nullptr);
  auto stub = v1::FfnService::NewStub(Channel(server->port()));
  auto planned_us = [&] {
    grpc::ClientContext context;
    v1::GetStatsResponse stats;
    EXPECT_TRUE(stub->GetStats(&context, {}, &stats).ok());
    for (const auto& v : stats.variants()) {
      if (v.variant().model() != "plain" || v.batch_sizes_size() == 0) continue;
      return v.batch_sizes(0).planned_us();
    }
    return -1.0;
  };
  double first = -1, now = -1;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < give_up) {
    for (int i = 0; i < 20; ++i) {
      grpc::ClientContext context;
      v1::InferResponse response;
      ASSERT_TRUE(stub->Infer(&context, Request("plain", 1, 32, "", i), &response).ok());
    }
    now = planned_us();
    if (first < 0) first = now;
    if (now > 0.1) break;  // re-timed: a real call takes microseconds at least
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NEAR(first, 0.001, 1e-9) << "the edited plan: 1e-6 ms";
  EXPECT_GT(now, 0.1) << "not re-timed within 30 s";
  EXPECT_GE(Sample(Scrape(server->metrics_port()), "ffn_plan_retimes_total", {{"model", "plain"}}),
            1);
  server->Shutdown(std::chrono::seconds(1));
}

TEST(IdleMemoryTest, TrimsOncePerQuietSpellAndNeverWhileRequestsArrive) {
  auto server = StartServer("");
  ASSERT_NE(server, nullptr);
  auto stub = v1::FfnService::NewStub(Channel(server->port()));
  EXPECT_FALSE(server->ReleaseMemoryIfIdle());  // the first call only looks
  EXPECT_TRUE(server->ReleaseMemoryIfIdle());   // nothing arrived since: trims
  EXPECT_FALSE(server->ReleaseMemoryIfIdle());  // once per quiet spell
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    v1::InferResponse response;
    ASSERT_TRUE(stub->Infer(&context, Request("plain", 512, 32, "", i), &response).ok());
    EXPECT_FALSE(server->ReleaseMemoryIfIdle()) << "a request arrived since the last call";
  }
  // The client may see its answer a moment before the server lets go of the
  // request's bytes: until then the server is not idle.
  bool trimmed = false;
  for (int i = 0; i < 500 && !trimmed; ++i) {
    trimmed = server->ReleaseMemoryIfIdle();
    if (!trimmed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(trimmed);
  EXPECT_FALSE(server->ReleaseMemoryIfIdle());
  server->Shutdown(std::chrono::seconds(1));
}

TEST(OverloadTest, FullQueueFailsFastAndTheServerRecovers) {
  auto server = StartServer("");
  ASSERT_NE(server, nullptr);
  auto stub = v1::FfnService::NewStub(Channel(server->port()));
  // The slow model computes one token per 30 ms and queues at most 3.
  constexpr int kCalls = 24;
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext context;
      v1::InferResponse response;
      statuses[i] = stub->Infer(&context, Request("slow", 1, 8, "relu", i), &response);
    });
  }
  for (auto& t : threads) t.join();
  int ok = 0, exhausted = 0;
  for (const auto& s : statuses) {
    if (s.ok()) ++ok;
    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++exhausted;
      EXPECT_NE(s.error_message().find("is full"), std::string::npos);
    }
  }
  EXPECT_EQ(ok + exhausted, kCalls);
  EXPECT_GE(ok, 1);
  EXPECT_GE(exhausted, 1);
  grpc::ClientContext context;
  v1::InferResponse response;
  EXPECT_TRUE(stub->Infer(&context, Request("slow", 1, 8, "relu", 99), &response).ok());
  v1::GetStatsResponse stats;
  grpc::ClientContext stats_context;
  ASSERT_TRUE(stub->GetStats(&stats_context, {}, &stats).ok());
  for (const auto& v : stats.variants()) {
    if (v.variant().model() == "slow") {
      EXPECT_EQ(v.rejected_queue_full(), static_cast<uint64_t>(exhausted));
    }
  }
  server->Shutdown(std::chrono::seconds(2));
}

// Certificates made by the openssl command line: a CA, a server certificate
// for 127.0.0.1, a client certificate, and an unrelated CA.
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = TempDir();
    const std::string d = dir_;
    const std::string script =
        "cd " + d + " && set -e && "
        "for ca in ca other; do openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=$ca "
        "-keyout $ca.key -out $ca.pem 2>/dev/null; done && "
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext && "
        "openssl req -newkey rsa:2048 -nodes -subj /CN=server -keyout server.key -out server.csr "
        "2>/dev/null && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-days 2 -extfile san.ext -out server.pem 2>/dev/null && "
        "openssl req -newkey rsa:2048 -nodes -subj /CN=client -keyout client.key -out client.csr "
        "2>/dev/null && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-days 2 -out client.pem 2>/dev/null";
    ASSERT_EQ(std::system(script.c_str()), 0);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static std::string Read(const std::string& name) {
    std::ifstream in(dir_ + "/" + name);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  // One ListModels call over TLS trusting `ca`, with an optional client cert.
  static grpc::Status Call(int port, const std::string& ca, bool client_cert) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = Read(ca);
    if (client_cert) {
      options.pem_private_key = Read("client.key");
      options.pem_cert_chain = Read("client.pem");
    }
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::SslCredentials(options));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListModelsResponse response;
    return v1::FfnService::NewStub(channel)->ListModels(&context, {}, &response);
  }
  static std::string dir_;
};
std::string TlsTest::dir_;

TEST_F(TlsTest, ServerTlsTrustsOnlyItsCa) {
  auto server = StartServer("tls_cert: " + dir_ + "/server.pem, tls_key: " + dir_ + "/server.key");
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(Call(server->port(), "ca.pem", false).ok());
  EXPECT_FALSE(Call(server->port(), "other.pem", false).ok());
  // A plaintext client cannot talk to it.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  v1::ListModelsResponse response;
  EXPECT_FALSE(v1::FfnService::NewStub(Channel(server->port()))->ListModels(&context, {}, &response).ok());
  server->Shutdown(std::chrono::seconds(1));
}

TEST_F(TlsTest, MutualTlsRequiresAClientCertificate) {
  auto server = StartServer("tls_cert: " + dir_ + "/server.pem, tls_key: " + dir_ +
                            "/server.key, tls_client_ca: " + dir_ + "/ca.pem");
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(Call(server->port(), "ca.pem", true).ok());
  EXPECT_FALSE(Call(server->port(), "ca.pem", false).ok());
  server->Shutdown(std::chrono::seconds(1));
}

TEST(StartupTest, BadSecuritySettingsAreClearErrors) {
  auto config = ParseConfig(std::string("server: {address: \"127.0.0.1:0\", tls_cert: /nonexistent.pem, "
                                        "tls_key: /nonexistent.key}\n") + kModels, "");
  ASSERT_TRUE(config.ok());
  auto server = FfnServer::Start(*config);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(std::string(server.status().message()).find("/nonexistent.pem"), std::string::npos);
  config->server.tls_cert.clear();
  config->server.tls_key.clear();
  config->server.tls_client_ca = "/x.pem";
  EXPECT_FALSE(FfnServer::Start(*config).ok());
}

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

TEST(Bf16ServingTest, Bf16InputsAndComputeAreServedAndCountedApart) {
  auto server = StartServer("");
  ASSERT_NE(server, nullptr);
  auto stub = v1::FfnService::NewStub(Channel(server->port()));
  const FfnWeights w = RandomFfnWeights(FfnKind::kPlain, 32, 80, 11);
  ActivationParams params;
  params.prelu_alpha = w.prelu_alpha;
  // A bf16 input of 3 tokens.
  std::vector<float> x(3 * 32);
  FillUniform(4, RandomStream::kInput, kRandomInputScale, x);
  std::vector<uint16_t> x16(x.size());
  std::vector<float> x_rounded(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    x16[i] = FloatToBf16(x[i]);
    x_rounded[i] = Bf16ToFloat(x16[i]);
  }
  const std::vector<double> expected = ReferenceFfn(w, Activation::kSilu, params, x_rounded.data(), 3);
  for (v1::DType compute : {v1::BFLOAT16, v1::FLOAT32}) {
    v1::InferRequest request;
    request.set_model("plain");
    request.set_activation("silu");
    request.set_compute_dtype(compute);
    request.mutable_input()->set_dtype(v1::BFLOAT16);
    request.mutable_input()->add_shape(3);
    request.mutable_input()->add_shape(32);
    request.mutable_input()->set_data(x16.data(), x16.size() * 2);
    grpc::ClientContext context;
    v1::InferResponse response;
    ASSERT_TRUE(stub->Infer(&context, request, &response).ok());
    ASSERT_EQ(response.output().dtype(), v1::BFLOAT16);
    ASSERT_EQ(response.output().data().size(), x.size() * 2);
    EXPECT_EQ(response.variant().dtype(), compute);
    std::vector<uint16_t> y16(x.size());
    std::memcpy(y16.data(), response.output().data().data(), y16.size() * 2);
    std::vector<float> y(y16.size());
    for (size_t i = 0; i < y.size(); ++i) y[i] = Bf16ToFloat(y16[i]);
    // The output is bf16 either way, so both answers carry bf16 rounding.
    EXPECT_TRUE(CompareToReference(y.data(), expected).within(kBf16CheckTolerance));
  }
  grpc::ClientContext context;
  v1::GetStatsResponse stats;
  ASSERT_TRUE(stub->GetStats(&context, {}, &stats).ok());
  int silu_variants = 0;
  for (const auto& v : stats.variants()) silu_variants += v.variant().activation() == "silu";
  EXPECT_EQ(silu_variants, 2) << "f32 and bf16 compute are separate variants";
  server->Shutdown(std::chrono::seconds(1));
}

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

TEST(SubLayerServingTest, NormAndResidualModelAnswersCorrectly) {
  auto config = ParseConfig(R"(
server: {address: "127.0.0.1:0"}
models:
  - {name: sub, d_model: 32, d_ff: 64, activation: silu, norm: layernorm, residual: true,
     weights: {random: {seed: 21}}}
)", "");
  ASSERT_TRUE(config.ok()) << config.status();
  auto server = FfnServer::Start(*config);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::FfnService::NewStub(Channel((*server)->port()));
  grpc::ClientContext list_context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(stub->ListModels(&list_context, {}, &models).ok());
  EXPECT_EQ(models.models(0).norm(), "layernorm");
  EXPECT_TRUE(models.models(0).residual());
  EXPECT_FLOAT_EQ(models.models(0).norm_eps(), 1e-5f);

  const v1::InferRequest request = Request("sub", 4, 32, "silu", 8);
  grpc::ClientContext context;
  v1::InferResponse response;
  ASSERT_TRUE(stub->Infer(&context, request, &response).ok());
  FfnWeights w = RandomFfnWeights(FfnKind::kPlain, 32, 64, 21);
  AddRandomNorm(w, NormKind::kLayerNorm, 21);
  w.residual = true;
  ActivationParams params;
  params.prelu_alpha = w.prelu_alpha;
  const auto expected = ReferenceFfn(w, Activation::kSilu, params,
                                     reinterpret_cast<const float*>(request.input().data().data()), 4);
  std::vector<float> y(expected.size());
  std::memcpy(y.data(), response.output().data().data(), y.size() * sizeof(float));
  EXPECT_TRUE(CompareToReference(y.data(), expected).within(kFp32CheckTolerance));
  (*server)->Shutdown(std::chrono::seconds(1));
}

}  // namespace
}  // namespace ffn
