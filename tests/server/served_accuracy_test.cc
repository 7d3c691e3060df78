// What the server returns keeps the kernels' accuracy, whatever path the
// tuner picks: identity weights from a safetensors file make the FFN return
// act(x) exactly but for the activation itself, so every answer, through
// gRPC, is checked element by element against the fp64 activation.
//
//   plain model: W1 = I, b1 = 0, W2 = I, b2 = 0            → y = act(x)
//   gated model: Wg = [I 0], Wu = e_D (the last input column, set to 1),
//                W2 = [I; 0]                               → y[:, :D] = gate_act(x)
//
// f32 compute: within 1 ULP of fp64 where the exact result is a normal float
// (the kernels' bound is 0.9). bf16 compute: the fp32 answer rounded once to
// bf16 (inputs are bf16 values, so both dtypes see the same x).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "ffn/common/safetensors.h"
#include "ffn/kernels/dtype.h"
#include "ffn/kernels/reference.h"
#include "ffn/server/config.h"
#include "ffn/server/server.h"
#include "ffn/v1/ffn.grpc.pb.h"

namespace ffn {
namespace {

constexpr int64_t kD = 64;  // activated columns per token
constexpr int64_t kTokenCounts[] = {1, 2, 3, 8, 31, 64, 200, 512};

std::vector<float> Identity(int64_t rows, int64_t cols) {
  std::vector<float> m(static_cast<size_t>(rows * cols), 0.0f);
  for (int64_t i = 0; i < std::min(rows, cols); ++i) m[static_cast<size_t>(i * cols + i)] = 1.0f;
  return m;
}

// Token r, column j: ±2^e·(1 + f) with e in [-12, 7], as a bf16 value (so
// the bf16 and f32 paths read the same number), spread over the negative
// tails where approximations lose digits and the positive side alike.
float Input(uint64_t seed, int64_t r, int64_t j) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(r * 4099 + j) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 31)) * 0x94D049BB133111EBull;
  z ^= z >> 29;
  const double fraction = static_cast<double>(z & 0xffff) / 65536.0;
  const int exponent = static_cast<int>((z >> 16) % 20) - 12;
  const double sign = (z >> 40) & 1 ? -1.0 : 1.0;
  return Bf16ToFloat(FloatToBf16(static_cast<float>(sign * std::ldexp(1.0 + fraction, exponent))));
}

double UlpError(float y, double exact) {
  const float rounded = static_cast<float>(exact);
  const double ulp =
      std::nextafter(std::fabs(rounded), std::numeric_limits<float>::infinity()) - std::fabs(rounded);
  return std::fabs(static_cast<double>(y) - exact) / ulp;
}

class ServedAccuracyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "ffn-accuracy-XXXXXX").string();
    dir_ = new std::string(mkdtemp(pattern.data()));
    const std::string file = *dir_ + "/identity.safetensors";
    std::vector<float> gate = Identity(kD, kD + 1), up(static_cast<size_t>(kD * (kD + 1)), 0.0f);
    for (int64_t j = 0; j < kD; ++j) up[static_cast<size_t>(j * (kD + 1) + kD)] = 1.0f;
    ASSERT_TRUE(WriteSafetensors(file, {{"w1", {kD, kD}, Identity(kD, kD)},
                                        {"b1", {kD}, std::vector<float>(kD, 0.0f)},
                                        {"w2", {kD, kD}, Identity(kD, kD)},
                                        {"b2", {kD}, std::vector<float>(kD, 0.0f)},
                                        {"wg", {kD, kD + 1}, gate},
                                        {"wu", {kD, kD + 1}, up},
                                        {"down", {kD + 1, kD}, Identity(kD + 1, kD)}})
                    .ok());
    const std::string yaml = absl::StrCat(
        "server: {address: \"127.0.0.1:0\", strategy: auto}\n",
        "models:\n",
        "  - {name: plain, d_model: ", kD, ", d_ff: ", kD, ", activation: gelu,\n",
        "     weights: {safetensors: ", file, ", tensors: {w1: w1, b1: b1, w2: w2, b2: b2}}}\n",
        "  - {name: gated, d_model: ", kD + 1, ", d_ff: ", kD, ", activation: swiglu,\n",
        "     weights: {safetensors: ", file, ", tensors: {wg: wg, wu: wu, w2: down}}}\n");
    auto config = ParseConfig(yaml, "");
    ASSERT_TRUE(config.ok()) << config.status();
    auto server = FfnServer::Start(*config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    stub_ = v1::FfnService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                                        grpc::InsecureChannelCredentials()))
                .release();
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete server_;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  // One request of `tokens` rows through gRPC; the first kD columns of the
  // f32 answer.
  static std::vector<float> Serve(bool gated, Activation activation, v1::DType compute,
                                  int64_t tokens) {
    const int64_t d_model = gated ? kD + 1 : kD;
    std::vector<float> x(static_cast<size_t>(tokens * d_model));
    for (int64_t r = 0; r < tokens; ++r) {
      for (int64_t j = 0; j < d_model; ++j) {
        x[static_cast<size_t>(r * d_model + j)] = j == kD ? 1.0f : Input(tokens, r, j);
      }
    }
    v1::InferRequest request;
    request.set_model(gated ? "gated" : "plain");
    request.set_activation(ActivationName(activation));
    request.set_compute_dtype(compute);
    request.mutable_input()->set_dtype(v1::FLOAT32);
    request.mutable_input()->add_shape(tokens);
    request.mutable_input()->add_shape(d_model);
    request.mutable_input()->set_data(x.data(), x.size() * sizeof(float));
    grpc::ClientContext context;
    v1::InferResponse response;
    const grpc::Status status = stub_->Infer(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<float> all(static_cast<size_t>(tokens * d_model));
    EXPECT_EQ(response.output().data().size(), all.size() * sizeof(float));
    if (response.output().data().size() == all.size() * sizeof(float)) {
      std::memcpy(all.data(), response.output().data().data(), response.output().data().size());
    }
    std::vector<float> y(static_cast<size_t>(tokens * kD));
    for (int64_t r = 0; r < tokens; ++r) {
      std::copy_n(all.data() + r * d_model, kD, y.data() + r * kD);
    }
    return y;
  }

  static std::string* dir_;
  static FfnServer* server_;
  static v1::FfnService::Stub* stub_;
};

std::string* ServedAccuracyTest::dir_ = nullptr;
FfnServer* ServedAccuracyTest::server_ = nullptr;
v1::FfnService::Stub* ServedAccuracyTest::stub_ = nullptr;

TEST_F(ServedAccuracyTest, EveryActivationDtypeAndTokenCountKeepsTheKernelBound) {
  const ActivationParams params;  // PyTorch's defaults; prelu's shared 0.25
  ActivationParams prelu = params;
  const float shared_slope = 0.25f;
  prelu.prelu_alpha = {&shared_slope, 1};
  for (Activation activation : AllActivations()) {
    const bool gated = IsGated(activation);
    const Activation function = gated ? GateFunction(activation) : activation;
    for (int64_t tokens : kTokenCounts) {
      SCOPED_TRACE(absl::StrCat(ActivationName(activation), " at ", tokens, " tokens"));
      const std::vector<float> f32 = Serve(gated, activation, v1::FLOAT32, tokens);
      const std::vector<float> bf16 = Serve(gated, activation, v1::BFLOAT16, tokens);
      int checked = 0;
      double worst = 0;
      for (int64_t r = 0; r < tokens; ++r) {
        for (int64_t j = 0; j < kD; ++j) {
          const size_t i = static_cast<size_t>(r * kD + j);
          const double exact = ActivationReference(function, prelu, Input(tokens, r, j));
          if (std::fabs(exact) < FLT_MIN) continue;  // denormal or zero results: no ULP bound
          ++checked;
          const double ulp = UlpError(f32[i], exact);
          worst = std::max(worst, ulp);
          ASSERT_LE(ulp, 1.0) << "f32 token " << r << " column " << j << ": x = "
                              << Input(tokens, r, j) << ", got " << f32[i] << ", exact " << exact;
          // bf16 compute: the same fp32 activation, rounded once.
          ASSERT_EQ(bf16[i], Bf16ToFloat(FloatToBf16(f32[i])))
              << "bf16 token " << r << " column " << j << ": x = " << Input(tokens, r, j);
        }
      }
      EXPECT_GT(checked, tokens * kD / 4);  // relu-like functions are 0 for half
      RecordProperty(absl::StrCat(ActivationName(activation), "_", tokens, "_max_ulp"),
                     absl::StrCat(worst));
    }
  }
}

TEST_F(ServedAccuracyTest, ListModelsStatesTheAccuracyOfTheServedPath) {
  grpc::ClientContext context;
  v1::ListModelsResponse response;
  ASSERT_TRUE(stub_->ListModels(&context, {}, &response).ok());
  ASSERT_EQ(response.models_size(), 2);
  for (const v1::ModelInfo& model : response.models()) {
    EXPECT_EQ(model.strategy(), "auto");
    EXPECT_NE(model.accuracy().find("0.9 ULP"), std::string::npos) << model.accuracy();
  }
}

}  // namespace
}  // namespace ffn
