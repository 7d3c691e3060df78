// The reactor of one InferStream call: reads requests as they come
// (pipelined, up to max_inflight at once), computes them through the
// Scheduler, and writes the answers back in request order. Each request
// holds its share of the memory budget until its answer is written, so a
// client that never reads its answers is refused (RESOURCE_EXHAUSTED, in
// band) once the budget is spent, instead of growing the server without end.
#ifndef FFN_SERVER_SRC_INFER_STREAM_H_
#define FFN_SERVER_SRC_INFER_STREAM_H_

#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "ffn/v1/ffn.grpc.pb.h"
#include "infer_call.h"

namespace ffn {

class InferStreamReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // `auth` is the call's authentication result: a failure ends the call at once.
  InferStreamReactor(const InferBackend& backend, grpc::CallbackServerContext* context,
                     int64_t max_inflight, const absl::Status& auth);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  // One request and its answer, alive from its read until its write is done.
  struct Slot {
    grpc::ByteBuffer received;  // the request as read; dropped once parsed
    v1::InferRequest request;
    v1::InferResponse response;  // dropped once serialized into `answer`
    grpc::ByteBuffer answer;
    MemoryBudget::Reservation held;
    bool ready = false;
  };
  // What to start once mu_ is released (gRPC operations are never started
  // under our lock).
  struct Actions {
    bool read = false;
    grpc::ByteBuffer* write = nullptr;
    bool finish = false;
    absl::Status finish_status;
  };

  void OnComputed(Slot* slot, const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  // Decides the next write, read and finish. Requires mu_.
  Actions NextActions() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run(const Actions& actions);

  const InferBackend backend_;
  grpc::CallbackServerContext* const context_;
  const size_t max_inflight_;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);  // in request order
  std::unique_ptr<Slot> incoming_ ABSL_GUARDED_BY(mu_);           // the read in flight
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;  // the client half-closed, or the call broke
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;      // a write failed: answers are dropped
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ffn

#endif  // FFN_SERVER_SRC_INFER_STREAM_H_
