// Scheduler: per-model queues, token-level dynamic batching, executors.
//
// Every (model, compute dtype) has one queue, shared by all its activations:
// requests of different variants share both matmuls, and each row segment
// keeps its own activation (FfnRun::segments). Each variant's share of a
// queue is bounded by max_queue_tokens. Each executor thread picks the next
// ready queue in round-robin order (so no model starves), takes requests
// from it oldest first until their tokens would exceed max_batch_tokens,
// concatenates their rows along M (an FFN is position-wise: no padding),
// runs one engine call and slices the answer back into each request's
// output; the call runs on the thread count its queue's CallThreads picks
// for its size and the load (batch-invariant models; others on all of the
// executor's).
// A queue is ready when it holds max_batch_tokens tokens, when its
// oldest request has waited max_queue_delay_us, or at once when that delay
// is 0.
//
// Example:
//   ffn::ServerStats stats(/*window_seconds=*/10);
//   ffn::Scheduler scheduler(ffn::SchedulerOptions{}, stats);
//   ffn::InferTask task;  // its model, tokens, buffers and done callback filled in
//   RETURN_IF_ERROR(scheduler.Submit(std::move(task)));  // task.done runs later
//   scheduler.Shutdown();                                 // runs what is queued
#ifndef FFN_SERVER_SCHEDULER_H_
#define FFN_SERVER_SCHEDULER_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/stats.h"
#include "ffn/server/variant_key.h"

namespace ffn {

class CallThreads;

// One request waiting for compute. `input` and `output` ([tokens, d_model]
// of their types) belong to the caller and must stay valid until `done` runs.
struct InferTask {
  const Model* model = nullptr;
  Activation activation = Activation::kRelu;
  DataType compute = DataType::kF32;
  int64_t tokens = 0;
  const void* input = nullptr;
  DataType input_type = DataType::kF32;
  void* output = nullptr;
  DataType output_type = DataType::kF32;
  // Mixture-of-experts models: the caller's routing (null: the router's),
  // and where to answer with the routing used (null: not asked). Both stay
  // valid until `done` has run.
  const v1::Routing* routing = nullptr;
  v1::Routing* routing_out = nullptr;
  std::chrono::steady_clock::time_point arrival;
  // The client's deadline; a task still queued past it is not computed.
  std::chrono::system_clock::time_point deadline = std::chrono::system_clock::time_point::max();
  // True once the client has gone; a cancelled task is not computed.
  std::function<bool()> cancelled;
  // Runs exactly once on an executor thread: OK with the output written, or
  // DEADLINE_EXCEEDED, CANCELLED or the engine's error.
  std::function<void(const absl::Status&, const RequestTimings&)> done;
};

// The variant a task belongs to: (model, activation, compute dtype).
VariantKey VariantFor(const Model& model, Activation activation, DataType compute);

struct SchedulerOptions {
  int executors = 1;
  int threads_per_executor = 1;  // OpenMP threads of each executor
  // Batch-invariant models' calls taken with nothing else waiting run on
  // the thread count CallThreads learns is fastest for their size; false:
  // always threads_per_executor.
  bool adaptive_call_threads = true;
};

class Scheduler {
 public:
  // Starts the executor threads; reports to `stats`.
  Scheduler(const SchedulerOptions& options, ServerStats& stats);
  ~Scheduler();  // Shutdown()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues `task` under its model and compute dtype. RESOURCE_EXHAUSTED if
  // its variant's queued tokens would exceed the model's max_queue_tokens,
  // UNAVAILABLE after Shutdown(); the task is then not queued and `done`
  // never runs.
  absl::Status Submit(InferTask task) ABSL_LOCKS_EXCLUDED(mu_);

  // Tokens and requests waiting in all queues.
  int64_t queued_tokens() const ABSL_LOCKS_EXCLUDED(mu_);

  // Stops accepting tasks, computes every queued one, joins the executors.
  // Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // What one variant has waiting in a queue.
  struct Depth {
    int64_t requests = 0, tokens = 0;
  };
  struct Queue {
    BatchingSettings batching;
    std::unique_ptr<CallThreads> threads;
    std::deque<InferTask> tasks;
    int64_t tokens = 0;
    std::map<VariantKey, Depth> depth;
  };
  using QueueKey = std::pair<std::string, DataType>;  // (model, compute dtype)
  using Batch = std::vector<InferTask>;

  void ExecutorLoop();
  // The next batch to run, its queue's thread chooser and whether other
  // requests are still waiting, or false when shut down and drained.
  bool NextBatch(Batch& batch, CallThreads*& threads, bool& backlog) ABSL_LOCKS_EXCLUDED(mu_);
  bool Ready(const Queue& queue, std::chrono::steady_clock::time_point now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `batch` on the thread count `threads` chooses for its size and
  // `backlog`; `previous_threads`: this executor's last engine call's, updated.
  void RunBatch(Batch& batch, CallThreads& threads, bool backlog, int& previous_threads);
  void Finish(InferTask& task, const absl::Status& status, const RequestTimings& timings);
  // Counts `tokens` of one request of `variant` into (or, negative, out of)
  // the queue's depth, and publishes it.
  void AddDepth(Queue& queue, const VariantKey& variant, int64_t tokens)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SchedulerOptions options_;
  ServerStats& stats_;
  mutable absl::Mutex mu_;
  absl::CondVar work_;
  std::map<QueueKey, std::unique_ptr<Queue>> queues_ ABSL_GUARDED_BY(mu_);
  std::vector<Queue*> order_ ABSL_GUARDED_BY(mu_);  // round-robin order
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t queued_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> executors_;
};

}  // namespace ffn

#endif  // FFN_SERVER_SCHEDULER_H_
