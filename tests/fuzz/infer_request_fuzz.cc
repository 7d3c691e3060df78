// libFuzzer target: bytes as an Infer or InferStream request arrives on the
// wire, through the server's parsing and validation up to the engine call
// (ParseInferRequest, ValidateInfer, and the output sizing InferCall does).
// Nothing may crash, and whatever validation accepts must be exactly the
// bytes its shape and dtype need.
#include <cstdint>
#include <cstdlib>

#include "ffn/server/validate_infer.h"
#include "fuzz_models.h"
#include "google/protobuf/stubs/logging.h"
#include "grpcpp/support/byte_buffer.h"
#include "infer_call.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // As in the server (which sends them to its debug log): libprotobuf's line
  // per string field that is not UTF-8 would drown the fuzzer's output.
  google::protobuf::SetLogHandler(nullptr);
  // Load the models here: their start-up is not part of any input's time.
  ffn::fuzz::Registry();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  grpc::Slice slice(data, size);
  const grpc::ByteBuffer bytes(&slice, 1);
  ffn::v1::InferRequest request;
  if (!ffn::ParseInferRequest(bytes, &request).ok()) return 0;
  const ffn::ValidatedInfer validated = ffn::ValidateInfer(ffn::fuzz::Registry(), request);
  if (!validated.status.ok()) {
    // A message that grows with the request would overflow gRPC's metadata.
    if (validated.status.message().size() > 4096) std::abort();
    return 0;
  }
  const ffn::Model& model = *validated.variant->model;
  const int64_t tokens = validated.input.tokens;
  if (tokens < 1 || tokens > model.max_tokens) std::abort();
  const uint64_t needed = static_cast<uint64_t>(tokens) *
                          static_cast<uint64_t>(model.config.d_model) *
                          ffn::ElementBytes(validated.input.type);
  if (request.input().data().size() != needed) std::abort();
  // Routing is accepted only for a mixture of experts, k ids per token.
  if (request.has_routing()) {
    const ffn::MoeWeights* moe = model.block->moe();
    if (moe == nullptr) std::abort();
    if (request.routing().expert_ids_size() != tokens * moe->top_k) std::abort();
  }
  return 0;
}
