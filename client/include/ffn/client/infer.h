// One Infer call as `ffn-client infer` makes it: seeded input, timing, and
// optionally the fp64 check of the answer.
//
// Example:
//   auto stub = ffn::v1::FfnService::NewStub(ffn::client::MakeChannel("127.0.0.1:50051"));
//   ffn::client::InferOptions options;
//   options.model = "glu-768";
//   options.activation = "geglu";
//   options.tokens = 7;
//   options.check = true;
//   ASSIGN_OR_RETURN(ffn::client::InferOutcome outcome, ffn::client::RunInfer(*stub, options));
//   bool passed = outcome.comparison->within(ffn::kFp32CheckTolerance);
#ifndef FFN_CLIENT_INFER_H_
#define FFN_CLIENT_INFER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ffn/client/kserve.h"
#include "ffn/kernels/reference.h"
#include "grpcpp/channel.h"
#include "ffn/v1/ffn.grpc.pb.h"

namespace ffn::client {

struct InferOptions {
  std::string model;
  std::string activation;  // empty: the model's default
  std::string compute_dtype;  // "f32" or "bf16"; empty: the model's default
  int64_t tokens = 1;
  uint64_t seed = 0;             // of the random input
  bool check = false;            // compare the answer with the fp64 reference
  std::string weights_override;  // local safetensors file for the check
  double timeout_seconds = 30;
  // kV2: one ModelInfer of the Open Inference Protocol to the v2 model
  // `model` (activation and compute dtype, if given, as request parameters);
  // --check then needs the server to also speak ffn.v1 (ffnserve), whose
  // ListModels gives the weights.
  Protocol protocol = Protocol::kFfnV1;
};

struct InferOutcome {
  v1::ModelInfo model;
  v1::InferResponse response;
  std::vector<float> output;                      // response's output values, [tokens, d_model]
  int64_t round_trip_us = 0;                      // client-side, around the Infer call only
  std::optional<ReferenceComparison> comparison;  // set iff options.check
};

// Looks the model up with ListModels, sends one Infer with
// RandomInput(tokens, d_model, seed) and, if options.check, compares the
// answer as CompareAnswer does. Fails with the first failed call's status
// (NOT_FOUND for an unknown model), INVALID_ARGUMENT if tokens is not within
// the model's 1..max_tokens (checked before sending), or the check's error; a check that runs
// but finds the answer out of tolerance is not an error: see `comparison`.
absl::StatusOr<InferOutcome> RunInfer(v1::FfnService::StubInterface& stub,
                                      const InferOptions& options);
// RunInfer in options.protocol over `channel`.
absl::StatusOr<InferOutcome> RunInferOn(const std::shared_ptr<grpc::Channel>& channel,
                                        const InferOptions& options);

}  // namespace ffn::client

#endif  // FFN_CLIENT_INFER_H_
