// Prometheus metrics over HTTP (text format, GET /metrics), by prometheus-cpp.
//
// Example:
//   ASSIGN_OR_RETURN(std::unique_ptr<ffn::Metrics> metrics,
//                    ffn::Metrics::Start("127.0.0.1:9464", "oneDNN v2.6", "avx2"));
//   metrics->OnBatch(ffn::VariantKey{"glu-768", "swiglu", ffn::DataType::kF32}, /*tokens=*/32);
//
// The series (dtype labels are FLOAT32 / BFLOAT16):
// - ffn_requests_total{model,activation,dtype,code}: counter
// - ffn_rejected_requests_total{code}: counter (no variant)
// - ffn_tokens_total{model,activation,dtype}: counter
// - ffn_request_duration_seconds{...,stage}: histogram, 50 µs .. 10 s,
//   stage = total | queue | compute
// - ffn_batches_total{model,activation,dtype}: counter
// - ffn_batch_tokens{model,activation,dtype}: histogram, 1 .. 8192
// - ffn_queue_requests / ffn_queue_tokens{...}: gauges
// - ffn_expert_tokens_total{model,expert}: counter (mixture-of-experts
//   models: tokens routed to each expert)
// - ffn_expert_compute_seconds_total{model,expert}: counter
// - ffn_build_info{version,onednn,kernels_isa}: gauge, always 1
//
// Thread-safe; every method is cheap enough for the request path.
#ifndef FFN_SERVER_METRICS_H_
#define FFN_SERVER_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ffn/server/variant_key.h"

namespace prometheus {
class Counter;
class Exposer;
template <typename T>
class Family;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace ffn {

class Metrics {
 public:
  // Serves the metrics on HOST:PORT (port 0 picks a free one). UNAVAILABLE
  // if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Metrics>> Start(const std::string& address,
                                                        const std::string& onednn_version,
                                                        const std::string& kernels_isa);
  ~Metrics();

  int port() const { return port_; }

  void OnSuccess(const VariantKey& variant, int64_t tokens, const RequestTimings& timings)
      ABSL_LOCKS_EXCLUDED(mu_);
  void OnError(const VariantKey& variant, absl::StatusCode code) ABSL_LOCKS_EXCLUDED(mu_);
  void OnRejected(absl::StatusCode code);
  void OnBatch(const VariantKey& variant, int64_t tokens) ABSL_LOCKS_EXCLUDED(mu_);
  // One engine call of a mixture-of-experts model: per expert, its tokens
  // and seconds.
  void OnExperts(const std::string& model, const std::vector<int64_t>& tokens,
                 const std::vector<double>& seconds) ABSL_LOCKS_EXCLUDED(mu_);
  void SetQueueDepth(const VariantKey& variant, int64_t requests, int64_t tokens)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A probe of `model`'s plan was timed again while serving (PlanWatcher).
  void OnPlanRetime(const std::string& model);

 private:
  struct VariantMetrics;
  Metrics() = default;
  VariantMetrics& For(const VariantKey& variant) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Family<prometheus::Counter>* rejected_ = nullptr;
  prometheus::Family<prometheus::Counter>* tokens_ = nullptr;
  prometheus::Family<prometheus::Histogram>* duration_ = nullptr;
  prometheus::Family<prometheus::Counter>* batches_ = nullptr;
  prometheus::Family<prometheus::Histogram>* batch_tokens_ = nullptr;
  prometheus::Family<prometheus::Gauge>* queue_requests_ = nullptr;
  prometheus::Family<prometheus::Gauge>* queue_tokens_ = nullptr;
  prometheus::Family<prometheus::Counter>* expert_tokens_ = nullptr;
  prometheus::Family<prometheus::Counter>* expert_seconds_ = nullptr;
  prometheus::Family<prometheus::Counter>* plan_retimes_ = nullptr;
  // (model, expert) -> its two counters.
  std::map<std::pair<std::string, int64_t>, std::pair<prometheus::Counter*, prometheus::Counter*>>
      experts_ ABSL_GUARDED_BY(mu_);
  absl::Mutex mu_;
  std::map<VariantKey, std::unique_ptr<VariantMetrics>> variants_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ffn

#endif  // FFN_SERVER_METRICS_H_
