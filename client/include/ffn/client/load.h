// A closed-loop load generator: C workers, each sending one Infer after the
// other, spread round-robin over the chosen variants.
//
//   LoadOptions options{.target = "127.0.0.1:50051", .concurrency = 8, .duration_seconds = 10};
//   ASSIGN_OR_RETURN(LoadResult result, RunLoad(options));
//   std::cout << LoadTable(result);   // report.h
//
// Each worker has its own stub on one of `connections` channels (round-robin)
// and its own per-variant histograms, merged at the end: workers share only
// the atomic counter that picks the next variant. Every model's input is
// built once from the seed. Only calls that finish inside the measured window
// [warmup, warmup + duration) are counted; errors are counted per gRPC code
// and never stop the run.
#ifndef FFN_CLIENT_LOAD_H_
#define FFN_CLIENT_LOAD_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ffn/client/variants.h"
#include "ffn/common/latency_histogram.h"

namespace ffn::client {

struct LoadOptions {
  std::string target = "127.0.0.1:50051";
  int concurrency = 4;  // workers, each with one call in flight
  int connections = 1;  // channels (TCP connections) shared round-robin
  double duration_seconds = 5;
  double warmup_seconds = 0.5;
  std::string variants = "all";  // see SelectVariants
  int64_t tokens = 1;            // per request
  uint64_t seed = 0;             // of the inputs
  double timeout_seconds = 30;   // per call
};

// What one variant got in the measured window.
struct VariantLoad {
  VariantSpec variant;
  uint64_t requests = 0;                                   // answered OK
  uint64_t errors = 0;                                     // failed calls
  std::map<std::string, uint64_t> errors_by_code;          // "UNAVAILABLE" -> count
  std::map<std::string, std::string> first_error_by_code;  // code -> first message
  LatencyHistogram latency;                                // client round trip of OK calls
  double server_queue_us_sum = 0;                          // over OK calls
  double server_compute_us_sum = 0;                        // over OK calls

  // Adds `other`'s counts (same variant); keeps this one's first messages.
  void Merge(const VariantLoad& other);
};

struct LoadResult {
  LoadOptions options;
  double measured_seconds = 0;  // the window the counts cover
  std::vector<VariantLoad> variants;

  // Every variant merged; named "TOTAL".
  VariantLoad Total() const;
  // True if any call failed or none succeeded: ffn-client load exits 1.
  bool Failed() const;
};

// Lists the server's models, selects options.variants and runs the load.
// INVALID_ARGUMENT for options out of range (concurrency, connections,
// tokens >= 1, duration > 0, warmup >= 0, timeout > 0), a bad variant list
// or tokens above a chosen model's max_tokens; ListModels' status if it
// fails. Failed Infer calls are counted in the result, not returned.
absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options);

}  // namespace ffn::client

#endif  // FFN_CLIENT_LOAD_H_
