// Load tests: a closed loop (a fixed number of calls in flight) or an open
// loop (calls sent at a rate, whatever the server does), over one or more
// targets, a weighted mix of variants and a distribution of request sizes.
//
// Example:
//   ffn::client::LoadOptions options;
//   options.targets = {"127.0.0.1:50051"};
//   options.rate = 500;  // open loop; 0: closed loop of `concurrency`
//   ASSIGN_OR_RETURN(ffn::client::LoadResult result, ffn::client::RunLoad(options));
//   std::cout << ffn::client::LoadTable(result);  // report.h
//
// Latency. Closed loop: from a call's send to its answer. Open loop: from the
// call's *intended* send time (its slot in the schedule) to its answer, as
// wrk2 measures: time a call waited because the client fell behind or hit
// max_outstanding counts, so a stall cannot hide (no coordinated omission).
// `send_to_answer` keeps the latency from the actual send, which is all
// perf_analyzer and ghz report.
//
// Which calls count. Closed loop: calls that finish inside the measured
// window [warmup, warmup + duration), or the first `requests` calls to finish
// after the warmup. Open loop: the calls *scheduled* in the window (or the
// `requests` calls scheduled after the warmup), each waited for until it
// answers or its deadline passes, so slow answers are never cut off.
//
// Calls never share state beyond a few atomic counters and sharded, locked
// statistics; they are sent asynchronously (completion queues drained by the
// run's own threads), so a slow server never holds back the open loop's sends. Failed calls are counted per gRPC code,
// per variant and per target, and never stop the run: when one target dies,
// the others carry on.
#ifndef FFN_CLIENT_LOAD_H_
#define FFN_CLIENT_LOAD_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ffn/client/arrivals.h"
#include "ffn/client/client.h"
#include "ffn/client/kserve.h"
#include "ffn/client/variants.h"
#include "ffn/common/latency_histogram.h"

namespace ffn::client {

struct LoadOptions {
  // gRPC targets; calls go round-robin over them, one after the other. A
  // target may name several addresses ("ipv4:127.0.0.1:5001,127.0.0.1:5002"),
  // which one channel spreads over according to lb_policy.
  std::vector<std::string> targets = {"127.0.0.1:50051"};
  std::string lb_policy;  // "", "pick_first" or "round_robin"; "": gRPC's default
  int connections = 1;    // channels (TCP connections) per target
  // Closed loop (rate == 0): `concurrency` calls in flight.
  int concurrency = 4;
  // Closed loop over a bidirectional stream instead of unary calls
  // (StreamRpc(): ffn.v1's InferStream, or v2's ModelStreamInfer): one
  // stream per channel, the `concurrency` requests in flight shared out
  // among them (latency from putting a request on its stream to its answer).
  bool stream = false;
  // Open loop (rate > 0): requests per second, sent on this schedule.
  double rate = 0;
  Arrival arrival = Arrival::kConstant;
  int max_outstanding = 10000;   // open loop: calls in flight at most
  double duration_seconds = 5;   // measured window, unless `requests` > 0
  uint64_t requests = 0;         // > 0: measure this many calls instead
  double warmup_seconds = 0.5;   // load before measuring, not counted
  std::string variants = "all";  // see SelectWeightedVariants
  std::string compute_dtype;     // "f32" or "bf16" for every call; empty: each model's default
  std::string tokens = "1";      // per request; see TokenDistribution::Parse
  uint64_t seed = 0;             // inputs, token sizes and Poisson arrivals
  double timeout_seconds = 30;   // per call
  // Deadline of the calls that set a run up and read the server's figures
  // (ListModels, ModelMetadata, ModelStatistics): at least this, whatever a
  // short per-call timeout asks of the measured calls.
  static constexpr double kSetupTimeoutSeconds = 30;
  double SetupTimeout() const { return std::max(timeout_seconds, kSetupTimeoutSeconds); }
  ChannelSecurity security;      // TLS and bearer token, the same for every target
  // kV2: ModelInfer (with `stream`, ModelStreamInfer) of the Open Inference
  // Protocol; `variants` then names v2 models (NAME[=WEIGHT],...), described
  // by their ModelMetadata.
  Protocol protocol = Protocol::kFfnV1;

  bool OpenLoop() const { return rate > 0; }
  // The RPC a `stream` run drives in this protocol.
  const char* StreamRpc() const {
    return protocol == Protocol::kV2 ? "ModelStreamInfer" : "InferStream";
  }
};

// What the server reports about one OK call (InferResponse).
struct ServerFigures {
  int64_t queue_us = 0;
  int64_t compute_us = 0;
  int64_t total_us = 0;
  int64_t batch_tokens = 0;  // tokens of the batch the call ran in
};

// Counts and latencies of a set of calls (a variant's, a target's, all).
struct CallStats {
  uint64_t requests = 0;                                   // answered OK
  uint64_t errors = 0;                                     // failed calls
  std::map<std::string, uint64_t> errors_by_code;          // "UNAVAILABLE" -> count
  std::map<std::string, std::string> first_error_by_code;  // code -> first message
  uint64_t tokens = 0;                                     // of OK calls
  double flops = 0;                                        // of OK calls: 2 per multiply-add
  LatencyHistogram latency;                                // OK calls: see the file comment
  LatencyHistogram send_to_answer;                         // OK calls, from the actual send
  double server_queue_us_sum = 0;  // over OK calls, as the server reports them
  double server_compute_us_sum = 0;
  double server_total_us_sum = 0;
  double server_batch_tokens_sum = 0;

  void RecordOk(int64_t latency_ns, int64_t send_to_answer_ns, int64_t call_tokens,
                double call_flops, const ServerFigures& server);
  void RecordError(const std::string& code, const std::string& message);
  // Adds `other`'s counts; keeps this one's first messages.
  void Merge(const CallStats& other);
};

// What one variant got.
struct VariantLoad : CallStats {
  VariantSpec variant;
  void Merge(const VariantLoad& other) { CallStats::Merge(other); }
};

// What one target got. Times are seconds since the run started (warmup
// included); -1 if there was no such call.
struct TargetLoad : CallStats {
  std::string target;
  std::map<std::string, uint64_t> ok_by_peer;  // "ipv4:127.0.0.1:5001" -> OK calls
  double last_ok_seconds = -1;
  double first_error_seconds = -1;
  double last_error_seconds = -1;

  void Merge(const TargetLoad& other);
};

// Open loop only: how well the client kept to its schedule.
struct OpenLoopStats {
  uint64_t scheduled = 0;               // measured calls the schedule held
  uint64_t late_sends = 0;              // sent kLateSendMicros or more after their time
  uint64_t waited_for_outstanding = 0;  // held back by max_outstanding
  LatencyHistogram send_lag;            // actual send - intended send

  void Merge(const OpenLoopStats& other);
};
inline constexpr int64_t kLateSendMicros = 1000;

struct LoadResult {
  LoadOptions options;
  // The time the figures cover. Closed loop: the window (or, for `requests`,
  // from its start to the last counted answer). Open loop: from the window's
  // start to its last answer, at least the window: rates are what was served.
  double measured_seconds = 0;
  std::vector<VariantLoad> variants;  // in the order of the variant list
  std::vector<TargetLoad> targets;    // in the order of options.targets
  OpenLoopStats open_loop;
  // --protocol v2 (`load` only): what the first target's ModelStatistics
  // counted over the measured window, per variant, where the server offers
  // the extension (calls in flight at the window's edges may fall either
  // side).
  struct ServerStatistics {
    std::string model;
    uint64_t requests = 0;  // answered OK
    uint64_t failed = 0;
    double mean_queue_us = 0;
    double mean_compute_us = 0;
    double mean_total_us = 0;
  };
  std::vector<ServerStatistics> server_statistics;

  // Every variant merged; named "TOTAL".
  VariantLoad Total() const;
  // True if any call failed or none succeeded: ffn-client load exits 1.
  bool Failed() const;
  // Adds a later window of the same run (same variants and targets).
  void Merge(const LoadResult& other);
};

// Checks ranges: targets non-empty, connections and concurrency >= 1, rate
// >= 0 (and finite), max_outstanding >= 1, duration > 0 unless `requests`,
// warmup >= 0, timeout > 0, lb_policy known, tokens parseable.
// INVALID_ARGUMENT naming the option otherwise.
absl::Status ValidateLoadOptions(const LoadOptions& options);

// Lists the models (from the first target that answers), selects the
// variants, runs the load and returns the measured figures.
// INVALID_ARGUMENT for bad options, a bad variant list or tokens above a
// chosen model's max_tokens; UNAVAILABLE (with each target's error) if no
// target answers ListModels. Failed Infer calls are counted in the result,
// not returned.
absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options);

// A load that runs until stopped and reports consecutive measured windows
// of a fixed length, for sweeps. `options.duration_seconds` and `requests`
// do not apply; the warmup does.
//
// Example:
//   ffn::client::LoadOptions options;
//   options.targets = {"127.0.0.1:50051"};
//   ASSIGN_OR_RETURN(auto load, ffn::client::WindowedLoad::Start(options, /*window_seconds=*/2));
//   ffn::client::LoadResult first = load->NextWindow();
//   ffn::client::LoadResult second = load->NextWindow();
//   load->Stop();
class WindowedLoad {
 public:
  // Errors as RunLoad, before any load is sent.
  static absl::StatusOr<std::unique_ptr<WindowedLoad>> Start(const LoadOptions& options,
                                                             double window_seconds);
  ~WindowedLoad();  // Stop()s

  // Blocks until the next window is complete (open loop: every call
  // scheduled in it has finished) and returns its figures.
  LoadResult NextWindow();
  // Sends no more calls and waits for those in flight. Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit WindowedLoad(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  int next_window_ = 0;
};

}  // namespace ffn::client

#endif  // FFN_CLIENT_LOAD_H_
