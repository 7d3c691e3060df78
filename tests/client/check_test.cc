#include "ffn/client/check.h"

#include <string>
#include <vector>
#include <unistd.h>

#include "ffn/client/request.h"
#include "ffn/common/safetensors.h"
#include "gtest/gtest.h"

namespace ffn::client {
namespace {

constexpr int64_t kDModel = 8;
constexpr int64_t kDFf = 12;

std::vector<float> Values(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  FillUniform(seed, RandomStream::kW1, 0.5f, v);
  return v;
}

v1::ModelInfo RandomPlainInfo(uint64_t seed) {
  v1::ModelInfo info;
  info.set_name("plain");
  info.set_kind(v1::PLAIN);
  info.set_d_model(kDModel);
  info.set_d_ff(kDFf);
  info.mutable_random()->set_seed(seed);
  info.mutable_params()->set_leaky_relu_slope(0.01f);
  info.mutable_params()->set_rrelu_lower(0.125f);
  info.mutable_params()->set_rrelu_upper(1.0f / 3);
  info.mutable_params()->set_elu_alpha(1.0f);
  info.mutable_params()->add_prelu_alpha(0.25f);
  return info;
}

// A response whose output is the fp64 reference rounded to fp32, plus `bump`
// at element 5.
v1::InferResponse ReferenceResponse(const v1::ModelInfo& info, const FfnWeights& weights,
                                    Activation activation, const std::vector<float>& x,
                                    float bump) {
  const int64_t tokens = static_cast<int64_t>(x.size()) / kDModel;
  const std::vector<double> ref =
      ReferenceFfn(weights, activation, ParamsForModel(info, weights), x.data(), tokens);
  std::vector<float> y(ref.begin(), ref.end());
  y[5] += bump;
  v1::InferResponse response;
  *response.mutable_output() = MakeInferRequest("m", "", y, tokens).input();
  return response;
}

TEST(WeightsForModelTest, RandomModelMatchesTheGenerator) {
  auto weights = WeightsForModel(RandomPlainInfo(9), "");
  ASSERT_TRUE(weights.ok()) << weights.status();
  const FfnWeights expected = RandomFfnWeights(FfnKind::kPlain, kDModel, kDFf, 9);
  EXPECT_EQ(weights->w1, expected.w1);
  EXPECT_EQ(weights->b2, expected.b2);
  EXPECT_TRUE(weights->has_bias);
}

TEST(CompareAnswerTest, PassesTheReferenceAndCatchesAWrongValue) {
  const v1::ModelInfo info = RandomPlainInfo(9);
  auto weights = WeightsForModel(info, "");
  ASSERT_TRUE(weights.ok()) << weights.status();
  const std::vector<float> x = RandomInput(3, kDModel, 1);

  auto good = CompareAnswer(info, *weights, "silu", x,
                            ReferenceResponse(info, *weights, Activation::kSilu, x, 0));
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE(good->within(kFp32CheckTolerance)) << good->max_scaled_error;

  auto bad = CompareAnswer(info, *weights, "silu", x,
                           ReferenceResponse(info, *weights, Activation::kSilu, x, 0.01f));
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_FALSE(bad->within(kFp32CheckTolerance));
  EXPECT_EQ(bad->worst_index, 5);

  // An answer computed with another activation fails too.
  auto other = CompareAnswer(info, *weights, "gelu", x,
                             ReferenceResponse(info, *weights, Activation::kSilu, x, 0));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE(other->within(kFp32CheckTolerance));
}

// quick_gelu is x·σ(1.702x), silu x·σ(x): --check tells them apart.
TEST(CompareAnswerTest, QuickGeluIsCheckedAsItselfNotAsSilu) {
  const v1::ModelInfo info = RandomPlainInfo(9);
  auto weights = WeightsForModel(info, "");
  ASSERT_TRUE(weights.ok()) << weights.status();
  const std::vector<float> x = RandomInput(3, kDModel, 1);
  const v1::InferResponse quick_gelu =
      ReferenceResponse(info, *weights, Activation::kQuickGelu, x, 0);
  auto good = CompareAnswer(info, *weights, "quick_gelu", x, quick_gelu);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE(good->within(kFp32CheckTolerance)) << good->max_scaled_error;
  for (const char* other : {"silu", "gelu", "gelu_tanh"}) {
    auto wrong = CompareAnswer(info, *weights, other, x, quick_gelu);
    ASSERT_TRUE(wrong.ok()) << wrong.status();
    EXPECT_FALSE(wrong->within(kFp32CheckTolerance)) << other;
  }
}

TEST(CompareAnswerTest, RejectsWrongShapesAndNames) {
  const v1::ModelInfo info = RandomPlainInfo(9);
  auto weights = WeightsForModel(info, "");
  ASSERT_TRUE(weights.ok());
  const std::vector<float> x = RandomInput(3, kDModel, 1);
  const v1::InferResponse response = ReferenceResponse(info, *weights, Activation::kRelu, x, 0);
  EXPECT_EQ(CompareAnswer(info, *weights, "bogus", x, response).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<float> two_tokens(x.begin(), x.begin() + 2 * kDModel);
  EXPECT_EQ(CompareAnswer(info, *weights, "relu", two_tokens, response).status().code(),
            absl::StatusCode::kInvalidArgument);
}

class SafetensorsWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One file per process: CTest runs these tests in parallel processes.
    path_ = ::testing::TempDir() + "/check_test_plain_" + std::to_string(::getpid()) + ".safetensors";
    w1_ = Values(kDFf * kDModel, 1);
    b1_ = Values(kDFf, 2);
    w2_ = Values(kDModel * kDFf, 3);
    b2_ = Values(kDModel, 4);
    alpha_ = Values(kDFf, 5);
    ASSERT_TRUE(WriteSafetensors(path_, {{"fc1.weight", {kDFf, kDModel}, w1_},
                                         {"fc1.bias", {kDFf}, b1_},
                                         {"fc2.weight", {kDModel, kDFf}, w2_},
                                         {"fc2.bias", {kDModel}, b2_},
                                         {"act.weight", {kDFf}, alpha_}})
                    .ok());
    info_.set_name("st");
    info_.set_kind(v1::PLAIN);
    info_.set_d_model(kDModel);
    info_.set_d_ff(kDFf);
    info_.mutable_safetensors()->set_path(path_);
    auto& tensors = *info_.mutable_safetensors()->mutable_tensors();
    tensors["w1"] = "fc1.weight";
    tensors["b1"] = "fc1.bias";
    tensors["w2"] = "fc2.weight";
    tensors["b2"] = "fc2.bias";
    tensors["alpha"] = "act.weight";
  }

  std::string path_;
  std::vector<float> w1_, b1_, w2_, b2_, alpha_;
  v1::ModelInfo info_;
};

TEST_F(SafetensorsWeightsTest, ReadsEveryRole) {
  auto weights = WeightsForModel(info_, "");
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ(weights->w1, w1_);
  EXPECT_EQ(weights->b1, b1_);
  EXPECT_EQ(weights->w2, w2_);
  EXPECT_EQ(weights->b2, b2_);
  EXPECT_EQ(weights->prelu_alpha, alpha_);
  EXPECT_TRUE(weights->has_bias);
  // With no slopes from the server, the params use the file's.
  EXPECT_EQ(ParamsForModel(info_, *weights).prelu_alpha.size(), alpha_.size());
}

TEST_F(SafetensorsWeightsTest, NoBiasAndDefaultAlphaWhenNotNamed) {
  info_.mutable_safetensors()->mutable_tensors()->erase("b1");
  info_.mutable_safetensors()->mutable_tensors()->erase("b2");
  info_.mutable_safetensors()->mutable_tensors()->erase("alpha");
  auto weights = WeightsForModel(info_, "");
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_FALSE(weights->has_bias);
  EXPECT_TRUE(weights->b1.empty());
  EXPECT_EQ(weights->prelu_alpha, std::vector<float>{0.25f});
}

TEST_F(SafetensorsWeightsTest, OverrideFileIsReadInsteadOfTheReportedPath) {
  info_.mutable_safetensors()->set_path("/nonexistent/server-side.safetensors");
  EXPECT_FALSE(WeightsForModel(info_, "").ok());
  auto weights = WeightsForModel(info_, path_);
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ(weights->w1, w1_);
}

TEST_F(SafetensorsWeightsTest, ErrorsNameTheModelAndRole) {
  (*info_.mutable_safetensors()->mutable_tensors())["w2"] = "missing.weight";
  auto missing = WeightsForModel(info_, "");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_NE(missing.status().message().find("model 'st'"), absl::string_view::npos);
  EXPECT_NE(missing.status().message().find("weight w2"), absl::string_view::npos);

  info_.set_d_ff(kDFf + 1);  // shapes no longer match the file
  (*info_.mutable_safetensors()->mutable_tensors())["w2"] = "fc2.weight";
  EXPECT_EQ(WeightsForModel(info_, "").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WeightsForModelTest, RejectsIncompleteInfo) {
  v1::ModelInfo info = RandomPlainInfo(1);
  EXPECT_EQ(WeightsForModel(info, "/some/file.safetensors").status().code(),
            absl::StatusCode::kInvalidArgument);
  info.clear_random();
  EXPECT_EQ(WeightsForModel(info, "").status().code(), absl::StatusCode::kInvalidArgument);
  info = RandomPlainInfo(1);
  info.set_kind(v1::MODEL_KIND_UNSPECIFIED);
  EXPECT_EQ(WeightsForModel(info, "").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ffn::client
