// Executor: the server's own compute thread and its bounded job queue.
//
// gRPC's threads only validate and enqueue; every engine call runs on an
// executor thread, one job at a time, with `omp_threads` OpenMP threads for
// oneDNN and the activation pass inside the job.
#ifndef FFN_SERVER_EXECUTOR_H_
#define FFN_SERVER_EXECUTOR_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace ffn {

class Executor {
 public:
  // Starts the compute thread. `max_queue` bounds the jobs waiting to run.
  Executor(int omp_threads, int64_t max_queue);
  ~Executor();  // Shutdown()
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `job`. RESOURCE_EXHAUSTED when max_queue jobs are already waiting,
  // UNAVAILABLE after Shutdown() started; the job is not run then.
  absl::Status Submit(std::function<void()> job) ABSL_LOCKS_EXCLUDED(mu_);
  // Jobs waiting now.
  int64_t queued() const ABSL_LOCKS_EXCLUDED(mu_);
  // Stops accepting jobs, runs every job already queued, joins the thread.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop(int omp_threads);

  const int64_t max_queue_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace ffn

#endif  // FFN_SERVER_EXECUTOR_H_
