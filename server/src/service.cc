#include "ffn/server/service.h"

#include <string>
#include <utility>

#include "ffn/server/bearer_token.h"
#include "ffn/server/status.h"
#include "infer_call.h"
#include "infer_stream.h"

namespace ffn {
namespace {

// One unary Infer: owns the parsed request, its answer, and the answer's
// share of the memory budget until gRPC has sent it; counted like every call.
class InferReactor final : public CountedUnaryReactor {
 public:
  InferReactor(const InferBackend& backend, grpc::CallbackServerContext* context,
               const absl::Status& auth, const grpc::ByteBuffer& request,
               grpc::ByteBuffer* response)
      : CountedUnaryReactor(context, backend.stats) {
    absl::Status admitted = auth;
    if (admitted.ok()) {
      // No message at all: the call ended (deadline, cancellation) before its
      // request arrived, even if gRPC has not marked it cancelled yet.
      admitted = request.Valid() ? ParseInferRequest(request, &request_) : CallEnded(*context);
      if (!admitted.ok() && context->IsCancelled()) admitted = CallEnded(*context);
      if (!admitted.ok()) backend.stats.RecordRejected(admitted.code());
    }
    if (!admitted.ok()) {
      Finish(ToGrpcStatus(admitted));
      return;
    }
    InferCall::Start(
        backend, request_, &response_, LimitsOf(context),
        [this, response](const absl::Status& status) {
          absl::Status answer = status;
          if (answer.ok()) answer = SerializeInferResponse(response_, response);
          response_.Clear();  // the serialized copy is what remains
          Finish(ToGrpcStatus(answer));
        },
        &held_);
  }

 private:
  v1::InferRequest request_;
  v1::InferResponse response_;
  MemoryBudget::Reservation held_;
};

}  // namespace

absl::Status FfnServiceImpl::Authenticate(const grpc::CallbackServerContext& context) const {
  return CheckBearerToken(options_.auth_token, AuthorizationOf(context));
}

template <typename Body>
grpc::ServerUnaryReactor* FfnServiceImpl::Unary(grpc::CallbackServerContext* context, Body body) {
  grpc::ServerUnaryReactor* reactor = new CountedUnaryReactor(context, stats_);
  auto finish = [reactor](const absl::Status& status) { reactor->Finish(ToGrpcStatus(status)); };
  if (absl::Status auth = Authenticate(*context); !auth.ok()) {
    finish(auth);
  } else {
    body(finish);
  }
  return reactor;
}

grpc::ServerUnaryReactor* FfnServiceImpl::Infer(grpc::CallbackServerContext* context,
                                                const grpc::ByteBuffer* request,
                                                grpc::ByteBuffer* response) {
  return new InferReactor({registry_, scheduler_, stats_, options_.budget}, context,
                          Authenticate(*context), *request, response);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* FfnServiceImpl::InferStream(
    grpc::CallbackServerContext* context) {
  return new InferStreamReactor({registry_, scheduler_, stats_, options_.budget}, context,
                                options_.max_stream_inflight, Authenticate(*context));
}

grpc::ServerUnaryReactor* FfnServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                     const v1::ListModelsRequest* /*request*/,
                                                     v1::ListModelsResponse* response) {
  return Unary(context, [&](auto finish) {
    for (const auto& model : registry_.models()) *response->add_models() = model->info;
    finish(absl::OkStatus());
  });
}

grpc::ServerUnaryReactor* FfnServiceImpl::GetStats(grpc::CallbackServerContext* context,
                                                   const v1::GetStatsRequest* /*request*/,
                                                   v1::GetStatsResponse* response) {
  return Unary(context, [&](auto finish) {
    *response = stats_.Snapshot();
    AddPlannedTimes(registry_, *response);
    finish(absl::OkStatus());
  });
}

}  // namespace ffn
