#include "ffn/client/load.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "load_driver.h"
#include "load_plan.h"
#include "recorder.h"

namespace ffn::client {
namespace {

Clock::duration Seconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// The earlier of two times in seconds where -1 means "none".
double EarlierKnown(double a, double b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return std::min(a, b);
}

}  // namespace

void CallStats::RecordOk(int64_t latency_ns, int64_t send_to_answer_ns, int64_t call_tokens,
                         double call_flops, const ServerFigures& server) {
  ++requests;
  tokens += static_cast<uint64_t>(call_tokens);
  flops += call_flops;
  latency.RecordNanos(latency_ns);
  send_to_answer.RecordNanos(send_to_answer_ns);
  server_queue_us_sum += static_cast<double>(server.queue_us);
  server_compute_us_sum += static_cast<double>(server.compute_us);
  server_total_us_sum += static_cast<double>(server.total_us);
  server_batch_tokens_sum += static_cast<double>(server.batch_tokens);
}

void CallStats::RecordError(const std::string& code, const std::string& message) {
  ++errors;
  if (errors_by_code[code]++ == 0) first_error_by_code[code] = message;
}

void CallStats::Merge(const CallStats& other) {
  requests += other.requests;
  errors += other.errors;
  for (const auto& [code, count] : other.errors_by_code) errors_by_code[code] += count;
  for (const auto& [code, message] : other.first_error_by_code) {
    first_error_by_code.try_emplace(code, message);
  }
  tokens += other.tokens;
  flops += other.flops;
  latency.Merge(other.latency);
  send_to_answer.Merge(other.send_to_answer);
  server_queue_us_sum += other.server_queue_us_sum;
  server_compute_us_sum += other.server_compute_us_sum;
  server_total_us_sum += other.server_total_us_sum;
  server_batch_tokens_sum += other.server_batch_tokens_sum;
}

void TargetLoad::Merge(const TargetLoad& other) {
  CallStats::Merge(other);
  for (const auto& [peer, count] : other.ok_by_peer) ok_by_peer[peer] += count;
  last_ok_seconds = std::max(last_ok_seconds, other.last_ok_seconds);
  first_error_seconds = EarlierKnown(first_error_seconds, other.first_error_seconds);
  last_error_seconds = std::max(last_error_seconds, other.last_error_seconds);
}

void OpenLoopStats::Merge(const OpenLoopStats& other) {
  scheduled += other.scheduled;
  late_sends += other.late_sends;
  waited_for_outstanding += other.waited_for_outstanding;
  send_lag.Merge(other.send_lag);
}

VariantLoad LoadResult::Total() const {
  VariantLoad total;
  total.variant = {"TOTAL", ""};
  for (const VariantLoad& v : variants) total.Merge(v);
  return total;
}

bool LoadResult::Failed() const {
  const VariantLoad total = Total();
  return total.errors > 0 || total.requests == 0;
}

void LoadResult::Merge(const LoadResult& other) {
  measured_seconds += other.measured_seconds;
  for (size_t i = 0; i < variants.size() && i < other.variants.size(); ++i) {
    variants[i].Merge(other.variants[i]);
  }
  for (size_t i = 0; i < targets.size() && i < other.targets.size(); ++i) {
    targets[i].Merge(other.targets[i]);
  }
  open_loop.Merge(other.open_loop);
}

// One run: the plan, the recorder and the driver, stopped before they go.
struct WindowedLoad::Impl {
  std::unique_ptr<LoadPlan> plan;
  std::unique_ptr<Recorder> recorder;
  std::unique_ptr<LoadDriver> driver;  // declared last: stops first

  ~Impl() {
    if (driver) driver->Stop();
  }

  // The result of window w, once complete.
  LoadResult Window(int w) {
    driver->WaitForWindow(w);
    WindowData data = recorder->Take(w);
    LoadResult result;
    result.options = plan->options;
    const Clock::time_point start = recorder->WindowStart(w);
    const Clock::time_point end = recorder->WindowEnd(w);
    const bool endless = end == Clock::time_point::max();
    const double answered_seconds =
        data.last_done > start ? SecondsBetween(start, data.last_done) : 0.0;
    if (!plan->options.OpenLoop()) {
      result.measured_seconds = endless ? answered_seconds : SecondsBetween(start, end);
    } else {
      const double scheduled_seconds =
          endless ? static_cast<double>(plan->options.requests) / plan->options.rate
                  : SecondsBetween(start, end);
      result.measured_seconds = std::max(scheduled_seconds, answered_seconds);
    }
    result.variants = std::move(data.variants);
    result.targets = std::move(data.targets);
    result.open_loop = std::move(data.open_loop);
    return result;
  }
};

namespace {

// Builds the plan and starts sending. `window_length` max(): one endless
// window, ended by options.requests.
absl::StatusOr<std::unique_ptr<WindowedLoad::Impl>> Begin(const LoadOptions& options,
                                                          Clock::duration window_length,
                                                          bool stop_after_first_window) {
  auto plan = BuildLoadPlan(options);
  if (!plan.ok()) return plan.status();
  auto impl = std::make_unique<WindowedLoad::Impl>();
  impl->plan = std::move(*plan);
  DriverTiming timing;
  timing.run_start = Clock::now();
  const Clock::time_point measure_start = timing.run_start + Seconds(options.warmup_seconds);
  const bool endless = window_length == Clock::duration::max();
  if (stop_after_first_window && !endless) timing.stop_sending = measure_start + window_length;
  if (options.OpenLoop() && endless) timing.measured_calls = options.requests;
  const uint64_t closed_limit = !options.OpenLoop() && endless ? options.requests : 0;
  impl->recorder = std::make_unique<Recorder>(*impl->plan, timing.run_start, measure_start,
                                              window_length, closed_limit);
  if (options.OpenLoop()) {
    impl->driver = MakeOpenLoop(*impl->plan, *impl->recorder, timing);
  } else if (options.stream) {
    impl->driver = MakeStreamLoop(*impl->plan, *impl->recorder, timing);
  } else {
    impl->driver = MakeClosedLoop(*impl->plan, *impl->recorder, timing);
  }
  impl->driver->Start();
  return impl;
}

}  // namespace

namespace {

// ModelStatistics of every variant's model on the plan's first endpoint;
// empty if the server does not offer them.
std::vector<inference::ModelStatistics> StatisticsOf(const LoadPlan& plan) {
  std::vector<inference::ModelStatistics> out;
  for (const VariantSpec& v : plan.variants) {
    inference::ModelStatisticsRequest request;
    request.set_name(v.model);
    inference::ModelStatisticsResponse response;
    grpc::ClientContext context;
    SetTimeout(context, plan.options.SetupTimeout());
    if (!plan.endpoints[0].v2_stub->ModelStatistics(&context, request, &response).ok() ||
        response.model_stats_size() == 0) {
      return {};
    }
    out.push_back(response.model_stats(0));
  }
  return out;
}

double MeanMicros(const inference::StatisticDuration& after,
                  const inference::StatisticDuration& before, uint64_t count) {
  return count == 0 ? 0.0 : static_cast<double>(after.ns() - before.ns()) / 1e3 /
                                static_cast<double>(count);
}

}  // namespace

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options) {
  const Clock::duration window =
      options.requests > 0 ? Clock::duration::max() : Seconds(options.duration_seconds);
  auto impl = Begin(options, window, /*stop_after_first_window=*/true);
  if (!impl.ok()) return impl.status();
  const LoadPlan& plan = *(*impl)->plan;
  std::vector<inference::ModelStatistics> before;
  if (options.protocol == Protocol::kV2) {
    std::this_thread::sleep_until((*impl)->recorder->WindowStart(0));
    before = StatisticsOf(plan);
  }
  LoadResult result = (*impl)->Window(0);
  (*impl)->driver->Stop();
  if (!before.empty()) {
    const std::vector<inference::ModelStatistics> after = StatisticsOf(plan);
    for (size_t i = 0; i < after.size() && i < before.size(); ++i) {
      const inference::InferStatistics& a = after[i].inference_stats();
      const inference::InferStatistics& b = before[i].inference_stats();
      LoadResult::ServerStatistics s;
      s.model = plan.variants[i].model;
      s.requests = a.success().count() - b.success().count();
      s.failed = a.fail().count() - b.fail().count();
      s.mean_queue_us = MeanMicros(a.queue(), b.queue(), s.requests);
      s.mean_compute_us = MeanMicros(a.compute_infer(), b.compute_infer(), s.requests);
      s.mean_total_us = MeanMicros(a.success(), b.success(), s.requests);
      result.server_statistics.push_back(s);
    }
  }
  return result;
}

absl::StatusOr<std::unique_ptr<WindowedLoad>> WindowedLoad::Start(const LoadOptions& options,
                                                                  double window_seconds) {
  if (!(window_seconds > 0)) return absl::InvalidArgumentError("window must be positive");
  LoadOptions windowed = options;
  windowed.requests = 0;
  auto impl = Begin(windowed, Seconds(window_seconds), /*stop_after_first_window=*/false);
  if (!impl.ok()) return impl.status();
  return std::unique_ptr<WindowedLoad>(new WindowedLoad(std::move(*impl)));
}

WindowedLoad::WindowedLoad(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WindowedLoad::~WindowedLoad() { Stop(); }

LoadResult WindowedLoad::NextWindow() { return impl_->Window(next_window_++); }

void WindowedLoad::Stop() { impl_->driver->Stop(); }

}  // namespace ffn::client
