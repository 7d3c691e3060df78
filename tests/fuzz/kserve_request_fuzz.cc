// libFuzzer target: bytes as a KServe v2 ModelInferRequest arrives on the
// gRPC wire, through its translation into an ffn.v1 request (names and
// MODEL:ACTIVATION, parameters, datatypes with FP16 conversion, typed and
// raw contents) and ffn.v1's validation up to the engine call. Nothing may
// crash; an error message must stay bounded; whatever both accept must be
// exactly the bytes its shape and dtype need.
#include <cstdint>
#include <cstdlib>

#include "ffn/server/validate_infer.h"
#include "fuzz_models.h"
#include "google/protobuf/stubs/logging.h"
#include "inference/grpc_service.pb.h"
#include "kserve_infer.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(nullptr);
  ffn::fuzz::Registry();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  ffn::kserve::Translated call;
  const absl::Status translated = ffn::kserve::ToFfnRequest(ffn::fuzz::Registry(), request, &call);
  if (!translated.ok()) {
    if (translated.message().size() > 4096) std::abort();
    return 0;
  }
  const ffn::ValidatedInfer validated = ffn::ValidateInfer(ffn::fuzz::Registry(), call.request);
  if (!validated.status.ok()) {
    if (validated.status.message().size() > 4096) std::abort();
    return 0;
  }
  const ffn::Model& model = *validated.variant->model;
  const uint64_t needed = static_cast<uint64_t>(validated.input.tokens) *
                          static_cast<uint64_t>(model.config.d_model) *
                          ffn::ElementBytes(validated.input.type);
  if (call.request.input().data().size() != needed) std::abort();
  return 0;
}
