// The load test's report: one row of figures per variant, TOTAL and per
// target, as a text table, JSON and CSV (csv.h). Every rendering comes from
// LoadRows()/TargetRows() and RowFigures(), so they always show the same
// numbers.
//
// Example:
//   ffn::client::LoadResult result;  // from RunLoad
//   std::cout << ffn::client::LoadTable(result) << ffn::client::LoadErrors(result);
//   std::ofstream("load.json") << ffn::client::LoadJson(result).dump(2);
#ifndef FFN_CLIENT_REPORT_H_
#define FFN_CLIENT_REPORT_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ffn/client/load.h"
#include "nlohmann/json.hpp"

namespace ffn::client {

// Figures of a set of calls over result.measured_seconds. Latencies are of
// OK calls, in microseconds (see load.h for where they start); rates count
// OK calls; GFLOP/s counts 2 flops per multiply-add of the OK calls' tokens;
// server means are over OK calls, as the responses report them.
struct LoadRow {
  std::string variant;  // "model/activation", "TOTAL" or the target
  uint64_t requests = 0;
  uint64_t errors = 0;
  std::map<std::string, uint64_t> errors_by_code;
  uint64_t tokens = 0;
  double requests_per_second = 0;
  double tokens_per_second = 0;
  double gflops = 0;
  double min_us = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double p999_us = 0;   // 99.9 %
  double p9999_us = 0;  // 99.99 %
  double max_us = 0;
  double send_to_answer_p50_us = 0;  // from the actual send (= latency in a closed loop)
  double send_to_answer_p99_us = 0;
  double mean_server_queue_us = 0;
  double mean_server_compute_us = 0;
  double mean_server_total_us = 0;
  double mean_server_batch_tokens = 0;  // tokens per batch the calls ran in
};

// One row per variant in the result's order, then TOTAL.
std::vector<LoadRow> LoadRows(const LoadResult& result);
// One row per target, in the order of the options' targets.
std::vector<LoadRow> TargetRows(const LoadResult& result);

// The row's figures by name, in a fixed order: requests, errors, tokens,
// requests_per_second, tokens_per_second, gflops, min_us, mean_us, p50_us,
// p90_us, p99_us, p999_us, p9999_us, max_us, send_to_answer_p50_us,
// send_to_answer_p99_us, mean_server_queue_us, mean_server_compute_us,
// mean_server_total_us, mean_server_batch_tokens. (Not the name or
// errors_by_code.)
std::vector<std::pair<std::string, nlohmann::json>> RowFigures(const LoadRow& row);

// Sentences a reader must not miss: a target that failed or stopped
// answering mid-run (with several targets), an open loop that fell behind
// its schedule or was held back by max_outstanding. Empty if none applies.
std::vector<std::string> LoadNotes(const LoadResult& result);

// The table of LoadRows (one decimal for microseconds and rates), a line of
// totals, the open loop's schedule keeping, the targets' table when there
// are several, the notes and the config.
std::string LoadTable(const LoadResult& result);
// For each variant and error code: the count and the first message. Empty if
// no call failed.
std::string LoadErrors(const LoadResult& result);

// {"config": {target (the first), targets, lb_policy, mode ("closed" or
//   "open"), concurrency, rate, arrival, max_outstanding, connections,
//   duration_seconds, requests, warmup_seconds, measured_seconds, tokens
//   (mean per request), tokens_spec, seed, timeout_seconds, variants},
//  "variants": [row + model, activation], "total": row,
//  "targets": [row + target, ok_by_peer {peer: OK calls}, last_ok_seconds,
//              first_error_seconds, last_error_seconds (-1: none)],
//  "open_loop": null (closed loop) or {offered_rate, arrival, scheduled,
//    late_sends, late_threshold_us, waited_for_outstanding,
//    send_lag_mean_us, send_lag_p50_us, send_lag_p99_us, send_lag_max_us},
//  "notes": [LoadNotes]}
// A row is {"variant": name, RowFigures..., "errors_by_code": {code: count}}.
nlohmann::json LoadJson(const LoadResult& result);

}  // namespace ffn::client

#endif  // FFN_CLIENT_REPORT_H_
