// ffn.v1.FfnService on gRPC's callback API.
//
// Infer and InferStream take their messages as raw bytes and parse them
// themselves, so that an unparseable body is INVALID_ARGUMENT with a message
// rather than gRPC's bare UNIMPLEMENTED. They validate on gRPC's threads (the
// engine reads the request's bytes in place and writes into the response's
// bytes, or the batch copies them once each way), reserve the request's
// share of the memory budget, then hand the computation to the Scheduler;
// answers are finished from its executor threads. Reactors never block.
// Every call is first checked against the configured bearer token.
//
// Example:
//   void Serve(const ffn::ModelRegistry& registry, ffn::Scheduler& scheduler,
//              ffn::ServerStats& stats) {
//     ffn::ServiceOptions options;
//     options.auth_token = "s3cret";  // the content of the auth token file
//     ffn::FfnServiceImpl service(registry, scheduler, stats, options);  // then RegisterService
//   }
#ifndef FFN_SERVER_SERVICE_H_
#define FFN_SERVER_SERVICE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "ffn/server/memory_budget.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/scheduler.h"
#include "ffn/server/stats.h"
#include "ffn/v1/ffn.grpc.pb.h"

namespace ffn {

struct ServiceOptions {
  // Bearer token every FfnService call must carry ("authorization: Bearer
  // <token>"); empty: none. The health service is not affected.
  std::string auth_token;
  int64_t max_stream_inflight = 256;
  // Bytes held for requests in flight; nullptr: unbounded. Outlives the service.
  MemoryBudget* budget = nullptr;
};

// Infer and InferStream on raw bytes, ListModels and GetStats typed.
using FfnCallbackBase = v1::FfnService::WithRawCallbackMethod_Infer<
    v1::FfnService::WithRawCallbackMethod_InferStream<v1::FfnService::WithCallbackMethod_ListModels<
        v1::FfnService::WithCallbackMethod_GetStats<v1::FfnService::Service>>>>;

class FfnServiceImpl final : public FfnCallbackBase {
 public:
  FfnServiceImpl(const ModelRegistry& registry, Scheduler& scheduler, ServerStats& stats,
                 ServiceOptions options)
      : registry_(registry), scheduler_(scheduler), stats_(stats), options_(std::move(options)) {}

  grpc::ServerUnaryReactor* Infer(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* InferStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const v1::GetStatsRequest* request,
                                     v1::GetStatsResponse* response) override;

 private:
  // OK, or UNAUTHENTICATED when a token is configured and the call lacks it.
  // Every handler starts with it.
  absl::Status Authenticate(const grpc::CallbackServerContext& context) const;
  // The reactor of a unary call. `body` runs only if the call is
  // authenticated; it gets the function that finishes the call, and calls it
  // once (itself, or from a callback it starts).
  template <typename Body>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context, Body body);

  const ModelRegistry& registry_;
  Scheduler& scheduler_;
  ServerStats& stats_;
  const ServiceOptions options_;
};

}  // namespace ffn

#endif  // FFN_SERVER_SERVICE_H_
