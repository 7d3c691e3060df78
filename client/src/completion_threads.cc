#include "completion_threads.h"

#include <algorithm>

namespace ffn::client {

CompletionThreads::CompletionThreads(int count, std::function<void(void* tag, bool ok)> on_done)
    : on_done_(std::move(on_done)) {
  for (int i = 0; i < count; ++i) queues_.push_back(std::make_unique<grpc::CompletionQueue>());
  for (auto& queue : queues_) {
    threads_.emplace_back([this, q = queue.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (q->Next(&tag, &ok)) on_done_(tag, ok);
    });
  }
}

CompletionThreads::~CompletionThreads() { Shutdown(); }

void CompletionThreads::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  for (auto& queue : queues_) queue->Shutdown();
  for (std::thread& thread : threads_) thread.join();
}

int DefaultCompletionThreads() {
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
}

}  // namespace ffn::client
