// Scheduler: batching, slicing, order, limits, delay, deadlines,
// cancellation, fairness and drain, with real (tiny) models.
#include "ffn/server/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "ffn/server/config.h"
#include "ffn/server/model_registry.h"

namespace ffn {
namespace {

using Clock = std::chrono::steady_clock;

// A registry with one fast and one slow (debug_delay_us) plain model.
std::unique_ptr<ModelRegistry> Registry(const std::string& batching, int64_t slow_delay_us = 100000) {
  const std::string yaml = R"(
server: {)" + batching + R"(}
models:
  - {name: fast, d_model: 16, d_ff: 40, activation: gelu, weights: {random: {seed: 5}}}
  - {name: slow, d_model: 16, d_ff: 40, activation: gelu, debug_delay_us: )" +
                           std::to_string(slow_delay_us) + R"(, weights: {random: {seed: 6}}}
)";
  auto config = ParseConfig(yaml, "");
  EXPECT_TRUE(config.ok()) << config.status();
  auto registry = ModelRegistry::Load(*config);
  EXPECT_TRUE(registry.ok()) << registry.status();
  return std::move(*registry);
}

// One request with its own buffers and what happened to it.
struct Request {
  std::vector<float> input, output;
  absl::Status status = absl::UnknownError("not done");
  RequestTimings timings;
  int finish_order = -1;
  absl::Notification done;
};

class SchedulerTest : public ::testing::Test {
 protected:
  Request* Make(int64_t tokens, int64_t d_model = 16, uint64_t seed = 1) {
    auto r = std::make_unique<Request>();
    r->input.resize(static_cast<size_t>(tokens * d_model));
    r->output.assign(r->input.size(), -123.0f);
    FillUniform(seed, RandomStream::kInput, kRandomInputScale, r->input);
    requests_.push_back(std::move(r));
    return requests_.back().get();
  }
  InferTask Task(const Model* model, Request* r, Activation activation = Activation::kGelu) {
    InferTask task;
    task.model = model;
    task.activation = activation;
    task.tokens = static_cast<int64_t>(r->input.size()) / model->config.d_model;
    task.input = r->input.data();
    task.output = r->output.data();
    task.arrival = Clock::now();
    task.done = [this, r](const absl::Status& status, const RequestTimings& timings) {
      r->status = status;
      r->timings = timings;
      r->finish_order = finished_.fetch_add(1);
      r->done.Notify();
    };
    return task;
  }
  // The answer the engine gives for `r` alone, as the scheduler runs it.
  static std::vector<float> Alone(const Model* model, const Request* r, Activation activation) {
    std::vector<float> y(r->input.size());
    FfnRun run{activation, DataType::kF32, r->input.data(), DataType::kF32,
               static_cast<int64_t>(r->input.size()) / model->config.d_model, y.data(),
               DataType::kF32};
    run.batch_invariant = model->batch_invariant;
    EXPECT_TRUE(model->block->Run(run).ok());
    return y;
  }
  // Waits until the executors have taken everything queued.
  static void WaitUntilTaken(const Scheduler& scheduler) {
    while (scheduler.queued_tokens() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  std::vector<std::unique_ptr<Request>> requests_;
  std::atomic<int> finished_{0};
  ServerStats stats_{10};
};

TEST_F(SchedulerTest, ConcatenatesRequestsAndSlicesTheAnswerBack) {
  // The batch closes when it holds max_batch_tokens: 1 + 2 + 3 + 4 = 10.
  auto registry = Registry("max_batch_tokens: 10, max_queue_delay_us: 5000000");
  const Model* fast = registry->Find("fast");
  Scheduler scheduler({1, 1}, stats_);
  std::vector<Request*> batch;
  for (int64_t tokens : {1, 2, 3, 4}) {
    batch.push_back(Make(tokens, 16, static_cast<uint64_t>(tokens)));
    ASSERT_TRUE(scheduler.Submit(Task(fast, batch.back())).ok());
  }
  for (Request* r : batch) {
    ASSERT_TRUE(r->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    ASSERT_TRUE(r->status.ok()) << r->status;
    EXPECT_EQ(r->timings.batch_tokens, 10);
    // Batched rows give the same answer as the request alone (row-wise op).
    const std::vector<float> alone = Alone(fast, r, Activation::kGelu);
    for (size_t i = 0; i < alone.size(); ++i) ASSERT_NEAR(r->output[i], alone[i], 1e-5f) << i;
  }
  v1::GetStatsResponse stats = stats_.Snapshot();
  ASSERT_EQ(stats.variants_size(), 1);
  EXPECT_EQ(stats.variants(0).batches(), 1u);
  EXPECT_DOUBLE_EQ(stats.variants(0).batch_tokens().max(), 10);
}

TEST_F(SchedulerTest, NeverExceedsMaxBatchTokensAndKeepsOrder) {
  auto registry = Registry("max_batch_tokens: 4");
  const Model* slow = registry->Find("slow");  // 100 ms per batch: the rest queue up
  Scheduler scheduler({1, 1}, stats_);
  std::vector<Request*> all;
  for (int i = 0; i < 5; ++i) {
    all.push_back(Make(3, 16, static_cast<uint64_t>(i)));
    ASSERT_TRUE(scheduler.Submit(Task(slow, all.back())).ok());
  }
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(all[i]->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    ASSERT_TRUE(all[i]->status.ok());
    EXPECT_EQ(all[i]->timings.batch_tokens, 3) << "3 + 3 > 4: one request per batch";
    EXPECT_EQ(all[i]->finish_order, i) << "first in, first out";
  }
}

TEST_F(SchedulerTest, OversizedRequestRunsAlone) {
  auto registry = Registry("max_batch_tokens: 2");
  Scheduler scheduler({1, 1}, stats_);
  Request* big = Make(7);
  ASSERT_TRUE(scheduler.Submit(Task(registry->Find("fast"), big)).ok());
  ASSERT_TRUE(big->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_TRUE(big->status.ok());
  EXPECT_EQ(big->timings.batch_tokens, 7);
}

TEST_F(SchedulerTest, SmallBatchWaitsForTheQueueDelay) {
  auto registry = Registry("max_batch_tokens: 100, max_queue_delay_us: 80000");
  Scheduler scheduler({1, 1}, stats_);
  Request* r = Make(1);
  ASSERT_TRUE(scheduler.Submit(Task(registry->Find("fast"), r)).ok());
  ASSERT_TRUE(r->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_GE(r->timings.queue_ns, 80'000'000);
}

TEST_F(SchedulerTest, ExpiredAndCancelledRequestsAreNotComputed) {
  auto registry = Registry("");
  const Model* slow = registry->Find("slow");
  Scheduler scheduler({1, 1}, stats_);
  Request* first = Make(1);
  ASSERT_TRUE(scheduler.Submit(Task(slow, first)).ok());
  WaitUntilTaken(scheduler);  // the executor is busy for 100 ms
  Request* expiring = Make(1);
  InferTask expiring_task = Task(slow, expiring);
  expiring_task.deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(10);
  // gRPC marks a call whose deadline passed as cancelled too: the deadline
  // is what ended it, and DEADLINE_EXCEEDED is what metrics must count.
  expiring_task.cancelled = [deadline = expiring_task.deadline] {
    return std::chrono::system_clock::now() >= deadline;
  };
  ASSERT_TRUE(scheduler.Submit(std::move(expiring_task)).ok());
  Request* cancelled = Make(1);
  InferTask cancelled_task = Task(slow, cancelled);
  cancelled_task.cancelled = [] { return true; };
  ASSERT_TRUE(scheduler.Submit(std::move(cancelled_task)).ok());
  for (Request* r : {first, expiring, cancelled}) {
    ASSERT_TRUE(r->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  }
  EXPECT_TRUE(first->status.ok());
  EXPECT_EQ(expiring->status.code(), absl::StatusCode::kDeadlineExceeded) << expiring->status;
  EXPECT_EQ(cancelled->status.code(), absl::StatusCode::kCancelled) << cancelled->status;
  // Untouched: never computed.
  EXPECT_EQ(expiring->output[0], -123.0f);
  EXPECT_EQ(cancelled->output[0], -123.0f);
}

TEST_F(SchedulerTest, FullQueueIsResourceExhaustedAndRecovers) {
  auto registry = Registry("max_batch_tokens: 1, max_queue_tokens: 4");
  const Model* slow = registry->Find("slow");
  Scheduler scheduler({1, 1}, stats_);
  Request* running = Make(1);
  ASSERT_TRUE(scheduler.Submit(Task(slow, running)).ok());
  WaitUntilTaken(scheduler);
  Request* a = Make(2);
  Request* b = Make(2);
  ASSERT_TRUE(scheduler.Submit(Task(slow, a)).ok());
  ASSERT_TRUE(scheduler.Submit(Task(slow, b)).ok());
  Request* refused = Make(1);
  absl::Status full = scheduler.Submit(Task(slow, refused));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(full.message()).find("slow/gelu is full (4 tokens waiting, limit 4)"),
            std::string::npos)
      << full;
  for (Request* r : {running, a, b}) {
    ASSERT_TRUE(r->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    EXPECT_TRUE(r->status.ok());
  }
  Request* later = Make(2);
  EXPECT_TRUE(scheduler.Submit(Task(slow, later)).ok()) << "room again once drained";
  ASSERT_TRUE(later->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

TEST_F(SchedulerTest, ModelsTakeTurns) {
  auto registry = Registry("max_batch_tokens: 1");
  const Model* slow = registry->Find("slow");
  Scheduler scheduler({1, 1}, stats_);
  std::vector<Request*> flood;
  flood.push_back(Make(1));
  ASSERT_TRUE(scheduler.Submit(Task(slow, flood.back(), Activation::kRelu)).ok());
  WaitUntilTaken(scheduler);
  for (int i = 0; i < 5; ++i) {
    flood.push_back(Make(1));
    ASSERT_TRUE(scheduler.Submit(Task(slow, flood.back(), Activation::kRelu)).ok());
  }
  Request* other = Make(1);
  ASSERT_TRUE(scheduler.Submit(Task(registry->Find("fast"), other, Activation::kSilu)).ok());
  ASSERT_TRUE(other->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  // Served right after the slow batch that was running, or the one after it,
  // not behind all five queued slow requests.
  EXPECT_LE(other->finish_order, 2);
  for (Request* r : flood) ASSERT_TRUE(r->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

TEST_F(SchedulerTest, ActivationsOfOneModelShareABatch) {
  // relu, silu, gelu, relu requests close one batch of 1 + 2 + 3 + 4 = 10.
  auto registry = Registry("max_batch_tokens: 10, max_queue_delay_us: 5000000");
  const Model* fast = registry->Find("fast");
  Scheduler scheduler({1, 1}, stats_);
  const Activation activations[] = {Activation::kRelu, Activation::kSilu, Activation::kGelu,
                                    Activation::kRelu};
  std::vector<Request*> batch;
  for (int64_t i = 0; i < 4; ++i) {
    batch.push_back(Make(i + 1, 16, static_cast<uint64_t>(i)));
    ASSERT_TRUE(scheduler.Submit(Task(fast, batch.back(), activations[i])).ok());
  }
  for (int64_t i = 0; i < 4; ++i) {
    Request* r = batch[static_cast<size_t>(i)];
    ASSERT_TRUE(r->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    ASSERT_TRUE(r->status.ok()) << r->status;
    EXPECT_EQ(r->timings.batch_tokens, 10);
    // Each request's rows ran its own activation, with the bits it gets
    // alone (the model is batch-invariant).
    EXPECT_EQ(r->output, Alone(fast, r, activations[i])) << ActivationName(activations[i]);
  }
  // Statistics stay per variant: every variant saw the batch of 10, and the
  // flops split by tokens (relu 1 + 4 of the 10).
  v1::GetStatsResponse stats = stats_.Snapshot();
  ASSERT_EQ(stats.variants_size(), 3);
  for (const v1::VariantStats& v : stats.variants()) {
    EXPECT_EQ(v.batches(), 1u) << v.variant().activation();
    EXPECT_DOUBLE_EQ(v.batch_tokens().max(), 10) << v.variant().activation();
  }
}

TEST_F(SchedulerTest, ShutdownComputesWhatIsQueuedThenRefuses) {
  auto registry = Registry("max_batch_tokens: 1");
  const Model* slow = registry->Find("slow");
  Scheduler scheduler({1, 1}, stats_);
  std::vector<Request*> queued;
  for (int i = 0; i < 3; ++i) {
    queued.push_back(Make(1));
    ASSERT_TRUE(scheduler.Submit(Task(slow, queued.back())).ok());
  }
  scheduler.Shutdown();
  for (Request* r : queued) {
    ASSERT_TRUE(r->done.HasBeenNotified());
    EXPECT_TRUE(r->status.ok());
  }
  EXPECT_EQ(scheduler.Submit(Task(slow, Make(1))).code(), absl::StatusCode::kUnavailable);
}

TEST_F(SchedulerTest, SeveralExecutorsRunBatchesAtOnce) {
  auto registry = Registry("max_batch_tokens: 1", /*slow_delay_us=*/200000);
  const Model* slow = registry->Find("slow");
  Scheduler scheduler({2, 1}, stats_);
  const auto start = Clock::now();
  std::vector<Request*> four;
  for (int i = 0; i < 4; ++i) {
    four.push_back(Make(1));
    ASSERT_TRUE(scheduler.Submit(Task(slow, four.back())).ok());
  }
  for (Request* r : four) ASSERT_TRUE(r->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  // Four 200 ms batches on two executors: about 400 ms, never 800.
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(750));
}

}  // namespace
}  // namespace ffn
