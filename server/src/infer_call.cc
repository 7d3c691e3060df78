#include "infer_call.h"

#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "ffn/server/proto_dtype.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/proto_buffer_writer.h"
#include "ffn/server/validate_infer.h"
#include "spdlog/spdlog.h"

namespace ffn {

absl::Status ParseInferRequest(const grpc::ByteBuffer& bytes, v1::InferRequest* request) {
  grpc::ByteBuffer view(bytes);  // shares the slices; the reader needs a mutable buffer
  grpc::ProtoBufferReader reader(&view);
  if (!reader.status().ok() || !request->ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request (", bytes.Length(), " bytes) is not a valid ffn.v1.InferRequest: malformed or "
        "truncated protobuf, or a string field (model, activation) that is not UTF-8"));
  }
  return absl::OkStatus();
}

absl::Status CallEnded(const grpc::CallbackServerContext& context) {
  if (context.deadline() <= std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError("the deadline passed before the request was received");
  }
  return absl::CancelledError("the client cancelled before the request was received");
}

absl::Status SerializeInferResponse(const v1::InferResponse& response, grpc::ByteBuffer* bytes) {
  bool own_buffer = false;
  const grpc::Status status =
      grpc::SerializationTraits<v1::InferResponse>::Serialize(response, bytes, &own_buffer);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("serializing the answer: ", status.error_message()));
  }
  return absl::OkStatus();
}

CallLimits LimitsOf(grpc::CallbackServerContext* context) {
  return {context->deadline(), [context] { return context->IsCancelled(); }};
}

std::string AuthorizationOf(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  return it == metadata.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

void InferCall::Start(const InferBackend& backend, const v1::InferRequest& request,
                      v1::InferResponse* response, CallLimits limits, Done done,
                      MemoryBudget::Reservation* held) {
  const auto arrival = std::chrono::steady_clock::now();
  const ValidatedInfer validated = ValidateInfer(backend.registry, request);
  if (!validated.status.ok()) {
    // With the variant known (a bad tensor), the rejection counts against it.
    if (validated.variant) {
      const InferVariant& v = *validated.variant;
      backend.stats.RecordError(VariantFor(*v.model, v.activation, v.compute),
                                validated.status.code());
    } else {
      backend.stats.RecordRejected(validated.status.code());
    }
    spdlog::debug("Infer rejected: {}", validated.status.ToString());
    done(validated.status);
    return;
  }
  const InferVariant& v = *validated.variant;
  const VariantKey variant = VariantFor(*v.model, v.activation, v.compute);
  if (backend.budget != nullptr && held != nullptr) {
    const auto input_bytes = static_cast<int64_t>(request.input().data().size());
    absl::StatusOr<MemoryBudget::Reservation> reserved =
        backend.budget->Reserve(InflightBytes(input_bytes));
    if (!reserved.ok()) {
      backend.stats.RecordError(variant, reserved.status().code());
      done(reserved.status());
      return;
    }
    *held = std::move(*reserved);
  }
  const int64_t tokens = validated.input.tokens;
  const DataType io_type = validated.input.type;  // the output's type is the input's
  v1::Tensor* output = response->mutable_output();
  output->set_dtype(ToProtoDType(io_type));
  output->add_shape(tokens);
  output->add_shape(v.model->config.d_model);
  std::string* bytes = output->mutable_data();
  bytes->resize(static_cast<size_t>(tokens * v.model->config.d_model) * ElementBytes(io_type));

  const InferCall call(backend.stats, variant, tokens, response, std::move(done));
  InferTask task;
  task.model = v.model;
  task.activation = v.activation;
  task.compute = v.compute;
  task.tokens = tokens;
  task.input = request.input().data().data();
  task.input_type = io_type;
  task.output = bytes->data();
  task.output_type = io_type;
  if (request.has_routing()) task.routing = &request.routing();
  if (request.return_routing()) task.routing_out = response->mutable_routing();
  task.arrival = arrival;
  task.deadline = limits.deadline;
  task.cancelled = std::move(limits.cancelled);
  task.done = [call](const absl::Status& status, const RequestTimings& timings) {
    call.Finish(status, timings);
  };
  if (absl::Status submitted = backend.scheduler.Submit(std::move(task)); !submitted.ok()) {
    call.Finish(submitted, {});
  }
}

void InferCall::Finish(const absl::Status& status, const RequestTimings& timings) const {
  if (!status.ok()) {
    stats_->RecordError(variant_, status.code());
    if (status.code() == absl::StatusCode::kInternal) {
      spdlog::error("Infer {} / {}: {}", variant_.model, variant_.activation, status.ToString());
    }
    response_->clear_output();
    done_(status);
    return;
  }
  stats_->RecordSuccess(variant_, tokens_, timings);
  v1::Variant* variant = response_->mutable_variant();
  variant->set_model(variant_.model);
  variant->set_activation(variant_.activation);
  variant->set_dtype(ToProtoDType(variant_.dtype));
  response_->set_queue_us(timings.queue_ns / 1000);
  response_->set_compute_us(timings.compute_ns / 1000);
  response_->set_total_us(timings.total_ns / 1000);
  response_->set_batch_tokens(timings.batch_tokens);
  spdlog::debug("Infer {} / {}: {} tokens in a batch of {}, queue {} us, compute {} us",
                variant_.model, variant_.activation, tokens_, timings.batch_tokens,
                timings.queue_ns / 1000, timings.compute_ns / 1000);
  done_(absl::OkStatus());
}

}  // namespace ffn
