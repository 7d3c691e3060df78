// The KServe v2 REST front end in-process, without gRPC: concurrent clients
// (JSON and binary tensors, statistics read all along) each get their own
// answer, checked against the fp64 reference. cpp-httplib is header-only,
// so the TSan build sees its threads as well as the scheduler's.
#include "ffn/server/kserve_http.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/reference.h"
#include "ffn/server/config.h"
#include "ffn/server/memory_budget.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/scheduler.h"
#include "ffn/server/stats.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace ffn {
namespace {

using nlohmann::json;

constexpr int64_t kDModel = 16, kDFf = 40;
constexpr uint64_t kSeed = 5;

std::vector<double> Reference(const std::vector<float>& x, int64_t tokens) {
  FfnWeights weights = RandomFfnWeights(FfnKind::kPlain, kDModel, kDFf, kSeed);
  ActivationParams params;
  params.prelu_alpha = weights.prelu_alpha;
  return ReferenceFfn(weights, Activation::kSilu, params, x.data(), tokens);
}

// Worst |y - ref| / (1 + |ref|).
double ScaledError(const std::vector<float>& y, const std::vector<double>& ref) {
  double worst = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    worst = std::max(worst, std::abs(y[i] - ref[i]) / (1.0 + std::abs(ref[i])));
  }
  return worst;
}

TEST(KServeHttpTest, ConcurrentClientsEachGetTheirOwnCorrectAnswer) {
  auto config = ParseConfig(R"(
models:
  - {name: plain, d_model: 16, d_ff: 40, activation: gelu, weights: {random: {seed: 5}}}
)",
                            "");
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = ModelRegistry::Load(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  ServerStats stats(10);
  Scheduler scheduler({1, 1}, stats);
  MemoryBudget budget(int64_t{64} << 20);
  HttpOptions options;
  options.address = "127.0.0.1:0";
  options.worker_threads = 8;
  auto http = KServeHttpServer::Start(options, **registry, scheduler, stats, &budget);
  ASSERT_TRUE(http.ok()) << http.status();
  const int port = (*http)->port();

  constexpr int kClients = 4, kEach = 12;
  std::atomic<int> correct{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", port);
      for (int i = 0; i < kEach; ++i) {
        const int64_t tokens = 1 + (c + i) % 5;
        std::vector<float> x(static_cast<size_t>(tokens * kDModel));
        FillUniform(static_cast<uint64_t>(100 * c + i), RandomStream::kInput, kRandomInputScale,
                    x);
        json input = {{"name", "input"}, {"datatype", "FP32"}, {"shape", {tokens, kDModel}}};
        json header = {{"id", std::to_string(c) + "-" + std::to_string(i)},
                       {"parameters", {{"activation", "silu"}}}};
        std::string body;
        httplib::Headers headers;
        if (i % 2 == 0) {  // JSON data
          input["data"] = x;
          header["inputs"] = json::array({input});
          body = header.dump();
        } else {  // the binary tensor data extension, output binary too
          input["parameters"] = {{"binary_data_size", x.size() * sizeof(float)}};
          header["inputs"] = json::array({input});
          header["outputs"] = json::array({{{"name", "output"}, {"parameters", {{"binary_data", true}}}}});
          body = header.dump();
          headers.emplace("Inference-Header-Content-Length", std::to_string(body.size()));
          body.append(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
        }
        auto res = client.Post("/v2/models/plain/infer", headers, body, "application/octet-stream");
        ASSERT_TRUE(res) << "no answer";
        ASSERT_EQ(res->status, 200) << res->body;
        std::vector<float> y;
        if (i % 2 == 0) {
          const json answer = json::parse(res->body);
          EXPECT_EQ(answer["id"], header["id"]);
          y = answer["outputs"][0]["data"].get<std::vector<float>>();
        } else {
          const size_t json_bytes = std::stoul(res->get_header_value("Inference-Header-Content-Length"));
          const json answer = json::parse(res->body.substr(0, json_bytes));
          EXPECT_EQ(answer["id"], header["id"]);
          y.resize(x.size());
          ASSERT_EQ(res->body.size() - json_bytes, y.size() * sizeof(float));
          std::memcpy(y.data(), res->body.data() + json_bytes, y.size() * sizeof(float));
        }
        ASSERT_EQ(y.size(), x.size());
        // fp32 compute: docs/ACCURACY.md's tolerance for these shapes.
        EXPECT_LE(ScaledError(y, Reference(x, tokens)), 2e-6);
        correct.fetch_add(1);
      }
    });
  }
  // Statistics, read while the requests run.
  std::thread reader([&] {
    httplib::Client client("127.0.0.1", port);
    for (int i = 0; i < 20; ++i) {
      auto res = client.Get("/v2/models/plain/stats");
      ASSERT_TRUE(res);
      EXPECT_EQ(res->status, 200) << res->body;
    }
  });
  for (auto& t : clients) t.join();
  reader.join();
  EXPECT_EQ(correct.load(), kClients * kEach);

  httplib::Client client("127.0.0.1", port);
  auto stats_res = client.Get("/v2/models/plain:silu/stats");
  ASSERT_TRUE(stats_res);
  const json model_stats = json::parse(stats_res->body)["model_stats"][0];
  EXPECT_EQ(model_stats["inference_stats"]["success"]["count"].get<int>(), kClients * kEach);
  (*http)->SetReady(false);
  auto ready = client.Get("/v2/health/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  (*http)->Stop();
  scheduler.Shutdown();
}

}  // namespace
}  // namespace ffn
