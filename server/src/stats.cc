#include "ffn/server/stats.h"

#include <algorithm>
#include <cmath>

#include "ffn/server/metrics.h"
#include "ffn/server/proto_dtype.h"

namespace ffn {
namespace {

void Summarize(const LatencyHistogram& h, v1::LatencySummary* out) {
  out->set_mean_us(h.MeanMicros());
  out->set_p50_us(h.PercentileMicros(50));
  out->set_p90_us(h.PercentileMicros(90));
  out->set_p99_us(h.PercentileMicros(99));
  out->set_max_us(h.MaxMicros());
}

}  // namespace

ServerStats::ServerStats(double window_seconds, Metrics* metrics)
    : start_(Clock::now()),
      window_seconds_(std::max(1, static_cast<int>(std::lround(window_seconds)))),
      metrics_(metrics) {}

int64_t ServerStats::SecondIndex(Clock::time_point t) const {
  return std::chrono::duration_cast<std::chrono::seconds>(t - start_).count();
}

ServerStats::Variant& ServerStats::Get(const VariantKey& key) {
  Variant& v = variants_[key];
  // One spare slot: the current, partial second is in the ring but not in the window.
  if (v.seconds.empty()) v.seconds.resize(static_cast<size_t>(window_seconds_) + 1);
  return v;
}

void ServerStats::RecordSuccess(const VariantKey& variant, int64_t tokens,
                                const RequestTimings& timings) {
  if (metrics_ != nullptr) metrics_->OnSuccess(variant, tokens, timings);
  const int64_t now = SecondIndex(Clock::now());
  absl::MutexLock lock(&mu_);
  Variant& v = Get(variant);
  ++v.requests;
  v.tokens += static_cast<uint64_t>(tokens);
  v.last_success_unix_ms = absl::ToUnixMillis(absl::Now());
  v.total.RecordNanos(timings.total_ns);
  v.queue.RecordNanos(timings.queue_ns);
  v.compute.RecordNanos(timings.compute_ns);
  Second& slot = v.seconds[static_cast<size_t>(now) % v.seconds.size()];
  if (slot.index != now) slot = Second{now, 0, 0};
  ++slot.requests;
  slot.tokens += static_cast<uint64_t>(tokens);
}

void ServerStats::RecordError(const VariantKey& variant, absl::StatusCode code) {
  if (metrics_ != nullptr) metrics_->OnError(variant, code);
  absl::MutexLock lock(&mu_);
  Variant& v = Get(variant);
  ++v.errors;
  if (code == absl::StatusCode::kDeadlineExceeded || code == absl::StatusCode::kCancelled) ++v.expired;
  if (code == absl::StatusCode::kResourceExhausted) ++v.queue_full;
}

void ServerStats::RecordRejected(absl::StatusCode code) {
  if (metrics_ != nullptr) metrics_->OnRejected(code);
  absl::MutexLock lock(&mu_);
  ++rejected_;
}

void ServerStats::RecordBatch(const VariantKey& variant, int64_t tokens, double flops,
                              int64_t compute_ns, int64_t batch_compute_ns, int threads) {
  if (metrics_ != nullptr) metrics_->OnBatch(variant, tokens);
  absl::MutexLock lock(&mu_);
  Variant& v = Get(variant);
  ++v.batches;
  v.flops += flops;
  v.batch_compute_ns += compute_ns;
  v.batch_tokens.RecordNanos(tokens);
  Variant::BatchSize& size = v.by_size[tokens];
  ++size.batches;
  size.compute_ns += batch_compute_ns >= 0 ? batch_compute_ns : compute_ns;
  size.threads += threads;
}

void ServerStats::SetQueueDepth(const VariantKey& variant, int64_t requests, int64_t tokens) {
  if (metrics_ != nullptr) metrics_->SetQueueDepth(variant, requests, tokens);
}

void ServerStats::RecordCallStarted() {
  absl::MutexLock lock(&mu_);
  ++calls_in_flight_;
}

void ServerStats::RecordCallEnded(bool cancelled) {
  absl::MutexLock lock(&mu_);
  --calls_in_flight_;
  if (cancelled) ++cancelled_calls_;
}

bool ServerStats::AwaitNoCallsInFlight(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return calls_in_flight_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

uint64_t ServerStats::cancelled_calls() const {
  absl::MutexLock lock(&mu_);
  return cancelled_calls_;
}

void ServerStats::RecordExperts(const std::string& model, const MoeCounters& counters) {
  if (metrics_ != nullptr) metrics_->OnExperts(model, counters.tokens, counters.seconds);
  absl::MutexLock lock(&mu_);
  Experts& e = experts_[model];
  e.tokens.resize(std::max(e.tokens.size(), counters.tokens.size()), 0);
  e.seconds.resize(e.tokens.size(), 0.0);
  for (size_t i = 0; i < counters.tokens.size(); ++i) {
    e.tokens[i] += static_cast<uint64_t>(counters.tokens[i]);
    e.seconds[i] += i < counters.seconds.size() ? counters.seconds[i] : 0.0;
  }
}

namespace {

// The first token count of `tokens`' power-of-two bucket: 1, 2, 4, ...
int64_t BucketStart(int64_t tokens) {
  int64_t from = 1;
  while (from * 2 <= tokens) from *= 2;
  return from;
}

}  // namespace

v1::GetStatsResponse ServerStats::Snapshot(bool exact_batch_sizes) const {
  const auto now = Clock::now();
  const double uptime = std::chrono::duration<double>(now - start_).count();
  const int64_t current = SecondIndex(now);
  // The window is the last window_seconds_ complete seconds (fewer right after start).
  const int64_t complete = std::min<int64_t>(window_seconds_, current);
  v1::GetStatsResponse response;
  response.set_uptime_seconds(uptime);
  response.set_window_seconds(static_cast<double>(complete));
  absl::MutexLock lock(&mu_);
  response.set_rejected_requests(rejected_);
  for (const auto& [model, e] : experts_) {
    v1::MoeStats* m = response.add_moe();
    m->set_model(model);
    uint64_t routed = 0, busiest = 0;
    for (size_t i = 0; i < e.tokens.size(); ++i) {
      v1::ExpertStats* x = m->add_experts();
      x->set_expert(static_cast<int64_t>(i));
      x->set_tokens(e.tokens[i]);
      x->set_compute_seconds(e.seconds[i]);
      routed += e.tokens[i];
      busiest = std::max(busiest, e.tokens[i]);
    }
    m->set_routed(routed);
    m->set_dropped(0);
    const double mean = e.tokens.empty() ? 0.0 : static_cast<double>(routed) / e.tokens.size();
    m->set_imbalance(mean > 0 ? static_cast<double>(busiest) / mean : 0.0);
  }
  for (const auto& [key, v] : variants_) {
    v1::VariantStats* s = response.add_variants();
    s->mutable_variant()->set_model(key.model);
    s->mutable_variant()->set_activation(key.activation);
    s->mutable_variant()->set_dtype(ToProtoDType(key.dtype));
    s->set_requests(v.requests);
    s->set_tokens(v.tokens);
    s->set_errors(v.errors);
    if (uptime > 0) {
      s->set_requests_per_second(static_cast<double>(v.requests) / uptime);
      s->set_tokens_per_second(static_cast<double>(v.tokens) / uptime);
    }
    uint64_t window_requests = 0, window_tokens = 0;
    for (const Second& sec : v.seconds) {
      if (sec.index >= current - complete && sec.index < current) {
        window_requests += sec.requests;
        window_tokens += sec.tokens;
      }
    }
    if (complete > 0) {
      s->set_window_requests_per_second(static_cast<double>(window_requests) / static_cast<double>(complete));
      s->set_window_tokens_per_second(static_cast<double>(window_tokens) / static_cast<double>(complete));
    }
    Summarize(v.total, s->mutable_total());
    Summarize(v.queue, s->mutable_queue());
    Summarize(v.compute, s->mutable_compute());
    if (v.batch_compute_ns > 0) {
      s->set_compute_gflops(v.flops / static_cast<double>(v.batch_compute_ns));  // flop/ns = GFLOP/s
    }
    s->set_batches(v.batches);
    s->set_expired(v.expired);
    s->set_rejected_queue_full(v.queue_full);
    // The histogram records tokens as if they were nanoseconds.
    v1::BatchSummary* b = s->mutable_batch_tokens();
    b->set_mean(v.batch_tokens.MeanMicros() * 1e3);
    b->set_p50(v.batch_tokens.PercentileMicros(50) * 1e3);
    b->set_p90(v.batch_tokens.PercentileMicros(90) * 1e3);
    b->set_p99(v.batch_tokens.PercentileMicros(99) * 1e3);
    b->set_max(v.batch_tokens.MaxMicros() * 1e3);
    s->set_last_success_unix_ms(v.last_success_unix_ms);
    // by_size is ordered by token count, so each bucket's sizes are adjacent.
    v1::BatchSizeStats* bucket = nullptr;
    double tokens_sum = 0, ns_sum = 0, threads_sum = 0;
    auto finish_bucket = [&] {
      if (bucket == nullptr) return;
      const double n = static_cast<double>(bucket->batches());
      bucket->set_mean_tokens(tokens_sum / n);
      bucket->set_compute_mean_us(ns_sum / n / 1e3);
      bucket->set_mean_threads(threads_sum / n);
    };
    for (const auto& [tokens, size] : v.by_size) {
      const int64_t from = exact_batch_sizes ? tokens : BucketStart(tokens);
      if (bucket == nullptr || bucket->tokens_from() != from) {
        finish_bucket();
        bucket = s->add_batch_sizes();
        bucket->set_tokens_from(from);
        bucket->set_tokens_to(exact_batch_sizes ? tokens : 2 * from - 1);
        tokens_sum = ns_sum = threads_sum = 0;
      }
      bucket->set_batches(bucket->batches() + size.batches);
      tokens_sum += static_cast<double>(tokens) * static_cast<double>(size.batches);
      ns_sum += static_cast<double>(size.compute_ns);
      threads_sum += static_cast<double>(size.threads);
    }
    finish_bucket();
  }
  return response;
}

}  // namespace ffn
