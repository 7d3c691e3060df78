// Talking the Open Inference Protocol (KServe v2) over gRPC to any server
// that speaks it (ffnserve, Triton, MLServer, KServe): what a model takes,
// from ModelMetadata (and ModelConfig where offered), and one FP32 request
// and its answer in ffn.v1's terms, so the load generator and its reports
// serve both protocols.
//
// Example:
//   auto channel = ffn::client::MakeChannel("127.0.0.1:50051");
//   auto stub = inference::GRPCInferenceService::NewStub(channel);
//   absl::StatusOr<ffn::client::V2Model> model =
//       ffn::client::DescribeV2Model(*stub, "ffn-768:gelu", /*timeout_seconds=*/30);
//   if (model.ok()) {
//     std::vector<float> x(static_cast<size_t>(2 * model->d_model), 0.5f);
//     inference::ModelInferRequest request = ffn::client::MakeV2Request(*model, x, 2, "");
//   }
#ifndef FFN_CLIENT_KSERVE_H_
#define FFN_CLIENT_KSERVE_H_

#include <cstdint>
#include <span>
#include <vector>
#include <string>

#include "absl/status/statusor.h"
#include "ffn/v1/ffn.pb.h"
#include "inference/grpc_service.grpc.pb.h"

namespace ffn::client {

// Which API the client speaks.
enum class Protocol { kFfnV1, kV2 };
// "ffn" (ffn.v1) or "v2"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Protocol> ParseProtocol(const std::string& name);

// A v2 model that takes one FP32 input of shape [-1, d_model] (or
// [tokens, d_model] with the batch dimension left to the caller).
struct V2Model {
  std::string name;
  std::string input_name;
  std::string output_name;
  int64_t d_model = 0;
  // Largest tokens per request: ModelConfig's max_batch_size; 0: unknown.
  int64_t max_tokens = 0;
  // 2 per multiply-add, from ModelConfig's d_ff and kind parameters
  // (ffnserve gives them); 0: unknown, and the reports give no GFLOP/s.
  double flops_per_token = 0;
};

// ModelMetadata (and ModelConfig if the server has it) of model `name`.
// The server's status on failure; INVALID_ARGUMENT if the model does not
// take a single FP32 input of two dimensions with a fixed last one.
absl::StatusOr<V2Model> DescribeV2Model(inference::GRPCInferenceService::StubInterface& stub,
                                        const std::string& name, double timeout_seconds);

// A request of `tokens` rows of `input` as raw FP32; `compute_dtype`, if
// not empty, as the request parameter ffnserve reads.
inference::ModelInferRequest MakeV2Request(const V2Model& model, std::span<const float> input,
                                           int64_t tokens, const std::string& compute_dtype);

// The answer in ffn.v1's terms: the output (FP32, raw or typed) and, from
// the response's parameters where the server gives them (ffnserve does),
// the variant and the server's timings. INVALID_ARGUMENT if the answer has
// no FP32 output of the expected byte count.
absl::StatusOr<v1::InferResponse> FromV2Response(const inference::ModelInferResponse& response,
                                                 const V2Model& model, int64_t tokens);

}  // namespace ffn::client

#endif  // FFN_CLIENT_KSERVE_H_
