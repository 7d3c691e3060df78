// The real ffn-server binary on a free loopback port, driven by the real
// ffn-client binary.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "ffn/common/safetensors.h"
#include "ffn/kernels/activation.h"
#include "ffn/kernels/ffn_weights.h"
#include "ffn/v1/ffn.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "process.h"

namespace ffn {
namespace {

using testing::CommandResult;
using testing::RunClient;
using testing::ServerProcess;
using testing::TempDir;

bool Contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

// One server with the embedded default models for the whole suite.
class DefaultServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({"--threads", "2"});
    ASSERT_TRUE(server_->WaitReady()) << server_->Log();
  }
  static void TearDownTestSuite() {
    // SIGTERM drains and exits 0.
    EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Log();
    delete server_;
  }
  static std::string target() { return server_->target(); }
  static ServerProcess* server_;
};
ServerProcess* DefaultServerTest::server_ = nullptr;

TEST_F(DefaultServerTest, ModelsListsTheEmbeddedDefaults) {
  CommandResult r = RunClient({"models", "--target", target()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Contains(r.output, "ffn-768")) << r.output;
  EXPECT_TRUE(Contains(r.output, "glu-768")) << r.output;
  EXPECT_TRUE(Contains(r.output, "3072")) << r.output;
}

TEST_F(DefaultServerTest, EveryActivationPassesTheFp64Check) {
  for (Activation a : AllActivations()) {
    const std::string model = IsGated(a) ? "glu-768" : "ffn-768";
    CommandResult r = RunClient({"infer", "--target", target(), "--model", model, "--activation",
                                 ActivationName(a), "--tokens", "3", "--seed", "9", "--check"});
    EXPECT_EQ(r.exit_code, 0) << ActivationName(a) << ":\n" << r.output;
  }
}

TEST_F(DefaultServerTest, InferFailuresExitNonZeroWithTheStatus) {
  CommandResult missing = RunClient({"infer", "--target", target(), "--model", "nope"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_TRUE(Contains(missing.output, "NOT_FOUND")) << missing.output;
  CommandResult wrong_kind =
      RunClient({"infer", "--target", target(), "--model", "ffn-768", "--activation", "swiglu"});
  EXPECT_NE(wrong_kind.exit_code, 0);
  EXPECT_TRUE(Contains(wrong_kind.output, "INVALID_ARGUMENT")) << wrong_kind.output;
  CommandResult too_many =
      RunClient({"infer", "--target", target(), "--model", "ffn-768", "--tokens", "100000"});
  EXPECT_NE(too_many.exit_code, 0);
  EXPECT_TRUE(Contains(too_many.output, "accepts 1 to 8192")) << too_many.output;
}

TEST_F(DefaultServerTest, LoadOverEveryVariantThenStats) {
  TempDir dir;
  CommandResult r = RunClient({"load", "--target", target(), "--concurrency", "2", "--duration",
                               "2", "--warmup", "0.2", "--variants", "all", "--json",
                               dir.File("load.json")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto report = nlohmann::json::parse(testing::ReadFile(dir.File("load.json")), nullptr,
                                            /*allow_exceptions=*/false);
  ASSERT_FALSE(report.is_discarded()) << testing::ReadFile(dir.File("load.json"));
  // Every one of the 16 variants ran, and the table printed each of them.
  const std::string text = report.dump();
  for (Activation a : AllActivations()) {
    EXPECT_TRUE(Contains(r.output, std::string(IsGated(a) ? "glu-768" : "ffn-768") + "/" +
                                       ActivationName(a)))
        << ActivationName(a) << " missing from:\n" << r.output;
  }
  EXPECT_TRUE(Contains(text, "\"errors\"")) << text;

  CommandResult stats = RunClient({"stats", "--target", target()});
  ASSERT_EQ(stats.exit_code, 0) << stats.output;
  EXPECT_TRUE(Contains(stats.output, "swiglu")) << stats.output;
  EXPECT_TRUE(Contains(stats.output, "gelu_tanh")) << stats.output;
  EXPECT_TRUE(Contains(stats.output, "engine calls by size")) << stats.output;
  CommandResult stats_json = RunClient({"stats", "--target", target(), "--json"});
  ASSERT_EQ(stats_json.exit_code, 0) << stats_json.output;
  const auto parsed = nlohmann::json::parse(stats_json.output, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << stats_json.output;
  ASSERT_TRUE(parsed.contains("variants"));
  EXPECT_GE(parsed["variants"].size(), 16u);
  for (const auto& v : parsed["variants"]) {
    if (v["requests"].get<std::string>() == "0") continue;  // uint64: a JSON string
    EXPECT_FALSE(v["batch_sizes"].empty()) << v.dump();
    EXPECT_NE(v["last_success_unix_ms"].get<std::string>(), "0") << v.dump();
  }
}

// ffn-client over the Open Inference Protocol (KServe v2) to the real
// server: every variant by its MODEL:ACTIVATION name passes the fp64 check,
// and a load run is served and reports the server's timings.
TEST_F(DefaultServerTest, ProtocolV2InferChecksEveryVariant) {
  for (Activation a : AllActivations()) {
    const std::string model =
        std::string(IsGated(a) ? "glu-768" : "ffn-768") + ":" + ActivationName(a);
    CommandResult r = RunClient({"infer", "--protocol", "v2", "--target", target(), "--model",
                                 model, "--tokens", "3", "--seed", "4", "--check"});
    EXPECT_EQ(r.exit_code, 0) << model << ":\n" << r.output;
    EXPECT_TRUE(Contains(r.output, "PASS")) << r.output;
  }
  CommandResult by_parameter =
      RunClient({"infer", "--protocol", "v2", "--target", target(), "--model", "glu-768",
                 "--activation", "reglu", "--compute-dtype", "bf16", "--check"});
  EXPECT_EQ(by_parameter.exit_code, 0) << by_parameter.output;
  EXPECT_TRUE(Contains(by_parameter.output, "BFLOAT16")) << by_parameter.output;
  CommandResult missing =
      RunClient({"infer", "--protocol", "v2", "--target", target(), "--model", "nope"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_TRUE(Contains(missing.output, "NOT_FOUND: no model named 'nope'")) << missing.output;
}

TEST_F(DefaultServerTest, ProtocolV2LoadIsServedAndReported) {
  TempDir dir;
  CommandResult r = RunClient({"load", "--protocol", "v2", "--target", target(), "--concurrency",
                               "2", "--duration", "1", "--warmup", "0.2", "--tokens", "1-4",
                               "--variants", "ffn-768:silu=2,glu-768", "--json",
                               dir.File("load.json")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto report = nlohmann::json::parse(testing::ReadFile(dir.File("load.json")), nullptr,
                                            /*allow_exceptions=*/false);
  ASSERT_FALSE(report.is_discarded());
  const std::string text = report.dump();
  EXPECT_TRUE(Contains(r.output, "ffn-768:silu")) << r.output;
  EXPECT_TRUE(Contains(r.output, "glu-768")) << r.output;
  EXPECT_TRUE(Contains(r.output, " 0 failed")) << r.output;
  // The server-side breakdown from ModelStatistics, per variant, over the
  // window: the server counted about what the client did.
  EXPECT_TRUE(Contains(r.output, "server's ModelStatistics for ffn-768:silu over the window"))
      << r.output;
  ASSERT_EQ(report["server_statistics"].size(), 2u) << text;
  for (const auto& s : report["server_statistics"]) {
    EXPECT_GT(s["requests"].get<uint64_t>(), 0u) << text;
    EXPECT_EQ(s["failed"].get<uint64_t>(), 0u) << text;
    EXPECT_GT(s["mean_compute_us"].get<double>(), 0.0) << text;
    EXPECT_GE(s["mean_total_us"].get<double>(), s["mean_compute_us"].get<double>()) << text;
  }
  const uint64_t client_ok = report["total"]["requests"].get<uint64_t>();
  const uint64_t server_ok = report["server_statistics"][0]["requests"].get<uint64_t>() +
                             report["server_statistics"][1]["requests"].get<uint64_t>();
  // Calls answered at the window's edges, while a statistics call is on its
  // way, may fall either side: a few calls, a small share of the window.
  const uint64_t slack = std::max<uint64_t>(20, client_ok / 10);
  EXPECT_LE(server_ok, client_ok + slack) << text;
  EXPECT_GE(server_ok + slack, client_ok) << text;
  CommandResult all = RunClient({"load", "--protocol", "v2", "--target", target()});
  EXPECT_EQ(all.exit_code, 2) << all.output;
  EXPECT_TRUE(Contains(all.output, "name the models")) << all.output;
  // The v2 requests count in the same per-variant statistics as ffn.v1's.
  CommandResult stats = RunClient({"stats", "--target", target()});
  EXPECT_TRUE(Contains(stats.output, "silu")) << stats.output;
}

// `load --protocol v2 --stream`: a closed loop over ModelStreamInfer, two
// streams (--connections 2) sharing five requests in flight, three
// variants. The server answers each stream's requests as they finish, and
// the variants' queues finish them out of order; the client files each
// answer under its id (taken in order, many would have the wrong size).
TEST_F(DefaultServerTest, ProtocolV2StreamLoadIsServedAndReported) {
  TempDir dir;
  CommandResult r = RunClient({"load", "--protocol", "v2", "--stream", "--target", target(),
                               "--connections", "2", "--concurrency", "5", "--duration", "2",
                               "--warmup", "0.2", "--tokens", "1-4", "--variants",
                               "ffn-768:silu=2,glu-768:swiglu,ffn-768:gelu", "--json",
                               dir.File("load.json")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto report = nlohmann::json::parse(testing::ReadFile(dir.File("load.json")), nullptr,
                                            /*allow_exceptions=*/false);
  ASSERT_FALSE(report.is_discarded()) << testing::ReadFile(dir.File("load.json"));
  const std::string text = report.dump();
  EXPECT_TRUE(report["config"]["stream"].get<bool>()) << text;
  EXPECT_GT(report["total"]["requests"].get<uint64_t>(), 0u) << text;
  EXPECT_EQ(report["total"]["errors"].get<uint64_t>(), 0u) << text;
  ASSERT_EQ(report["variants"].size(), 3u) << text;
  for (const auto& v : report["variants"]) {
    EXPECT_GT(v["requests"].get<uint64_t>(), 0u) << text;
    EXPECT_EQ(v["errors"].get<uint64_t>(), 0u) << text;
  }
  for (const char* variant : {"ffn-768:silu", "glu-768:swiglu", "ffn-768:gelu"}) {
    EXPECT_TRUE(Contains(r.output, variant)) << variant << " missing from:\n" << r.output;
  }
  EXPECT_TRUE(Contains(r.output, "KServe v2, closed loop over ModelStreamInfer, concurrency 5"))
      << r.output;
}

// A request the server refuses on a v2 stream is answered in band and the
// stream goes on. Under a 1 MiB budget for requests in flight, every
// 200-token request (charged 4 x 600 KiB) is refused, every 1-token one
// served; the refusals carry the server's message and count as UNKNOWN (the
// protocol gives in-band errors no code). A model the server does not have
// is refused before any load, as without --stream.
TEST(ServerProcessTest, ProtocolV2StreamRefusalsAreInBand) {
  ServerProcess server({"--threads", "2", "--max-inflight-bytes", "1048576"});
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  TempDir dir;
  CommandResult r = RunClient({"load", "--protocol", "v2", "--stream", "--target",
                               server.target(), "--concurrency", "3", "--duration", "1",
                               "--warmup", "0", "--tokens", "1=3,200", "--variants",
                               "ffn-768:relu", "--json", dir.File("load.json")});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const auto report = nlohmann::json::parse(testing::ReadFile(dir.File("load.json")), nullptr,
                                            /*allow_exceptions=*/false);
  ASSERT_FALSE(report.is_discarded()) << testing::ReadFile(dir.File("load.json"));
  const std::string text = report.dump();
  const auto& total = report["total"];
  EXPECT_GT(total["requests"].get<uint64_t>(), 0u) << text;
  EXPECT_GT(total["errors"].get<uint64_t>(), 0u) << text;
  // Only in-band refusals: the stream never broke.
  ASSERT_EQ(total["errors_by_code"].size(), 1u) << text;
  EXPECT_EQ(total["errors_by_code"]["UNKNOWN"].get<uint64_t>(),
            total["errors"].get<uint64_t>())
      << text;
  EXPECT_TRUE(Contains(r.output, "UNKNOWN: the server holds")) << r.output;
  EXPECT_TRUE(Contains(r.output, "max_inflight_bytes")) << r.output;

  CommandResult missing = RunClient({"load", "--protocol", "v2", "--stream", "--target",
                                     server.target(), "--duration", "1", "--variants", "nope"});
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_TRUE(Contains(missing.output, "no model named 'nope'")) << missing.output;
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.Log();
}

TEST(ServerProcessTest, ServesASafetensorsModelTheTestWrote) {
  TempDir dir;
  // Plain model with per-channel PReLU slopes, and a gated one; HF-style names.
  const int64_t dm = 48, dff = 96;
  FfnWeights plain = RandomFfnWeights(FfnKind::kPlain, dm, dff, 31);
  FfnWeights gated = RandomFfnWeights(FfnKind::kGated, dm, dff, 32);
  std::vector<float> alpha(static_cast<size_t>(dff));
  for (size_t i = 0; i < alpha.size(); ++i) alpha[i] = 0.05f + 0.01f * static_cast<float>(i % 7);
  ASSERT_TRUE(std::filesystem::create_directories(dir.File("weights")));
  ASSERT_TRUE(WriteSafetensors(dir.File("weights/model.safetensors"),
                               {{"mlp.fc1.weight", {dff, dm}, plain.w1},
                                {"mlp.fc1.bias", {dff}, plain.b1},
                                {"mlp.fc2.weight", {dm, dff}, plain.w2},
                                {"mlp.fc2.bias", {dm}, plain.b2},
                                {"mlp.act.weight", {dff}, alpha},
                                {"mlp.gate_proj.weight", {dff, dm}, gated.wg},
                                {"mlp.up_proj.weight", {dff, dm}, gated.wu},
                                {"mlp.down_proj.weight", {dm, dff}, gated.w2}})
                  .ok());
  std::ofstream(dir.File("config.yaml")) << R"(
models:
  - name: st-mlp
    d_model: 48
    d_ff: 96
    activation: prelu
    weights:
      safetensors: weights/model.safetensors
      tensors: {w1: mlp.fc1.weight, b1: mlp.fc1.bias, w2: mlp.fc2.weight, b2: mlp.fc2.bias, alpha: mlp.act.weight}
  - name: st-llama
    d_model: 48
    d_ff: 96
    activation: swiglu
    weights:
      safetensors: weights/model.safetensors
      tensors: {wg: mlp.gate_proj.weight, wu: mlp.up_proj.weight, w2: mlp.down_proj.weight}
  - name: st-llama-int8
    d_model: 48
    d_ff: 96
    activation: swiglu
    quantization: int8
    weights:
      safetensors: weights/model.safetensors
      tensors: {wg: mlp.gate_proj.weight, wu: mlp.up_proj.weight, w2: mlp.down_proj.weight}
)";
  ServerProcess server({"--config", dir.File("config.yaml")});
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  for (const char* activation : {"prelu", "gelu", "silu"}) {
    CommandResult r = RunClient({"infer", "--target", server.target(), "--model", "st-mlp",
                                 "--activation", activation, "--tokens", "5", "--check"});
    EXPECT_EQ(r.exit_code, 0) << activation << ":\n" << r.output;
  }
  for (const char* activation : {"swiglu", "geglu"}) {
    CommandResult r = RunClient({"infer", "--target", server.target(), "--model", "st-llama",
                                 "--activation", activation, "--tokens", "4", "--check"});
    EXPECT_EQ(r.exit_code, 0) << activation << ":\n" << r.output;
  }
  // The int8 layer of the same weights: checked at the int8 bound.
  for (const char* compute : {"f32", "bf16"}) {
    CommandResult r = RunClient({"infer", "--target", server.target(), "--model", "st-llama-int8",
                                 "--compute-dtype", compute, "--tokens", "9", "--check"});
    EXPECT_EQ(r.exit_code, 0) << compute << ":\n" << r.output;
    EXPECT_TRUE(Contains(r.output, "int8 tolerance")) << r.output;
  }
  CommandResult models = RunClient({"models", "--target", server.target(), "--json"});
  EXPECT_TRUE(Contains(models.output, "\"quantization\": \"int8\"")) << models.output;
  EXPECT_EQ(server.Stop(SIGINT), 0) << server.Log();
}

TEST(ServerProcessTest, BadConfigIsAClearStartupError) {
  TempDir dir;
  std::ofstream(dir.File("bad.yaml")) << R"(
models:
  - name: broken
    d_model: 16
    d_ff: 32
    activation: gelu
    weights: {safetensors: missing.safetensors, tensors: {w1: a, w2: b}}
)";
  ServerProcess server({"--config", dir.File("bad.yaml")});
  EXPECT_FALSE(server.WaitReady(30));
  EXPECT_NE(server.WaitExit(), 0);
  EXPECT_TRUE(Contains(server.Log(), "missing.safetensors")) << server.Log();
  EXPECT_TRUE(Contains(server.Log(), "cannot open")) << server.Log();
}

TEST(ServerProcessTest, TokenLimitFlagsAreBounded) {
  // Unbounded, a --max-tokens near 2^53 let tokens × d_model overflow the
  // byte-count check and one empty request crash the server (SIGFPE).
  ServerProcess server({"--max-tokens", "9007199254740992"});
  EXPECT_FALSE(server.WaitReady(30));
  EXPECT_NE(server.WaitExit(), 0);
  EXPECT_TRUE(Contains(server.Log(), "--max-tokens")) << server.Log();
  EXPECT_TRUE(Contains(server.Log(), "16777216")) << server.Log();
}

TEST(StreamMemoryTest, ANeverReadingStreamCannotGrowTheServerPastTheBudget) {
#ifdef FFN_UNDER_ASAN
  // ASan's quarantine keeps freed memory resident: RSS says nothing here.
  GTEST_SKIP() << "RSS is not meaningful under AddressSanitizer";
#endif
  // One stream of 8 MiB requests whose client never reads: each request used
  // to hold its input and answer until written, 256 at a time (GBs).
  constexpr int64_t kBudget = 64 << 20, kDModel = 1024, kTokens = 2048, kRequests = 96;
  TempDir dir;
  std::ofstream(dir.File("wide.yaml")) << absl::StrCat(
      "models:\n  - {name: wide, d_model: ", kDModel, ", d_ff: 64, activation: relu, max_tokens: ",
      kTokens, ", weights: {random: {seed: 4}}}\n");
  ServerProcess server({"--config", dir.File("wide.yaml"), "--threads", "2", "--max-inflight-bytes",
                        std::to_string(kBudget)});
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);  // the answers are 8 MiB
  auto stub = v1::FfnService::NewStub(grpc::CreateCustomChannel(
      server.target(), grpc::InsecureChannelCredentials(), arguments));
  v1::InferRequest request;
  request.set_model("wide");
  request.mutable_input()->set_dtype(v1::FLOAT32);
  request.mutable_input()->add_shape(kTokens);
  request.mutable_input()->add_shape(kDModel);
  request.mutable_input()->mutable_data()->assign(kTokens * kDModel * sizeof(float), '\0');
  {  // one request first, so allocator and gRPC have warmed up
    grpc::ClientContext context;
    v1::InferResponse response;
    ASSERT_TRUE(stub->Infer(&context, request, &response).ok());
  }
  const int64_t rss_before = testing::ProcessMemoryBytes(server.pid(), "VmRSS");
  grpc::ClientContext context;
  auto stream = stub->InferStream(&context);
  int written = 0;
  for (; written < kRequests && stream->Write(request); ++written) {
  }
  // Let the server read and answer (or refuse) everything it was sent.
  int64_t rss_after = 0;
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    rss_after = std::max(rss_after, testing::ProcessMemoryBytes(server.pid(), "VmRSS"));
  }
  EXPECT_EQ(written, kRequests);
  std::printf("server RSS %lld MiB before the stream, at most %lld MiB during it\n",
              static_cast<long long>(rss_before >> 20), static_cast<long long>(rss_after >> 20));
  // Outside the budget: the message being read and parsed (2 × 8 MiB) and
  // gRPC's transport buffers. Without the budget the growth was 1.2 GB.
  EXPECT_LT(rss_after - rss_before, kBudget + (128 << 20))
      << "RSS " << rss_before / (1 << 20) << " MiB -> " << rss_after / (1 << 20) << " MiB";
  // It says what it refused, in band.
  v1::InferResponse answer;
  int refused = 0;
  for (int i = 0; i < written && stream->Read(&answer); ++i) {
    if (answer.error_code() == static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED)) {
      EXPECT_TRUE(Contains(answer.error_message(), "max_inflight_bytes")) << answer.error_message();
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  // Once the answers are read the budget is free again: others are served.
  // (While the stream held it, everyone was refused; that is the bound.)
  {
    grpc::ClientContext small_context;
    v1::InferRequest small = request;
    small.mutable_input()->set_shape(0, 1);
    small.mutable_input()->mutable_data()->resize(kDModel * sizeof(float));
    v1::InferResponse response;
    EXPECT_TRUE(stub->Infer(&small_context, small, &response).ok());
  }
  context.TryCancel();
  stream->Finish().IgnoreError();
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.Log();
}

TEST(ServerProcessTest, ClientReportsAnUnreachableServer) {
  // A port nothing listens on: the client must fail, not hang.
  CommandResult r = RunClient({"models", "--target", "127.0.0.1:1", "--timeout", "3"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.output, "UNAVAILABLE") || Contains(r.output, "DEADLINE_EXCEEDED")) << r.output;
}

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

// SIGTERM while clients keep sending: every call the server accepted is
// answered OK (its own count, logged after the drain, says 0 failed); calls
// that arrive after the drain began are refused by gRPC (UNAVAILABLE, or
// CANCELLED for calls gRPC had received but not yet handed to the service),
// and the server exits 0.
TEST(DrainTest, SigtermUnderLoadFailsNoAcceptedRequest) {
  ServerProcess server({"--threads", "2", "--drain-timeout", "20"});
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  auto channel = grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials());
  auto stub = v1::FfnService::NewStub(channel);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, unavailable{0}, other{0};
  std::mutex mu;
  std::string other_messages;
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      v1::InferRequest request;
      request.set_model(c % 2 ? "glu-768" : "ffn-768");
      request.mutable_input()->set_dtype(v1::FLOAT32);
      request.mutable_input()->add_shape(4);
      request.mutable_input()->add_shape(768);
      std::vector<float> x(4 * 768, 0.25f);
      request.mutable_input()->set_data(x.data(), x.size() * sizeof(float));
      while (!stop) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        v1::InferResponse response;
        const grpc::Status status = stub->Infer(&context, request, &response);
        if (status.ok()) {
          ++ok;
        } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                   status.error_code() == grpc::StatusCode::CANCELLED) {
          ++unavailable;
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        } else {
          ++other;
          std::lock_guard<std::mutex> lock(mu);
          other_messages += status.error_message() + "\n";
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const int ok_before = ok.load();
  EXPECT_EQ(server.Stop(SIGTERM, 60), 0) << server.Log();
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_GT(ok_before, 0);
  EXPECT_EQ(other.load(), 0) << other_messages;
  const std::string log = server.Log();
  EXPECT_NE(log.find(" 0 failed, 0 rejected"), std::string::npos) << log;
  EXPECT_GT(unavailable.load(), 0) << "clients kept sending after the server stopped";
}

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

// Scale-out without containers: three ffn-server processes, one ffn-client
// load over all three; one replica is killed mid-run. Every replica got a
// share, the dead one's calls fail with UNAVAILABLE, and the other two carry
// on without errors.
TEST(ScaleOutTest, ThreeReplicasOneKilledMidRun) {
  std::vector<std::unique_ptr<ServerProcess>> replicas;
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(std::make_unique<ServerProcess>(std::vector<std::string>{"--threads", "1"}));
    ASSERT_TRUE(replicas.back()->WaitReady()) << replicas.back()->Log();
  }
  TempDir dir;
  std::vector<std::string> args = {"load", "--concurrency", "6", "--duration", "4", "--warmup",
                                   "0.2", "--variants", "ffn-768:relu", "--timeout", "5",
                                   "--json", dir.File("load.json")};
  for (const auto& r : replicas) {
    args.push_back("--target");
    args.push_back(r->target());
  }
  CommandResult result;
  std::thread client([&] { result = RunClient(args); });
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  replicas[1]->Stop(SIGKILL, 10);
  client.join();
  // Some calls failed (the killed replica's), so load exits 1 by its rule.
  EXPECT_EQ(result.exit_code, 1) << result.output;
  const auto report = nlohmann::json::parse(testing::ReadFile(dir.File("load.json")), nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << result.output;
  ASSERT_EQ(report["targets"].size(), 3u) << report.dump();
  for (int i = 0; i < 3; ++i) {
    const auto& row = report["targets"][i];
    EXPECT_GT(row["requests"].get<double>(), 0) << "replica " << i << " got no share: " << row.dump();
    if (i == 1) {
      EXPECT_GT(row["errors"].get<double>(), 0) << row.dump();
      EXPECT_TRUE(row["errors_by_code"].contains("UNAVAILABLE")) << row.dump();
    } else {
      EXPECT_EQ(row["errors"].get<double>(), 0) << row.dump();
    }
  }
  for (int i : {0, 2}) EXPECT_EQ(replicas[i]->Stop(SIGTERM), 0) << replicas[i]->Log();
}

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

// ffn-server with mutual TLS and a bearer token, reached by ffn-client with
// the matching flags (models, infer --check, load), and refused without them.
// Certificates are made by the openssl command line.
TEST(SecureServerTest, ClientTlsAndTokenFlags) {
  TempDir dir;
  const std::string script =
      "cd " + dir.path() + " && set -e && "
      "for ca in ca other; do openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=$ca "
      "-keyout $ca.key -out $ca.pem 2>/dev/null; done && "
      "printf 'subjectAltName=DNS:ffn.test\\n' > san.ext && "
      "openssl req -newkey rsa:2048 -nodes -subj /CN=server -keyout server.key -out server.csr "
      "2>/dev/null && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
      "-days 2 -extfile san.ext -out server.pem 2>/dev/null && "
      "openssl req -newkey rsa:2048 -nodes -subj /CN=client -keyout client.key -out client.csr "
      "2>/dev/null && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
      "-days 2 -out client.pem 2>/dev/null && printf ' s3cret-token\\n' > token";
  ASSERT_EQ(std::system(script.c_str()), 0);
  std::ofstream(dir.File("tiny.yaml")) << R"(
models:
  - {name: tiny, d_model: 16, d_ff: 40, activation: gelu, strategy: fused, weights: {random: {seed: 3}}}
)";
  ServerProcess server({"--config", dir.File("tiny.yaml"), "--tls-cert", dir.File("server.pem"),
                        "--tls-key", dir.File("server.key"), "--tls-client-ca", dir.File("ca.pem"),
                        "--auth-token-file", dir.File("token")});
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  // The certificate names ffn.test, not the address: --tls-server-name.
  const std::vector<std::string> secure = {
      "--target", server.target(), "--timeout", "10", "--tls-ca", dir.File("ca.pem"),
      "--tls-cert", dir.File("client.pem"), "--tls-key", dir.File("client.key"),
      "--tls-server-name", "ffn.test", "--auth-token-file", dir.File("token")};
  auto with = [&](std::vector<std::string> args, const std::vector<std::string>& drop = {}) {
    for (size_t i = 0; i < secure.size(); i += 2) {
      if (std::find(drop.begin(), drop.end(), secure[i]) == drop.end()) {
        args.push_back(secure[i]);
        args.push_back(secure[i + 1]);
      }
    }
    return RunClient(args);
  };
  CommandResult models = with({"models"});
  EXPECT_EQ(models.exit_code, 0) << models.output;
  EXPECT_TRUE(Contains(models.output, "tiny")) << models.output;
  EXPECT_TRUE(Contains(models.output, "fused")) << models.output;
  CommandResult infer = with({"infer", "--model", "tiny", "--tokens", "3", "--check"});
  EXPECT_EQ(infer.exit_code, 0) << infer.output;
  CommandResult load = with({"load", "--concurrency", "2", "--requests", "50", "--warmup", "0"});
  EXPECT_EQ(load.exit_code, 0) << load.output;
  // Without the token: UNAUTHENTICATED. Without the client certificate, or
  // trusting another CA, or in plaintext: no connection.
  CommandResult no_token = with({"models"}, {"--auth-token-file"});
  EXPECT_EQ(no_token.exit_code, 1) << no_token.output;
  EXPECT_TRUE(Contains(no_token.output, "UNAUTHENTICATED")) << no_token.output;
  CommandResult no_cert = with({"models", "--timeout", "3"}, {"--tls-cert", "--tls-key", "--timeout"});
  EXPECT_EQ(no_cert.exit_code, 1) << no_cert.output;
  CommandResult wrong_ca =
      with({"models", "--tls-ca", dir.File("other.pem"), "--timeout", "3"}, {"--tls-ca", "--timeout"});
  EXPECT_EQ(wrong_ca.exit_code, 1) << wrong_ca.output;
  CommandResult plain = RunClient({"models", "--target", server.target(), "--timeout", "3",
                                   "--auth-token-file", dir.File("token")});
  EXPECT_EQ(plain.exit_code, 1) << plain.output;
  // Unreadable files and half a key pair are usage errors.
  CommandResult missing = with({"models", "--tls-ca", dir.File("nope.pem")}, {"--tls-ca"});
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_TRUE(Contains(missing.output, "nope.pem")) << missing.output;
  CommandResult half = with({"models"}, {"--tls-key"});
  EXPECT_EQ(half.exit_code, 2) << half.output;
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.Log();
}

}  // namespace
}  // namespace ffn
