#include "recorder.h"

#include <algorithm>

#include "ffn/client/client.h"

namespace ffn::client {
namespace {

int64_t Nanos(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

void WindowData::Merge(const WindowData& other) {
  for (size_t i = 0; i < variants.size(); ++i) variants[i].Merge(other.variants[i]);
  for (size_t i = 0; i < targets.size(); ++i) targets[i].Merge(other.targets[i]);
  open_loop.Merge(other.open_loop);
  last_done = std::max(last_done, other.last_done);
}

WindowData EmptyWindow(const LoadPlan& plan) {
  WindowData data;
  data.variants.resize(plan.variants.size());
  for (size_t i = 0; i < plan.variants.size(); ++i) data.variants[i].variant = plan.variants[i];
  data.targets.resize(plan.options.targets.size());
  for (size_t i = 0; i < plan.options.targets.size(); ++i) {
    data.targets[i].target = plan.options.targets[i];
  }
  return data;
}

Recorder::Recorder(const LoadPlan& plan, Clock::time_point run_start,
                   Clock::time_point measure_start, Clock::duration window_length,
                   uint64_t measured_limit)
    : plan_(plan),
      run_start_(run_start),
      measure_start_(measure_start),
      window_length_(window_length),
      endless_(window_length == Clock::duration::max()),
      measured_limit_(measured_limit) {}

int Recorder::WindowOf(Clock::time_point t) const {
  if (t < measure_start_) return -1;
  if (endless_) return 0;
  return static_cast<int>((t - measure_start_) / window_length_);
}

Clock::time_point Recorder::WindowStart(int w) const {
  return endless_ ? measure_start_ : measure_start_ + w * window_length_;
}

Clock::time_point Recorder::WindowEnd(int w) const {
  return endless_ ? Clock::time_point::max() : measure_start_ + (w + 1) * window_length_;
}

WindowData& Recorder::WindowIn(Shard& shard, int w) {
  auto [it, inserted] = shard.windows.try_emplace(w);
  if (inserted) it->second = EmptyWindow(plan_);
  return it->second;
}

void Recorder::Add(Shard& shard, int w, const FinishedCall& call, const std::string& peer) {
  WindowData& data = WindowIn(shard, w);
  VariantLoad& variant = data.variants[call.deal.variant];
  TargetLoad& target = data.targets[plan_.endpoints[call.deal.endpoint].target];
  const double at_seconds = SecondsBetween(run_start_, call.done);
  if (call.status->ok()) {
    const v1::InferResponse& r = *call.response;
    const int64_t latency = Nanos(call.done - call.intended);
    const int64_t send_to_answer = Nanos(call.done - call.sent);
    const double flops =
        plan_.flops_per_token[call.deal.variant] * static_cast<double>(call.deal.tokens);
    const ServerFigures server{r.queue_us(), r.compute_us(), r.total_us(), r.batch_tokens()};
    for (CallStats* stats : {static_cast<CallStats*>(&variant), static_cast<CallStats*>(&target)}) {
      stats->RecordOk(latency, send_to_answer, call.deal.tokens, flops, server);
    }
    ++target.ok_by_peer[peer];
    target.last_ok_seconds = std::max(target.last_ok_seconds, at_seconds);
  } else {
    const std::string code =
        StatusCodeName(static_cast<absl::StatusCode>(call.status->error_code()));
    variant.RecordError(code, call.status->error_message());
    target.RecordError(code, call.status->error_message());
    if (target.first_error_seconds < 0 || at_seconds < target.first_error_seconds) {
      target.first_error_seconds = at_seconds;
    }
    target.last_error_seconds = std::max(target.last_error_seconds, at_seconds);
  }
  data.last_done = std::max(data.last_done, call.done);
}

void Recorder::RecordNow(const FinishedCall& call) {
  const std::string peer = call.status->ok() ? call.context->peer() : std::string();
  Shard& shard = shards_[call.number % kShards];
  absl::MutexLock lock(&shard.mu);
  const int w = WindowOf(Clock::now());
  if (w < 0) return;
  if (measured_limit_ > 0) {
    const uint64_t index = measured_.fetch_add(1, std::memory_order_relaxed);
    if (index >= measured_limit_) return;
    Add(shard, w, call, peer);
    if (index + 1 == measured_limit_) limit_reached_.Notify();
    return;
  }
  Add(shard, w, call, peer);
}

void Recorder::RecordIn(int w, const FinishedCall& call) {
  if (w < 0) return;
  const std::string peer = call.status->ok() ? call.context->peer() : std::string();
  Shard& shard = shards_[call.number % kShards];
  absl::MutexLock lock(&shard.mu);
  Add(shard, w, call, peer);
}

void Recorder::RecordSend(uint64_t number, int w, Clock::duration lag, bool waited) {
  if (w < 0) return;
  Shard& shard = shards_[number % kShards];
  absl::MutexLock lock(&shard.mu);
  OpenLoopStats& stats = WindowIn(shard, w).open_loop;
  ++stats.scheduled;
  stats.send_lag.RecordNanos(Nanos(lag));
  if (lag >= std::chrono::microseconds(kLateSendMicros)) ++stats.late_sends;
  if (waited) ++stats.waited_for_outstanding;
}

WindowData Recorder::Take(int w) {
  WindowData out = EmptyWindow(plan_);
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    auto it = shard.windows.find(w);
    if (it == shard.windows.end()) continue;
    out.Merge(it->second);
    shard.windows.erase(it);
  }
  return out;
}

}  // namespace ffn::client
