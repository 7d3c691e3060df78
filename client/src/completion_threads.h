// Internal to the load generator: gRPC completion queues and the threads
// that drain them. An operation started on Queue(n) with tag T completes as
// `on_done(T, ok)` on that queue's thread (unary Finish: ok is always true,
// the call's status says how it went; streams: ok false when it failed).
//
// Why not gRPC's callback API: a callback may run inline, inside the call
// that started it (a call that fails at once, as to a dead target), which a
// closed loop sending its next call from the callback turns into unbounded
// recursion. Here completions arrive only on these threads, and Shutdown()
// ends them cleanly. (The CPU cost per call measured the same both ways.)
#ifndef FFN_CLIENT_SRC_COMPLETION_THREADS_H_
#define FFN_CLIENT_SRC_COMPLETION_THREADS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "grpcpp/completion_queue.h"

namespace ffn::client {

class CompletionThreads {
 public:
  // `count` queues, each drained by its own thread calling on_done(tag, ok).
  CompletionThreads(int count, std::function<void(void* tag, bool ok)> on_done);
  // Shutdown().
  ~CompletionThreads();

  grpc::CompletionQueue* Queue(uint64_t n) { return queues_[n % queues_.size()].get(); }

  // Shuts the queues down and joins the threads once every started call has
  // completed. Call it only when no new call can start. Idempotent.
  void Shutdown();

 private:
  std::function<void(void*, bool)> on_done_;
  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues_;
  std::vector<std::thread> threads_;
  bool shut_down_ = false;
};

// Completion threads for a load run: one per core, at most 4, at least 1.
int DefaultCompletionThreads();

}  // namespace ffn::client

#endif  // FFN_CLIENT_SRC_COMPLETION_THREADS_H_
