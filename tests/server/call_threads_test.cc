// CallThreads against synthetic engine times: which thread count it picks
// per size, how often it explores the others, and how it follows a change.
#include "call_threads.h"

#include <cstdint>
#include <functional>
#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ffn {
namespace {

using ::testing::ElementsAre;

// Runs `calls` calls of `tokens` tokens as one idle executor would, each taking
// cost(threads, the previous call's threads) ns and recorded when the choice
// says so; returns how many ran on each thread count.
std::map<int, int> Serve(CallThreads& threads, int64_t tokens, int calls,
                         const std::function<int64_t(int, int)>& cost, int* previous) {
  std::map<int, int> ran;
  for (int i = 0; i < calls; ++i) {
    const CallThreads::Choice choice = threads.Choose(tokens, /*backlog=*/false, *previous);
    ++ran[choice.threads];
    if (choice.timed) threads.Record(tokens, choice.threads, cost(choice.threads, *previous));
    *previous = choice.threads;
  }
  return ran;
}

// The same where a call's time depends on its thread count only.
std::map<int, int> Serve(CallThreads& threads, int64_t tokens, int calls,
                         const std::function<int64_t(int)>& cost) {
  int previous = threads.candidates().back();
  return Serve(threads, tokens, calls, [&](int n, int) { return cost(n); }, &previous);
}

TEST(CallThreadsTest, CandidatesArePowersOfTwoAndTheExecutorsCount) {
  EXPECT_THAT(CallThreads(1, true).candidates(), ElementsAre(1));
  EXPECT_THAT(CallThreads(2, true).candidates(), ElementsAre(1, 2));
  EXPECT_THAT(CallThreads(6, true).candidates(), ElementsAre(1, 2, 4, 6));
  EXPECT_THAT(CallThreads(8, true).candidates(), ElementsAre(1, 2, 4, 8));
  EXPECT_THAT(CallThreads(8, false).candidates(), ElementsAre(8));
}

TEST(CallThreadsTest, NotAdaptiveAlwaysRunsEveryThread) {
  CallThreads threads(4, false);
  // Even where one thread is timed far faster.
  const auto ran = Serve(threads, 1, 100, [](int n) { return n == 1 ? 10 : 1000; });
  EXPECT_EQ(ran.at(4), 100);
  EXPECT_EQ(ran.size(), 1u);
}

TEST(CallThreadsTest, UntimedSizesRunEveryThread) {
  CallThreads threads(2, true);
  EXPECT_EQ(threads.Best(1), 2);
  EXPECT_EQ(threads.Best(512), 2);
}

// A one-token call faster on one thread (the served cost of waking the
// team), a 256-token call faster on two: each size gets its own answer.
TEST(CallThreadsTest, EachSizeRunsOnItsFastestCount) {
  CallThreads threads(2, true);
  const auto small = Serve(threads, 1, 400, [](int n) { return n == 1 ? 90'000 : 160'000; });
  const auto large = Serve(threads, 256, 400, [](int n) { return n == 1 ? 4'000'000 : 2'100'000; });
  EXPECT_EQ(threads.Best(1), 1);
  EXPECT_EQ(threads.Best(256), 2);
  // Sizes in one bucket share it; the neighbouring buckets do not.
  EXPECT_EQ(threads.Best(2), 2);
  EXPECT_EQ(threads.Best(300), 2);
  EXPECT_EQ(threads.Best(511), 2);
  // The slower count ran for its first timings (three, and three untimed
  // first calls of pairs at most) and then on exploring turns only, a pair
  // every kFarExplorePeriod-th call: it is more than kFarRatio behind at both
  // sizes (160/90 and 4.0/2.1).
  EXPECT_LE(small.at(2), 6 + 2 * (400 / CallThreads::kFarExplorePeriod + 1));
  EXPECT_LE(large.at(1), 6 + 2 * (400 / CallThreads::kFarExplorePeriod + 1));
}

// Counts within kFarRatio of each other are both kept timed: every
// kExplorePeriod-th call starts a pair on the other, its second call timed.
TEST(CallThreadsTest, ExploresACloseCountEveryPeriod) {
  CallThreads threads(2, true);
  // Warming up: 1 thread timed, then 2 threads untimed (more threads than
  // the call before) and timed, three times: 9 calls.
  constexpr int kWarmUp = 9, kPairs = 20;
  const auto ran = Serve(threads, 8, kWarmUp + CallThreads::kExplorePeriod * kPairs + 1,
                         [](int n) { return n == 1 ? 100'000 : 120'000; });
  EXPECT_EQ(threads.Best(8), 1);
  EXPECT_EQ(ran.at(2), 6 + 2 * kPairs);
  EXPECT_EQ(ran.at(1), 3 + CallThreads::kExplorePeriod * kPairs + 1 - 2 * kPairs);
}

// Fewer threads must win by kFewerMargin: 10 % is a tie, and ties go to
// every thread.
TEST(CallThreadsTest, FewerThreadsMustWinByTheMargin) {
  CallThreads threads(2, true);
  Serve(threads, 1, 200, [](int n) { return n == 1 ? 100'000 : 110'000; });
  EXPECT_EQ(threads.Best(1), 2);
  Serve(threads, 1, 200, [](int n) { return n == 1 ? 100'000 : 120'000; });
  EXPECT_EQ(threads.Best(1), 1);
}

// Two threads are faster once awake, but a two-thread call right after a
// one-thread call pays for waking the second: those calls are not timed,
// so the comparison is between the counts' steady states.
TEST(CallThreadsTest, WakingThreadsDoesNotCountAgainstThem) {
  CallThreads threads(2, true);
  int previous = 2;
  const auto cost = [](int n, int before) -> int64_t {
    if (n == 1) return 120'000;
    return before == 1 ? 180'000 : 80'000;
  };
  const auto ran = Serve(threads, 4, 500, cost, &previous);
  EXPECT_EQ(threads.Best(4), 2);
  EXPECT_GT(ran.at(2), 450);
}

// The load changes which count is faster: the choice follows within an
// exploring period and a window, even back to a count that was far behind.
TEST(CallThreadsTest, FollowsAChange) {
  CallThreads threads(2, true);
  Serve(threads, 1, 200, [](int n) { return n == 1 ? 90'000 : 110'000; });
  ASSERT_EQ(threads.Best(1), 1);
  Serve(threads, 1, CallThreads::kWindow, [](int n) { return n == 1 ? 200'000 : 100'000; });
  EXPECT_EQ(threads.Best(1), 2);
  // One thread is now far behind on its record (200 against 100): it is
  // next tried on a far exploring turn, and then kept on while it wins.
  Serve(threads, 1, CallThreads::kFarExplorePeriod + 2 * CallThreads::kWindow,
        [](int n) { return n == 1 ? 50'000 : 100'000; });
  EXPECT_EQ(threads.Best(1), 1);
}

// One slow outlier (a preempted call) does not move a median of kWindow.
TEST(CallThreadsTest, OneOutlierDoesNotMoveTheChoice) {
  CallThreads threads(2, true);
  Serve(threads, 1, 100, [](int n) { return n == 1 ? 90'000 : 110'000; });
  ASSERT_EQ(threads.Best(1), 1);
  threads.Record(1, 1, 50'000'000);
  EXPECT_EQ(threads.Best(1), 1);
}

// A larger executor has more candidates: a middle count can win.
TEST(CallThreadsTest, FourCandidatesFindTheMiddleOne) {
  CallThreads threads(8, true);
  const std::map<int, int64_t> cost = {{1, 400}, {2, 250}, {4, 200}, {8, 260}};
  Serve(threads, 16, 1000, [&](int n) { return cost.at(n); });
  EXPECT_EQ(threads.Best(16), 4);
}

// A call taken while others wait runs on every thread, untimed, whatever
// the idle calls of its size found.
TEST(CallThreadsTest, BackloggedCallsRunEveryThreadUntimed) {
  CallThreads threads(2, true);
  Serve(threads, 1, 100, [](int n) { return n == 1 ? 90'000 : 160'000; });
  ASSERT_EQ(threads.Best(1), 1);
  for (int previous : {1, 2}) {
    const CallThreads::Choice choice = threads.Choose(1, /*backlog=*/true, previous);
    EXPECT_EQ(choice.threads, 2);
    EXPECT_FALSE(choice.timed);
  }
  EXPECT_EQ(threads.Choose(1, /*backlog=*/false, 2).threads, 1);
}

}  // namespace
}  // namespace ffn
