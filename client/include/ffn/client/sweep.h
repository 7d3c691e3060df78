// Sweeps: a load test repeated over a range of concurrencies (closed loop)
// or rates (open loop). Each step runs in consecutive windows until three in
// a row agree within a tolerance (as perf_analyzer's stability check does),
// or a cap; its figures are those three windows merged.
//
// Example:
//   ffn::client::SweepOptions options;
//   options.load.targets = {"127.0.0.1:50051"};
//   options.over = ffn::client::SweepOver::kConcurrency;
//   options.range = "1:64:x2";
//   ASSIGN_OR_RETURN(std::vector<ffn::client::SweepStep> steps,
//                    ffn::client::RunSweep(options, nullptr));
//   std::ofstream("sweep.csv") << ffn::client::SweepCsv(steps);
//   RETURN_IF_ERROR(ffn::client::PlotSweep(steps, "sweep.svg", "my sweep"));  // plot.h
#ifndef FFN_CLIENT_SWEEP_H_
#define FFN_CLIENT_SWEEP_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ffn/client/load.h"
#include "nlohmann/json.hpp"

namespace ffn::client {

enum class SweepOver { kConcurrency, kRate };

// The values of a range "START:END:STEP". STEP "xF" multiplies by F > 1;
// "+N" or "N" adds N > 0; without STEP ("START:END") it adds 1. Values run
// from START while <= END (END itself only if a step lands on it); a single
// number is one value. "1:64:x2" -> 1 2 4 8 16 32 64; "100:500:+200" -> 100
// 300 500. INVALID_ARGUMENT for anything else, START > END, a value <= 0, or
// more than 1000 values.
absl::StatusOr<std::vector<double>> ParseSweepRange(const std::string& spec);

struct SweepOptions {
  LoadOptions load;  // concurrency or rate is set per step
  SweepOver over = SweepOver::kConcurrency;
  std::string range;
  double window_seconds = 2;
  int max_windows = 10;           // per step, >= 3
  double stability_percent = 10;  // > 0
  double stop_p99_ms = 0;         // > 0: no further step once a step's p99 exceeds it
};

struct SweepStep {
  double value = 0;   // the step's concurrency or rate
  LoadResult result;  // its last three windows merged
  int windows = 0;    // windows run
  bool stable = false;
};

// True if there are at least three windows and, over the last three, both
// the throughput (OK calls per second) and the mean latency of each lie
// within `percent` % of the three's mean.
bool WindowsStable(const std::vector<LoadResult>& windows, double percent);

// Runs every step in order, each as a fresh WindowedLoad (its own warmup).
// `progress` (may be null) gets a line per window and per step. Errors as
// RunLoad's from the first step, or INVALID_ARGUMENT for the range and the
// sweep's own options (a concurrency must be a whole number); a later step
// that cannot start ends the sweep with the steps so far (and a progress
// line saying why).
absl::StatusOr<std::vector<SweepStep>> RunSweep(
    const SweepOptions& options, const std::function<void(const std::string&)>& progress);

// Columns sweep ("concurrency" or "rate"), concurrency, rate, stable,
// windows, measured_seconds, then LoadCsvColumns(); per step one line per
// variant, TOTAL and target.
std::string SweepCsv(const std::vector<SweepStep>& steps);
// {"sweep": {over, range, window_seconds, max_windows, stability_percent},
//  "steps": [{value, stable, windows, "report": LoadJson}]}
nlohmann::json SweepJson(const SweepOptions& options, const std::vector<SweepStep>& steps);

}  // namespace ffn::client

#endif  // FFN_CLIENT_SWEEP_H_
