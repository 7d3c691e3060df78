// inference.GRPCInferenceService (KServe v2) in-process on a loopback port:
// every RPC, answers against the fp64 reference in each wire datatype,
// ffn.v1's error messages, statistics that rise, the stream, and the
// bearer token.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ffn/kernels/dtype.h"
#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/reference.h"
#include "ffn/server/config.h"
#include "ffn/server/kserve_service.h"
#include "ffn/server/server.h"
#include "inference/grpc_service.grpc.pb.h"
#include "kserve_infer.h"
#include "start_server.h"

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

struct TestModel {
  std::string name;
  FfnKind kind;
  int64_t d_model, d_ff;
  uint64_t seed;
};
const TestModel kPlain{"plain", FfnKind::kPlain, 32, 80, 11};
const TestModel kGated{"gated", FfnKind::kGated, 24, 40, 12};

std::vector<float> RandomInput(int64_t tokens, int64_t d_model, uint64_t seed) {
  std::vector<float> x(static_cast<size_t>(tokens * d_model));
  FillUniform(seed, RandomStream::kInput, kRandomInputScale, x);
  return x;
}

std::vector<double> Reference(const TestModel& m, Activation activation,
                              const std::vector<float>& x, int64_t tokens) {
  FfnWeights weights = RandomFfnWeights(m.kind, m.d_model, m.d_ff, m.seed);
  ActivationParams params;
  params.prelu_alpha = weights.prelu_alpha;
  return ReferenceFfn(weights, activation, params, x.data(), tokens);
}

// A request for `model` with `x` as raw bytes of `wire`; `x` is rounded to
// what `wire` holds, so the reference sees the input the server got.
inference::ModelInferRequest RawRequest(const std::string& model, std::vector<float>& x,
                                        int64_t tokens, int64_t d_model, kserve::WireType wire) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  request.set_id("request-" + model);
  auto* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype(kserve::WireTypeName(wire));
  input->add_shape(tokens);
  input->add_shape(d_model);
  std::string* raw = request.add_raw_input_contents();
  if (wire == kserve::WireType::kFp32) {
    raw->assign(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
    return request;
  }
  raw->resize(x.size() * 2);
  for (size_t i = 0; i < x.size(); ++i) {
    uint16_t h = wire == kserve::WireType::kBf16 ? FloatToBf16(x[i]) : kserve::FloatToHalf(x[i]);
    x[i] = wire == kserve::WireType::kBf16 ? Bf16ToFloat(h) : kserve::HalfToFloat(h);
    std::memcpy(raw->data() + 2 * i, &h, sizeof(h));
  }
  return request;
}

// The output of an answer as floats, from raw or typed contents.
std::vector<float> OutputOf(const inference::ModelInferResponse& response) {
  const auto& out = response.outputs(0);
  if (response.raw_output_contents_size() == 0) {
    return {out.contents().fp32_contents().begin(), out.contents().fp32_contents().end()};
  }
  const std::string& raw = response.raw_output_contents(0);
  std::optional<kserve::WireType> wire = kserve::ParseWireType(out.datatype());
  EXPECT_TRUE(wire.has_value()) << out.datatype();
  std::vector<float> y(raw.size() / kserve::WireElementBytes(*wire));
  for (size_t i = 0; i < y.size(); ++i) {
    if (*wire == kserve::WireType::kFp32) {
      std::memcpy(&y[i], raw.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, 2);
      y[i] = *wire == kserve::WireType::kBf16 ? Bf16ToFloat(h) : kserve::HalfToFloat(h);
    }
  }
  return y;
}

class KServeServiceTest : public ::testing::Test {
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

  static std::unique_ptr<inference::GRPCInferenceService::Stub> Stub() {
    return inference::GRPCInferenceService::NewStub(channel_);
  }

  static grpc::Status Infer(const inference::ModelInferRequest& request,
                            inference::ModelInferResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return Stub()->ModelInfer(&context, request, response);
  }

  static void ExpectError(const inference::ModelInferRequest& request, grpc::StatusCode code,
                          const std::string& fragment) {
    inference::ModelInferResponse response;
    grpc::Status status = Infer(request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_NE(status.error_message().find(fragment), std::string::npos)
        << "message '" << status.error_message() << "' lacks '" << fragment << "'";
  }

  // Runs `activation` on `m` (by MODEL:ACTIVATION name, or by parameter)
  // in `wire` and checks the answer against the reference.
  static void ExpectCorrect(const TestModel& m, Activation activation, kserve::WireType wire,
                            bool by_parameter, int64_t tokens, double tolerance) {
    std::vector<float> x = RandomInput(tokens, m.d_model, 7);
    const std::string name =
        by_parameter ? m.name : m.name + ":" + std::string(ActivationName(activation));
    inference::ModelInferRequest request = RawRequest(name, x, tokens, m.d_model, wire);
    if (by_parameter) {
      (*request.mutable_parameters())["activation"].set_string_param(ActivationName(activation));
    }
    inference::ModelInferResponse response;
    grpc::Status status = Infer(request, &response);
    ASSERT_TRUE(status.ok()) << name << ": " << status.error_message();
    EXPECT_EQ(response.model_name(), name);
    EXPECT_EQ(response.model_version(), "1");
    EXPECT_EQ(response.id(), request.id());
    ASSERT_EQ(response.outputs_size(), 1);
    EXPECT_EQ(response.outputs(0).name(), "output");
    EXPECT_EQ(response.outputs(0).datatype(), kserve::WireTypeName(wire));
    ASSERT_EQ(response.outputs(0).shape_size(), 2);
    EXPECT_EQ(response.outputs(0).shape(0), tokens);
    EXPECT_EQ(response.outputs(0).shape(1), m.d_model);
    EXPECT_EQ(response.parameters().at("activation").string_param(), ActivationName(activation));
    EXPECT_GE(response.parameters().at("total_us").int64_param(),
              response.parameters().at("compute_us").int64_param());
    std::vector<float> y = OutputOf(response);
    ASSERT_EQ(y.size(), static_cast<size_t>(tokens * m.d_model));
    ReferenceComparison cmp = CompareToReference(y.data(), Reference(m, activation, x, tokens));
    EXPECT_TRUE(cmp.within(tolerance)) << name << " " << kserve::WireTypeName(wire)
                                       << ": scaled error " << cmp.max_scaled_error;
  }

  static FfnServer* server_;
  static std::shared_ptr<grpc::Channel> channel_;
};

FfnServer* KServeServiceTest::server_ = nullptr;
std::shared_ptr<grpc::Channel> KServeServiceTest::channel_;

// fp16 rounding of the output is relative 2^-11; bf16's is 2^-9.
constexpr double kFp16IoTolerance = 1e-3;
constexpr double kBf16IoTolerance = 5e-3;

TEST(KServeHalfTest, EveryHalfRoundTripsExactly) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = kserve::HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(kserve::HalfToFloat(kserve::FloatToHalf(f)))) << h;
      continue;
    }
    EXPECT_EQ(kserve::FloatToHalf(f), h) << "half 0x" << std::hex << h;
  }
}

TEST(KServeHalfTest, RoundsToNearestEvenAndSaturatesToInfinity) {
  // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to even (1).
  EXPECT_EQ(kserve::FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  // 1 + 3·2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9: up.
  EXPECT_EQ(kserve::FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(kserve::FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(kserve::FloatToHalf(65519.0f), 0x7bff);
  EXPECT_EQ(kserve::FloatToHalf(65520.0f), 0x7c00);
  EXPECT_EQ(kserve::FloatToHalf(-1e9f), 0xfc00);
  // Subnormals: 2^-24 is the smallest; half of it ties to zero.
  EXPECT_EQ(kserve::FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(kserve::FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(kserve::FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(kserve::FloatToHalf(-0.0f), 0x8000);
}

TEST_F(KServeServiceTest, HealthAndServerMetadata) {
  {
    grpc::ClientContext context;
    inference::ServerLiveResponse live;
    ASSERT_TRUE(Stub()->ServerLive(&context, {}, &live).ok());
    EXPECT_TRUE(live.live());
  }
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse ready;
    ASSERT_TRUE(Stub()->ServerReady(&context, {}, &ready).ok());
    EXPECT_TRUE(ready.ready());
  }
  grpc::ClientContext context;
  inference::ServerMetadataResponse metadata;
  ASSERT_TRUE(Stub()->ServerMetadata(&context, {}, &metadata).ok());
  EXPECT_EQ(metadata.name(), "ffnserve");
  EXPECT_FALSE(metadata.version().empty());
  std::vector<std::string> extensions(metadata.extensions().begin(), metadata.extensions().end());
  EXPECT_NE(std::find(extensions.begin(), extensions.end(), "statistics"), extensions.end());
  EXPECT_NE(std::find(extensions.begin(), extensions.end(), "model_configuration"),
            extensions.end());
}

TEST_F(KServeServiceTest, ModelReadyForModelsAndVariantsOnly) {
  for (const auto& [name, expected] : std::vector<std::pair<std::string, bool>>{
           {"plain", true}, {"plain:relu", true}, {"gated:swiglu", true},
           {"plain:swiglu", false}, {"nope", false}}) {
    grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name(name);
    inference::ModelReadyResponse response;
    ASSERT_TRUE(Stub()->ModelReady(&context, request, &response).ok());
    EXPECT_EQ(response.ready(), expected) << name;
  }
}

TEST_F(KServeServiceTest, ModelMetadataAndConfigDescribeTheTensors) {
  for (const std::string name : {"plain", "plain:silu"}) {
    grpc::ClientContext context;
    inference::ModelMetadataRequest request;
    request.set_name(name);
    inference::ModelMetadataResponse metadata;
    ASSERT_TRUE(Stub()->ModelMetadata(&context, request, &metadata).ok());
    EXPECT_EQ(metadata.name(), name);
    ASSERT_EQ(metadata.inputs_size(), 1);
    EXPECT_EQ(metadata.inputs(0).name(), "input");
    EXPECT_EQ(metadata.inputs(0).datatype(), "FP32");
    EXPECT_EQ(std::vector<int64_t>(metadata.inputs(0).shape().begin(),
                                   metadata.inputs(0).shape().end()),
              (std::vector<int64_t>{-1, 32}));
    ASSERT_EQ(metadata.outputs_size(), 1);
    EXPECT_EQ(metadata.outputs(0).name(), "output");
  }
  grpc::ClientContext context;
  inference::ModelConfigRequest request;
  request.set_name("gated:geglu");
  inference::ModelConfigResponse config;
  ASSERT_TRUE(Stub()->ModelConfig(&context, request, &config).ok());
  EXPECT_EQ(config.config().name(), "gated:geglu");
  EXPECT_EQ(config.config().max_batch_size(), 16);  // the model's max_tokens
  ASSERT_EQ(config.config().input_size(), 1);
  EXPECT_EQ(config.config().input(0).data_type(), inference::TYPE_FP32);
  EXPECT_EQ(std::vector<int64_t>(config.config().input(0).dims().begin(),
                                 config.config().input(0).dims().end()),
            (std::vector<int64_t>{24}));
  EXPECT_EQ(config.config().parameters().at("activation").string_value(), "geglu");
  EXPECT_FALSE(config.config().model_transaction_policy().decoupled());

  grpc::ClientContext unknown_context;
  request.set_name("missing");
  grpc::Status status = Stub()->ModelConfig(&unknown_context, request, &config);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "no model named 'missing'; this server has: plain, gated");
}

TEST_F(KServeServiceTest, EveryActivationMatchesTheReferenceByNameAndByParameter) {
  for (const TestModel& m : {kPlain, kGated}) {
    for (Activation a : AllActivations()) {
      if (IsGated(a) != (m.kind == FfnKind::kGated)) continue;
      ExpectCorrect(m, a, kserve::WireType::kFp32, /*by_parameter=*/false, 3, kFp32CheckTolerance);
      ExpectCorrect(m, a, kserve::WireType::kFp32, /*by_parameter=*/true, 2, kFp32CheckTolerance);
    }
  }
}

TEST_F(KServeServiceTest, HalfAndBfloatInputsAnswerInTheirOwnDatatype) {
  ExpectCorrect(kPlain, Activation::kGelu, kserve::WireType::kFp16, false, 5, kFp16IoTolerance);
  ExpectCorrect(kGated, Activation::kSwiglu, kserve::WireType::kFp16, true, 4, kFp16IoTolerance);
  ExpectCorrect(kPlain, Activation::kRelu, kserve::WireType::kBf16, false, 5, kBf16IoTolerance);
  ExpectCorrect(kGated, Activation::kGeglu, kserve::WireType::kBf16, true, 4, kBf16IoTolerance);
}

TEST_F(KServeServiceTest, TypedContentsAnswerTyped) {
  std::vector<float> x = RandomInput(2, 32, 9);
  inference::ModelInferRequest request;
  request.set_model_name("plain:tanh");
  auto* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  input->add_shape(2);
  input->add_shape(32);
  for (float v : x) input->mutable_contents()->add_fp32_contents(v);
  request.add_outputs()->set_name("output");
  inference::ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.raw_output_contents_size(), 0);
  std::vector<float> y = OutputOf(response);
  ASSERT_EQ(y.size(), x.size());
  ReferenceComparison cmp = CompareToReference(y.data(), Reference(kPlain, Activation::kTanh, x, 2));
  EXPECT_TRUE(cmp.within(kFp32CheckTolerance)) << cmp.max_scaled_error;
}

TEST_F(KServeServiceTest, BfloatComputeIsAParameter) {
  std::vector<float> x = RandomInput(4, 32, 3);
  inference::ModelInferRequest request = RawRequest("plain", x, 4, 32, kserve::WireType::kFp32);
  (*request.mutable_parameters())["compute_dtype"].set_string_param("bf16");
  inference::ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.parameters().at("compute_dtype").string_param(), "bf16");
  std::vector<float> y = OutputOf(response);
  ReferenceComparison cmp = CompareToReference(y.data(), Reference(kPlain, Activation::kGelu, x, 4));
  EXPECT_TRUE(cmp.within(kBf16CheckTolerance)) << cmp.max_scaled_error;
}

TEST_F(KServeServiceTest, ErrorsCarryFfnV1Messages) {
  std::vector<float> x = RandomInput(2, 32, 1);
  const inference::ModelInferRequest good = RawRequest("plain", x, 2, 32, kserve::WireType::kFp32);

  inference::ModelInferRequest r = good;
  r.set_model_name("nope");
  ExpectError(r, grpc::StatusCode::NOT_FOUND, "no model named 'nope'; this server has: plain, gated");
  r = good;
  r.set_model_name("plain:swiglu");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT,
              "activation 'swiglu' is not valid for plain model 'plain'");
  r = good;
  (*r.mutable_parameters())["activation"].set_string_param("bogus");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "activation 'bogus' is not valid");
  r = good;
  r.set_model_name("plain:relu");
  (*r.mutable_parameters())["activation"].set_string_param("gelu");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "selects activation 'relu'");
  r = good;
  (*r.mutable_parameters())["compute_dtype"].set_string_param("f64");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "compute_dtype 'f64' is not f32 or bf16");
  r = good;
  r.set_model_version("2");
  ExpectError(r, grpc::StatusCode::NOT_FOUND, "has no version '2'");
  r = good;
  r.mutable_inputs(0)->set_name("x");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "its one input is 'input'");
  r = good;
  r.mutable_inputs(0)->set_datatype("INT32");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT,
              "input datatype 'INT32' is not served; send FP32, BF16 or FP16");
  r = good;
  r.add_outputs()->set_name("logits");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "its one output is 'output'");
  r = good;
  r.mutable_inputs(0)->set_shape(1, 31);
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "input shape [2, 31] is not [tokens, d_model = 32]");
  r = good;
  r.mutable_raw_input_contents(0)->pop_back();
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "input data has 255 bytes; shape [2, 32] of FLOAT32 needs 256");
  r = good;
  r.mutable_inputs(0)->set_datatype("FP16");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "input data has 256 bytes; shape [2, 32] of FP16 needs 128");
  r = good;
  r.mutable_inputs(0)->set_shape(0, 65);
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "input has 65 tokens; model 'plain' accepts 1 to 64");
  r = good;
  r.clear_raw_input_contents();
  r.mutable_inputs(0)->set_datatype("BF16");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "BF16 input data travels in raw_input_contents");

  // A bad request leaves the next good one unharmed.
  inference::ModelInferResponse response;
  EXPECT_TRUE(Infer(good, &response).ok());
}

TEST_F(KServeServiceTest, StatisticsRiseAsRequestsAreServed) {
  auto statistics = [](const std::string& name) {
    grpc::ClientContext context;
    inference::ModelStatisticsRequest request;
    request.set_name(name);
    inference::ModelStatisticsResponse response;
    grpc::Status status = Stub()->ModelStatistics(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.model_stats_size(), 1);
    return response.model_stats_size() == 1 ? response.model_stats(0) : inference::ModelStatistics();
  };
  const inference::ModelStatistics before = statistics("gated");
  const inference::ModelStatistics variant_before = statistics("gated:reglu");
  for (int i = 0; i < 3; ++i) {
    std::vector<float> x = RandomInput(5, 24, static_cast<uint64_t>(i));
    inference::ModelInferResponse response;
    ASSERT_TRUE(Infer(RawRequest("gated:reglu", x, 5, 24, kserve::WireType::kFp32), &response).ok());
  }
  const inference::ModelStatistics after = statistics("gated");
  const inference::ModelStatistics variant_after = statistics("gated:reglu");
  EXPECT_EQ(after.name(), "gated");
  EXPECT_EQ(after.version(), "1");
  EXPECT_EQ(after.inference_stats().success().count(),
            before.inference_stats().success().count() + 3);
  EXPECT_EQ(variant_after.inference_stats().success().count(),
            variant_before.inference_stats().success().count() + 3);
  EXPECT_EQ(variant_after.inference_count(), variant_before.inference_count() + 15);
  EXPECT_GT(variant_after.execution_count(), variant_before.execution_count());
  EXPECT_GT(variant_after.inference_stats().success().ns(),
            variant_before.inference_stats().success().ns());
  EXPECT_GT(variant_after.inference_stats().compute_infer().ns(),
            variant_before.inference_stats().compute_infer().ns());
  EXPECT_GE(variant_after.inference_stats().success().ns(),
            variant_after.inference_stats().compute_infer().ns());
  // The engine calls by size add up to execution_count, and the calls that
  // came since `before` held whole requests of 5 tokens.
  EXPECT_GT(variant_after.last_inference(), 0u);
  EXPECT_GE(variant_after.last_inference(), variant_before.last_inference());
  std::map<uint64_t, uint64_t> calls_before;
  for (const inference::InferBatchStatistics& batch : variant_before.batch_stats()) {
    calls_before[batch.batch_size()] = batch.compute_infer().count();
  }
  uint64_t executions = 0, new_calls = 0;
  for (const inference::InferBatchStatistics& batch : variant_after.batch_stats()) {
    EXPECT_GT(batch.compute_infer().ns(), 0u);
    executions += batch.compute_infer().count();
    const uint64_t added = batch.compute_infer().count() - calls_before[batch.batch_size()];
    if (added > 0) {
      EXPECT_EQ(batch.batch_size() % 5, 0u) << batch.batch_size();
    }
    new_calls += added;
  }
  EXPECT_EQ(new_calls, variant_after.execution_count() - variant_before.execution_count());
  EXPECT_EQ(executions, variant_after.execution_count());

  grpc::ClientContext context;
  inference::ModelStatisticsResponse all;
  ASSERT_TRUE(Stub()->ModelStatistics(&context, {}, &all).ok());
  EXPECT_EQ(all.model_stats_size(), 2);
}

TEST_F(KServeServiceTest, StreamAnswersEveryRequestByIdErrorsInBand) {
  grpc::ClientContext context;
  auto stream = Stub()->ModelStreamInfer(&context);
  std::map<std::string, std::vector<float>> inputs;
  constexpr int kRequests = 12;
  for (int i = 0; i < kRequests; ++i) {
    std::vector<float> x = RandomInput(1 + i % 4, 32, static_cast<uint64_t>(100 + i));
    inference::ModelInferRequest request =
        RawRequest(i % 5 == 4 ? "nope" : "plain:silu", x, 1 + i % 4, 32, kserve::WireType::kFp32);
    request.set_id(std::to_string(i));
    inputs[request.id()] = x;
    ASSERT_TRUE(stream->Write(request));
  }
  stream->WritesDone();
  inference::ModelStreamInferResponse response;
  int answers = 0, errors = 0;
  while (stream->Read(&response)) {
    ++answers;
    const std::string& id = response.infer_response().id();
    ASSERT_EQ(inputs.count(id), 1u) << id;
    if (std::stoi(id) % 5 == 4) {
      ++errors;
      EXPECT_NE(response.error_message().find("no model named 'nope'"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(response.error_message().empty()) << response.error_message();
    const std::vector<float>& x = inputs[id];
    const int64_t tokens = static_cast<int64_t>(x.size()) / 32;
    std::vector<float> y = OutputOf(response.infer_response());
    ReferenceComparison cmp =
        CompareToReference(y.data(), Reference(kPlain, Activation::kSilu, x, tokens));
    EXPECT_TRUE(cmp.within(kFp32CheckTolerance)) << id << ": " << cmp.max_scaled_error;
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(answers, kRequests);
  EXPECT_EQ(errors, 2);
}

// The request parameter "timeout" (microseconds, tritonclient's
// infer(timeout=)) drops a request that cannot start in time.
TEST(KServeTimeoutTest, ARequestThatCannotStartInItsTimeoutIsDeadlineExceeded) {
  std::unique_ptr<FfnServer> server = StartSlowServer("threads: 2");
  ASSERT_NE(server, nullptr);
  auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server->port()), grpc::InsecureChannelCredentials()));
  std::vector<float> x = RandomInput(1, 8, 1);
  const inference::ModelInferRequest request = RawRequest("slow", x, 1, 8, kserve::WireType::kFp32);
  // The first request holds the one executor for 300 ms.
  grpc::ClientContext first_context;
  inference::ModelInferResponse first_response;
  grpc::Status first_status;
  absl::Notification first_done;
  stub->async()->ModelInfer(&first_context, &request, &first_response, [&](grpc::Status status) {
    first_status = std::move(status);
    first_done.Notify();
  });
  absl::SleepFor(absl::Milliseconds(50));
  inference::ModelInferRequest hurried = request;
  (*hurried.mutable_parameters())["timeout"].set_int64_param(20000);
  grpc::ClientContext context;
  inference::ModelInferResponse response;
  grpc::Status status = stub->ModelInfer(&context, hurried, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  first_done.WaitForNotification();
  EXPECT_TRUE(first_status.ok()) << first_status.error_message();
  // A timeout the computation fits in; then a bad one.
  (*hurried.mutable_parameters())["timeout"].set_int64_param(5'000'000);
  grpc::ClientContext patient_context;
  status = stub->ModelInfer(&patient_context, hurried, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  (*hurried.mutable_parameters())["timeout"].set_string_param("soon");
  grpc::ClientContext bad_context;
  status = stub->ModelInfer(&bad_context, hurried, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "parameter 'timeout' must be a count of microseconds >= 0 (int64_param)");
  server->Shutdown(std::chrono::seconds(1));
}

TEST(KServeAuthTest, TokenGuardsEverythingButLivenessAndReadiness) {
  const std::string token_file = ::testing::TempDir() + "/kserve_token";
  std::ofstream(token_file) << "s3cret\n";
  auto config = ParseConfig(kConfig, "");
  ASSERT_TRUE(config.ok()) << config.status();
  config->server.auth_token_file = token_file;
  auto server = FfnServer::Start(*config);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  {
    grpc::ClientContext context;
    inference::ServerLiveResponse live;
    EXPECT_TRUE(stub->ServerLive(&context, {}, &live).ok());
  }
  std::vector<float> x = RandomInput(1, 32, 1);
  const inference::ModelInferRequest request = RawRequest("plain", x, 1, 32, kserve::WireType::kFp32);
  {
    grpc::ClientContext context;
    inference::ModelInferResponse response;
    grpc::Status status = stub->ModelInfer(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    inference::ServerMetadataResponse metadata;
    EXPECT_EQ(stub->ServerMetadata(&context, {}, &metadata).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer s3cret");
    inference::ModelInferResponse response;
    grpc::Status status = stub->ModelInfer(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer wrong!");
    auto stream = stub->ModelStreamInfer(&context);
    stream->WritesDone();
    inference::ModelStreamInferResponse response;
    EXPECT_FALSE(stream->Read(&response));
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  (*server)->Shutdown(std::chrono::seconds(1));
}

}  // namespace
}  // namespace ffn
