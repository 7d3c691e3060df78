// Runs the client library against a real FfnServer started in-process.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ffn/client/client.h"
#include "ffn/client/infer.h"
#include "ffn/client/load.h"
#include "ffn/common/safetensors.h"
#include "ffn/server/config.h"
#include "ffn/server/server.h"
#include "gtest/gtest.h"
#include "test_server.h"

namespace ffn::client {
namespace {

constexpr char kConfig[] = R"(
server: {address: "127.0.0.1:0", threads: 2}
models:
  - name: plain-32
    d_model: 32
    d_ff: 64
    activation: gelu
    weights: {random: {seed: 3}}
  - name: gated-32
    d_model: 32
    d_ff: 48
    activation: swiglu
    weights: {random: {seed: 4}}
)";

class EndToEndTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = StartServer(kConfig, "").release(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  static std::string Target() { return absl::StrCat("127.0.0.1:", server_->port()); }
  static std::unique_ptr<v1::FfnService::Stub> Stub() {
    return v1::FfnService::NewStub(MakeChannel(Target()));
  }

  static FfnServer* server_;
};
FfnServer* EndToEndTest::server_ = nullptr;

TEST_F(EndToEndTest, LoadOverAllVariantsReachesEveryVariantWithoutErrors) {
  LoadOptions options;
  options.targets = {Target()};
  options.concurrency = 2;
  options.duration_seconds = 1;
  options.warmup_seconds = 0.1;
  options.variants = "all";
  options.tokens = "2";
  auto result = RunLoad(options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->variants.size(), 11u + 5u);  // every plain and gated activation
  for (const VariantLoad& v : result->variants) {
    EXPECT_GT(v.requests, 0u) << v.variant.Name();
    EXPECT_EQ(v.errors, 0u) << v.variant.Name();
    EXPECT_EQ(v.latency.count(), v.requests) << v.variant.Name();
  }
  EXPECT_FALSE(result->Failed());
  EXPECT_DOUBLE_EQ(result->measured_seconds, 1.0);
}

TEST_F(EndToEndTest, LoadRejectsBadVariantsAndOptions) {
  LoadOptions options;
  options.targets = {Target()};
  options.duration_seconds = 0.1;
  options.variants = "plain-32:swiglu";
  EXPECT_EQ(RunLoad(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.variants = "all";
  options.tokens = "9000";
  EXPECT_EQ(RunLoad(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.tokens = "1-9000";  // the largest size counts
  EXPECT_EQ(RunLoad(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.tokens = "1";
  options.concurrency = 0;
  EXPECT_EQ(RunLoad(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.concurrency = 1;
  options.lb_policy = "random";
  EXPECT_EQ(RunLoad(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.lb_policy = "";
  options.targets = {};
  EXPECT_EQ(RunLoad(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EndToEndTest, EveryActivationPassesTheReferenceCheck) {
  auto stub = Stub();
  auto models = ListModels(*stub, 10);
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 2u);
  int checked = 0;
  for (const v1::ModelInfo& model : *models) {
    for (const std::string& activation : model.activations()) {
      SCOPED_TRACE(absl::StrCat(model.name(), "/", activation));
      InferOptions options;
      options.model = model.name();
      options.activation = activation;
      options.tokens = 5;
      options.seed = 17;
      options.check = true;
      auto outcome = RunInfer(*stub, options);
      ASSERT_TRUE(outcome.ok()) << outcome.status();
      EXPECT_EQ(outcome->response.variant().activation(), activation);
      EXPECT_EQ(outcome->output.size(), static_cast<size_t>(5 * model.d_model()));
      ASSERT_TRUE(outcome->comparison.has_value());
      EXPECT_TRUE(outcome->comparison->within(kFp32CheckTolerance))
          << "max scaled error " << outcome->comparison->max_scaled_error;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 16);
}

TEST_F(EndToEndTest, ComputeDtypeIsAskedPerCall) {
  auto stub = Stub();
  InferOptions options;
  options.model = "gated-32";
  options.tokens = 3;
  options.check = true;
  for (const auto& [name, dtype] : {std::pair{"bf16", v1::BFLOAT16}, std::pair{"f32", v1::FLOAT32}}) {
    options.compute_dtype = name;
    auto outcome = RunInfer(*stub, options);
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    EXPECT_EQ(outcome->response.variant().dtype(), dtype) << name;
    EXPECT_TRUE(outcome->comparison->within(dtype == v1::BFLOAT16 ? kBf16CheckTolerance
                                                                  : kFp32CheckTolerance));
  }
  // bf16 really ran: its answer is not the f32 one.
  options.compute_dtype = "bf16";
  auto bf16 = RunInfer(*stub, options);
  options.compute_dtype = "f32";
  auto f32 = RunInfer(*stub, options);
  ASSERT_TRUE(bf16.ok() && f32.ok());
  EXPECT_NE(bf16->output, f32->output);
  options.compute_dtype = "f16";
  EXPECT_EQ(RunInfer(*stub, options).status().code(), absl::StatusCode::kInvalidArgument);

  LoadOptions load;
  load.targets = {Target()};
  load.duration_seconds = 0.3;
  load.warmup_seconds = 0;
  load.variants = "gated-32:swiglu";
  load.compute_dtype = "bf16";
  auto result = RunLoad(load);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(result->variants.at(0).requests, 0u);
  EXPECT_EQ(result->variants.at(0).errors, 0u);
  load.compute_dtype = "fp8";
  EXPECT_EQ(RunLoad(load).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EndToEndTest, DefaultActivationIsCheckedAsTheOneThatRan) {
  auto stub = Stub();
  InferOptions options;
  options.model = "gated-32";
  options.check = true;
  auto outcome = RunInfer(*stub, options);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->response.variant().activation(), "swiglu");
  EXPECT_TRUE(outcome->comparison->within(kFp32CheckTolerance));
}

TEST_F(EndToEndTest, ErrorsCarryTheServersCode) {
  auto stub = Stub();
  InferOptions options;
  options.model = "no-such-model";
  EXPECT_EQ(RunInfer(*stub, options).status().code(), absl::StatusCode::kNotFound);
  options.model = "plain-32";
  options.activation = "swiglu";
  auto wrong = RunInfer(*stub, options);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorLine(wrong.status()).rfind("error: INVALID_ARGUMENT: ", 0), 0u)
      << ErrorLine(wrong.status());
  // Refused before sending, in the server's words.
  options.activation = "";
  options.tokens = 9000;
  auto too_many = RunInfer(*stub, options);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_many.status().message().find("accepts 1 to 8192"), absl::string_view::npos)
      << too_many.status();
}

TEST(EndToEndNoServerTest, UnreachableServerIsUnavailable) {
  auto stub = v1::FfnService::NewStub(MakeChannel("127.0.0.1:1"));
  EXPECT_EQ(ListModels(*stub, 5).status().code(), absl::StatusCode::kUnavailable);
}

// A safetensors model with biases and per-channel PReLU slopes: the check
// reads the file ListModels names, and fails against a file with other values.
TEST(EndToEndSafetensorsTest, CheckReadsTheFileAndCatchesOtherWeights) {
  constexpr int64_t kDModel = 16, kDFf = 24;
  const std::string dir = ::testing::TempDir();
  auto write = [&](const std::string& name, uint64_t seed) {
    FfnWeights w = RandomFfnWeights(FfnKind::kPlain, kDModel, kDFf, seed);
    std::vector<float> alpha(kDFf);
    FillUniform(seed, RandomStream::kB2, 0.5f, alpha);
    ASSERT_TRUE(WriteSafetensors(dir + "/" + name, {{"up.weight", {kDFf, kDModel}, w.w1},
                                                    {"up.bias", {kDFf}, w.b1},
                                                    {"down.weight", {kDModel, kDFf}, w.w2},
                                                    {"down.bias", {kDModel}, w.b2},
                                                    {"act.weight", {kDFf}, alpha}})
                    .ok());
  };
  write("e2e_served.safetensors", 21);
  write("e2e_other.safetensors", 22);
  auto server = StartServer(R"(
server: {address: "127.0.0.1:0", threads: 1}
models:
  - name: st-16
    d_model: 16
    d_ff: 24
    activation: prelu
    weights:
      safetensors: e2e_served.safetensors
      tensors: {w1: up.weight, b1: up.bias, w2: down.weight, b2: down.bias, alpha: act.weight}
)",
                            dir);
  ASSERT_NE(server, nullptr);
  auto stub = v1::FfnService::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", server->port())));
  for (const char* activation : {"prelu", "gelu", "leaky_relu"}) {
    SCOPED_TRACE(activation);
    InferOptions options;
    options.model = "st-16";
    options.activation = activation;
    options.tokens = 3;
    options.check = true;
    auto outcome = RunInfer(*stub, options);
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    EXPECT_TRUE(outcome->comparison->within(kFp32CheckTolerance))
        << outcome->comparison->max_scaled_error;

    options.weights_override = dir + "/e2e_other.safetensors";
    auto other = RunInfer(*stub, options);
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_FALSE(other->comparison->within(kFp32CheckTolerance));
  }
}

}  // namespace
}  // namespace ffn::client
