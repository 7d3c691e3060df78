// Human-readable and JSON renderings of what ListModels, GetStats and Infer
// answer, as ffn-client prints them.
#ifndef FFN_CLIENT_FORMAT_H_
#define FFN_CLIENT_FORMAT_H_

#include <string>
#include <vector>

#include "ffn/client/infer.h"
#include "ffn/v1/ffn.pb.h"
#include "nlohmann/json.hpp"

namespace ffn::client {

// "random seed N" or the safetensors path.
std::string WeightsSource(const v1::ModelInfo& info);

// name, kind, d_model, d_ff, default activation, accepted activations, dtype,
// weights source.
std::string ModelsTable(const std::vector<v1::ModelInfo>& models);
// A list of objects with the table's fields plus has_bias, max_tokens, the
// safetensors tensor names and the activation parameters.
nlohmann::json ModelsJson(const std::vector<v1::ModelInfo>& models);

// Per variant: requests, tokens, errors, req/s over the uptime and over the
// window, tokens/s, total latency p50/p90/p99/max, mean queue and compute
// times (all us), GFLOP/s; then uptime and rejected requests.
std::string StatsTable(const v1::GetStatsResponse& stats);
// The message in proto3's JSON mapping (field names as in the .proto).
std::string StatsJson(const v1::GetStatsResponse& stats);

// What ran, output shape, first values, mean/min/max of the output, server
// queue/compute/total and client round-trip times; with the check's figures
// and verdict against `bound` if the outcome has a comparison.
std::string InferSummary(const InferOutcome& outcome, const CheckBound& bound);

}  // namespace ffn::client

#endif  // FFN_CLIENT_FORMAT_H_
