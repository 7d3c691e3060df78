// The closed loop: `concurrency` slots, each with one call in flight. The
// completion thread that sees a slot's answer files it and sends the slot's
// next call, so no thread ever blocks on the server.
#include <atomic>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "completion_threads.h"
#include "load_driver.h"

namespace ffn::client {
namespace {

class ClosedLoop final : public LoadDriver {
 public:
  ClosedLoop(const LoadPlan& plan, Recorder& recorder, const DriverTiming& timing)
      : plan_(plan),
        recorder_(recorder),
        timing_(timing),
        threads_(DefaultCompletionThreads(),
                 [this](void* tag, bool) { OnDone(static_cast<Call*>(tag)); }) {}
  ~ClosedLoop() override { Stop(); }

  void Start() override {
    {
      absl::MutexLock lock(&mu_);
      live_slots_ = plan_.options.concurrency;
    }
    for (int slot = 0; slot < plan_.options.concurrency; ++slot) Continue(slot);
  }

  void WaitForWindow(int w) override { WaitForClosedLoopWindow(recorder_, w); }

  void Stop() override {
    stopping_.store(true);
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](int* live) { return *live == 0; }, &live_slots_));
    }
    threads_.Shutdown();
  }

 private:
  struct Call {
    uint64_t number = 0;
    int slot = 0;
    CallDeal deal;
    UnaryInfer infer;
    Clock::time_point sent;
  };

  // A slot's next step: send its next call, or end the slot.
  void Continue(int slot) {
    const Clock::time_point now = Clock::now();
    if (stopping_.load(std::memory_order_relaxed) || now >= timing_.stop_sending) {
      absl::MutexLock lock(&mu_);
      --live_slots_;
      return;
    }
    auto* call = new Call;
    call->number = next_call_.fetch_add(1, std::memory_order_relaxed);
    call->slot = slot;
    call->deal = plan_.Deal(call->number);
    plan_.Prepare(call->deal, &call->infer);
    Clock::duration deadline = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(plan_.options.timeout_seconds));
    if (timing_.stop_sending != Clock::time_point::max()) {
      deadline = std::min(deadline, timing_.stop_sending + std::chrono::seconds(1) - now);
    }
    call->infer.context.set_deadline(DeadlineIn(deadline));
    // A slot stays on one completion thread.
    call->sent = Clock::now();
    plan_.Send(call->deal, &call->infer, threads_.Queue(static_cast<uint64_t>(slot)), call);
  }

  void OnDone(Call* call) {
    const Clock::time_point done = Clock::now();
    plan_.Complete(call->deal, &call->infer);
    recorder_.RecordNow({.number = call->number,
                         .deal = call->deal,
                         .intended = call->sent,
                         .sent = call->sent,
                         .done = done,
                         .status = &call->infer.status,
                         .response = &call->infer.response,
                         .context = &call->infer.context});
    const int slot = call->slot;
    delete call;
    Continue(slot);
  }

  const LoadPlan& plan_;
  Recorder& recorder_;
  const DriverTiming timing_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> next_call_{0};
  absl::Mutex mu_;
  int live_slots_ ABSL_GUARDED_BY(mu_) = 0;  // slots not yet ended
  CompletionThreads threads_;                // last: its threads stop first
};

}  // namespace

std::unique_ptr<LoadDriver> MakeClosedLoop(const LoadPlan& plan, Recorder& recorder,
                                           const DriverTiming& timing) {
  return std::make_unique<ClosedLoop>(plan, recorder, timing);
}

}  // namespace ffn::client
