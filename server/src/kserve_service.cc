#include "ffn/server/kserve_service.h"

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ffn/server/bearer_token.h"
#include "ffn/server/status.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "infer_call.h"
#include "kserve_infer.h"

namespace ffn {
namespace {

absl::Status ParseModelInferRequest(const grpc::ByteBuffer& bytes,
                                    inference::ModelInferRequest* request) {
  grpc::ByteBuffer view(bytes);  // shares the slices; the reader needs a mutable buffer
  grpc::ProtoBufferReader reader(&view);
  if (!reader.status().ok() || !request->ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request (", bytes.Length(), " bytes) is not a valid inference.ModelInferRequest: "
        "malformed or truncated protobuf, or a string field that is not UTF-8"));
  }
  return absl::OkStatus();
}

// One unary ModelInfer: owns the parsed request, the ffn.v1 request it
// became, its answer and its share of the memory budget until gRPC has sent
// the answer.
class ModelInferReactor final : public CountedUnaryReactor {
 public:
  ModelInferReactor(const InferBackend& backend, grpc::CallbackServerContext* context,
                    const absl::Status& auth, const grpc::ByteBuffer& request,
                    grpc::ByteBuffer* response)
      : CountedUnaryReactor(context, backend.stats) {
    absl::Status admitted = auth;
    if (admitted.ok()) {
      admitted = request.Valid() ? ParseModelInferRequest(request, &request_) : CallEnded(*context);
      if (!admitted.ok() && context->IsCancelled()) admitted = CallEnded(*context);
      if (!admitted.ok()) backend.stats.RecordRejected(admitted.code());
    }
    if (admitted.ok()) {
      admitted = kserve::ToFfnRequest(backend.registry, request_, &call_);
      request_.Clear();  // its tensor now lives in call_
      if (!admitted.ok()) kserve::CountRefused(backend.stats, call_, admitted);
    }
    if (!admitted.ok()) {
      Finish(ToGrpcStatus(admitted));
      return;
    }
    InferCall::Start(
        backend, call_.request, &answer_, kserve::WithTimeout(LimitsOf(context), call_),
        [this, response](const absl::Status& status) {
          absl::Status result = status;
          if (result.ok()) {
            inference::ModelInferResponse message;
            kserve::ToKServeResponse(call_, answer_, &message);
            bool own_buffer = false;
            const grpc::Status serialized =
                grpc::SerializationTraits<inference::ModelInferResponse>::Serialize(
                    message, response, &own_buffer);
            if (!serialized.ok()) {
              result = absl::InternalError(
                  absl::StrCat("serializing the answer: ", serialized.error_message()));
            }
          }
          answer_.Clear();
          call_.request.Clear();
          Finish(ToGrpcStatus(result));
        },
        &held_);
  }

 private:
  inference::ModelInferRequest request_;
  kserve::Translated call_;
  v1::InferResponse answer_;
  MemoryBudget::Reservation held_;
};

// One ModelStreamInfer call: reads requests as they come (up to
// max_inflight unanswered at once), runs each through InferCall, and writes
// each answer when it is ready, so answers may come out of request order
// (each carries its request's id, as the protocol has it). A failed request
// is answered in band (error_message) and the stream goes on.
class ModelStreamReactor final
    : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                     inference::ModelStreamInferResponse> {
 public:
  ModelStreamReactor(const InferBackend& backend, grpc::CallbackServerContext* context,
                     int64_t max_inflight, const absl::Status& auth)
      : backend_(backend), context_(context), max_inflight_(static_cast<size_t>(max_inflight)) {
    backend_.stats.RecordCallStarted();
    if (!auth.ok()) {
      {
        absl::MutexLock lock(&mu_);
        finished_ = true;
      }
      Finish(ToGrpcStatus(auth));
      return;
    }
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      actions = NextActions();
    }
    Run(actions);
  }

  void OnReadDone(bool ok) override {
    Slot* slot = nullptr;
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      if (!ok) {
        reads_done_ = true;
        incoming_.reset();
      } else {
        slot = incoming_.get();
        slots_.emplace(slot, std::move(incoming_));
      }
    }
    if (slot == nullptr) {
      Actions actions;
      {
        absl::MutexLock lock(&mu_);
        actions = NextActions();
      }
      Run(actions);
      return;
    }
    absl::Status admitted = kserve::ToFfnRequest(backend_.registry, slot->request, &slot->call);
    slot->request.Clear();
    if (!admitted.ok()) {
      kserve::CountRefused(backend_.stats, slot->call, admitted);
      OnComputed(slot, admitted);
      return;
    }
    InferCall::Start(
        backend_, slot->call.request, &slot->answer,
        kserve::WithTimeout(LimitsOf(context_), slot->call),
        [this, slot](const absl::Status& status) { OnComputed(slot, status); }, &slot->held);
    // The next read may start now that this request is on its way.
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      actions = NextActions();
    }
    Run(actions);
  }

  void OnWriteDone(bool ok) override {
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      slots_.erase(written_);  // its answer and budget share go
      written_ = nullptr;
      if (!ok) broken_ = true;
      actions = NextActions();
    }
    Run(actions);
  }

  void OnDone() override {
    backend_.stats.RecordCallEnded(context_->IsCancelled());
    delete this;
  }

 private:
  struct Slot {
    inference::ModelInferRequest request;
    kserve::Translated call;
    v1::InferResponse answer;
    inference::ModelStreamInferResponse response;
    MemoryBudget::Reservation held;
  };
  struct Actions {
    inference::ModelInferRequest* read = nullptr;
    const inference::ModelStreamInferResponse* write = nullptr;
    bool finish = false;
  };

  void OnComputed(Slot* slot, const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_) {
    if (status.ok()) {
      kserve::ToKServeResponse(slot->call, slot->answer, slot->response.mutable_infer_response());
    } else {
      slot->response.set_error_message(std::string(status.message()));
      inference::ModelInferResponse* answer = slot->response.mutable_infer_response();
      answer->set_model_name(slot->call.model_name);
      answer->set_id(slot->call.id);
    }
    slot->answer.Clear();
    slot->call.request.Clear();
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      ready_.push_back(slot);
      actions = NextActions();
    }
    Run(actions);
  }

  Actions NextActions() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Actions actions;
    if (finished_) return actions;
    if (broken_) {
      // The client cannot take answers: drop those ready (their budget goes).
      for (Slot* slot : ready_) slots_.erase(slot);
      ready_.clear();
    }
    if (!writing_ && !ready_.empty()) {
      writing_ = true;
      written_ = ready_.front();
      ready_.pop_front();
      actions.write = &written_->response;
    }
    if (!reading_ && !reads_done_ && slots_.size() < max_inflight_) {
      reading_ = true;
      incoming_ = std::make_unique<Slot>();
      actions.read = &incoming_->request;
    }
    if (reads_done_ && slots_.empty() && !writing_) {
      finished_ = true;
      actions.finish = true;
    }
    return actions;
  }

  void Run(const Actions& actions) {
    if (actions.write != nullptr) StartWrite(actions.write);
    if (actions.read != nullptr) StartRead(actions.read);
    if (actions.finish) Finish(grpc::Status::OK);
  }

  const InferBackend backend_;
  grpc::CallbackServerContext* const context_;
  const size_t max_inflight_;
  absl::Mutex mu_;
  // Every request read and not yet answered (or dropped), by address.
  std::unordered_map<Slot*, std::unique_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);
  std::deque<Slot*> ready_ ABSL_GUARDED_BY(mu_);  // answered, waiting to be written
  std::unique_ptr<Slot> incoming_ ABSL_GUARDED_BY(mu_);  // the read in flight
  Slot* written_ ABSL_GUARDED_BY(mu_) = nullptr;          // the write in flight
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

std::vector<std::string> KServeExtensions() {
  return {"model_configuration", "statistics", "parameters", "binary_tensor_data"};
}

template <typename Body>
grpc::ServerUnaryReactor* KServeServiceImpl::Unary(grpc::CallbackServerContext* context,
                                                   bool needs_auth, Body body) {
  grpc::ServerUnaryReactor* reactor = new CountedUnaryReactor(context, stats_);
  absl::Status status = needs_auth
                            ? CheckBearerToken(options_.auth_token, AuthorizationOf(*context))
                            : absl::OkStatus();
  if (status.ok()) status = body();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* KServeServiceImpl::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest* /*request*/,
    inference::ServerLiveResponse* response) {
  return Unary(context, false, [&] {
    response->set_live(true);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* KServeServiceImpl::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest* /*request*/,
    inference::ServerReadyResponse* response) {
  return Unary(context, false, [&] {
    response->set_ready(ready_.load());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* KServeServiceImpl::ModelReady(grpc::CallbackServerContext* context,
                                                        const inference::ModelReadyRequest* request,
                                                        inference::ModelReadyResponse* response) {
  return Unary(context, true, [&] {
    // A name the server does not serve is not ready, rather than an error,
    // so that a readiness poll can wait for it.
    response->set_ready(ready_.load() &&
                        kserve::ResolveModel(registry_, request->name(), request->version()).ok());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* KServeServiceImpl::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest* /*request*/,
    inference::ServerMetadataResponse* response) {
  return Unary(context, true, [&] {
    response->set_name("ffnserve");
    response->set_version(FFN_VERSION);
    for (const std::string& extension : KServeExtensions()) response->add_extensions(extension);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* KServeServiceImpl::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  return Unary(context, true, [&] {
    absl::StatusOr<InferVariant> variant =
        kserve::ResolveModel(registry_, request->name(), request->version());
    if (!variant.ok()) return variant.status();
    *response = kserve::MetadataOf(*variant->model, request->name());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* KServeServiceImpl::ModelInfer(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request,
                                                        grpc::ByteBuffer* response) {
  return new ModelInferReactor({registry_, scheduler_, stats_, options_.budget}, context,
                               CheckBearerToken(options_.auth_token, AuthorizationOf(*context)),
                               *request, response);
}

grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
KServeServiceImpl::ModelStreamInfer(grpc::CallbackServerContext* context) {
  return new ModelStreamReactor({registry_, scheduler_, stats_, options_.budget}, context,
                                options_.max_stream_inflight,
                                CheckBearerToken(options_.auth_token, AuthorizationOf(*context)));
}

grpc::ServerUnaryReactor* KServeServiceImpl::ModelConfig(grpc::CallbackServerContext* context,
                                                         const inference::ModelConfigRequest* request,
                                                         inference::ModelConfigResponse* response) {
  return Unary(context, true, [&] {
    absl::StatusOr<InferVariant> variant =
        kserve::ResolveModel(registry_, request->name(), request->version());
    if (!variant.ok()) return variant.status();
    *response->mutable_config() = kserve::ConfigOf(*variant->model, *variant, request->name());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* KServeServiceImpl::ModelStatistics(
    grpc::CallbackServerContext* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  return Unary(context, true, [&] {
    absl::StatusOr<inference::ModelStatisticsResponse> stats =
        kserve::StatisticsOf(registry_, stats_.Snapshot(/*exact_batch_sizes=*/true),
                             request->name(), request->version());
    if (!stats.ok()) return stats.status();
    *response = *std::move(stats);
    return absl::OkStatus();
  });
}

}  // namespace ffn
