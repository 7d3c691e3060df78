// Checking a server's answers on the client: rebuild a served model's weights
// from what ListModels reports and compare with the fp64 reference FFN.
//
// Example:
//   ffn::v1::ModelInfo info;         // from ListModels
//   std::vector<float> x;            // the request's input
//   ffn::v1::InferResponse response;  // the server's answer to it
//   ASSIGN_OR_RETURN(ffn::FfnWeights weights, ffn::client::WeightsForModel(info, ""));
//   ffn::ActivationParams params = ffn::client::ParamsForModel(info, weights);
//   ASSIGN_OR_RETURN(ffn::ReferenceComparison c,
//                    ffn::client::CompareAnswer(info, weights, "gelu", x, response));
//   bool passed = c.within(ffn::kFp32CheckTolerance);
#ifndef FFN_CLIENT_CHECK_H_
#define FFN_CLIENT_CHECK_H_

#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "ffn/kernels/activation.h"
#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/moe.h"
#include "ffn/kernels/reference.h"
#include "ffn/v1/ffn.pb.h"

namespace ffn::client {

// The weights the server runs for the model `info` describes.
//
// Random weights: RandomFfnWeights(kind, d_model, d_ff, seed), with the PReLU
// slopes the server reports in info.params().
// Safetensors: the file `weights_override` if not empty (a local copy of the
// server's file), else info.safetensors().path(), read with the tensor names
// of info.safetensors().tensors() and the roles' nn.Linear shapes (w1, wg, wu
// [d_ff, d_model]; w2 [d_model, d_ff]; b1 [d_ff]; b2 [d_model]; alpha [1] or
// [d_ff], default {0.25}); plain models have biases iff b1 is named.
//
// INVALID_ARGUMENT if `info` lacks a kind, dimensions, weight source or a
// required role, or if `weights_override` is given for random weights; the
// safetensors reader's error (NOT_FOUND, INVALID_ARGUMENT, ...) naming the
// role if the file does not hold what `info` says. Errors name the model.
absl::StatusOr<FfnWeights> WeightsForModel(const v1::ModelInfo& info,
                                           const std::string& weights_override);

// The activation parameters the server uses for `info`. prelu_alpha points
// into info.params() if the server reported slopes, else into
// weights.prelu_alpha, else to a static {0.25}: `info` and `weights` must
// outlive the result.
ActivationParams ParamsForModel(const v1::ModelInfo& info, const FfnWeights& weights);

// The check a served answer must pass: int8 for a quantized model, else the
// tolerance of the compute dtype that ran.
CheckBound CheckBoundFor(const v1::ModelInfo& info, v1::DType compute);

// Compares `response`'s output with ReferenceFfn(weights, activation, input)
// in fp64. `activation` is the one that ran (response.variant().activation()).
// INVALID_ARGUMENT if the activation is unknown, or the output is not
// FLOAT32 of shape [tokens, d_model] with tokens = input.size() / d_model.
absl::StatusOr<ReferenceComparison> CompareAnswer(const v1::ModelInfo& info,
                                                  const FfnWeights& weights,
                                                  const std::string& activation,
                                                  std::span<const float> input,
                                                  const v1::InferResponse& response);

// A mixture-of-experts model's weights (info.moe() set): random ones as
// RandomMoeWeights builds them from the seed, with the model's norm; a
// checkpoint's layer read from its folder (or `weights_override`).
// INVALID_ARGUMENT for other weight sources.
absl::StatusOr<MoeWeights> MoeWeightsForModel(const v1::ModelInfo& info,
                                              const std::string& weights_override);
// Compares a mixture-of-experts answer with ReferenceMoe along the routing
// the server returned (the request asked return_routing). For f32 compute
// the routing must also be RouteTokens' choice for the input, where the
// model has no pre-norm (with one, the client does not see the normed
// input the router saw). INVALID_ARGUMENT as CompareAnswer, or if the
// response has no (or a bad) routing, or chose other experts.
absl::StatusOr<ReferenceComparison> CompareMoeAnswer(const v1::ModelInfo& info,
                                                     const MoeWeights& weights,
                                                     const std::string& activation,
                                                     std::span<const float> input,
                                                     const v1::InferResponse& response);

}  // namespace ffn::client

#endif  // FFN_CLIENT_CHECK_H_
