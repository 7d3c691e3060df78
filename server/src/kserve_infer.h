// The Open Inference Protocol (KServe v2) in terms of ffn.v1: a v2 request
// becomes the ffn.v1 request that runs through InferCall (the same
// validation, scheduler, limits and statistics), and its answer becomes the
// v2 response. The gRPC and HTTP front ends both use it, so the two
// transports cannot differ in what they accept or answer.
//
// Names: every model is served under its own name (activation and compute
// dtype from the request parameters "activation" and "compute_dtype", by
// default the model's) and each of its variants also as MODEL:ACTIVATION.
// One input, "input" [tokens, d_model], FP32, BF16 or FP16; one output,
// "output", of the input's datatype. FP16 is converted to and from FP32 at
// this boundary (the engine reads FP32 and BF16).
//
// Example:
//   absl::Status Translate(const ffn::ModelRegistry& registry,
//                          inference::ModelInferRequest& request) {
//     ffn::kserve::Translated call;
//     return ffn::kserve::ToFfnRequest(registry, request, &call);  // then InferCall::Start
//   }
#ifndef FFN_SERVER_SRC_KSERVE_INFER_H_
#define FFN_SERVER_SRC_KSERVE_INFER_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/stats.h"
#include "ffn/server/validate_infer.h"
#include "ffn/v1/ffn.pb.h"
#include "infer_call.h"
#include "inference/grpc_service.pb.h"

namespace ffn::kserve {

inline constexpr char kInputName[] = "input";
inline constexpr char kOutputName[] = "output";
// Every model has one version.
inline constexpr char kModelVersion[] = "1";
inline constexpr char kPlatform[] = "ffnserve";

// A tensor's element type on the wire.
enum class WireType { kFp32, kBf16, kFp16 };
// "FP32", "BF16", "FP16": the protocol's datatype names.
const char* WireTypeName(WireType type);
std::optional<WireType> ParseWireType(const std::string& name);
size_t WireElementBytes(WireType type);

// fp16 ↔ fp32: fp32 → fp16 rounds to nearest, ties to even; values beyond
// fp16's range become ±inf; NaN stays a (quiet) NaN. fp16 → fp32 is exact.
uint16_t FloatToHalf(float value);
float HalfToFloat(uint16_t value);

// A v2 model name: "MODEL", or "MODEL:ACTIVATION" when MODEL is not itself a
// model's name (activation empty otherwise).
struct ModelName {
  std::string model;
  std::string activation;
};
ModelName SplitModelName(const ModelRegistry& registry, const std::string& name);

// The variant a v2 model name and version select (the model's defaults for
// what the name leaves out). NOT_FOUND for an unknown model or a version
// other than "" and "1"; INVALID_ARGUMENT for an activation the model does
// not serve; with ffn.v1's messages.
absl::StatusOr<InferVariant> ResolveModel(const ModelRegistry& registry, const std::string& name,
                                          const std::string& version);

// One v2 request while it runs: the ffn.v1 request, and what its answer
// needs.
struct Translated {
  v1::InferRequest request;
  std::string model_name;  // as the client named it, echoed in the answer
  std::string id;
  WireType wire = WireType::kFp32;
  // The input came as typed contents (fp32_contents): the output goes back
  // the same way rather than as raw bytes.
  bool typed_output = false;
  // Set once model, activation and compute dtype are valid, so that a bad
  // tensor counts against its variant (as ffn.v1 counts it).
  std::optional<InferVariant> variant;
  // The request's parameter "timeout" (microseconds, as tritonclient's
  // infer(timeout=) sends it): its computation is dropped with
  // DEADLINE_EXCEEDED if it has not started by then. Unset: none (0 too).
  std::optional<std::chrono::microseconds> timeout;
};

// `limits` with the request's timeout: the earlier of their deadlines.
CallLimits WithTimeout(CallLimits limits, const Translated& call);

// Translates `in` into `out`, moving its raw input bytes rather than copying
// them (FP16 is converted). INVALID_ARGUMENT or NOT_FOUND, with ffn.v1's
// messages where ffn.v1 has the same check, when the request cannot run;
// the variant is checked before the tensor, as in ffn.v1.
absl::Status ToFfnRequest(const ModelRegistry& registry, inference::ModelInferRequest& in,
                          Translated* out);

// Counts a request that ToFfnRequest refused: against its variant if known,
// else as rejected.
void CountRefused(ServerStats& stats, const Translated& call, const absl::Status& status);

// The v2 answer of a request that ran OK; moves `answer`'s output bytes.
// Its parameters carry what ffn.v1's answer does: activation,
// compute_dtype, queue_us, compute_us, total_us, batch_tokens.
void ToKServeResponse(const Translated& call, v1::InferResponse& answer,
                      inference::ModelInferResponse* out);

// The names a model is served under: its own, then MODEL:ACTIVATION for
// each activation it serves.
std::vector<std::string> ServedNames(const Model& model);

inference::ModelMetadataResponse MetadataOf(const Model& model, const std::string& name);
// max_batch_size is the model's max tokens (tokens are the batch dimension).
inference::ModelConfig ConfigOf(const Model& model, const InferVariant& variant,
                                 const std::string& name);

// Statistics of the model or variant `name` from a ServerStats snapshot
// (every model by name when `name` is empty). Durations are the exact sums
// of the recorded per-request times (count × mean). `stats` must have exact
// batch sizes (ServerStats::Snapshot(true)): batch_stats has one entry per
// engine-call token count.
absl::StatusOr<inference::ModelStatisticsResponse> StatisticsOf(const ModelRegistry& registry,
                                                                const v1::GetStatsResponse& stats,
                                                                const std::string& name,
                                                                const std::string& version);

}  // namespace ffn::kserve

#endif  // FFN_SERVER_SRC_KSERVE_INFER_H_
