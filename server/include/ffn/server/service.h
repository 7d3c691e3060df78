// ffn.v1.FfnService on gRPC's callback API.
//
// Infer validates on gRPC's thread (no copies: the engine reads the request's
// bytes in place and writes straight into the response's bytes), then hands
// the computation to the Executor and finishes the call from there.
#ifndef FFN_SERVER_SERVICE_H_
#define FFN_SERVER_SERVICE_H_

#include "absl/status/statusor.h"
#include "ffn/server/executor.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/stats.h"
#include "ffn/v1/ffn.grpc.pb.h"

namespace ffn {

// A request that passed validation.
struct ValidatedInfer {
  const Model* model = nullptr;
  Activation activation = Activation::kRelu;
  int64_t tokens = 0;
};

// Checks an InferRequest against the registry. NOT_FOUND for an unknown
// model; INVALID_ARGUMENT for an unknown activation or one of the wrong kind,
// a dtype other than the model's, a shape other than [tokens, d_model], a
// byte count not matching the shape, or tokens outside [1, max_tokens]. The
// message names what was expected.
absl::StatusOr<ValidatedInfer> ValidateInfer(const ModelRegistry& registry,
                                             const v1::InferRequest& request);

class FfnServiceImpl final : public v1::FfnService::CallbackService {
 public:
  FfnServiceImpl(const ModelRegistry& registry, Executor& executor, ServerStats& stats)
      : registry_(registry), executor_(executor), stats_(stats) {}

  grpc::ServerUnaryReactor* Infer(grpc::CallbackServerContext* context,
                                  const v1::InferRequest* request,
                                  v1::InferResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const v1::GetStatsRequest* request,
                                     v1::GetStatsResponse* response) override;

 private:
  const ModelRegistry& registry_;
  Executor& executor_;
  ServerStats& stats_;
};

}  // namespace ffn

#endif  // FFN_SERVER_SERVICE_H_
