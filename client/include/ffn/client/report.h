// The load test's report: one row of figures per variant plus TOTAL, as a
// text table and as JSON. Both renderings come from LoadRows(), so they always
// show the same numbers.
//
//   std::cout << LoadTable(result) << LoadErrors(result);
//   std::ofstream(path) << LoadJson(result).dump(2);
#ifndef FFN_CLIENT_REPORT_H_
#define FFN_CLIENT_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ffn/client/load.h"
#include "nlohmann/json.hpp"

namespace ffn::client {

// Figures of one variant (or the total) over the measured window. Latencies
// are the client's round trip of OK calls, in microseconds; rates count OK
// calls; server means are over OK calls.
struct LoadRow {
  std::string variant;  // "model/activation" or "TOTAL"
  uint64_t requests = 0;
  uint64_t errors = 0;
  double requests_per_second = 0;
  double tokens_per_second = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double max_us = 0;
  double mean_server_queue_us = 0;
  double mean_server_compute_us = 0;
};

// One row per variant in the result's order, then TOTAL.
std::vector<LoadRow> LoadRows(const LoadResult& result);

// The table of LoadRows plus a line with the achieved totals and the config.
std::string LoadTable(const LoadResult& result);
// For each variant and error code: the count and the first message. Empty if
// no call failed.
std::string LoadErrors(const LoadResult& result);

// {"config": {target, concurrency, connections, duration_seconds,
//   warmup_seconds, measured_seconds, tokens, seed, variants},
//  "variants": [row, ...], "total": row}; a row has every LoadRow field by
//  name plus "errors_by_code" {code: count}.
nlohmann::json LoadJson(const LoadResult& result);

}  // namespace ffn::client

#endif  // FFN_CLIENT_REPORT_H_
