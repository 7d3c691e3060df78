// inference.GRPCInferenceService: the Open Inference Protocol (KServe v2)
// over gRPC, served on the same port as ffn.v1.FfnService, with Triton's
// model configuration and statistics extensions (what perf_analyzer asks
// for).
//
// ModelInfer and every request of ModelStreamInfer become ffn.v1 requests
// (server/src/kserve_infer.h) and take InferCall's path: the same
// validation, memory budget, scheduler, deadlines and statistics as
// FfnService, answered from the executor threads; reactors never block.
// Every call but ServerLive and ServerReady (health probes, like
// grpc.health.v1) is checked against the bearer token first.
//
// Example:
//   void Serve(const ffn::ModelRegistry& registry, ffn::Scheduler& scheduler,
//              ffn::ServerStats& stats) {
//     ffn::KServeServiceImpl service(registry, scheduler, stats, ffn::ServiceOptions{});
//     service.SetReady(false);  // draining: ServerReady and ModelReady say false
//   }
#ifndef FFN_SERVER_KSERVE_SERVICE_H_
#define FFN_SERVER_KSERVE_SERVICE_H_

#include <atomic>
#include <string>
#include <vector>

#include "ffn/server/model_registry.h"
#include "ffn/server/scheduler.h"
#include "ffn/server/service.h"
#include "ffn/server/stats.h"
#include "inference/grpc_service.grpc.pb.h"

namespace ffn {

// ModelInfer on raw bytes (parsed in place, its tensor moved rather than
// copied); everything else typed.
using KServeCallbackBase = inference::GRPCInferenceService::WithCallbackMethod_ServerLive<
    inference::GRPCInferenceService::WithCallbackMethod_ServerReady<
        inference::GRPCInferenceService::WithCallbackMethod_ModelReady<
            inference::GRPCInferenceService::WithCallbackMethod_ServerMetadata<
                inference::GRPCInferenceService::WithCallbackMethod_ModelMetadata<
                    inference::GRPCInferenceService::WithRawCallbackMethod_ModelInfer<
                        inference::GRPCInferenceService::WithCallbackMethod_ModelStreamInfer<
                            inference::GRPCInferenceService::WithCallbackMethod_ModelConfig<
                                inference::GRPCInferenceService::WithCallbackMethod_ModelStatistics<
                                    inference::GRPCInferenceService::Service>>>>>>>>>;

// The protocol extensions ffnserve serves, as ServerMetadata lists them.
std::vector<std::string> KServeExtensions();

class KServeServiceImpl final : public KServeCallbackBase {
 public:
  KServeServiceImpl(const ModelRegistry& registry, Scheduler& scheduler, ServerStats& stats,
                    ServiceOptions options)
      : registry_(registry), scheduler_(scheduler), stats_(stats), options_(std::move(options)) {}

  // Whether ServerReady and ModelReady answer true; false once draining.
  void SetReady(bool ready) { ready_.store(ready); }

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override;

 private:
  // A unary call: `body` runs if the call is authenticated (or `needs_auth`
  // is false) and returns the call's status.
  template <typename Body>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context, bool needs_auth,
                                  Body body);

  const ModelRegistry& registry_;
  Scheduler& scheduler_;
  ServerStats& stats_;
  const ServiceOptions options_;
  std::atomic<bool> ready_{true};
};

}  // namespace ffn

#endif  // FFN_SERVER_KSERVE_SERVICE_H_
