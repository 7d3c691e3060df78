// The load generator against real in-process servers: open loop against a
// deliberately slow server, exact request counts, several targets (one of
// which dies), load-balancing policies, and reports of a real run.
#include "ffn/client/load.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "ffn/client/csv.h"
#include "ffn/client/report.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.grpc.pb.h"
#include "test_server.h"

namespace ffn::client {
namespace {

// One model whose every engine call sleeps 20 ms, one request per batch:
// the server answers at most 50 requests/s.
constexpr char kSlowConfig[] = R"(
server: {address: "127.0.0.1:0", threads: 1}
models:
  - name: slow
    d_model: 8
    d_ff: 16
    activation: relu
    debug_delay_us: 20000
    batching: {max_batch_tokens: 1}
    weights: {random: {seed: 1}}
)";
constexpr double kSlowServiceMs = 20;

class SlowServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = StartServer(kSlowConfig);
    ASSERT_NE(server_, nullptr);
    options_.targets = {TargetOf(*server_)};
    options_.warmup_seconds = 0;
    options_.duration_seconds = 1;
  }

  std::unique_ptr<FfnServer> server_;
  LoadOptions options_;
};

// Open loop at 100 req/s against a server that serves 50/s, with at most one
// call in flight: the client can only send when the previous answer comes
// back, so call i goes out ~20·i ms but was due at 10·i ms. Measured from
// the intended send time the last calls waited ~1 s; measured from the
// actual send (perf_analyzer's way) every call looks like ~20 ms. The p99
// must show the stall, so this test fails if latency were taken from the
// actual send.
TEST_F(SlowServerTest, OpenLoopLatencyCountsFromTheIntendedSendTime) {
  options_.rate = 100;
  options_.max_outstanding = 1;
  auto result = RunLoad(options_);
  ASSERT_TRUE(result.ok()) << result.status();
  const VariantLoad total = result->Total();
  EXPECT_EQ(total.errors, 0u);
  EXPECT_EQ(total.requests, 100u);
  EXPECT_EQ(result->open_loop.scheduled, 100u);
  const double p99_ms = total.latency.PercentileMicros(99) / 1e3;
  EXPECT_GT(p99_ms, 500) << "the stall is hidden";
  // The same calls timed from their actual send: only the service time
  // (give or take a scheduling hiccup on a busy machine).
  EXPECT_LT(total.send_to_answer.PercentileMicros(50) / 1e3, 3 * kSlowServiceMs);
  EXPECT_LT(total.send_to_answer.PercentileMicros(99) / 1e3, p99_ms / 4);
  // The report says how far the client fell behind, and why.
  EXPECT_GT(result->open_loop.send_lag.MaxMicros() / 1e3, 500);
  EXPECT_GT(result->open_loop.late_sends, 90u);
  EXPECT_GT(result->open_loop.waited_for_outstanding, 90u);
  EXPECT_EQ(LoadNotes(*result).size(), 2u);
  // Served at the server's pace, not the offered rate.
  EXPECT_LT(LoadRows(*result).back().requests_per_second, 60);
}

// With room for every call, the open loop keeps its schedule while the
// server falls behind: the queue builds up on the server, and the latency
// from the intended send shows it.
TEST_F(SlowServerTest, OpenLoopKeepsSendingWhileTheServerStalls) {
  options_.rate = 100;
  auto result = RunLoad(options_);
  ASSERT_TRUE(result.ok()) << result.status();
  const VariantLoad total = result->Total();
  EXPECT_EQ(total.errors, 0u);
  EXPECT_EQ(total.requests, 100u);
  EXPECT_EQ(result->open_loop.waited_for_outstanding, 0u);
  EXPECT_LT(result->open_loop.send_lag.MaxMicros() / 1e3, 250) << "the sends stalled";
  EXPECT_GT(total.latency.PercentileMicros(99) / 1e3, 500);
  EXPECT_GT(total.server_queue_us_sum / static_cast<double>(total.requests) / 1e3, 200);
  // It waited for the calls scheduled in the window: ~2 s to serve 100.
  EXPECT_GT(result->measured_seconds, 1.6);
}

// A closed loop never has more than `concurrency` calls waiting, so the same
// slow server looks healthy: latency near the 20 ms service time (p99 is the
// worst of ~50 calls, so it gets room for a scheduling hiccup, and still
// stays far below the open loop's ~1 s).
TEST_F(SlowServerTest, ClosedLoopDoesNotSeeTheStall) {
  options_.concurrency = 1;
  auto result = RunLoad(options_);
  ASSERT_TRUE(result.ok()) << result.status();
  const VariantLoad total = result->Total();
  EXPECT_EQ(total.errors, 0u);
  EXPECT_GE(total.requests, 30u);
  EXPECT_LE(total.requests, 51u);
  EXPECT_GE(total.latency.PercentileMicros(50) / 1e3, kSlowServiceMs);
  EXPECT_LT(total.latency.PercentileMicros(90) / 1e3, 3 * kSlowServiceMs);
  EXPECT_LT(total.latency.PercentileMicros(99) / 1e3, 20 * kSlowServiceMs);
}

// Four requests pipelined on one InferStream against the 20 ms server: the
// server runs them one at a time in order, so each waits for those ahead
// (~80 ms from enqueue to answer) while throughput stays ~50/s, and the
// 10 ms per-call timeout of unary calls does not apply to stream requests:
// the unary closed loop fails every call, the stream none.
TEST_F(SlowServerTest, StreamPipelinesRequestsOnOneStream) {
  options_.concurrency = 4;
  options_.timeout_seconds = 0.01;
  auto unary = RunLoad(options_);
  ASSERT_TRUE(unary.ok()) << unary.status();
  EXPECT_EQ(unary->Total().requests, 0u);
  EXPECT_GT(unary->Total().errors_by_code.count("DEADLINE_EXCEEDED"), 0u);

  options_.stream = true;
  auto stream = RunLoad(options_);
  ASSERT_TRUE(stream.ok()) << stream.status();
  const VariantLoad total = stream->Total();
  EXPECT_EQ(total.errors, 0u);
  EXPECT_GE(total.requests, 30u);
  EXPECT_LE(total.requests, 55u);
  EXPECT_GE(total.latency.PercentileMicros(50) / 1e3, 3 * kSlowServiceMs);
  EXPECT_LT(total.latency.PercentileMicros(50) / 1e3, 10 * kSlowServiceMs);
  EXPECT_TRUE(LoadJson(*stream)["config"]["stream"].get<bool>());
  EXPECT_NE(LoadTable(*stream).find("over InferStream"), std::string::npos);
}

class TinyServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = StartServer(kTinyConfig).release(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    options_.targets = {TargetOf(*server_)};
    options_.warmup_seconds = 0.1;
    options_.duration_seconds = 0.5;
  }

  static FfnServer* server_;
  LoadOptions options_;
};
FfnServer* TinyServerTest::server_ = nullptr;

TEST_F(TinyServerTest, RequestsModeCountsExactly) {
  options_.requests = 500;
  options_.concurrency = 4;
  auto closed = RunLoad(options_);
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_EQ(closed->Total().requests + closed->Total().errors, 500u);
  EXPECT_GT(closed->measured_seconds, 0);

  options_.rate = 2000;
  options_.requests = 300;
  auto open = RunLoad(options_);
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_EQ(open->Total().requests + open->Total().errors, 300u);
  EXPECT_EQ(open->open_loop.scheduled, 300u);
  EXPECT_GE(open->measured_seconds, 300 / 2000.0);
}

// Over streams: several connections, an exact count, every variant mix.
TEST_F(TinyServerTest, StreamModeCountsExactlyOverSeveralStreams) {
  options_.stream = true;
  options_.connections = 3;
  options_.concurrency = 7;  // 3 + 2 + 2 in flight per stream
  options_.requests = 600;
  options_.variants = "tiny:relu,tiny-glu:swiglu";
  options_.tokens = "1-3";
  auto result = RunLoad(options_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->Total().errors, 0u);
  EXPECT_EQ(result->Total().requests, 600u);
  // Variants alternate by call number; which numbers fall in the measured
  // window after the warm-up depends on timing (up to the 7 in flight at
  // either end), so the split is even only to within that.
  ASSERT_EQ(result->variants.size(), 2u);
  EXPECT_NEAR(static_cast<double>(result->variants[0].requests), 300.0, 8.0);
  // A rate cannot drive a stream.
  options_.rate = 100;
  EXPECT_EQ(RunLoad(options_).status().code(), absl::StatusCode::kInvalidArgument);
}

// Weighted variants are dealt exactly by weight; token sizes follow the
// distribution; the JSON and CSV of the run hold the figures of its rows.
TEST_F(TinyServerTest, MixedRunReportsAgree) {
  options_.rate = 4000;
  options_.requests = 400;
  options_.warmup_seconds = 0;
  options_.variants = "tiny:relu=3,tiny-glu:swiglu";
  options_.tokens = "1-4";
  options_.arrival = Arrival::kPoisson;
  auto result = RunLoad(options_);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->variants.size(), 2u);
  EXPECT_EQ(result->variants[0].requests + result->variants[0].errors, 300u);
  EXPECT_EQ(result->variants[1].requests + result->variants[1].errors, 100u);
  const VariantLoad total = result->Total();
  EXPECT_GE(total.tokens, total.requests);
  EXPECT_LE(total.tokens, 4 * total.requests);
  EXPECT_NEAR(static_cast<double>(total.tokens) / static_cast<double>(total.requests), 2.5, 0.4);
  EXPECT_GT(total.flops, 0);

  const std::vector<LoadRow> rows = LoadRows(*result);
  const nlohmann::json json = nlohmann::json::parse(LoadJson(*result).dump());
  EXPECT_EQ(json["config"]["mode"].get<std::string>(), "open");
  EXPECT_EQ(json["config"]["arrival"].get<std::string>(), "poisson");
  EXPECT_EQ(json["open_loop"]["scheduled"].get<uint64_t>(), 400u);
  std::istringstream csv(LoadCsv(*result));
  std::string line;
  std::getline(csv, line);
  const std::vector<std::string> header = absl::StrSplit(line, ',');
  for (size_t r = 0; r < rows.size(); ++r) {
    const nlohmann::json& row = r + 1 == rows.size() ? json["total"] : json["variants"][r];
    ASSERT_TRUE(std::getline(csv, line));
    const std::vector<std::string> cells = absl::StrSplit(line, ',');
    EXPECT_EQ(cells[1], rows[r].variant);
    for (const auto& [name, value] : RowFigures(rows[r])) {
      EXPECT_DOUBLE_EQ(row[name].get<double>(), value.get<double>()) << name;
      const size_t column = std::find(header.begin(), header.end(), name) - header.begin();
      ASSERT_LT(column, cells.size()) << name;
      EXPECT_EQ(std::stod(cells[column]), value.get<double>()) << name;
    }
  }
  // The table names every variant.
  const std::string table = LoadTable(*result);
  EXPECT_NE(table.find("tiny/relu"), std::string::npos) << table;
  EXPECT_NE(table.find("tiny-glu/swiglu"), std::string::npos) << table;
}

// Three targets, calls round-robin; one dies mid-run. The run carries on
// with the other two, counts the dead one's failures, and says so.
// Runs `options` for 1.5 s (after 0.1 s of warm-up) against three tiny
// servers, the third shut down 0.7 s in; fills options.targets.
absl::StatusOr<LoadResult> RunKillingOneOfThree(LoadOptions& options) {
  std::vector<std::unique_ptr<FfnServer>> servers;
  options.targets.clear();
  for (int i = 0; i < 3; ++i) {
    servers.push_back(StartServer(kTinyConfig));
    if (servers.back() == nullptr) return absl::InternalError("a server did not start");
    options.targets.push_back(TargetOf(*servers.back()));
  }
  options.warmup_seconds = 0.1;
  options.duration_seconds = 1.5;
  options.variants = "tiny:relu";
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    servers[2]->Shutdown(std::chrono::milliseconds(0));
    servers[2].reset();
  });
  auto result = RunLoad(options);
  killer.join();
  return result;
}

TEST(MultiTargetTest, ADyingTargetIsCountedAndTheOthersCarryOn) {
  LoadOptions options;
  options.concurrency = 3;
  auto result = RunKillingOneOfThree(options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->targets.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    const TargetLoad& t = result->targets[static_cast<size_t>(i)];
    EXPECT_EQ(t.target, options.targets[static_cast<size_t>(i)]);
    EXPECT_GT(t.requests, 100u) << t.target;
    EXPECT_EQ(t.errors, 0u) << t.target;
    EXPECT_GT(t.last_ok_seconds, 1.4) << t.target;  // answered to the end
  }
  const TargetLoad& dead = result->targets[2];
  EXPECT_GT(dead.requests, 0u);
  EXPECT_GT(dead.errors, 0u);
  EXPECT_GT(dead.errors_by_code.count("UNAVAILABLE"), 0u);
  EXPECT_LT(dead.last_ok_seconds, dead.last_error_seconds);
  EXPECT_TRUE(result->Failed());

  const nlohmann::json json = LoadJson(*result);
  ASSERT_EQ(json["targets"].size(), 3u);
  EXPECT_EQ(json["targets"][2]["target"].get<std::string>(), options.targets[2]);
  EXPECT_GT(json["targets"][2]["errors_by_code"]["UNAVAILABLE"].get<uint64_t>(), 0u);
  EXPECT_EQ(json["targets"][0]["errors"].get<uint64_t>(), 0u);
  bool noted = false;
  for (const auto& note : json["notes"]) {
    noted |= note.get<std::string>().find(options.targets[2] + " stopped answering") !=
             std::string::npos;
  }
  EXPECT_TRUE(noted) << json["notes"].dump();
}

// Streams to three servers, one shut down mid-run: what its stream still
// owed fails (UNAVAILABLE or CANCELLED), the other two streams carry on.
TEST(MultiTargetTest, ADyingTargetEndsOnlyItsStream) {
  LoadOptions options;
  options.stream = true;
  options.concurrency = 6;
  auto result = RunKillingOneOfThree(options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->targets.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    const TargetLoad& t = result->targets[static_cast<size_t>(i)];
    EXPECT_GT(t.requests, 100u) << t.target;
    EXPECT_EQ(t.errors, 0u) << t.target;
  }
  const TargetLoad& dead = result->targets[2];
  EXPECT_GT(dead.requests, 0u);  // answered before the shutdown
  EXPECT_GT(dead.errors, 0u);
  EXPECT_TRUE(result->Failed());
}

// One target naming two replicas: round_robin spreads one channel's calls
// over both, pick_first sends them all to one.
TEST(LbPolicyTest, RoundRobinSpreadsAChannelOverReplicas) {
  auto a = StartServer(kTinyConfig), b = StartServer(kTinyConfig);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  LoadOptions options;
  options.targets = {"ipv4:" + TargetOf(*a) + "," + TargetOf(*b)};
  options.concurrency = 2;
  options.warmup_seconds = 0.1;
  options.duration_seconds = 0.5;
  options.variants = "tiny:relu";
  options.lb_policy = "round_robin";
  auto spread = RunLoad(options);
  ASSERT_TRUE(spread.ok()) << spread.status();
  ASSERT_EQ(spread->targets.size(), 1u);
  const auto& peers = spread->targets[0].ok_by_peer;
  ASSERT_EQ(peers.size(), 2u);
  for (const auto& [peer, count] : peers) EXPECT_GT(count, 10u) << peer;

  options.lb_policy = "pick_first";
  auto first = RunLoad(options);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->targets[0].ok_by_peer.size(), 1u);
}

// A KServe v2 server of one model, `echo` (FP32 [tokens, 4] in, the same
// out), whose ModelStreamInfer answers in a way of its own; it offers
// neither the configuration nor the statistics extension.
class EchoV2Service final : public inference::GRPCInferenceService::Service {
 public:
  enum class Answers {
    kNewestFirst,        // whatever has arrived, the newest first; ids echoed
    kInOrderWithoutIds,  // in order, with no id
    kOneUnknownId,       // in order, ids echoed but the 10th's: one never sent
  };
  explicit EchoV2Service(Answers answers) : answers_(answers) {}

  // Answers given ahead of an older request of their stream.
  int overtaking() const { return overtaking_.load(); }

  grpc::Status ModelMetadata(grpc::ServerContext*, const inference::ModelMetadataRequest* request,
                             inference::ModelMetadataResponse* response) override {
    if (request->name() != "echo") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no model");
    response->set_name("echo");
    for (const auto& [tensor, name] : {std::pair{response->add_inputs(), "x"},
                                       std::pair{response->add_outputs(), "y"}}) {
      tensor->set_name(name);
      tensor->set_datatype("FP32");
      tensor->add_shape(-1);
      tensor->add_shape(4);
    }
    return grpc::Status::OK;
  }

  grpc::Status ModelStreamInfer(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>*
          stream) override {
    // One thread reads; this one answers what has arrived, waiting a
    // moment for a second request so that there is an order to change.
    struct Arrivals {
      absl::Mutex mu;
      std::deque<inference::ModelInferRequest> requests ABSL_GUARDED_BY(mu);
      bool reads_done ABSL_GUARDED_BY(mu) = false;
      bool Answerable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return requests.size() >= 2 || reads_done;
      }
    } arrivals;
    std::thread reader([&] {
      inference::ModelInferRequest request;
      while (stream->Read(&request)) {
        absl::MutexLock lock(&arrivals.mu);
        arrivals.requests.push_back(std::move(request));
      }
      absl::MutexLock lock(&arrivals.mu);
      arrivals.reads_done = true;
    });
    int answered = 0;
    bool writing = true;
    while (writing) {
      std::vector<inference::ModelInferRequest> batch;
      {
        absl::MutexLock lock(&arrivals.mu);
        arrivals.mu.AwaitWithTimeout(absl::Condition(&arrivals, &Arrivals::Answerable),
                                     absl::Milliseconds(5));
        if (arrivals.requests.empty() && arrivals.reads_done) break;
        for (auto& request : arrivals.requests) batch.push_back(std::move(request));
        arrivals.requests.clear();
      }
      if (answers_ == Answers::kNewestFirst && batch.size() > 1) {
        std::reverse(batch.begin(), batch.end());
        overtaking_ += static_cast<int>(batch.size()) - 1;
      }
      for (const inference::ModelInferRequest& request : batch) {
        inference::ModelStreamInferResponse answer;
        inference::ModelInferResponse* response = answer.mutable_infer_response();
        response->set_model_name(request.model_name());
        if (answers_ == Answers::kNewestFirst ||
            (answers_ == Answers::kOneUnknownId && answered != 9)) {
          response->set_id(request.id());
        } else if (answers_ == Answers::kOneUnknownId) {
          response->set_id("12345678");
        }
        auto* output = response->add_outputs();
        output->set_name("y");
        output->set_datatype("FP32");
        *output->mutable_shape() = request.inputs(0).shape();
        *response->add_raw_output_contents() = request.raw_input_contents(0);
        ++answered;
        if (!stream->Write(answer)) {
          writing = false;  // the client went; its Read fails too
          break;
        }
      }
    }
    reader.join();
    return grpc::Status::OK;
  }

 private:
  const Answers answers_;
  std::atomic<int> overtaking_{0};
};

class EchoV2ServerTest : public ::testing::Test {
 protected:
  // Starts a server answering `answers`; options_ then load it over two
  // streams of three requests each, tokens 1 to 4 (a swapped answer has
  // the wrong size more often than not).
  void Serve(EchoV2Service::Answers answers) {
    service_ = std::make_unique<EchoV2Service>(answers);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    options_.targets = {absl::StrCat("127.0.0.1:", port)};
    options_.protocol = Protocol::kV2;
    options_.stream = true;
    options_.variants = "echo";
    options_.tokens = "1-4";
    options_.connections = 2;
    options_.concurrency = 6;
    options_.warmup_seconds = 0;
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  std::unique_ptr<EchoV2Service> service_;
  std::unique_ptr<grpc::Server> server_;
  LoadOptions options_;
};

// Answers out of request order are filed under the request their id names.
TEST_F(EchoV2ServerTest, AnswersOutOfOrderAreMatchedById) {
  Serve(EchoV2Service::Answers::kNewestFirst);
  options_.requests = 400;
  auto result = RunLoad(options_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(service_->overtaking(), 0) << "the server never changed the order";
  EXPECT_EQ(result->Total().errors, 0u) << LoadErrors(*result);
  EXPECT_EQ(result->Total().requests, 400u);
  EXPECT_NE(LoadTable(*result).find("KServe v2, closed loop over ModelStreamInfer"),
            std::string::npos)
      << LoadTable(*result);
}

// Without ids, answers settle the oldest request owed, as on InferStream.
TEST_F(EchoV2ServerTest, AnswersWithoutIdsAreTakenInOrder) {
  Serve(EchoV2Service::Answers::kInOrderWithoutIds);
  options_.requests = 200;
  auto result = RunLoad(options_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->Total().errors, 0u) << LoadErrors(*result);
  EXPECT_EQ(result->Total().requests, 200u);
}

// An answer to a request nobody sent ends its stream: what the stream owed
// fails INTERNAL, saying why; the answers before it count.
TEST_F(EchoV2ServerTest, AnAnswerToNoRequestBreaksTheStream) {
  Serve(EchoV2Service::Answers::kOneUnknownId);
  options_.duration_seconds = 1;
  auto result = RunLoad(options_);
  ASSERT_TRUE(result.ok()) << result.status();
  const VariantLoad total = result->Total();
  // At most the 9 answers before the stray one, on each of the two streams.
  EXPECT_GT(total.requests, 0u);
  EXPECT_LE(total.requests, 18u);
  ASSERT_EQ(total.errors_by_code.count("INTERNAL"), 1u) << LoadErrors(*result);
  EXPECT_EQ(total.errors, total.errors_by_code.at("INTERNAL")) << LoadErrors(*result);
  EXPECT_GT(total.errors, 0u);
  EXPECT_NE(LoadErrors(*result).find("an answer to id '12345678', which was not in flight"),
            std::string::npos)
      << LoadErrors(*result);
}

}  // namespace
}  // namespace ffn::client
