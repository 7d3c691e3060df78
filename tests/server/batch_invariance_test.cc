// Batch invariance through the server (on by default): a request's answer
// has the same bits alone, inside a larger request, and batched by the
// scheduler with other clients' requests; dense models, a mixture of
// experts (whose experts then see other tokens too) and int8 models (whose
// answers are also checked against the fp64 reference at their tolerance).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/reference.h"
#include "ffn/server/config.h"
#include "ffn/server/server.h"
#include "ffn/v1/ffn.grpc.pb.h"
#include "start_server.h"

namespace ffn {
namespace {

constexpr int64_t kDModel = 72;  // not a multiple of 16: ragged groups too
constexpr int64_t kTokenCounts[] = {2, 3, 8, 31, 64, 200, 512};
constexpr const char* kModels[] = {"plain", "gated", "moe", "plain-int8", "gated-int8", "moe-int8"};

// The models of kModels, after a `server:` line.
std::string ModelsYaml() {
  return absl::StrCat(R"(
models:
  - {name: plain, d_model: )", kDModel, R"(, d_ff: 600, activation: gelu, weights: {random: {seed: 3}}}
  - {name: gated, d_model: )", kDModel, R"(, d_ff: 520, activation: swiglu, weights: {random: {seed: 4}}}
  - {name: moe, d_model: )", kDModel, R"(, d_ff: 200, activation: swiglu, weights: {random: {seed: 5}},
     moe: {experts: 6, top_k: 2, shared: 96}}
  - {name: plain-int8, d_model: )", kDModel, R"(, d_ff: 600, activation: gelu, weights: {random: {seed: 3}},
     quantization: int8}
  - {name: gated-int8, d_model: )", kDModel, R"(, d_ff: 520, activation: swiglu, weights: {random: {seed: 4}},
     quantization: int8}
  - {name: moe-int8, d_model: )", kDModel, R"(, d_ff: 200, activation: swiglu, weights: {random: {seed: 5}},
     moe: {experts: 6, top_k: 2, shared: 96}, quantization: int8}
)");
}

std::unique_ptr<FfnServer> StartServer(const std::string& server_line) {
  return StartServerFromYaml(server_line + ModelsYaml());
}

std::unique_ptr<v1::FfnService::Stub> StubOf(const FfnServer& server) {
  return v1::FfnService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()),
                                                     grpc::InsecureChannelCredentials()));
}

class BatchInvarianceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A queue delay long enough for concurrent requests to share batches.
    server_ = StartServer(
                  R"(server: {address: "127.0.0.1:0", max_queue_delay_us: 20000, max_batch_tokens: 1024})")
                  .release();
    ASSERT_NE(server_, nullptr);
  }
  static void TearDownTestSuite() { delete server_; }

  static std::unique_ptr<v1::FfnService::Stub> Stub() { return StubOf(*server_); }

  // `rows` seeded rows; row r of seed s is the same in every request.
  static v1::InferRequest Request(const std::string& model, v1::DType compute,
                                  const std::vector<uint64_t>& row_seeds) {
    v1::InferRequest request;
    request.set_model(model);
    request.set_compute_dtype(compute);
    request.mutable_input()->set_dtype(v1::FLOAT32);
    request.mutable_input()->add_shape(static_cast<int64_t>(row_seeds.size()));
    request.mutable_input()->add_shape(kDModel);
    std::vector<float> x(row_seeds.size() * kDModel);
    for (size_t r = 0; r < row_seeds.size(); ++r) {
      FillUniform(row_seeds[r], RandomStream::kInput, kRandomInputScale,
                  std::span<float>(x.data() + r * kDModel, kDModel));
    }
    request.mutable_input()->set_data(x.data(), x.size() * sizeof(float));
    return request;
  }

  static v1::InferResponse Call(v1::FfnService::Stub& stub, const v1::InferRequest& request) {
    grpc::ClientContext context;
    v1::InferResponse response;
    const grpc::Status status = stub.Infer(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // Bytes of row r of an answer.
  static std::string Row(const v1::InferResponse& response, int64_t r) {
    return response.output().data().substr(static_cast<size_t>(r * kDModel) * sizeof(float),
                                           kDModel * sizeof(float));
  }

  static FfnServer* server_;
};

FfnServer* BatchInvarianceTest::server_ = nullptr;

TEST_F(BatchInvarianceTest, ModelsSayTheyAreBatchInvariant) {
  auto stub = Stub();
  grpc::ClientContext context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(stub->ListModels(&context, {}, &models).ok());
  for (const v1::ModelInfo& m : models.models()) {
    EXPECT_TRUE(m.batch_invariant()) << m.name();
    const bool int8 = m.name().ends_with("-int8");
    EXPECT_EQ(m.quantization(), int8 ? "int8" : "none") << m.name();
    if (int8) {
      EXPECT_EQ(m.matrix_dtype(), "int8");
      EXPECT_EQ(m.strategy(), "int8");
    }
  }
}

// The answers of int8 models through gRPC, against the fp64 reference on
// the original weights, at the bound ffn-client --check applies.
TEST_F(BatchInvarianceTest, Int8AnswersStayWithinTheirBoundOfFp64) {
  auto stub = Stub();
  const struct {
    const char* model;
    FfnKind kind;
    int64_t d_ff;
    uint64_t seed;
    Activation activation;
  } cases[] = {{"plain-int8", FfnKind::kPlain, 600, 3, Activation::kGelu},
               {"gated-int8", FfnKind::kGated, 520, 4, Activation::kSwiglu}};
  for (const auto& c : cases) {
    const FfnWeights weights = RandomFfnWeights(c.kind, kDModel, c.d_ff, c.seed);
    for (int64_t m : {1, 31, 200}) {
      std::vector<uint64_t> seeds(static_cast<size_t>(m));
      for (int64_t r = 0; r < m; ++r) seeds[static_cast<size_t>(r)] = 300 + static_cast<uint64_t>(r);
      for (v1::DType compute : {v1::FLOAT32, v1::BFLOAT16}) {
        const v1::InferRequest request = Request(c.model, compute, seeds);
        const v1::InferResponse response = Call(*stub, request);
        ASSERT_EQ(response.output().data().size(), static_cast<size_t>(m * kDModel) * sizeof(float));
        std::vector<float> x(static_cast<size_t>(m * kDModel)), y(x.size());
        std::memcpy(x.data(), request.input().data().data(), x.size() * sizeof(float));
        std::memcpy(y.data(), response.output().data().data(), y.size() * sizeof(float));
        const ReferenceComparison cmp =
            CompareToReference(y.data(), ReferenceFfn(weights, c.activation, {}, x.data(), m));
        EXPECT_TRUE(kInt8Check.Passes(cmp))
            << c.model << " m=" << m << ": scaled " << cmp.max_scaled_error << ", Frobenius "
            << cmp.relative_frobenius;
        // Quantized, not exact: a check that could not fail would prove nothing.
        EXPECT_GT(cmp.relative_frobenius, 1e-4) << c.model;
      }
    }
  }
}

// int8 models through gRPC: a token holding a NaN or an infinity comes back
// all NaN, and the tokens beside it get the bits they get alone.
TEST_F(BatchInvarianceTest, Int8NonFiniteTokenIsNaNAndLeavesTheOthers) {
  auto stub = Stub();
  for (const char* model : {"plain-int8", "gated-int8", "moe-int8"}) {
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      const std::string first = Row(Call(*stub, Request(model, v1::FLOAT32, {21})), 0);
      const std::string last = Row(Call(*stub, Request(model, v1::FLOAT32, {23})), 0);
      v1::InferRequest request = Request(model, v1::FLOAT32, {21, 22, 23});
      std::string data = request.input().data();
      std::memcpy(data.data() + (kDModel + 3) * sizeof(float), &bad, sizeof(float));
      request.mutable_input()->set_data(data);
      const v1::InferResponse response = Call(*stub, request);
      ASSERT_EQ(response.output().data().size(), 3 * kDModel * sizeof(float)) << model;
      EXPECT_EQ(Row(response, 0), first) << model;
      EXPECT_EQ(Row(response, 2), last) << model;
      const std::string poisoned = Row(response, 1);
      for (int64_t i = 0; i < kDModel; ++i) {
        float v;
        std::memcpy(&v, poisoned.data() + i * sizeof(float), sizeof(float));
        EXPECT_TRUE(std::isnan(v)) << model << " column " << i << ": " << v;
      }
    }
  }
}

TEST_F(BatchInvarianceTest, TokenAloneEqualsTokenInsideAnyRequest) {
  auto stub = Stub();
  for (const char* model : kModels) {
    for (v1::DType compute : {v1::FLOAT32, v1::BFLOAT16}) {
      const std::string alone = Row(Call(*stub, Request(model, compute, {7})), 0);
      ASSERT_EQ(alone.size(), kDModel * sizeof(float));
      for (int64_t m : kTokenCounts) {
        std::vector<uint64_t> seeds(static_cast<size_t>(m));
        for (int64_t r = 0; r < m; ++r) seeds[static_cast<size_t>(r)] = 1000 + static_cast<uint64_t>(r);
        for (int64_t at : {int64_t{0}, m - 1}) {
          seeds[static_cast<size_t>(at)] = 7;
          EXPECT_EQ(Row(Call(*stub, Request(model, compute, seeds)), at), alone)
              << model << " " << v1::DType_Name(compute) << ": row " << at << " of " << m;
          seeds[static_cast<size_t>(at)] = 1000 + static_cast<uint64_t>(at);
        }
      }
    }
  }
}

TEST_F(BatchInvarianceTest, ConcurrentRequestsBatchedTogetherEqualEachAlone) {
  // Requests of 1 to 64 tokens, first each alone, then all at once from
  // their own clients so the scheduler stacks them into shared batches.
  constexpr int kClients = 8;
  for (const char* model : kModels) {
    for (v1::DType compute : {v1::FLOAT32, v1::BFLOAT16}) {
      std::vector<v1::InferRequest> requests;
      std::vector<std::string> alone;
      auto stub = Stub();
      for (int c = 0; c < kClients; ++c) {
        std::vector<uint64_t> seeds(static_cast<size_t>(1 + c * 9));
        for (size_t r = 0; r < seeds.size(); ++r) seeds[r] = 50 * static_cast<uint64_t>(c) + r;
        requests.push_back(Request(model, compute, seeds));
        alone.push_back(Call(*stub, requests.back()).output().data());
      }
      std::vector<v1::InferResponse> together(kClients);
      std::vector<std::thread> clients;
      for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
          auto own = Stub();
          together[static_cast<size_t>(c)] = Call(*own, requests[static_cast<size_t>(c)]);
        });
      }
      for (std::thread& t : clients) t.join();
      int batched = 0;
      for (int c = 0; c < kClients; ++c) {
        const v1::InferResponse& r = together[static_cast<size_t>(c)];
        EXPECT_EQ(r.output().data(), alone[static_cast<size_t>(c)])
            << model << " " << v1::DType_Name(compute) << ": client " << c
            << " got other bits in a batch of " << r.batch_tokens() << " tokens";
        if (r.batch_tokens() > requests[static_cast<size_t>(c)].input().shape(0)) ++batched;
      }
      // The 20 ms queue delay lets most requests share a batch.
      EXPECT_GT(batched, kClients / 2) << model << " " << v1::DType_Name(compute);
    }
  }
}

// A call may run on fewer threads than its executor has (server.call_threads
// adaptive, the default, tries 1 and 2 threads on a 2-thread executor in
// each size's first calls): the answers' bits do not depend on it. Every
// model and compute dtype at M = 1, 31 and 200, from an adaptive server, a
// one-thread server and servers running every call on 2 and on 3 threads.
TEST_F(BatchInvarianceTest, AnswersAreTheSameOnEveryThreadCount) {
  auto adaptive = StartServer(R"(server: {address: "127.0.0.1:0", threads: 2})");
  auto one = StartServer(R"(server: {address: "127.0.0.1:0", threads: 1})");
  auto two = StartServer(R"(server: {address: "127.0.0.1:0", threads: 2, call_threads: all})");
  auto three = StartServer(R"(server: {address: "127.0.0.1:0", threads: 3, call_threads: all})");
  ASSERT_TRUE(adaptive && one && two && three);
  auto adaptive_stub = StubOf(*adaptive);

  // CallThreads times each count three times first: one thread, then two
  // threads twice (the first of the pair wakes the second thread, untimed),
  // three times over. Nine one-token calls, 15 threads, and GetStats says so.
  const v1::InferRequest token = Request("plain", v1::FLOAT32, {77});
  const v1::InferResponse first = Call(*adaptive_stub, token);
  for (int i = 1; i < 9; ++i) {
    EXPECT_EQ(Call(*adaptive_stub, token).output().data(), first.output().data()) << "call " << i;
  }
  const auto mean_threads = [](v1::FfnService::Stub& stub) {
    grpc::ClientContext context;
    v1::GetStatsResponse stats;
    EXPECT_TRUE(stub.GetStats(&context, {}, &stats).ok());
    for (const v1::VariantStats& v : stats.variants()) {
      if (v.variant().model() != "plain" || v.variant().dtype() != v1::FLOAT32) continue;
      for (const v1::BatchSizeStats& b : v.batch_sizes()) {
        if (b.tokens_from() == 1) return b.mean_threads();
      }
    }
    return 0.0;
  };
  EXPECT_DOUBLE_EQ(mean_threads(*adaptive_stub), 15.0 / 9);
  auto two_stub = StubOf(*two);
  EXPECT_EQ(Call(*two_stub, token).output().data(), first.output().data());
  EXPECT_DOUBLE_EQ(mean_threads(*two_stub), 2.0);

  std::vector<std::unique_ptr<v1::FfnService::Stub>> others;
  for (const FfnServer* server : {one.get(), two.get(), three.get()}) others.push_back(StubOf(*server));
  for (const char* model : kModels) {
    for (v1::DType compute : {v1::FLOAT32, v1::BFLOAT16}) {
      for (int64_t m : {1, 31, 200}) {
        std::vector<uint64_t> seeds(static_cast<size_t>(m));
        for (int64_t r = 0; r < m; ++r) seeds[static_cast<size_t>(r)] = 500 + static_cast<uint64_t>(r);
        const v1::InferRequest request = Request(model, compute, seeds);
        // Nine calls: both thread counts of the adaptive server's bucket.
        const std::string want = Call(*adaptive_stub, request).output().data();
        ASSERT_EQ(want.size(), static_cast<size_t>(m * kDModel) * sizeof(float));
        for (int i = 1; i < 9; ++i) {
          EXPECT_EQ(Call(*adaptive_stub, request).output().data(), want)
              << model << " " << v1::DType_Name(compute) << " m=" << m << ": adaptive call " << i;
        }
        for (size_t k = 0; k < others.size(); ++k) {
          EXPECT_EQ(Call(*others[k], request).output().data(), want)
              << model << " " << v1::DType_Name(compute) << " m=" << m << ": the server with "
              << (k + 1) << " thread(s) per call differs";
        }
      }
    }
  }
}

}  // namespace
}  // namespace ffn
