// MemoryBudget: reservations up to the capacity, released on destruction,
// never more than the capacity held under concurrent reservers.
#include "ffn/server/memory_budget.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ffn {
namespace {

using ::testing::HasSubstr;

TEST(MemoryBudgetTest, ReservesUpToTheCapacityAndReleasesOnDestruction) {
  MemoryBudget budget(100);
  {
    auto a = budget.Reserve(60);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(budget.held_bytes(), 60);
    auto b = budget.Reserve(41);
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(std::string(b.status().message()),
                HasSubstr("holds 60 bytes for requests in flight; this one needs 41 more and the "
                          "budget (max_inflight_bytes) is 100"));
    auto c = budget.Reserve(40);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(budget.held_bytes(), 100);
    MemoryBudget::Reservation moved = std::move(*c);
    EXPECT_EQ(moved.bytes(), 40);
    EXPECT_EQ(budget.held_bytes(), 100);  // a move hands over, releases nothing
  }
  EXPECT_EQ(budget.held_bytes(), 0);
  EXPECT_FALSE(budget.Reserve(101).ok());  // more than the whole budget: never
  EXPECT_TRUE(budget.Reserve(100).ok());
  EXPECT_EQ(budget.granted(), 3);  // a, c and the last; refusals are not counted
}

TEST(MemoryBudgetTest, ConcurrentReserversNeverExceedTheCapacity) {
  MemoryBudget budget(1000);
  std::atomic<int64_t> peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&budget, &peak] {
      for (int i = 0; i < 20000; ++i) {
        auto r = budget.Reserve(1 + i % 300);
        const int64_t held = budget.held_bytes();
        int64_t seen = peak.load();
        while (held > seen && !peak.compare_exchange_weak(seen, held)) {
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_LE(peak.load(), 1000);
  EXPECT_EQ(budget.held_bytes(), 0);
}

}  // namespace
}  // namespace ffn
