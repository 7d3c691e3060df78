// ffn.v1.FfnService on gRPC's callback API.
//
// Infer and InferStream validate on gRPC's threads with no copies (the engine
// reads the request's bytes in place and writes into the response's bytes,
// or the batch copies them once each way), then hand the computation to the
// Scheduler; answers are finished from its executor threads. Reactors never
// block.
#ifndef FFN_SERVER_SERVICE_H_
#define FFN_SERVER_SERVICE_H_

#include <string>

#include "absl/status/statusor.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/scheduler.h"
#include "ffn/server/stats.h"
#include "ffn/v1/ffn.grpc.pb.h"

namespace ffn {

// A request that passed validation.
struct ValidatedInfer {
  const Model* model = nullptr;
  Activation activation = Activation::kRelu;
  int64_t tokens = 0;
  DataType input_type = DataType::kF32;  // also the output's
  DataType compute = DataType::kF32;
};

// Checks an InferRequest against the registry. NOT_FOUND for an unknown
// model; INVALID_ARGUMENT for an unknown activation or one of the wrong kind,
// an input dtype other than FLOAT32 or BFLOAT16, an unknown compute_dtype, a
// shape other than [tokens, d_model], a byte count not matching shape and
// dtype, or tokens outside [1, max_tokens]. The message names what was
// expected.
absl::StatusOr<ValidatedInfer> ValidateInfer(const ModelRegistry& registry,
                                             const v1::InferRequest& request);

struct ServiceOptions {
  // Bearer token every FfnService call must carry ("authorization: Bearer
  // <token>"); empty: none. The health service is not affected.
  std::string auth_token;
  int64_t max_stream_inflight = 256;
};

class FfnServiceImpl final : public v1::FfnService::CallbackService {
 public:
  FfnServiceImpl(const ModelRegistry& registry, Scheduler& scheduler, ServerStats& stats,
                 ServiceOptions options)
      : registry_(registry), scheduler_(scheduler), stats_(stats), options_(std::move(options)) {}

  grpc::ServerUnaryReactor* Infer(grpc::CallbackServerContext* context,
                                  const v1::InferRequest* request,
                                  v1::InferResponse* response) override;
  grpc::ServerBidiReactor<v1::InferRequest, v1::InferResponse>* InferStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const v1::GetStatsRequest* request,
                                     v1::GetStatsResponse* response) override;

  // Validates `request`, prepares `response`'s output buffer and queues the
  // computation; `done` runs once with the final status, on an executor
  // thread, or on the calling thread if the request is refused at once.
  // `response` and `request` must live until then.
  void Submit(grpc::CallbackServerContext* context, const v1::InferRequest& request,
              v1::InferResponse* response, std::function<void(const absl::Status&)> done);

 private:
  // OK, or UNAUTHENTICATED when a token is configured and the call lacks it.
  absl::Status Authenticate(const grpc::CallbackServerContext& context) const;

  const ModelRegistry& registry_;
  Scheduler& scheduler_;
  ServerStats& stats_;
  const ServiceOptions options_;
};

}  // namespace ffn

#endif  // FFN_SERVER_SERVICE_H_
