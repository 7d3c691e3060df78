// FfnService in-process on a loopback port: every RPC, every error code,
// health, and that a bad request never disturbs the next good one.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/reference.h"
#include "ffn/server/config.h"
#include "ffn/server/server.h"
#include "ffn/v1/ffn.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace ffn {
namespace {

constexpr char kConfig[] = R"(
server: {address: "127.0.0.1:0", threads: 2, max_tokens_per_request: 64, max_message_bytes: 1048576}
models:
  - name: plain
    d_model: 32
    d_ff: 80
    activation: gelu
    weights: {random: {seed: 11}}
  - name: gated
    d_model: 24
    d_ff: 40
    activation: swiglu
    max_tokens: 16
    weights: {random: {seed: 12}}
)";

class ServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto config = ParseConfig(kConfig, "");
    ASSERT_TRUE(config.ok()) << config.status();
    auto server = FfnServer::Start(*config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
  }
  static void TearDownTestSuite() {
    server_->Shutdown(std::chrono::seconds(2));
    delete server_;
    channel_.reset();
  }

  static v1::InferRequest Request(const std::string& model, int64_t tokens, int64_t d_model,
                                  const std::string& activation = "", uint64_t seed = 5) {
    v1::InferRequest request;
    request.set_model(model);
    request.set_activation(activation);
    v1::Tensor* input = request.mutable_input();
    input->set_dtype(v1::FLOAT32);
    input->add_shape(tokens);
    input->add_shape(d_model);
    std::vector<float> x(static_cast<size_t>(tokens * d_model));
    FillUniform(seed, RandomStream::kInput, kRandomInputScale, x);
    input->set_data(x.data(), x.size() * sizeof(float));
    return request;
  }

  static grpc::Status Infer(const v1::InferRequest& request, v1::InferResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return v1::FfnService::NewStub(channel_)->Infer(&context, request, response);
  }

  // Expects `request` to fail with `code` and a message containing `fragment`.
  static void ExpectError(const v1::InferRequest& request, grpc::StatusCode code,
                          const std::string& fragment) {
    v1::InferResponse response;
    grpc::Status status = Infer(request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_NE(status.error_message().find(fragment), std::string::npos)
        << "message '" << status.error_message() << "' lacks '" << fragment << "'";
  }

  // Sends a good request and checks the answer against the fp64 reference.
  static void ExpectCorrect(const std::string& model, FfnKind kind, int64_t d_model, int64_t d_ff,
                            uint64_t seed, Activation activation, int64_t tokens) {
    v1::InferRequest request = Request(model, tokens, d_model, ActivationName(activation));
    v1::InferResponse response;
    grpc::Status status = Infer(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.output().dtype(), v1::FLOAT32);
    ASSERT_EQ(response.output().shape_size(), 2);
    EXPECT_EQ(response.output().shape(0), tokens);
    EXPECT_EQ(response.output().shape(1), d_model);
    ASSERT_EQ(response.output().data().size(), static_cast<size_t>(tokens * d_model) * 4);
    EXPECT_EQ(response.variant().model(), model);
    EXPECT_EQ(response.variant().activation(), ActivationName(activation));
    EXPECT_GE(response.total_us(), response.compute_us());
    FfnWeights weights = RandomFfnWeights(kind, d_model, d_ff, seed);
    ActivationParams params;
    params.prelu_alpha = weights.prelu_alpha;
    std::vector<double> expected =
        ReferenceFfn(weights, activation, params,
                     reinterpret_cast<const float*>(request.input().data().data()), tokens);
    std::vector<float> y(expected.size());
    std::memcpy(y.data(), response.output().data().data(), y.size() * sizeof(float));
    ReferenceComparison cmp = CompareToReference(y.data(), expected);
    EXPECT_TRUE(cmp.within(kFp32CheckTolerance))
        << ActivationName(activation) << ": scaled error " << cmp.max_scaled_error;
  }

  static FfnServer* server_;
  static std::shared_ptr<grpc::Channel> channel_;
};

FfnServer* ServiceTest::server_ = nullptr;
std::shared_ptr<grpc::Channel> ServiceTest::channel_;

TEST_F(ServiceTest, ListModelsDescribesEveryModel) {
  grpc::ClientContext context;
  v1::ListModelsResponse response;
  ASSERT_TRUE(v1::FfnService::NewStub(channel_)->ListModels(&context, {}, &response).ok());
  ASSERT_EQ(response.models_size(), 2);
  const v1::ModelInfo& plain = response.models(0);
  EXPECT_EQ(plain.name(), "plain");
  EXPECT_EQ(plain.kind(), v1::PLAIN);
  EXPECT_EQ(plain.d_model(), 32);
  EXPECT_EQ(plain.d_ff(), 80);
  EXPECT_EQ(plain.default_activation(), "gelu");
  EXPECT_EQ(plain.activations_size(), 11);
  EXPECT_EQ(plain.dtype(), v1::FLOAT32);
  EXPECT_EQ(plain.random().seed(), 11u);
  EXPECT_TRUE(plain.has_bias());
  EXPECT_EQ(plain.max_tokens(), 64);
  EXPECT_FLOAT_EQ(plain.params().leaky_relu_slope(), 0.01f);
  EXPECT_FLOAT_EQ(plain.params().rrelu_slope(), (1.0f / 8 + 1.0f / 3) / 2);
  ASSERT_EQ(plain.params().prelu_alpha_size(), 1);
  EXPECT_FLOAT_EQ(plain.params().prelu_alpha(0), 0.25f);
  const v1::ModelInfo& gated = response.models(1);
  EXPECT_EQ(gated.kind(), v1::GATED);
  EXPECT_EQ(gated.default_activation(), "swiglu");
  EXPECT_EQ(gated.activations_size(), 5);
  EXPECT_FALSE(gated.has_bias());
  EXPECT_EQ(gated.max_tokens(), 16);
}

TEST_F(ServiceTest, EveryActivationAnswersCorrectly) {
  for (Activation a : PlainActivations()) {
    for (int64_t tokens : {1, 3, 64}) ExpectCorrect("plain", FfnKind::kPlain, 32, 80, 11, a, tokens);
  }
  for (Activation a : GatedActivations()) {
    for (int64_t tokens : {1, 3, 16}) ExpectCorrect("gated", FfnKind::kGated, 24, 40, 12, a, tokens);
  }
}

TEST_F(ServiceTest, EmptyActivationMeansTheModelsDefault) {
  v1::InferResponse response;
  ASSERT_TRUE(Infer(Request("gated", 2, 24), &response).ok());
  EXPECT_EQ(response.variant().activation(), "swiglu");
}

TEST_F(ServiceTest, UnknownModelIsNotFound) {
  ExpectError(Request("nope", 1, 32), grpc::StatusCode::NOT_FOUND, "no model named 'nope'");
}

TEST_F(ServiceTest, BadActivationsAreInvalidArgument) {
  ExpectError(Request("plain", 1, 32, "swish"), grpc::StatusCode::INVALID_ARGUMENT,
              "use one of: relu, leaky_relu");
  ExpectError(Request("plain", 1, 32, "swiglu"), grpc::StatusCode::INVALID_ARGUMENT,
              "not valid for plain model 'plain'");
  ExpectError(Request("gated", 1, 24, "gelu"), grpc::StatusCode::INVALID_ARGUMENT,
              "use one of: glu, swiglu, geglu, geglu_tanh, reglu");
  ExpectError(Request("plain", 1, 32, "GELU"), grpc::StatusCode::INVALID_ARGUMENT, "'GELU'");
}

TEST_F(ServiceTest, BadTensorsAreInvalidArgument) {
  // A BFLOAT16 input is 2 bytes per value: 4-byte data does not fit its shape.
  v1::InferRequest bf16 = Request("plain", 1, 32);
  bf16.mutable_input()->set_dtype(v1::BFLOAT16);
  ExpectError(bf16, grpc::StatusCode::INVALID_ARGUMENT, "of BFLOAT16 needs 64");
  v1::InferRequest f16 = Request("plain", 1, 32);
  f16.mutable_input()->set_dtype(static_cast<v1::DType>(7));
  ExpectError(f16, grpc::StatusCode::INVALID_ARGUMENT,
              "input dtype value 7 is not served; send FLOAT32 or BFLOAT16");
  f16.mutable_input()->set_dtype(static_cast<v1::DType>(-1));
  ExpectError(f16, grpc::StatusCode::INVALID_ARGUMENT, "input dtype value -1 is not served");
  v1::InferRequest compute = Request("plain", 1, 32);
  compute.set_compute_dtype(static_cast<v1::DType>(9));
  ExpectError(compute, grpc::StatusCode::INVALID_ARGUMENT, "compute_dtype 9");
  v1::InferRequest unspecified = Request("plain", 1, 32);
  unspecified.mutable_input()->set_dtype(v1::DTYPE_UNSPECIFIED);
  ExpectError(unspecified, grpc::StatusCode::INVALID_ARGUMENT, "DTYPE_UNSPECIFIED");

  v1::InferRequest rank1 = Request("plain", 1, 32);
  rank1.mutable_input()->clear_shape();
  rank1.mutable_input()->add_shape(32);
  ExpectError(rank1, grpc::StatusCode::INVALID_ARGUMENT, "input shape [32] is not [tokens, d_model = 32]");
  v1::InferRequest rank3 = Request("plain", 1, 32);
  rank3.mutable_input()->add_shape(1);
  ExpectError(rank3, grpc::StatusCode::INVALID_ARGUMENT, "[1, 32, 1]");

  ExpectError(Request("plain", 2, 31), grpc::StatusCode::INVALID_ARGUMENT, "d_model = 32");

  v1::InferRequest zero = Request("plain", 1, 32);
  zero.mutable_input()->set_shape(0, 0);
  zero.mutable_input()->clear_data();
  ExpectError(zero, grpc::StatusCode::INVALID_ARGUMENT, "0 tokens; model 'plain' accepts 1 to 64");
  v1::InferRequest negative = Request("plain", 1, 32);
  negative.mutable_input()->set_shape(0, -4);
  ExpectError(negative, grpc::StatusCode::INVALID_ARGUMENT, "-4 tokens");
  ExpectError(Request("plain", 65, 32), grpc::StatusCode::INVALID_ARGUMENT, "accepts 1 to 64");
  ExpectError(Request("gated", 17, 24), grpc::StatusCode::INVALID_ARGUMENT, "accepts 1 to 16");

  v1::InferRequest short_data = Request("plain", 2, 32);
  short_data.mutable_input()->mutable_data()->resize(2 * 32 * 4 - 1);
  ExpectError(short_data, grpc::StatusCode::INVALID_ARGUMENT, "255 bytes; shape [2, 32] of FLOAT32 needs 256");
  v1::InferRequest long_data = Request("plain", 2, 32);
  long_data.mutable_input()->mutable_data()->append(4, '\0');
  ExpectError(long_data, grpc::StatusCode::INVALID_ARGUMENT, "260 bytes");
}

TEST_F(ServiceTest, LongNamesAreCutShortInMessages) {
  // Echoed whole, a 100 KB name overflowed gRPC's metadata limit: the client
  // saw RESOURCE_EXHAUSTED instead of the real status.
  const std::string long_name(100'000, 'm');
  v1::InferResponse response;
  grpc::Status status = Infer(Request(long_name, 1, 32), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  EXPECT_NE(status.error_message().find("...' (100000 bytes)"), std::string::npos);
  EXPECT_LT(status.error_message().size(), 400u);
  status = Infer(Request("plain", 1, 32, long_name), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("(100000 bytes) is not valid for plain model"),
            std::string::npos);
}

TEST_F(ServiceTest, LongShapesAreCutShortInMessages) {
  // Found by infer_request_fuzz: every dimension of a wrong shape was echoed,
  // so a shape of thousands made the message grow with the request.
  v1::InferRequest request = Request("plain", 1, 32);
  for (int i = 0; i < 20'000; ++i) request.mutable_input()->add_shape(7);
  v1::InferResponse response;
  const grpc::Status status = Infer(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("input shape [1, 32, 7, 7, 7, 7, 7, 7, ... (20002 dimensions)]"),
            std::string::npos)
      << status.error_message();
  EXPECT_LT(status.error_message().size(), 200u);
}

// Sends `bytes` as the whole body of a unary call to `method`.
grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& bytes) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  auto call = stub.PrepareUnaryCall(&context, method, request, &cq);
  call->StartCall();
  grpc::ByteBuffer reply;
  grpc::Status status;
  call->Finish(&reply, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  EXPECT_TRUE(cq.Next(&tag, &ok));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

TEST_F(ServiceTest, UnparseableRequestsAreInvalidArgument) {
  // gRPC's own parsing answered these UNIMPLEMENTED with an empty message.
  std::string random_bytes(300, '\0');
  uint64_t state = 88172645463325252ull;
  for (char& c : random_bytes) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    c = static_cast<char>(state);
  }
  const std::string good = Request("plain", 1, 32).SerializeAsString();
  v1::InferRequest utf8 = Request("plain", 1, 32);
  utf8.set_model("pl\xff\xfein");  // not UTF-8: a proto3 string must be
  std::string invalid_utf8;
  ASSERT_TRUE(utf8.SerializePartialToString(&invalid_utf8));
  ::testing::internal::CaptureStderr();
  for (const std::string& body :
       {random_bytes, good.substr(0, good.size() - 7), invalid_utf8, std::string("\x0a\xff", 2)}) {
    grpc::Status status = RawUnaryCall(channel_, "/ffn.v1.FfnService/Infer", body);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find("is not a valid ffn.v1.InferRequest"), std::string::npos)
        << status.error_message();
  }
  // Nothing on stderr: libprotobuf's per-request ERROR lines go to the debug log.
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  // The same bytes, whole, are a good request.
  EXPECT_TRUE(RawUnaryCall(channel_, "/ffn.v1.FfnService/Infer", good).ok());
}

TEST_F(ServiceTest, AnUnparseableStreamMessageIsAnsweredInBand) {
  grpc::GenericStub stub(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto call = stub.PrepareCall(&context, "/ffn.v1.FfnService/InferStream", &cq);
  auto step = [&cq](std::intptr_t expected_tag) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<std::intptr_t>(tag), expected_tag);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  const std::string good = Request("plain", 2, 32).SerializeAsString();
  std::intptr_t tag = 2;
  for (const std::string& body : {std::string("\x0a\xff", 2), good}) {
    grpc::Slice slice(body);
    grpc::ByteBuffer message(&slice, 1);
    call->Write(message, reinterpret_cast<void*>(tag));
    ASSERT_TRUE(step(tag++));
  }
  call->WritesDone(reinterpret_cast<void*>(tag));
  ASSERT_TRUE(step(tag++));
  std::vector<v1::InferResponse> answers(2);
  for (v1::InferResponse& answer : answers) {
    grpc::ByteBuffer reply;
    call->Read(&reply, reinterpret_cast<void*>(tag));
    ASSERT_TRUE(step(tag++));
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(reply.Dump(&slices).ok());
    std::string bytes;
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    ASSERT_TRUE(answer.ParseFromString(bytes));
  }
  EXPECT_EQ(answers[0].error_code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(answers[0].error_message().find("is not a valid ffn.v1.InferRequest"), std::string::npos);
  EXPECT_EQ(answers[1].error_code(), 0) << answers[1].error_message();
  EXPECT_EQ(answers[1].output().shape(0), 2);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(tag));
  step(tag);
  EXPECT_TRUE(status.ok()) << status.error_message();
  cq.Shutdown();
  void* t;
  bool ok;
  while (cq.Next(&t, &ok)) {
  }
}

TEST_F(ServiceTest, OversizedMessageIsResourceExhausted) {
  // 64 tokens × 32 floats is far below the limit; 300k floats is above 1 MiB.
  v1::InferRequest huge = Request("plain", 1, 32);
  huge.mutable_input()->mutable_data()->resize(300000 * 4);
  v1::InferResponse response;
  grpc::Status status = Infer(huge, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
}

TEST_F(ServiceTest, ErrorsDoNotDisturbConcurrentGoodRequests) {
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &wrong] {
      for (int i = 0; i < 20; ++i) {
        v1::InferResponse response;
        if (t % 2 == 0) {
          if (Infer(Request("plain", 1 + i % 5, 32, "relu"), &response).ok() == false) ++wrong;
        } else {
          v1::InferRequest bad = Request("plain", 3, 32, "relu");
          bad.mutable_input()->mutable_data()->resize(7);
          if (Infer(bad, &response).error_code() != grpc::StatusCode::INVALID_ARGUMENT) ++wrong;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  ExpectCorrect("plain", FfnKind::kPlain, 32, 80, 11, Activation::kRelu, 5);
}

TEST_F(ServiceTest, StatsCountRequestsTokensAndErrors) {
  auto stats = [] {
    grpc::ClientContext context;
    v1::GetStatsResponse response;
    EXPECT_TRUE(v1::FfnService::NewStub(channel_)->GetStats(&context, {}, &response).ok());
    return response;
  };
  auto find = [](const v1::GetStatsResponse& r, const std::string& activation) {
    for (const auto& v : r.variants()) {
      if (v.variant().model() == "gated" && v.variant().activation() == activation) return v;
    }
    return v1::VariantStats();
  };
  const v1::GetStatsResponse before = stats();
  v1::InferResponse response;
  ASSERT_TRUE(Infer(Request("gated", 5, 24, "reglu"), &response).ok());
  ASSERT_TRUE(Infer(Request("gated", 7, 24, "reglu"), &response).ok());
  ASSERT_FALSE(Infer(Request("gated", 99, 24, "reglu"), &response).ok());
  ASSERT_FALSE(Infer(Request("missing", 1, 24), &response).ok());
  const v1::GetStatsResponse after = stats();
  const v1::VariantStats b = find(before, "reglu"), a = find(after, "reglu");
  EXPECT_EQ(a.requests() - b.requests(), 2u);
  EXPECT_EQ(a.tokens() - b.tokens(), 12u);
  EXPECT_EQ(a.errors() - b.errors(), 1u);
  EXPECT_EQ(after.rejected_requests() - before.rejected_requests(), 1u);
  EXPECT_EQ(a.variant().dtype(), v1::FLOAT32);
  EXPECT_GT(a.total().p50_us(), 0);
  EXPECT_GE(a.total().max_us(), a.total().p99_us());
  EXPECT_GE(a.total().p99_us(), a.total().p50_us());
  EXPECT_GT(a.compute().mean_us(), 0);
  EXPECT_GT(a.requests_per_second(), 0);
  EXPECT_GT(a.compute_gflops(), 0);
  EXPECT_GT(after.uptime_seconds(), 0);
}

TEST_F(ServiceTest, HealthReportsServing) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(stub->Check(&context, {}, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

// Server reflection, spoken with raw bytes so the test needs no reflection
// .proto: ServerReflectionRequest{list_services: ""} is field 7, empty string.
TEST_F(ServiceTest, ReflectionListsTheService) {
  grpc::GenericStub stub(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  auto step = [&cq](std::intptr_t expected_tag) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<std::intptr_t>(tag), expected_tag);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  const std::string request_bytes("\x3a\x00", 2);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(step(2));
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(step(3));
  grpc::ByteBuffer reply;
  call->Read(&reply, reinterpret_cast<void*>(4));
  ASSERT_TRUE(step(4));
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(reply.Dump(&slices).ok());
  std::string text;
  for (const auto& s : slices) text.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_NE(text.find("ffn.v1.FfnService"), std::string::npos);
  EXPECT_NE(text.find("grpc.health.v1.Health"), std::string::npos);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_TRUE(status.ok()) << status.error_message();
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
}

TEST(ServerStartTest, BadAddressFailsClearly) {
  auto config = ParseConfig(kConfig, "");
  ASSERT_TRUE(config.ok());
  // Not HOST:PORT: refused before loading, naming the value.
  config->server.address = "256.1.1.1:notaport";
  auto server = FfnServer::Start(*config);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(server.status().message()).find("'256.1.1.1:notaport'"), std::string::npos);
  // HOST:PORT, but no such address here: the bind fails.
  config->server.address = "256.1.1.1:50051";
  server = FfnServer::Start(*config);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(std::string(server.status().message()).find("cannot listen on 256.1.1.1:50051"),
            std::string::npos);
}

}  // namespace
}  // namespace ffn
