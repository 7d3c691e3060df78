// The open loop: one scheduler thread walks the arrival schedule, sleeping
// until each call's intended send time and starting it without waiting for
// earlier answers (only max_outstanding calls in flight can hold it back).
// Completion threads file each call in the window of its intended time.
#include <sys/prctl.h>

#include <atomic>
#include <map>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "completion_threads.h"
#include "ffn/client/arrivals.h"
#include "load_driver.h"

namespace ffn::client {
namespace {

// Sleeps are cut into slices this long so that Stop() is seen soon.
constexpr auto kSleepSlice = std::chrono::milliseconds(50);

class OpenLoop final : public LoadDriver {
 public:
  OpenLoop(const LoadPlan& plan, Recorder& recorder, const DriverTiming& timing)
      : plan_(plan),
        recorder_(recorder),
        timing_(timing),
        threads_(DefaultCompletionThreads(),
                 [this](void* tag, bool) { OnDone(static_cast<Call*>(tag)); }) {}
  ~OpenLoop() override { Stop(); }

  void Start() override {
    scheduler_ = std::thread([this] { Schedule(); });
  }

  void WaitForWindow(int w) override {
    absl::MutexLock lock(&mu_);
    struct Args {
      OpenLoop* self;
      int w;
    } args{this, w};
    mu_.Await(absl::Condition(
        +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS { return a->self->WindowComplete(a->w); },
        &args));
  }

  void Stop() override {
    stopping_.store(true);
    if (scheduler_.joinable()) scheduler_.join();
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](int* outstanding) { return *outstanding == 0; }, &outstanding_));
    }
    threads_.Shutdown();
  }

 private:
  struct Call {
    uint64_t number = 0;
    int window = -1;
    CallDeal deal;
    UnaryInfer infer;
    Clock::time_point intended;
    Clock::time_point sent;
  };

  bool WindowComplete(int w) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return (schedule_finished_ || scheduling_window_ > w) && !pending_.contains(w);
  }

  void Schedule() {
    // Wake from sleeps within microseconds, not the default 50 us slack.
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    const LoadOptions& o = plan_.options;
    ArrivalSchedule arrivals(o.rate, o.arrival, o.seed);
    uint64_t measured = 0;
    for (uint64_t n = 0;; ++n) {
      const Clock::time_point intended =
          timing_.run_start + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(arrivals.NextSeconds()));
      if (intended >= timing_.stop_sending) break;
      const int w = recorder_.WindowOf(intended);
      if (w >= 0 && timing_.measured_calls > 0 && measured++ == timing_.measured_calls) break;
      {
        absl::MutexLock lock(&mu_);
        scheduling_window_ = std::max(scheduling_window_, w);
        if (w >= 0) ++pending_[w];
      }
      auto* call = new Call;
      call->number = n;
      call->window = w;
      call->deal = plan_.Deal(n);
      plan_.Prepare(call->deal, &call->infer);
      call->intended = intended;
      bool waited = false;
      if (!SleepUntil(intended) || !WaitForRoom(waited)) {
        Forget(w);
        delete call;
        break;
      }
      call->infer.context.set_deadline(DeadlineIn(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(o.timeout_seconds))));
      const Clock::time_point sent = Clock::now();
      call->sent = sent;
      const CallDeal deal = call->deal;
      plan_.Send(deal, &call->infer, threads_.Queue(n), call);  // `call` may be gone now
      recorder_.RecordSend(n, w, sent - intended, waited);
    }
    absl::MutexLock lock(&mu_);
    schedule_finished_ = true;
  }

  // False if stopped first.
  bool SleepUntil(Clock::time_point t) {
    for (Clock::time_point now = Clock::now(); now < t; now = Clock::now()) {
      if (stopping_.load(std::memory_order_relaxed)) return false;
      std::this_thread::sleep_until(std::min(t, now + kSleepSlice));
    }
    return !stopping_.load(std::memory_order_relaxed);
  }

  // Takes a place among the max_outstanding calls in flight; `waited` if it
  // had to wait for one. False if stopped first.
  bool WaitForRoom(bool& waited) {
    absl::MutexLock lock(&mu_);
    auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return outstanding_ < plan_.options.max_outstanding || stopping_.load();
    };
    waited = !room();
    while (!room()) {
      mu_.AwaitWithTimeout(absl::Condition(&room), absl::Milliseconds(50));
    }
    if (stopping_.load()) return false;
    ++outstanding_;
    return true;
  }

  void Forget(int w) {
    if (w < 0) return;
    absl::MutexLock lock(&mu_);
    if (--pending_[w] == 0) pending_.erase(w);
  }

  void OnDone(Call* call) {
    const Clock::time_point done = Clock::now();
    plan_.Complete(call->deal, &call->infer);
    const int w = call->window;
    recorder_.RecordIn(w, {.number = call->number,
                           .deal = call->deal,
                           .intended = call->intended,
                           .sent = call->sent,
                           .done = done,
                           .status = &call->infer.status,
                           .response = &call->infer.response,
                           .context = &call->infer.context});
    delete call;
    absl::MutexLock lock(&mu_);
    --outstanding_;
    if (w >= 0 && --pending_[w] == 0) pending_.erase(w);
  }

  const LoadPlan& plan_;
  Recorder& recorder_;
  const DriverTiming timing_;
  std::atomic<bool> stopping_{false};
  std::thread scheduler_;
  absl::Mutex mu_;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int, int64_t> pending_ ABSL_GUARDED_BY(mu_);  // window -> calls not yet filed
  int scheduling_window_ ABSL_GUARDED_BY(mu_) = -1;      // window of the latest scheduled call
  bool schedule_finished_ ABSL_GUARDED_BY(mu_) = false;
  CompletionThreads threads_;  // last: its threads stop first
};

}  // namespace

std::unique_ptr<LoadDriver> MakeOpenLoop(const LoadPlan& plan, Recorder& recorder,
                                         const DriverTiming& timing) {
  return std::make_unique<OpenLoop>(plan, recorder, timing);
}

}  // namespace ffn::client
