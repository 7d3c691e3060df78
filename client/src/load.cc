#include "ffn/client/load.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "ffn/client/client.h"
#include "ffn/client/request.h"

namespace ffn::client {
namespace {

using Clock = std::chrono::steady_clock;

// Calls that finish in [start, end) are counted.
struct Window {
  Clock::time_point start;
  Clock::time_point end;
};

// What every worker reads; nothing in it changes during the run except the
// counter that deals out variants.
struct Plan {
  std::vector<v1::InferRequest> requests;  // one per variant
  Window window;
  double timeout_seconds = 0;
  std::atomic<uint64_t> next_variant{0};
};

absl::Status ValidateOptions(const LoadOptions& o) {
  if (o.concurrency < 1) return absl::InvalidArgumentError("concurrency must be at least 1");
  if (o.connections < 1) return absl::InvalidArgumentError("connections must be at least 1");
  if (o.tokens < 1) return absl::InvalidArgumentError("tokens must be at least 1");
  if (!(o.duration_seconds > 0)) return absl::InvalidArgumentError("duration must be positive");
  if (!(o.warmup_seconds >= 0)) return absl::InvalidArgumentError("warmup must be >= 0");
  if (!(o.timeout_seconds > 0)) return absl::InvalidArgumentError("timeout must be positive");
  return absl::OkStatus();
}

// One request per variant; each model's input is drawn once. Workers share
// these requests read-only (serializing a const message is thread-safe).
absl::StatusOr<std::vector<v1::InferRequest>> BuildRequests(
    const std::vector<VariantSpec>& variants, const std::vector<v1::ModelInfo>& models,
    int64_t tokens, uint64_t seed) {
  std::vector<v1::InferRequest> requests;
  std::map<std::string, std::vector<float>> inputs;
  for (const VariantSpec& variant : variants) {
    auto model = FindModel(models, variant.model);
    if (!model.ok()) return model.status();
    if (auto s = CheckTokens(*model, tokens); !s.ok()) return s;
    auto [it, inserted] = inputs.try_emplace(variant.model);
    if (inserted) it->second = RandomInput(tokens, model->d_model(), seed);
    requests.push_back(MakeInferRequest(variant.model, variant.activation, it->second, tokens));
  }
  return requests;
}

void Record(const grpc::Status& status, const v1::InferResponse& response, int64_t latency_ns,
            VariantLoad& load) {
  if (status.ok()) {
    ++load.requests;
    load.latency.RecordNanos(latency_ns);
    load.server_queue_us_sum += static_cast<double>(response.queue_us());
    load.server_compute_us_sum += static_cast<double>(response.compute_us());
    return;
  }
  ++load.errors;
  const std::string code = StatusCodeName(static_cast<absl::StatusCode>(status.error_code()));
  if (load.errors_by_code[code]++ == 0) load.first_error_by_code[code] = status.error_message();
}

// One closed-loop worker: a call at a time until a call finishes past the
// window. Calls are cut off 1 s after the window so none outlives the run by
// much; such calls finish outside the window and are not counted.
std::vector<VariantLoad> RunWorker(v1::FfnService::StubInterface& stub, Plan& plan,
                                   const std::vector<VariantSpec>& variants) {
  std::vector<VariantLoad> loads(variants.size());
  for (size_t i = 0; i < variants.size(); ++i) loads[i].variant = variants[i];
  const auto cutoff = plan.window.end + std::chrono::seconds(1);
  while (true) {
    const size_t v = plan.next_variant.fetch_add(1, std::memory_order_relaxed) % variants.size();
    const Clock::time_point start = Clock::now();
    const double left_seconds = std::chrono::duration<double>(cutoff - start).count();
    grpc::ClientContext context;
    SetTimeout(context, std::min(plan.timeout_seconds, left_seconds));
    v1::InferResponse response;
    const grpc::Status status = stub.Infer(&context, plan.requests[v], &response);
    const Clock::time_point finish = Clock::now();
    if (finish >= plan.window.end) break;
    if (finish < plan.window.start) continue;
    Record(status, response,
           std::chrono::duration_cast<std::chrono::nanoseconds>(finish - start).count(), loads[v]);
  }
  return loads;
}

Clock::duration Seconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace

void VariantLoad::Merge(const VariantLoad& other) {
  requests += other.requests;
  errors += other.errors;
  for (const auto& [code, count] : other.errors_by_code) errors_by_code[code] += count;
  for (const auto& [code, message] : other.first_error_by_code) {
    first_error_by_code.try_emplace(code, message);
  }
  latency.Merge(other.latency);
  server_queue_us_sum += other.server_queue_us_sum;
  server_compute_us_sum += other.server_compute_us_sum;
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

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options) {
  if (auto s = ValidateOptions(options); !s.ok()) return s;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < options.connections; ++i) channels.push_back(MakeChannel(options.target, i));

  auto models = ListModels(*v1::FfnService::NewStub(channels[0]), options.timeout_seconds);
  if (!models.ok()) return models.status();
  auto variants = SelectVariants(options.variants, *models);
  if (!variants.ok()) return variants.status();
  Plan plan;
  auto requests = BuildRequests(*variants, *models, options.tokens, options.seed);
  if (!requests.ok()) return requests.status();
  plan.requests = std::move(*requests);
  plan.timeout_seconds = options.timeout_seconds;

  std::vector<std::unique_ptr<v1::FfnService::Stub>> stubs;
  for (int i = 0; i < options.concurrency; ++i) {
    stubs.push_back(v1::FfnService::NewStub(channels[static_cast<size_t>(i) % channels.size()]));
  }
  std::vector<std::vector<VariantLoad>> per_worker(stubs.size());
  plan.window.start = Clock::now() + Seconds(options.warmup_seconds);
  plan.window.end = plan.window.start + Seconds(options.duration_seconds);
  std::vector<std::thread> workers;
  for (size_t i = 0; i < stubs.size(); ++i) {
    workers.emplace_back([&, i] { per_worker[i] = RunWorker(*stubs[i], plan, *variants); });
  }
  for (std::thread& worker : workers) worker.join();

  LoadResult result;
  result.options = options;
  result.measured_seconds =
      std::chrono::duration<double>(plan.window.end - plan.window.start).count();
  result.variants = std::move(per_worker[0]);
  for (size_t i = 1; i < per_worker.size(); ++i) {
    for (size_t v = 0; v < result.variants.size(); ++v) result.variants[v].Merge(per_worker[i][v]);
  }
  return result;
}

}  // namespace ffn::client
