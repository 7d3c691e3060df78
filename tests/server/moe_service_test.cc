// Mixture-of-experts models through the server: answers against the fp64
// ReferenceMoe along the routing the server reports, caller-given routing,
// routing errors, and the per-expert statistics.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ffn/kernels/moe.h"
#include "ffn/kernels/reference.h"
#include "ffn/server/config.h"
#include "ffn/server/server.h"
#include "ffn/v1/ffn.grpc.pb.h"

namespace ffn {
namespace {

constexpr int64_t kDModel = 40, kDFf = 56, kExperts = 6, kTopK = 2, kShared = 72;

class MoeServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto config = ParseConfig(absl::StrCat(R"(
server: {address: "127.0.0.1:0", threads: 2}
models:
  - {name: moe, d_model: )", kDModel, ", d_ff: ", kDFf, R"(, activation: swiglu,
     weights: {random: {seed: 21}}, norm: rmsnorm, residual: true,
     moe: {experts: )", kExperts, ", top_k: ", kTopK, ", shared: ", kShared, R"(}}
  - {name: dense, d_model: )", kDModel, R"(, d_ff: 64, activation: swiglu, weights: {random: {seed: 22}}}
)"),
                              "");
    ASSERT_TRUE(config.ok()) << config.status();
    auto server = FfnServer::Start(*config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    stub_ = v1::FfnService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  }
  static void TearDownTestSuite() {
    stub_.reset();
    delete server_;
  }

  static v1::InferRequest Request(const std::string& model, int64_t tokens, v1::DType compute,
                                  const std::string& activation = "swiglu") {
    v1::InferRequest request;
    request.set_model(model);
    request.set_activation(activation);
    request.set_compute_dtype(compute);
    request.mutable_input()->set_dtype(v1::FLOAT32);
    request.mutable_input()->add_shape(tokens);
    request.mutable_input()->add_shape(kDModel);
    std::vector<float> x(static_cast<size_t>(tokens * kDModel));
    FillUniform(static_cast<uint64_t>(tokens), RandomStream::kInput, kRandomInputScale, x);
    request.mutable_input()->set_data(x.data(), x.size() * sizeof(float));
    return request;
  }

  static grpc::Status Call(const v1::InferRequest& request, v1::InferResponse* response) {
    grpc::ClientContext context;
    return stub_->Infer(&context, request, response);
  }

  // The served model's weights, as the server builds them.
  static MoeWeights Weights() {
    MoeWeights w = RandomMoeWeights({kDModel, kDFf, kExperts, kTopK, kShared}, 21);
    AddRandomNorm(w.outer, NormKind::kRmsNorm, 21);
    w.outer.residual = true;
    return w;
  }

  static MoeRouting Routing(const v1::Routing& r) {
    return {kTopK, {r.expert_ids().begin(), r.expert_ids().end()},
            {r.expert_weights().begin(), r.expert_weights().end()}};
  }

  static FfnServer* server_;
  static std::unique_ptr<v1::FfnService::Stub> stub_;
};

FfnServer* MoeServiceTest::server_ = nullptr;
std::unique_ptr<v1::FfnService::Stub> MoeServiceTest::stub_;

TEST_F(MoeServiceTest, ListModelsDescribesTheExperts) {
  grpc::ClientContext context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(stub_->ListModels(&context, {}, &models).ok());
  const v1::ModelInfo& moe = models.models(0);
  ASSERT_TRUE(moe.has_moe());
  EXPECT_EQ(moe.moe().experts(), kExperts);
  EXPECT_EQ(moe.moe().top_k(), kTopK);
  EXPECT_EQ(moe.moe().shared_d_ff(), kShared);
  EXPECT_TRUE(moe.moe().normalize_top_k());
  EXPECT_EQ(moe.d_ff(), kDFf);
  EXPECT_FALSE(models.models(1).has_moe());
}

TEST_F(MoeServiceTest, AnswersMatchTheReferenceAlongTheReportedRouting) {
  const MoeWeights weights = Weights();
  for (const v1::DType compute : {v1::FLOAT32, v1::BFLOAT16}) {
    for (const char* activation : {"swiglu", "geglu", "reglu"}) {
      for (const int64_t tokens : {1, 7, 64}) {
        v1::InferRequest request = Request("moe", tokens, compute, activation);
        request.set_return_routing(true);
        v1::InferResponse response;
        const grpc::Status status = Call(request, &response);
        ASSERT_TRUE(status.ok()) << status.error_message();
        const MoeRouting used = Routing(response.routing());
        ASSERT_TRUE(ValidateRouting(used, tokens, kExperts, kTopK).ok());
        const auto* x = reinterpret_cast<const float*>(request.input().data().data());
        const std::vector<double> reference =
            ReferenceMoe(weights, *ParseActivation(activation), {}, x, tokens, used);
        std::vector<float> y(reference.size());
        std::memcpy(y.data(), response.output().data().data(), y.size() * sizeof(float));
        const ReferenceComparison c = CompareToReference(y.data(), reference);
        EXPECT_TRUE(c.within(compute == v1::FLOAT32 ? kFp32CheckTolerance : kBf16CheckTolerance))
            << v1::DType_Name(compute) << " " << activation << " " << tokens
            << " tokens: scaled error " << c.max_scaled_error;
      }
    }
  }
}

TEST_F(MoeServiceTest, GivenRoutingEqualToTheServersGivesTheSameBits) {
  v1::InferRequest request = Request("moe", 9, v1::FLOAT32);
  request.set_return_routing(true);
  v1::InferResponse routed;
  ASSERT_TRUE(Call(request, &routed).ok());
  ASSERT_EQ(routed.routing().expert_ids_size(), 9 * kTopK);
  *request.mutable_routing() = routed.routing();
  v1::InferResponse given;
  ASSERT_TRUE(Call(request, &given).ok());
  EXPECT_EQ(given.output().data(), routed.output().data());
  EXPECT_EQ(Routing(given.routing()).ids, Routing(routed.routing()).ids);
  // Other experts for token 0: another answer for it, the same for the rest.
  v1::Routing other = routed.routing();
  for (int32_t e = 0; e < kExperts; ++e) {
    if (e != other.expert_ids(0) && e != other.expert_ids(1)) {
      other.set_expert_ids(0, e);
      break;
    }
  }
  *request.mutable_routing() = other;
  v1::InferResponse changed;
  ASSERT_TRUE(Call(request, &changed).ok());
  const size_t row = kDModel * sizeof(float);
  EXPECT_NE(changed.output().data().substr(0, row), routed.output().data().substr(0, row));
  EXPECT_EQ(changed.output().data().substr(row), routed.output().data().substr(row));
}

TEST_F(MoeServiceTest, BadRoutingIsRefusedAndTheServerKeepsServing) {
  auto expect = [](const v1::InferRequest& request, const std::string& fragment) {
    v1::InferResponse response;
    const grpc::Status status = Call(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find(fragment), std::string::npos) << status.error_message();
  };
  v1::InferRequest request = Request("moe", 2, v1::FLOAT32);
  v1::Routing* r = request.mutable_routing();
  for (int32_t id : {0, 1, 2, 2}) r->add_expert_ids(id);
  for (int i = 0; i < 4; ++i) r->add_expert_weights(0.5f);
  expect(request, "token 1 names expert 2 twice");
  r->set_expert_ids(3, kExperts);
  expect(request, absl::StrCat("names expert ", kExperts));
  r->set_expert_ids(3, 3);
  r->add_expert_ids(4);
  expect(request, "needs 4 of each");
  v1::InferRequest dense = Request("dense", 2, v1::FLOAT32);
  dense.set_return_routing(true);
  expect(dense, "model 'dense' is not a mixture of experts");
  v1::InferResponse response;
  EXPECT_TRUE(Call(Request("moe", 3, v1::FLOAT32), &response).ok());
}

TEST_F(MoeServiceTest, StatsCountEveryTokensExperts) {
  auto routed = [] {
    grpc::ClientContext context;
    v1::GetStatsResponse stats;
    EXPECT_TRUE(stub_->GetStats(&context, {}, &stats).ok());
    for (const v1::MoeStats& m : stats.moe()) {
      if (m.model() == "moe") return m;
    }
    return v1::MoeStats();
  };
  const v1::MoeStats before = routed();
  v1::InferRequest request = Request("moe", 25, v1::FLOAT32);
  request.set_return_routing(true);
  v1::InferResponse response;
  ASSERT_TRUE(Call(request, &response).ok());
  const v1::MoeStats after = routed();
  EXPECT_EQ(after.routed() - before.routed(), 25u * kTopK);
  EXPECT_EQ(after.dropped(), 0u);
  ASSERT_EQ(after.experts_size(), kExperts);
  // Each expert gained the tokens the routing sent it.
  for (int64_t e = 0; e < kExperts; ++e) {
    const uint64_t sent = static_cast<uint64_t>(std::count(
        response.routing().expert_ids().begin(), response.routing().expert_ids().end(), e));
    const uint64_t had = before.experts_size() > e ? before.experts(static_cast<int>(e)).tokens() : 0;
    EXPECT_EQ(after.experts(static_cast<int>(e)).tokens() - had, sent) << "expert " << e;
  }
  EXPECT_GE(after.imbalance(), 1.0);
}

}  // namespace
}  // namespace ffn
