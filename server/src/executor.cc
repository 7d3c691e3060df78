#include "ffn/server/executor.h"

#include <omp.h>

#include "absl/strings/str_cat.h"

namespace ffn {

Executor::Executor(int omp_threads, int64_t max_queue)
    : max_queue_(max_queue), thread_([this, omp_threads] { Loop(omp_threads); }) {}

Executor::~Executor() { Shutdown(); }

absl::Status Executor::Submit(std::function<void()> job) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("server is shutting down");
  if (static_cast<int64_t>(queue_.size()) >= max_queue_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "server queue is full (", max_queue_, " requests waiting); retry later or raise "
        "server.max_queue_requests"));
  }
  queue_.push_back(std::move(job));
  return absl::OkStatus();
}

int64_t Executor::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

void Executor::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Executor::Loop(int omp_threads) {
  omp_set_num_threads(omp_threads);
  for (;;) {
    std::function<void()> job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Executor* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
            return e->stopping_ || !e->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping and drained
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
  }
}

}  // namespace ffn
