// ServerStats under concurrent recorders and readers, in-process (no gRPC
// threads): every count adds up, and the TSan build sees the locking.
#include "ffn/server/stats.h"

#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace ffn {
namespace {

TEST(ServerStatsTest, ConcurrentRecordsAndSnapshotsAddUp) {
  ServerStats stats(10);
  const VariantKey a{"m", "gelu", DataType::kF32}, b{"m", "relu", DataType::kBf16};
  constexpr int kThreads = 4, kEach = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&stats, &a, &b, t] {
      for (int i = 0; i < kEach; ++i) {
        const VariantKey& v = (i + t) % 2 == 0 ? a : b;
        stats.RecordCallStarted();
        stats.RecordSuccess(v, 3, {1000, 2000, 3500, 6});
        stats.RecordBatch(v, 6, 1e6, 2000);
        if (i % 10 == 0) stats.RecordError(v, absl::StatusCode::kResourceExhausted);
        if (i % 100 == 0) stats.RecordRejected(absl::StatusCode::kNotFound);
        stats.SetQueueDepth(v, i % 7, 3 * (i % 7));
        stats.RecordCallEnded(i % 50 == 0);
      }
    });
  }
  // A reader snapshotting all along, as GetStats and the drain log do.
  std::thread reader([&stats] {
    for (int i = 0; i < 200; ++i) {
      const v1::GetStatsResponse s = stats.Snapshot();
      for (const auto& v : s.variants()) EXPECT_LE(v.errors(), v.requests() / 5 + 10);
    }
  });
  for (auto& thread : threads) thread.join();
  reader.join();
  const v1::GetStatsResponse s = stats.Snapshot();
  ASSERT_EQ(s.variants_size(), 2);
  uint64_t requests = 0, tokens = 0, errors = 0, queue_full = 0, batches = 0;
  for (const auto& v : s.variants()) {
    requests += v.requests();
    tokens += v.tokens();
    errors += v.errors();
    queue_full += v.rejected_queue_full();
    batches += v.batches();
  }
  EXPECT_EQ(requests, uint64_t{kThreads} * kEach);
  EXPECT_EQ(tokens, 3 * requests);
  EXPECT_EQ(errors, uint64_t{kThreads} * kEach / 10);
  EXPECT_EQ(queue_full, errors);
  EXPECT_EQ(batches, requests);
  EXPECT_EQ(s.rejected_requests(), uint64_t{kThreads} * kEach / 100);
}

TEST(ServerStatsTest, BatchSizesComeInPowerOfTwoBucketsOrExactly) {
  ServerStats stats(10);
  const VariantKey v{"m", "gelu", DataType::kF32};
  stats.RecordBatch(v, 1, 1, 1000);
  stats.RecordBatch(v, 5, 1, 3000, -1, /*threads=*/1);
  stats.RecordBatch(v, 7, 1, 5000, -1, /*threads=*/2);
  stats.RecordBatch(v, 7, 1, 2000, 7000, /*threads=*/2);  // a share of 2 of a 7000 ns call
  stats.RecordBatch(v, 512, 1, 90000);
  const v1::VariantStats buckets = stats.Snapshot().variants(0);
  ASSERT_EQ(buckets.batch_sizes_size(), 3);
  EXPECT_EQ(buckets.batch_sizes(0).tokens_from(), 1);
  EXPECT_EQ(buckets.batch_sizes(0).tokens_to(), 1);
  EXPECT_EQ(buckets.batch_sizes(1).tokens_from(), 4);
  EXPECT_EQ(buckets.batch_sizes(1).tokens_to(), 7);
  EXPECT_EQ(buckets.batch_sizes(1).batches(), 3u);
  EXPECT_DOUBLE_EQ(buckets.batch_sizes(1).mean_tokens(), 19.0 / 3);
  EXPECT_DOUBLE_EQ(buckets.batch_sizes(1).compute_mean_us(), 5.0);
  EXPECT_DOUBLE_EQ(buckets.batch_sizes(1).mean_threads(), 5.0 / 3);
  EXPECT_EQ(buckets.batch_sizes(0).mean_threads(), 0);  // not said
  EXPECT_EQ(buckets.batch_sizes(2).tokens_from(), 512);
  EXPECT_EQ(buckets.batch_sizes(2).tokens_to(), 1023);
  EXPECT_EQ(buckets.batch_sizes(2).planned_us(), 0);  // stats know no plan
  const v1::VariantStats exact = stats.Snapshot(/*exact_batch_sizes=*/true).variants(0);
  ASSERT_EQ(exact.batch_sizes_size(), 4);
  EXPECT_EQ(exact.batch_sizes(2).tokens_from(), 7);
  EXPECT_EQ(exact.batch_sizes(2).tokens_to(), 7);
  EXPECT_EQ(exact.batch_sizes(2).batches(), 2u);
  EXPECT_DOUBLE_EQ(exact.batch_sizes(2).compute_mean_us(), 6.0);
  EXPECT_EQ(exact.last_success_unix_ms(), 0);  // batches alone are not answers
  stats.RecordSuccess(v, 1, {});
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  EXPECT_LE(stats.Snapshot().variants(0).last_success_unix_ms(), now_ms);
  EXPECT_GT(stats.Snapshot().variants(0).last_success_unix_ms(), now_ms - 60000);
}

}  // namespace
}  // namespace ffn
