// Internal to the load generator: everything a run reads and never changes
// once it starts — channels and stubs, the variants with their weights, the
// token distribution, one input per model — and how call number n is dealt.
#ifndef FFN_CLIENT_SRC_LOAD_PLAN_H_
#define FFN_CLIENT_SRC_LOAD_PLAN_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ffn/client/load.h"
#include "ffn/client/kserve.h"
#include "ffn/client/request_mix.h"
#include "ffn/v1/ffn.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/completion_queue.h"
#include "inference/grpc_service.grpc.pb.h"

namespace ffn::client {

using Clock = std::chrono::steady_clock;

// One channel to one target, with its stub.
struct Endpoint {
  size_t target = 0;  // index into options.targets
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::FfnService::Stub> stub;
  std::unique_ptr<inference::GRPCInferenceService::Stub> v2_stub;
};

// One unary inference call of either protocol: ffn.v1 Infer, or v2
// ModelInfer whose answer is turned into ffn.v1's terms when it is done.
struct UnaryInfer {
  grpc::ClientContext context;
  grpc::Status status;
  v1::InferResponse response;  // once done (and Complete()d), either protocol
  v1::InferRequest request;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::InferResponse>> reader;
  inference::ModelInferRequest v2_request;
  inference::ModelInferResponse v2_response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<inference::ModelInferResponse>> v2_reader;
};

// What call number n carries and where it goes.
struct CallDeal {
  size_t variant = 0;
  size_t endpoint = 0;
  int64_t tokens = 1;
};

struct LoadPlan {
  LoadOptions options;
  std::vector<VariantSpec> variants;
  std::vector<double> flops_per_token;  // per variant
  std::vector<int64_t> d_model;         // per variant
  std::vector<V2Model> v2_models;       // per variant, --protocol v2 only
  WeightedCycle variant_cycle;
  TokenDistribution tokens;
  std::map<std::string, std::vector<float>> inputs;  // per model: tokens.Max() rows
  // targets × connections channels; endpoint e serves target e % targets, so
  // consecutive calls go to consecutive targets.
  std::vector<Endpoint> endpoints;

  // Call n goes to endpoint n % E and carries variant cycle[n / E]: every
  // target sees the whole variant mix, whatever E and the cycle's length.
  // Its tokens come from MixBits(seed, n).
  CallDeal Deal(uint64_t n) const;
  // The Infer request of a deal: the first `tokens` rows of its model's input.
  v1::InferRequest MakeRequest(const CallDeal& deal) const;
  // The same as a v2 ModelInferRequest (--protocol v2), without an id.
  inference::ModelInferRequest MakeV2Request(const CallDeal& deal) const;
  // A v2 answer to `deal` in ffn.v1's terms, into `response`; INTERNAL if it
  // is not the answer the deal asked for (no FP32 output of its size).
  grpc::Status ReadV2Answer(const CallDeal& deal, const inference::ModelInferResponse& answer,
                            v1::InferResponse* response) const;

  // Builds `call`'s request for `deal` in the run's protocol, and sends it
  // on `queue` with `tag` (the context's deadline set first).
  void Prepare(const CallDeal& deal, UnaryInfer* call) const;
  void Send(const CallDeal& deal, UnaryInfer* call, grpc::CompletionQueue* queue,
            void* tag) const;
  // Once the call is done: a v2 answer becomes `call->response` (a bad
  // answer, its status INTERNAL).
  void Complete(const CallDeal& deal, UnaryInfer* call) const;
};

// Validates the options, makes the channels, lists the models (first target
// that answers), selects the variants and builds the inputs. Errors as
// RunLoad's.
absl::StatusOr<std::unique_ptr<LoadPlan>> BuildLoadPlan(const LoadOptions& options);

}  // namespace ffn::client

#endif  // FFN_CLIENT_SRC_LOAD_PLAN_H_
