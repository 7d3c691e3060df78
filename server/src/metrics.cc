#include "ffn/server/metrics.h"

#include <exception>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ffn/server/proto_dtype.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace ffn {
namespace {

using prometheus::Labels;

constexpr int kMetricsThreads = 8;
constexpr int kMetricsRequestTimeoutMs = 3000;

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
      50e-3, 100e-3, 250e-3, 500e-3, 1.0,  2.5,    5.0,  10.0};
  return buckets;
}

const prometheus::Histogram::BucketBoundaries& BatchBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
  return buckets;
}

// gRPC's name for a code: "OK", "INVALID_ARGUMENT", ...
std::string CodeName(absl::StatusCode code) {
  return absl::StatusCodeToString(code);
}

Labels VariantLabels(const VariantKey& v) {
  return {{"model", v.model},
          {"activation", v.activation},
          {"dtype", v1::DType_Name(ToProtoDType(v.dtype))}};
}

Labels With(Labels labels, const std::string& key, const std::string& value) {
  labels.emplace(key, value);
  return labels;
}

}  // namespace

struct Metrics::VariantMetrics {
  Labels labels;
  prometheus::Counter* ok = nullptr;
  prometheus::Counter* tokens = nullptr;
  prometheus::Histogram* total = nullptr;
  prometheus::Histogram* queue = nullptr;
  prometheus::Histogram* compute = nullptr;
  prometheus::Counter* batches = nullptr;
  prometheus::Histogram* batch_tokens = nullptr;
  prometheus::Gauge* queue_requests = nullptr;
  prometheus::Gauge* queue_tokens = nullptr;
};

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Start(const std::string& address,
                                                        const std::string& onednn_version,
                                                        const std::string& kernels_isa) {
  std::unique_ptr<Metrics> m(new Metrics());
  m->registry_ = std::make_shared<prometheus::Registry>();
  prometheus::Registry& r = *m->registry_;
  m->requests_ = &prometheus::BuildCounter()
                      .Name("ffn_requests_total")
                      .Help("Infer requests answered, by variant and gRPC status code")
                      .Register(r);
  m->rejected_ = &prometheus::BuildCounter()
                      .Name("ffn_rejected_requests_total")
                      .Help("Infer requests rejected before a variant was known (unknown model "
                            "or activation), by gRPC status code")
                      .Register(r);
  m->tokens_ = &prometheus::BuildCounter()
                    .Name("ffn_tokens_total")
                    .Help("Tokens computed, by variant")
                    .Register(r);
  m->duration_ = &prometheus::BuildHistogram()
                      .Name("ffn_request_duration_seconds")
                      .Help("Server-side request latency by stage: total (arrival to answer), "
                            "queue (arrival to compute), compute (the batch's engine call)")
                      .Register(r);
  m->batches_ = &prometheus::BuildCounter()
                     .Name("ffn_batches_total")
                     .Help("Engine calls (batches), by variant")
                     .Register(r);
  m->batch_tokens_ = &prometheus::BuildHistogram()
                          .Name("ffn_batch_tokens")
                          .Help("Tokens per engine call, by variant")
                          .Register(r);
  m->queue_requests_ = &prometheus::BuildGauge()
                            .Name("ffn_queue_requests")
                            .Help("Requests waiting in a variant's queue")
                            .Register(r);
  m->queue_tokens_ = &prometheus::BuildGauge()
                          .Name("ffn_queue_tokens")
                          .Help("Tokens waiting in a variant's queue")
                          .Register(r);
  m->expert_tokens_ = &prometheus::BuildCounter()
                           .Name("ffn_expert_tokens_total")
                           .Help("Tokens routed to each expert of a mixture-of-experts model")
                           .Register(r);
  m->expert_seconds_ = &prometheus::BuildCounter()
                            .Name("ffn_expert_compute_seconds_total")
                            .Help("Seconds of engine calls of each expert of a mixture-of-experts "
                                  "model")
                            .Register(r);
  m->plan_retimes_ = &prometheus::BuildCounter()
                          .Name("ffn_plan_retimes_total")
                          .Help("Probes of a tuned model's plan timed again while serving, "
                                "because served compute stayed above 1.5x the plan")
                          .Register(r);
  prometheus::BuildGauge()
      .Name("ffn_build_info")
      .Help("Build information; always 1")
      .Register(r)
      .Add({{"version", FFN_VERSION}, {"onednn", onednn_version}, {"kernels_isa", kernels_isa}})
      .Set(1);
  try {
    // prometheus-cpp's defaults (2 civetweb threads, civetweb's 30 s request
    // timeout) let two idle connections hold /metrics for 30 s. A worker per
    // likely scraper and idle client, and a request that has not arrived in
    // 3 s frees its worker.
    m->exposer_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", address, "num_threads", std::to_string(kMetricsThreads),
        "request_timeout_ms", std::to_string(kMetricsRequestTimeoutMs)});
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  m->exposer_->RegisterCollectable(m->registry_);
  const std::vector<int> ports = m->exposer_->GetListeningPorts();
  m->port_ = ports.empty() ? 0 : ports.front();
  return m;
}

Metrics::~Metrics() = default;

Metrics::VariantMetrics& Metrics::For(const VariantKey& variant) {
  auto& slot = variants_[variant];
  if (slot == nullptr) {
    slot = std::make_unique<VariantMetrics>();
    VariantMetrics& v = *slot;
    v.labels = VariantLabels(variant);
    v.ok = &requests_->Add(With(v.labels, "code", "OK"));
    v.tokens = &tokens_->Add(v.labels);
    v.total = &duration_->Add(With(v.labels, "stage", "total"), LatencyBuckets());
    v.queue = &duration_->Add(With(v.labels, "stage", "queue"), LatencyBuckets());
    v.compute = &duration_->Add(With(v.labels, "stage", "compute"), LatencyBuckets());
    v.batches = &batches_->Add(v.labels);
    v.batch_tokens = &batch_tokens_->Add(v.labels, BatchBuckets());
    v.queue_requests = &queue_requests_->Add(v.labels);
    v.queue_tokens = &queue_tokens_->Add(v.labels);
  }
  return *slot;
}

void Metrics::OnSuccess(const VariantKey& variant, int64_t tokens, const RequestTimings& timings) {
  VariantMetrics* v;
  {
    absl::MutexLock lock(&mu_);
    v = &For(variant);
  }
  v->ok->Increment();
  v->tokens->Increment(static_cast<double>(tokens));
  v->total->Observe(static_cast<double>(timings.total_ns) * 1e-9);
  v->queue->Observe(static_cast<double>(timings.queue_ns) * 1e-9);
  v->compute->Observe(static_cast<double>(timings.compute_ns) * 1e-9);
}

void Metrics::OnError(const VariantKey& variant, absl::StatusCode code) {
  Labels labels;
  {
    absl::MutexLock lock(&mu_);
    labels = For(variant).labels;
  }
  requests_->Add(With(labels, "code", CodeName(code))).Increment();
}

void Metrics::OnRejected(absl::StatusCode code) {
  rejected_->Add({{"code", CodeName(code)}}).Increment();
}

void Metrics::OnBatch(const VariantKey& variant, int64_t tokens) {
  VariantMetrics* v;
  {
    absl::MutexLock lock(&mu_);
    v = &For(variant);
  }
  v->batches->Increment();
  v->batch_tokens->Observe(static_cast<double>(tokens));
}

void Metrics::OnPlanRetime(const std::string& model) {
  plan_retimes_->Add({{"model", model}}).Increment();
}

void Metrics::OnExperts(const std::string& model, const std::vector<int64_t>& tokens,
                        const std::vector<double>& seconds) {
  absl::MutexLock lock(&mu_);
  for (size_t e = 0; e < tokens.size(); ++e) {
    if (tokens[e] == 0) continue;
    auto [it, added] = experts_.try_emplace({model, static_cast<int64_t>(e)});
    if (added) {
      const prometheus::Labels labels{{"model", model}, {"expert", std::to_string(e)}};
      it->second = {&expert_tokens_->Add(labels), &expert_seconds_->Add(labels)};
    }
    it->second.first->Increment(static_cast<double>(tokens[e]));
    it->second.second->Increment(e < seconds.size() ? seconds[e] : 0.0);
  }
}

void Metrics::SetQueueDepth(const VariantKey& variant, int64_t requests, int64_t tokens) {
  VariantMetrics* v;
  {
    absl::MutexLock lock(&mu_);
    v = &For(variant);
  }
  v->queue_requests->Set(static_cast<double>(requests));
  v->queue_tokens->Set(static_cast<double>(tokens));
}

}  // namespace ffn
