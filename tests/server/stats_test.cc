// ServerStats under concurrent recorders and readers, in-process (no gRPC
// threads): every count adds up, and the TSan build sees the locking.
#include "ffn/server/stats.h"

#include <thread>
#include <vector>

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

}  // namespace
}  // namespace ffn
