// Internal to the load generator: files finished calls into measured
// windows, from any thread.
//
// Windows are consecutive spans of a fixed length from the end of the
// warmup: window w is [measure_start + w·length, measure_start + (w+1)·length);
// calls before measure_start (window -1, the warmup) are dropped. With an
// endless length there is one window, 0. Statistics live in a few shards,
// each behind its own mutex, chosen by call number, so recording threads
// rarely meet.
#ifndef FFN_CLIENT_SRC_RECORDER_H_
#define FFN_CLIENT_SRC_RECORDER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "ffn/client/load.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "load_plan.h"

namespace ffn::client {

// A call as it finished. The pointers need only live during Record*.
struct FinishedCall {
  uint64_t number = 0;
  CallDeal deal;
  Clock::time_point intended;  // closed loop: the send
  Clock::time_point sent;
  Clock::time_point done;
  const grpc::Status* status = nullptr;
  const v1::InferResponse* response = nullptr;
  const grpc::ClientContext* context = nullptr;  // for the peer's address
};

// One window's figures, before they become a LoadResult.
struct WindowData {
  std::vector<VariantLoad> variants;
  std::vector<TargetLoad> targets;
  OpenLoopStats open_loop;
  Clock::time_point last_done = Clock::time_point::min();  // of any recorded call

  void Merge(const WindowData& other);
};

// Empty figures with the plan's variant and target names.
WindowData EmptyWindow(const LoadPlan& plan);

class Recorder {
 public:
  // `window_length` Clock::duration::max(): one endless window. With
  // measured_limit > 0, RecordNow keeps only the first measured_limit calls.
  Recorder(const LoadPlan& plan, Clock::time_point run_start, Clock::time_point measure_start,
           Clock::duration window_length, uint64_t measured_limit);

  // The window holding time `t`: -1 before measure_start.
  int WindowOf(Clock::time_point t) const;
  Clock::time_point WindowStart(int w) const;
  // Clock::time_point::max() for the endless window.
  Clock::time_point WindowEnd(int w) const;
  Clock::time_point run_start() const { return run_start_; }

  // Closed loop: files the call in the window of the moment it is filed. The
  // clock is read under the shard's lock, so once a window's end has passed,
  // Take() sees every call it will ever hold.
  void RecordNow(const FinishedCall& call);
  // Open loop: files the call in window `w` (the one its intended send time
  // falls in); -1 drops it.
  void RecordIn(int w, const FinishedCall& call);
  // Open loop: call `number` of window `w` was sent `lag` after its intended
  // time; `waited` if max_outstanding held it back.
  void RecordSend(uint64_t number, int w, Clock::duration lag, bool waited);

  // With a measured_limit: blocks until that many calls have been kept.
  void WaitForLimit() { limit_reached_.WaitForNotification(); }
  // Removes window w's figures and returns them (empty ones if it holds no
  // call). Call it once the window is complete.
  WindowData Take(int w);

 private:
  static constexpr size_t kShards = 4;
  struct Shard {
    absl::Mutex mu;
    std::map<int, WindowData> windows ABSL_GUARDED_BY(mu);
  };
  WindowData& WindowIn(Shard& shard, int w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  void Add(Shard& shard, int w, const FinishedCall& call, const std::string& peer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const LoadPlan& plan_;
  const Clock::time_point run_start_;
  const Clock::time_point measure_start_;
  const Clock::duration window_length_;
  const bool endless_;
  const uint64_t measured_limit_;
  std::atomic<uint64_t> measured_{0};
  absl::Notification limit_reached_;
  std::array<Shard, kShards> shards_;
};

}  // namespace ffn::client

#endif  // FFN_CLIENT_SRC_RECORDER_H_
