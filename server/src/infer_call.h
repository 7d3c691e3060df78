// The one path of an Infer request through the server, taken by the unary
// Infer, by every request of an InferStream and by the start-up warm-up:
// validate the request, queue its computation on the Scheduler, count the
// outcome against its variant, and fill in the response.
//
// Example:
//   void Answer(const ffn::InferBackend& backend, const ffn::v1::InferRequest& request,
//               ffn::v1::InferResponse* response) {
//     ffn::InferCall::Start(backend, request, response, ffn::CallLimits{},
//                           [](const absl::Status& status) { /* answer the client */ });
//   }
#ifndef FFN_SERVER_SRC_INFER_CALL_H_
#define FFN_SERVER_SRC_INFER_CALL_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "ffn/server/memory_budget.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/scheduler.h"
#include "ffn/server/stats.h"
#include "ffn/server/variant_key.h"
#include "ffn/v1/ffn.grpc.pb.h"

namespace ffn {

// The parts of the server a call runs through; they outlive every call.
struct InferBackend {
  const ModelRegistry& registry;
  Scheduler& scheduler;
  ServerStats& stats;
  // The bound on bytes held for requests; nullptr: none (the warm-up).
  MemoryBudget* budget = nullptr;
};

// The bytes a request of `input_bytes` tensor data is charged while in
// flight: its data as received and as parsed, and its answer (the input's
// size: same shape and dtype) as computed and as serialized.
inline int64_t InflightBytes(int64_t input_bytes) { return 4 * input_bytes; }

// When a queued computation is no longer wanted. The defaults (no deadline,
// never cancelled) suit a call with no client behind it.
struct CallLimits {
  std::chrono::system_clock::time_point deadline = std::chrono::system_clock::time_point::max();
  std::function<bool()> cancelled;
};

// A request as received on the wire. gRPC's own parsing would answer an
// unparseable body UNIMPLEMENTED with no message (and libprotobuf would log
// it); this answers INVALID_ARGUMENT saying what is wrong.
absl::Status ParseInferRequest(const grpc::ByteBuffer& bytes, v1::InferRequest* request);
// Why a call's request could not be read when the call itself has ended: a
// deadline that passed or a client that cancelled leaves no message or a
// partial one, which is not a bad request. DEADLINE_EXCEEDED if the deadline
// has passed, otherwise CANCELLED.
absl::Status CallEnded(const grpc::CallbackServerContext& context);
// An answer for the wire; INTERNAL if it cannot be serialized.
absl::Status SerializeInferResponse(const v1::InferResponse& response, grpc::ByteBuffer* bytes);

// The limits of a gRPC call: its deadline, and whether the client has gone.
// `context` must outlive the call's computation.
CallLimits LimitsOf(grpc::CallbackServerContext* context);

// The call's "authorization" metadata; empty if it has none.
std::string AuthorizationOf(const grpc::CallbackServerContext& context);

// The reactor of a unary call, counted in ServerStats from start to end so a
// drain knows when every call is over and how many were cut off. Every
// unary reactor of the services derives from it.
class CountedUnaryReactor : public grpc::ServerUnaryReactor {
 public:
  CountedUnaryReactor(grpc::CallbackServerContext* context, ServerStats& stats)
      : context_(context), stats_(stats) {
    stats_.RecordCallStarted();
  }
  void OnDone() override {
    stats_.RecordCallEnded(context_->IsCancelled());
    delete this;
  }

 private:
  grpc::CallbackServerContext* const context_;
  ServerStats& stats_;
};

// One request in flight: what it needs to finish once the Scheduler is done.
class InferCall {
 public:
  using Done = std::function<void(const absl::Status&)>;

  // Validates `request`, sizes `response`'s output tensor and queues the
  // computation. `done` runs exactly once with the final status: on an
  // executor thread, or on the calling thread if the request is refused at
  // once (invalid, over the memory budget, queue full, shutting down). On
  // OK, `response` holds the output, the variant and the server's timings;
  // on an error its output is cleared. `request` and `response` must live
  // until `done` has run. With a budget, the request's InflightBytes are
  // reserved into `*held` before it is queued; the caller keeps `*held`
  // until the answer has left (then destroys it).
  static void Start(const InferBackend& backend, const v1::InferRequest& request,
                    v1::InferResponse* response, CallLimits limits, Done done,
                    MemoryBudget::Reservation* held = nullptr);

 private:
  InferCall(ServerStats& stats, VariantKey variant, int64_t tokens, v1::InferResponse* response,
            Done done)
      : stats_(&stats),
        variant_(std::move(variant)),
        tokens_(tokens),
        response_(response),
        done_(std::move(done)) {}

  // Counts the outcome, completes the response and runs `done`.
  void Finish(const absl::Status& status, const RequestTimings& timings) const;

  ServerStats* stats_;
  VariantKey variant_;
  int64_t tokens_;
  v1::InferResponse* response_;
  Done done_;
};

}  // namespace ffn

#endif  // FFN_SERVER_SRC_INFER_CALL_H_
