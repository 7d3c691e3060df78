#include "kserve_infer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ffn/kernels/activation.h"
#include "ffn/server/scheduler.h"
#include "ffn/server/variant_key.h"

namespace ffn::kserve {
namespace {

// A client-given name in a message, cut short when long (as ffn.v1 does).
std::string Quoted(const std::string& name) {
  constexpr size_t kShown = 64;
  if (name.size() <= kShown) return absl::StrCat("'", name, "'");
  return absl::StrCat("'", name.substr(0, kShown), "...' (", name.size(), " bytes)");
}

absl::Status CheckVersion(const std::string& name, const std::string& version) {
  if (version.empty() || version == kModelVersion) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("model ", Quoted(name), " has no version ",
                                          Quoted(version), "; it has version ", kModelVersion));
}

// The string value of request parameter `key`, if given.
absl::StatusOr<std::optional<std::string>> StringParameter(
    const google::protobuf::Map<std::string, inference::InferParameter>& parameters,
    const std::string& key) {
  auto it = parameters.find(key);
  if (it == parameters.end()) return std::optional<std::string>();
  if (it->second.parameter_choice_case() != inference::InferParameter::kStringParam) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", key, "' must be a string (string_param)"));
  }
  return std::optional<std::string>(it->second.string_param());
}

absl::StatusOr<v1::DType> ParseComputeDType(const std::string& name) {
  if (name.empty()) return v1::DTYPE_UNSPECIFIED;
  if (name == "f32" || name == "FP32") return v1::FLOAT32;
  if (name == "bf16" || name == "BF16") return v1::BFLOAT16;
  return absl::InvalidArgumentError(absl::StrCat(
      "compute_dtype ", Quoted(name), " is not f32 or bf16 (or absent for the model's default)"));
}

// FP16 bytes → FP32 bytes, after checking their count against the shape
// (with the FP16 element size, which ffn.v1's check would not know).
absl::Status Fp16ToFp32(const inference::ModelInferRequest::InferInputTensor& input,
                        const std::string& half, std::string* single) {
  if (input.shape_size() == 2 && input.shape(0) >= 0 && input.shape(1) >= 0 &&
      input.shape(0) <= (int64_t{1} << 30) && input.shape(1) <= (int64_t{1} << 30)) {
    const uint64_t expected = static_cast<uint64_t>(input.shape(0)) *
                              static_cast<uint64_t>(input.shape(1)) * 2;
    if (half.size() != expected) {
      return absl::InvalidArgumentError(absl::StrCat("input data has ", half.size(),
                                                     " bytes; shape [", input.shape(0), ", ",
                                                     input.shape(1), "] of FP16 needs ", expected));
    }
  }
  if (half.size() % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("FP16 input data has an odd number of bytes (", half.size(), ")"));
  }
  const size_t n = half.size() / 2;
  single->resize(n * sizeof(float));
  auto* out = reinterpret_cast<float*>(single->data());
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, half.data() + 2 * i, sizeof(h));
    out[i] = HalfToFloat(h);
  }
  return absl::OkStatus();
}

void SetInt(google::protobuf::Map<std::string, inference::InferParameter>* parameters,
            const std::string& key, int64_t value) {
  (*parameters)[key].set_int64_param(value);
}

void SetString(google::protobuf::Map<std::string, inference::InferParameter>* parameters,
               const std::string& key, const std::string& value) {
  (*parameters)[key].set_string_param(value);
}

void AddDuration(inference::StatisticDuration* d, uint64_t count, double mean_us) {
  d->set_count(d->count() + count);
  d->set_ns(d->ns() + static_cast<uint64_t>(std::llround(mean_us * 1000.0 * static_cast<double>(count))));
}

// Adds every variant of `model` (of `activation`, when not empty) in `stats`
// (a snapshot with exact batch sizes).
void Accumulate(const v1::GetStatsResponse& stats, const std::string& model,
                const std::string& activation, inference::ModelStatistics* out) {
  // compute_input and compute_output stay empty: copying rows into and out
  // of the batch is part of the engine call, in compute_infer.
  inference::InferStatistics* infer = out->mutable_inference_stats();
  std::map<uint64_t, inference::StatisticDuration> by_size;  // engine calls by tokens
  for (const v1::VariantStats& v : stats.variants()) {
    if (v.variant().model() != model) continue;
    if (!activation.empty() && v.variant().activation() != activation) continue;
    out->set_inference_count(out->inference_count() + v.tokens());
    out->set_execution_count(out->execution_count() + v.batches());
    out->set_last_inference(
        std::max(out->last_inference(), static_cast<uint64_t>(v.last_success_unix_ms())));
    AddDuration(infer->mutable_success(), v.requests(), v.total().mean_us());
    AddDuration(infer->mutable_fail(), v.errors(), 0);
    AddDuration(infer->mutable_queue(), v.requests(), v.queue().mean_us());
    AddDuration(infer->mutable_compute_infer(), v.requests(), v.compute().mean_us());
    for (const v1::BatchSizeStats& size : v.batch_sizes()) {
      AddDuration(&by_size[static_cast<uint64_t>(size.tokens_from())], size.batches(),
                  size.compute_mean_us());
    }
  }
  for (const auto& [tokens, duration] : by_size) {
    inference::InferBatchStatistics* batch = out->add_batch_stats();
    batch->set_batch_size(tokens);
    *batch->mutable_compute_infer() = duration;
  }
}

}  // namespace

CallLimits WithTimeout(CallLimits limits, const Translated& call) {
  if (call.timeout) {
    // Beyond ~292 years the sum would overflow; such a timeout is none.
    const auto now = std::chrono::system_clock::now();
    if (*call.timeout < limits.deadline - now) limits.deadline = now + *call.timeout;
  }
  return limits;
}

const char* WireTypeName(WireType type) {
  switch (type) {
    case WireType::kBf16: return "BF16";
    case WireType::kFp16: return "FP16";
    case WireType::kFp32: break;
  }
  return "FP32";
}

std::optional<WireType> ParseWireType(const std::string& name) {
  if (name == "FP32") return WireType::kFp32;
  if (name == "BF16") return WireType::kBf16;
  if (name == "FP16") return WireType::kFp16;
  return std::nullopt;
}

size_t WireElementBytes(WireType type) { return type == WireType::kFp32 ? 4 : 2; }

uint16_t FloatToHalf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  const uint32_t sign = (bits >> 16) & 0x8000u;
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  // 65520 = 0x477ff000 and above round to infinity.
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (magnitude < 0x38800000u) {
    // Below fp16's smallest normal (2^-14): a multiple of 2^-24. Adding 0.5
    // (whose ulp is 2^-24) lets the FPU round to it, ties to even; the
    // multiple is then the low mantissa bits.
    float scaled;
    std::memcpy(&scaled, &magnitude, sizeof(scaled));
    scaled += 0.5f;
    uint32_t rounded;
    std::memcpy(&rounded, &scaled, sizeof(rounded));
    return static_cast<uint16_t>(sign | (rounded - 0x3f000000u));
  }
  // Normal: rebias the exponent (127 → 15) and round the 13 dropped
  // mantissa bits to nearest, ties to even; a carry moves into the exponent.
  const uint32_t odd = (magnitude >> 13) & 1u;
  magnitude += 0xc8000000u + 0xfffu + odd;  // 0xc8000000 = (15 - 127) << 23 mod 2^32
  return static_cast<uint16_t>(sign | (magnitude >> 13));
}

float HalfToFloat(uint16_t value) {
  const uint32_t sign = static_cast<uint32_t>(value & 0x8000u) << 16;
  const uint32_t exponent = (value >> 10) & 0x1fu;
  const uint32_t mantissa = value & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa · 2^-24, exact in fp32
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign != 0 ? -magnitude : magnitude;
  }
  const uint32_t bits = exponent == 0x1f ? (sign | 0x7f800000u | (mantissa << 13))
                                         : (sign | ((exponent + 112) << 23) | (mantissa << 13));
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

ModelName SplitModelName(const ModelRegistry& registry, const std::string& name) {
  if (registry.Find(name) != nullptr) return {name, ""};
  const size_t colon = name.rfind(':');
  if (colon == std::string::npos || registry.Find(name.substr(0, colon)) == nullptr) {
    return {name, ""};
  }
  return {name.substr(0, colon), name.substr(colon + 1)};
}

absl::StatusOr<InferVariant> ResolveModel(const ModelRegistry& registry, const std::string& name,
                                          const std::string& version) {
  const ModelName split = SplitModelName(registry, name);
  v1::InferRequest request;
  request.set_model(split.model);
  request.set_activation(split.activation);
  absl::StatusOr<InferVariant> variant = ValidateVariant(registry, request);
  if (!variant.ok()) return variant.status();
  if (absl::Status status = CheckVersion(name, version); !status.ok()) return status;
  return variant;
}

absl::Status ToFfnRequest(const ModelRegistry& registry, inference::ModelInferRequest& in,
                          Translated* out) {
  out->model_name = in.model_name();
  out->id = in.id();
  const ModelName name = SplitModelName(registry, in.model_name());
  v1::InferRequest& request = out->request;
  request.set_model(name.model);

  absl::StatusOr<std::optional<std::string>> activation =
      StringParameter(in.parameters(), "activation");
  if (!activation.ok()) return activation.status();
  if (activation->has_value() && !name.activation.empty() && **activation != name.activation) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model name ", Quoted(in.model_name()), " selects activation '", name.activation,
        "' but parameter activation is ", Quoted(**activation)));
  }
  request.set_activation(activation->has_value() ? **activation : name.activation);
  absl::StatusOr<std::optional<std::string>> compute =
      StringParameter(in.parameters(), "compute_dtype");
  if (!compute.ok()) return compute.status();
  if (compute->has_value()) {
    absl::StatusOr<v1::DType> dtype = ParseComputeDType(**compute);
    if (!dtype.ok()) return dtype.status();
    request.set_compute_dtype(*dtype);
  }
  if (auto it = in.parameters().find("timeout"); it != in.parameters().end()) {
    if (it->second.parameter_choice_case() != inference::InferParameter::kInt64Param ||
        it->second.int64_param() < 0) {
      return absl::InvalidArgumentError(
          "parameter 'timeout' must be a count of microseconds >= 0 (int64_param)");
    }
    if (it->second.int64_param() > 0) {
      out->timeout = std::chrono::microseconds(it->second.int64_param());
    }
  }
  // The variant first, as ffn.v1 checks it.
  absl::StatusOr<InferVariant> variant = ValidateVariant(registry, request);
  if (!variant.ok()) return variant.status();
  if (absl::Status version = CheckVersion(in.model_name(), in.model_version()); !version.ok()) {
    return version;
  }
  out->variant = *variant;
  const std::string& model = variant->model->config.name;

  if (in.inputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("model '", model, "' takes one input, '",
                                                   kInputName, "'; the request has ",
                                                   in.inputs_size()));
  }
  const inference::ModelInferRequest::InferInputTensor& input = in.inputs(0);
  if (input.name() != kInputName) {
    return absl::InvalidArgumentError(absl::StrCat("input ", Quoted(input.name()),
                                                   " is not an input of model '", model,
                                                   "'; its one input is '", kInputName, "'"));
  }
  const std::optional<WireType> wire = ParseWireType(input.datatype());
  if (!wire) {
    return absl::InvalidArgumentError(absl::StrCat("input datatype ", Quoted(input.datatype()),
                                                   " is not served; send FP32, BF16 or FP16"));
  }
  out->wire = *wire;
  for (const auto& requested : in.outputs()) {
    if (requested.name() != kOutputName) {
      return absl::InvalidArgumentError(absl::StrCat("output ", Quoted(requested.name()),
                                                     " is not an output of model '", model,
                                                     "'; its one output is '", kOutputName, "'"));
    }
  }

  v1::Tensor* tensor = request.mutable_input();
  for (int64_t dim : input.shape()) tensor->add_shape(dim);
  std::string wire_bytes;
  if (in.raw_input_contents_size() > 0) {
    if (in.raw_input_contents_size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("raw_input_contents has ",
                                                     in.raw_input_contents_size(),
                                                     " entries; the request has 1 input"));
    }
    if (input.contents().fp32_contents_size() > 0) {
      return absl::InvalidArgumentError(
          "input 'input' has both contents and raw_input_contents; send one");
    }
    wire_bytes.swap(*in.mutable_raw_input_contents(0));
  } else {
    if (*wire != WireType::kFp32) {
      return absl::InvalidArgumentError(
          absl::StrCat(WireTypeName(*wire), " input data travels in raw_input_contents: the "
                       "protocol has no typed contents field for it"));
    }
    const auto& values = input.contents().fp32_contents();
    wire_bytes.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
    out->typed_output = true;
  }
  switch (*wire) {
    case WireType::kFp32:
      tensor->set_dtype(v1::FLOAT32);
      tensor->mutable_data()->swap(wire_bytes);
      break;
    case WireType::kBf16:
      tensor->set_dtype(v1::BFLOAT16);
      tensor->mutable_data()->swap(wire_bytes);
      break;
    case WireType::kFp16:
      tensor->set_dtype(v1::FLOAT32);
      if (absl::Status status = Fp16ToFp32(input, wire_bytes, tensor->mutable_data());
          !status.ok()) {
        return status;
      }
      break;
  }
  return absl::OkStatus();
}

void CountRefused(ServerStats& stats, const Translated& call, const absl::Status& status) {
  if (call.variant) {
    const InferVariant& v = *call.variant;
    stats.RecordError(VariantFor(*v.model, v.activation, v.compute), status.code());
  } else {
    stats.RecordRejected(status.code());
  }
}

void ToKServeResponse(const Translated& call, v1::InferResponse& answer,
                      inference::ModelInferResponse* out) {
  out->set_model_name(call.model_name);
  out->set_model_version(kModelVersion);
  out->set_id(call.id);
  auto* parameters = out->mutable_parameters();
  SetString(parameters, "activation", answer.variant().activation());
  SetString(parameters, "compute_dtype", answer.variant().dtype() == v1::BFLOAT16 ? "bf16" : "f32");
  SetInt(parameters, "queue_us", answer.queue_us());
  SetInt(parameters, "compute_us", answer.compute_us());
  SetInt(parameters, "total_us", answer.total_us());
  SetInt(parameters, "batch_tokens", answer.batch_tokens());

  inference::ModelInferResponse::InferOutputTensor* output = out->add_outputs();
  output->set_name(kOutputName);
  output->set_datatype(WireTypeName(call.wire));
  for (int64_t dim : answer.output().shape()) output->add_shape(dim);
  std::string& data = *answer.mutable_output()->mutable_data();
  if (call.wire == WireType::kFp16) {
    const size_t n = data.size() / sizeof(float);
    std::string half(n * 2, '\0');
    const auto* in = reinterpret_cast<const float*>(data.data());
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = FloatToHalf(in[i]);
      std::memcpy(half.data() + 2 * i, &h, sizeof(h));
    }
    data.swap(half);
  }
  if (call.typed_output) {
    auto* values = output->mutable_contents()->mutable_fp32_contents();
    values->Resize(static_cast<int>(data.size() / sizeof(float)), 0.0f);
    std::memcpy(values->mutable_data(), data.data(), data.size());
  } else {
    out->add_raw_output_contents()->swap(data);
  }
  answer.clear_output();
}

std::vector<std::string> ServedNames(const Model& model) {
  std::vector<std::string> names = {model.config.name};
  for (const std::string& activation : model.info.activations()) {
    names.push_back(absl::StrCat(model.config.name, ":", activation));
  }
  return names;
}

inference::ModelMetadataResponse MetadataOf(const Model& model, const std::string& name) {
  inference::ModelMetadataResponse metadata;
  metadata.set_name(name);
  metadata.add_versions(std::string(kModelVersion));
  metadata.set_platform(kPlatform);
  auto describe = [&](inference::ModelMetadataResponse::TensorMetadata* tensor,
                      const std::string& tensor_name) {
    tensor->set_name(tensor_name);
    tensor->set_datatype("FP32");
    tensor->add_shape(-1);
    tensor->add_shape(model.config.d_model);
  };
  describe(metadata.add_inputs(), kInputName);
  describe(metadata.add_outputs(), kOutputName);
  return metadata;
}

inference::ModelConfig ConfigOf(const Model& model, const InferVariant& variant,
                                const std::string& name) {
  inference::ModelConfig config;
  config.set_name(name);
  config.set_platform(kPlatform);
  config.set_backend(kPlatform);
  config.set_max_batch_size(static_cast<int32_t>(model.max_tokens));
  inference::ModelInput* input = config.add_input();
  input->set_name(kInputName);
  input->set_data_type(inference::TYPE_FP32);
  input->add_dims(model.config.d_model);
  inference::ModelOutput* output = config.add_output();
  output->set_name(kOutputName);
  output->set_data_type(inference::TYPE_FP32);
  output->add_dims(model.config.d_model);
  config.mutable_dynamic_batching()->set_max_queue_delay_microseconds(
      static_cast<uint64_t>(model.batching.max_queue_delay_us));
  config.mutable_model_transaction_policy()->set_decoupled(false);
  auto& parameters = *config.mutable_parameters();
  parameters["activation"].set_string_value(ActivationName(variant.activation));
  parameters["compute_dtype"].set_string_value(DataTypeName(variant.compute));
  parameters["activations"].set_string_value(absl::StrJoin(model.info.activations(), ","));
  parameters["kind"].set_string_value(model.config.kind == FfnKind::kGated ? "gated" : "plain");
  parameters["d_model"].set_string_value(absl::StrCat(model.config.d_model));
  parameters["d_ff"].set_string_value(absl::StrCat(model.config.d_ff));
  parameters["max_batch_tokens"].set_string_value(absl::StrCat(model.batching.max_batch_tokens));
  return config;
}

absl::StatusOr<inference::ModelStatisticsResponse> StatisticsOf(const ModelRegistry& registry,
                                                                const v1::GetStatsResponse& stats,
                                                                const std::string& name,
                                                                const std::string& version) {
  inference::ModelStatisticsResponse response;
  if (name.empty()) {
    for (const auto& model : registry.models()) {
      inference::ModelStatistics* entry = response.add_model_stats();
      entry->set_name(model->config.name);
      entry->set_version(kModelVersion);
      Accumulate(stats, model->config.name, "", entry);
    }
    return response;
  }
  absl::StatusOr<InferVariant> variant = ResolveModel(registry, name, version);
  if (!variant.ok()) return variant.status();
  const ModelName split = SplitModelName(registry, name);
  inference::ModelStatistics* entry = response.add_model_stats();
  entry->set_name(name);
  entry->set_version(kModelVersion);
  Accumulate(stats, split.model,
             split.activation.empty() ? "" : ActivationName(variant->activation), entry);
  return response;
}

}  // namespace ffn::kserve
