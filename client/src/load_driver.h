// Internal to the load generator: the three ways of sending calls (closed
// loop, open loop, closed loop over a stream). A driver
// sends a plan's calls and files each finished one with the recorder; the
// caller decides which windows to wait for and when to stop.
#ifndef FFN_CLIENT_SRC_LOAD_DRIVER_H_
#define FFN_CLIENT_SRC_LOAD_DRIVER_H_

#include <cstdint>
#include <memory>
#include <thread>

#include "load_plan.h"
#include "recorder.h"

namespace ffn::client {

struct DriverTiming {
  Clock::time_point run_start;
  // No call is sent from then on; Clock::time_point::max(): until Stop().
  // Closed loop: calls in flight then get a deadline 1 s later (or their
  // timeout, if sooner), so none outlives the run by much.
  Clock::time_point stop_sending = Clock::time_point::max();
  // Open loop: > 0 schedules exactly this many calls after the warmup, then
  // stops.
  uint64_t measured_calls = 0;
};

class LoadDriver {
 public:
  virtual ~LoadDriver() = default;
  // Begins sending; returns at once.
  virtual void Start() = 0;
  // Blocks until window w holds every call it ever will.
  virtual void WaitForWindow(int w) = 0;
  // Sends no more calls; returns once every call in flight has finished and
  // no completion thread touches the driver any more. Idempotent.
  virtual void Stop() = 0;
};

// `concurrency` calls in flight; each answer sends the next call. Latency
// from the send. Calls go through completion queues drained by the driver's
// own threads (completion_threads.h).
std::unique_ptr<LoadDriver> MakeClosedLoop(const LoadPlan& plan, Recorder& recorder,
                                           const DriverTiming& timing);
// The closed loop over a stream (LoadOptions::stream): ffn.v1's InferStream
// or v2's ModelStreamInfer, one stream per endpoint, `concurrency` requests
// in flight shared out among them.
std::unique_ptr<LoadDriver> MakeStreamLoop(const LoadPlan& plan, Recorder& recorder,
                                           const DriverTiming& timing);
// Calls at their scheduled times (ArrivalSchedule), never waiting for
// answers except when max_outstanding are in flight. Latency from the
// intended send time.
std::unique_ptr<LoadDriver> MakeOpenLoop(const LoadPlan& plan, Recorder& recorder,
                                         const DriverTiming& timing);

// A closed loop's window w is complete at its end time (every call in it
// has been answered by then, or it counts in a later window), or, for the
// endless window of a --requests run, once the recorder holds them all.
inline void WaitForClosedLoopWindow(Recorder& recorder, int w) {
  if (recorder.WindowEnd(w) == Clock::time_point::max()) {
    recorder.WaitForLimit();
    return;
  }
  std::this_thread::sleep_until(recorder.WindowEnd(w));
}

// A deadline `from_now` ahead on the system clock, as gRPC wants it.
inline std::chrono::system_clock::time_point DeadlineIn(Clock::duration from_now) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(from_now);
}

}  // namespace ffn::client

#endif  // FFN_CLIENT_SRC_LOAD_DRIVER_H_
