#include "ffn/server/service.h"

#include <string>
#include <utility>

#include "ffn/server/status.h"
#include "infer_call.h"
#include "infer_stream.h"

namespace ffn {
namespace {

// The reactor of a unary call, counted in ServerStats from start to end so a
// drain knows when every call is over and how many were cut off.
class CountedUnaryReactor final : public grpc::ServerUnaryReactor {
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

}  // namespace

absl::Status FfnServiceImpl::Authenticate(const grpc::CallbackServerContext& context) const {
  if (options_.auth_token.empty()) return absl::OkStatus();
  const std::string expected = "Bearer " + options_.auth_token;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  const std::string given = it == metadata.end() ? std::string()
                                                 : std::string(it->second.data(), it->second.size());
  // Constant time in the token: every byte of `expected` is compared.
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    difference |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  }
  if (difference != 0) {
    return absl::UnauthenticatedError(
        "missing or wrong bearer token: send metadata 'authorization: Bearer <token>'");
  }
  return absl::OkStatus();
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
                                                const v1::InferRequest* request,
                                                v1::InferResponse* response) {
  return Unary(context, [&](auto finish) {
    InferCall::Start({registry_, scheduler_, stats_}, *request, response, LimitsOf(context),
                     std::move(finish));
  });
}

grpc::ServerBidiReactor<v1::InferRequest, v1::InferResponse>* FfnServiceImpl::InferStream(
    grpc::CallbackServerContext* context) {
  return new InferStreamReactor({registry_, scheduler_, stats_}, context,
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
    finish(absl::OkStatus());
  });
}

}  // namespace ffn
