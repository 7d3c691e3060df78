// Executor: jobs run in order on its own thread, the queue is bounded, and
// shutdown runs what was accepted.
#include "ffn/server/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "absl/synchronization/notification.h"

namespace ffn {
namespace {

TEST(ExecutorTest, RunsJobsInOrderOffTheCallingThread) {
  Executor executor(1, 16);
  std::vector<int> order;
  absl::Mutex mu;
  std::atomic<bool> other_thread{true};
  const auto caller = std::this_thread::get_id();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(executor.Submit([i, &order, &mu, &other_thread, caller] {
      if (std::this_thread::get_id() == caller) other_thread = false;
      absl::MutexLock lock(&mu);
      order.push_back(i);
    }).ok());
  }
  executor.Shutdown();
  EXPECT_TRUE(other_thread);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(ExecutorTest, FullQueueIsResourceExhausted) {
  Executor executor(1, 2);
  absl::Notification running, release;
  ASSERT_TRUE(executor.Submit([&] {
    running.Notify();
    release.WaitForNotification();
  }).ok());
  running.WaitForNotification();  // the first job left the queue
  std::atomic<int> ran{0};
  EXPECT_TRUE(executor.Submit([&] { ++ran; }).ok());
  EXPECT_TRUE(executor.Submit([&] { ++ran; }).ok());
  EXPECT_EQ(executor.queued(), 2);
  absl::Status full = executor.Submit([&] { ++ran; });
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(full.message()).find("queue is full (2 requests waiting)"), std::string::npos);
  release.Notify();
  executor.Shutdown();
  EXPECT_EQ(ran.load(), 2);
}

TEST(ExecutorTest, SubmitAfterShutdownIsUnavailable) {
  Executor executor(1, 4);
  executor.Shutdown();
  EXPECT_EQ(executor.Submit([] {}).code(), absl::StatusCode::kUnavailable);
  executor.Shutdown();  // idempotent
}

}  // namespace
}  // namespace ffn
