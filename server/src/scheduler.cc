#include "ffn/server/scheduler.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "call_threads.h"
#include "ffn/kernels/dtype.h"

namespace ffn {
namespace {

using Clock = std::chrono::steady_clock;

int64_t Nanos(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

}  // namespace

VariantKey VariantFor(const Model& model, Activation activation, DataType compute) {
  return {model.config.name, ActivationName(activation), compute};
}

Scheduler::Scheduler(const SchedulerOptions& options, ServerStats& stats)
    : options_{std::max(1, options.executors), std::max(1, options.threads_per_executor),
               options.adaptive_call_threads},
      stats_(stats) {
  for (int i = 0; i < options_.executors; ++i) {
    executors_.emplace_back([this] { ExecutorLoop(); });
  }
}

Scheduler::~Scheduler() { Shutdown(); }

absl::Status Scheduler::Submit(InferTask task) {
  const VariantKey variant = VariantFor(*task.model, task.activation, task.compute);
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the server is shutting down");
  auto& slot = queues_[QueueKey(task.model->config.name, task.compute)];
  if (slot == nullptr) {
    slot = std::make_unique<Queue>();
    slot->batching = task.model->batching;
    slot->threads = std::make_unique<CallThreads>(
        options_.threads_per_executor,
        options_.adaptive_call_threads && task.model->batch_invariant);
    order_.push_back(slot.get());
  }
  Queue& queue = *slot;
  const Depth waiting = queue.depth[variant];
  if (waiting.tokens + task.tokens > queue.batching.max_queue_tokens && waiting.requests > 0) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the queue of ", variant.model, "/", variant.activation, " is full (", waiting.tokens,
        " tokens waiting, limit ", queue.batching.max_queue_tokens,
        "); retry later, or raise max_queue_tokens"));
  }
  queue.tokens += task.tokens;
  queued_tokens_ += task.tokens;
  AddDepth(queue, variant, task.tokens);
  queue.tasks.push_back(std::move(task));
  work_.Signal();
  return absl::OkStatus();
}

int64_t Scheduler::queued_tokens() const {
  absl::MutexLock lock(&mu_);
  return queued_tokens_;
}

void Scheduler::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_.SignalAll();
  }
  for (auto& executor : executors_) {
    if (executor.joinable()) executor.join();
  }
}

bool Scheduler::Ready(const Queue& queue, Clock::time_point now) const {
  if (queue.tasks.empty()) return false;
  if (stopping_ || queue.tokens >= queue.batching.max_batch_tokens) return true;
  const auto waited = now - queue.tasks.front().arrival;
  return waited >= std::chrono::microseconds(queue.batching.max_queue_delay_us);
}

void Scheduler::AddDepth(Queue& queue, const VariantKey& variant, int64_t tokens) {
  Depth& depth = queue.depth[variant];
  depth.requests += tokens > 0 ? 1 : -1;
  depth.tokens += tokens;
  stats_.SetQueueDepth(variant, depth.requests, depth.tokens);
}

bool Scheduler::NextBatch(Batch& batch, CallThreads*& threads, bool& backlog) {
  absl::MutexLock lock(&mu_);
  for (;;) {
    const auto now = Clock::now();
    Queue* chosen = nullptr;
    auto earliest = Clock::time_point::max();
    for (size_t i = 0; i < order_.size(); ++i) {
      Queue* queue = order_[(next_ + i) % order_.size()];
      if (Ready(*queue, now)) {
        chosen = queue;
        next_ = (next_ + i + 1) % order_.size();
        break;
      }
      if (!queue->tasks.empty()) {
        earliest = std::min(earliest, queue->tasks.front().arrival +
                                          std::chrono::microseconds(queue->batching.max_queue_delay_us));
      }
    }
    if (chosen != nullptr) {
      // Whole requests, oldest first, up to max_batch_tokens (at least one).
      int64_t tokens = 0;
      while (!chosen->tasks.empty()) {
        const int64_t next = chosen->tasks.front().tokens;
        if (!batch.empty() && tokens + next > chosen->batching.max_batch_tokens) break;
        tokens += next;
        InferTask& task = chosen->tasks.front();
        AddDepth(*chosen, VariantFor(*task.model, task.activation, task.compute), -next);
        batch.push_back(std::move(task));
        chosen->tasks.pop_front();
      }
      chosen->tokens -= tokens;
      queued_tokens_ -= tokens;
      threads = chosen->threads.get();
      backlog = queued_tokens_ > 0;
      return true;
    }
    if (stopping_) return false;  // nothing queued anywhere
    if (earliest == Clock::time_point::max()) {
      work_.Wait(&mu_);
    } else {
      work_.WaitWithTimeout(&mu_, absl::Nanoseconds(std::max<int64_t>(0, Nanos(earliest - now))));
    }
  }
}

void Scheduler::ExecutorLoop() {
  omp_set_num_threads(options_.threads_per_executor);
  Batch batch;
  CallThreads* threads = nullptr;
  bool backlog = false;
  int previous_threads = options_.threads_per_executor;  // of this executor's last engine call
  while (NextBatch(batch, threads, backlog)) {
    RunBatch(batch, *threads, backlog, previous_threads);
    batch.clear();
  }
}

void Scheduler::Finish(InferTask& task, const absl::Status& status, const RequestTimings& timings) {
  task.done(status, timings);
  task.done = nullptr;  // releases what the callback holds
}

void Scheduler::RunBatch(Batch& batch, CallThreads& threads, bool backlog, int& previous_threads) {
  const auto start = Clock::now();
  // Drop the requests nobody waits for any more, before any compute.
  const auto wall_now = std::chrono::system_clock::now();
  std::vector<InferTask*> live;
  live.reserve(batch.size());
  for (InferTask& task : batch) {
    absl::Status dropped;
    // The deadline first: gRPC reports a call past its deadline as cancelled
    // as well, and the deadline is what ended it.
    if (task.deadline <= wall_now) {
      dropped = absl::DeadlineExceededError(absl::StrCat(
          "the deadline passed while the request was queued (", Nanos(start - task.arrival) / 1000,
          " us in the queue)"));
    } else if (task.cancelled && task.cancelled()) {
      dropped = absl::CancelledError("the client cancelled the call while it was queued");
    }
    if (dropped.ok()) {
      live.push_back(&task);
    } else {
      Finish(task, dropped, {Nanos(start - task.arrival), 0, Nanos(start - task.arrival), 0});
    }
  }
  if (live.empty()) return;

  const Model& model = *live.front()->model;
  const Activation activation = live.front()->activation;
  const DataType compute = live.front()->compute;
  const int64_t d_model = model.config.d_model;
  int64_t tokens = 0;
  // Each run of requests with one activation is a segment of the call;
  // tokens per variant for the statistics.
  std::vector<ActivationSegment> segments;
  std::map<Activation, int64_t> variant_tokens;
  for (const InferTask* task : live) {
    tokens += task->tokens;
    variant_tokens[task->activation] += task->tokens;
    if (!segments.empty() && segments.back().activation == task->activation) {
      segments.back().rows += task->tokens;
    } else {
      segments.push_back({task->tokens, task->activation});
    }
  }

  // Mixture of experts: the batch's routing (the callers' where given, -1
  // for the router's), the routing used when a caller asks, the counters.
  const MoeWeights* moe = model.block->moe();
  MoeRouting given, used;
  MoeCounters counters;
  bool any_given = false, any_asks = false;
  if (moe != nullptr) {
    for (const InferTask* task : live) {
      any_given |= task->routing != nullptr;
      any_asks |= task->routing_out != nullptr;
    }
  }
  if (any_given) {
    // Only when some caller gave one: the others' rows are -1.
    const int64_t k = moe->top_k;
    given.top_k = k;
    given.ids.assign(static_cast<size_t>(tokens * k), -1);
    given.weights.assign(given.ids.size(), 0.0f);
    int64_t row = 0;
    for (const InferTask* task : live) {
      if (task->routing != nullptr) {
        std::copy(task->routing->expert_ids().begin(), task->routing->expert_ids().end(),
                  given.ids.begin() + row * k);
        std::copy(task->routing->expert_weights().begin(), task->routing->expert_weights().end(),
                  given.weights.begin() + row * k);
      }
      row += task->tokens;
    }
  }
  const auto with_moe = [&](FfnRun& run) {
    if (moe == nullptr) return;
    if (any_given) run.routing = &given;
    if (any_asks) run.routing_out = &used;
    run.counters = &counters;
  };

  // The engine call, on the thread count chosen for its size, timed for
  // that choice (the engine alone: no copying, no debug delay).
  int call_threads = options_.threads_per_executor;
  const auto run_engine = [&](const FfnRun& run) {
    const CallThreads::Choice choice = threads.Choose(tokens, backlog, previous_threads);
    call_threads = previous_threads = choice.threads;
    omp_set_num_threads(call_threads);
    const auto engine_start = Clock::now();
    absl::Status s = model.block->Run(run);
    const int64_t engine_ns = Nanos(Clock::now() - engine_start);
    omp_set_num_threads(options_.threads_per_executor);
    if (s.ok() && choice.timed) threads.Record(tokens, call_threads, engine_ns);
    return s;
  };

  absl::Status status;
  if (live.size() == 1) {
    // One request: the engine reads its bytes and writes its answer in place.
    const InferTask& task = *live.front();
    FfnRun run{activation, compute, task.input, task.input_type, tokens, task.output, task.output_type};
    run.batch_invariant = model.batch_invariant;
    with_moe(run);
    status = run_engine(run);
  } else {
    // Rows of every request stacked in fp32 (bf16 inputs widen exactly); the
    // engine converts to the compute dtype once for the whole batch.
    thread_local std::vector<float> batch_in, batch_out;
    const size_t size = static_cast<size_t>(tokens * d_model);
    if (batch_in.size() < size) {
      batch_in.resize(size);
      batch_out.resize(size);
    }
    size_t offset = 0;
    for (const InferTask* task : live) {
      const size_t n = static_cast<size_t>(task->tokens * d_model);
      CopyConverting(task->input, task->input_type, batch_in.data() + offset, DataType::kF32, n);
      offset += n;
    }
    FfnRun run{activation, compute, batch_in.data(), DataType::kF32, tokens, batch_out.data(),
               DataType::kF32};
    run.batch_invariant = model.batch_invariant;
    if (segments.size() > 1) run.segments = segments;
    with_moe(run);
    status = run_engine(run);
    if (status.ok()) {
      offset = 0;
      for (InferTask* task : live) {
        const size_t n = static_cast<size_t>(task->tokens * d_model);
        CopyConverting(batch_out.data() + offset, DataType::kF32, task->output, task->output_type, n);
        offset += n;
      }
    }
  }
  if (model.config.debug_delay_us > 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(model.config.debug_delay_us));
  }
  const auto end = Clock::now();
  if (status.ok()) {
    // Every variant in the batch: the batch's size, and its own share of the
    // work and of the compute time.
    const int64_t compute_ns = Nanos(end - start);
    for (const auto& [variant_activation, n] : variant_tokens) {
      stats_.RecordBatch(VariantFor(model, variant_activation, compute), tokens,
                         model.block->Flops(n), compute_ns * n / tokens, compute_ns, call_threads);
    }
    if (moe != nullptr) {
      stats_.RecordExperts(model.config.name, counters);
      // Each caller that asked gets its own tokens' routing.
      const int64_t k = moe->top_k;
      int64_t row = 0;
      for (InferTask* task : live) {
        if (task->routing_out != nullptr && used.ids.size() == static_cast<size_t>(tokens * k)) {
          task->routing_out->mutable_expert_ids()->Assign(used.ids.begin() + row * k,
                                                          used.ids.begin() + (row + task->tokens) * k);
          task->routing_out->mutable_expert_weights()->Assign(
              used.weights.begin() + row * k, used.weights.begin() + (row + task->tokens) * k);
        }
        row += task->tokens;
      }
    }
  }
  for (InferTask* task : live) {
    Finish(*task, status,
           {Nanos(start - task->arrival), Nanos(end - start), Nanos(end - task->arrival), tokens});
  }
}

}  // namespace ffn
