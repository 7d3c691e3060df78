#include "ffn/server/service.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ffn/server/proto_dtype.h"
#include "ffn/server/status.h"
#include "infer_stream.h"
#include "spdlog/spdlog.h"

namespace ffn {
namespace {

using Clock = std::chrono::steady_clock;

std::string AcceptedActivations(const Model& model) {
  return absl::StrJoin(model.info.activations(), ", ");
}

}  // namespace

absl::StatusOr<ValidatedInfer> ValidateInfer(const ModelRegistry& registry,
                                             const v1::InferRequest& request) {
  ValidatedInfer v;
  v.model = registry.Find(request.model());
  if (v.model == nullptr) {
    std::vector<std::string> names;
    for (const auto& m : registry.models()) names.push_back(m->config.name);
    return absl::NotFoundError(absl::StrCat("no model named '", request.model(),
                                            "'; this server has: ", absl::StrJoin(names, ", ")));
  }
  const Model& model = *v.model;
  if (request.activation().empty()) {
    v.activation = model.config.default_activation;
  } else {
    auto activation = ParseActivation(request.activation());
    if (!activation || IsGated(*activation) != (model.config.kind == FfnKind::kGated)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "activation '", request.activation(), "' is not valid for ",
          model.config.kind == FfnKind::kGated ? "gated" : "plain", " model '", model.config.name,
          "'; use one of: ", AcceptedActivations(model), " (or empty for the default, ",
          ActivationName(model.config.default_activation), ")"));
    }
    v.activation = *activation;
  }
  const v1::Tensor& input = request.input();
  if (input.dtype() != v1::FLOAT32 && input.dtype() != v1::BFLOAT16) {
    return absl::InvalidArgumentError(absl::StrCat("input dtype ", v1::DType_Name(input.dtype()),
                                                   " is not served; send FLOAT32 or BFLOAT16"));
  }
  v.input_type = input.dtype() == v1::BFLOAT16 ? DataType::kBf16 : DataType::kF32;
  switch (request.compute_dtype()) {
    case v1::DTYPE_UNSPECIFIED:
      v.compute = model.config.dtype;
      break;
    case v1::FLOAT32: v.compute = DataType::kF32; break;
    case v1::BFLOAT16: v.compute = DataType::kBf16; break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "compute_dtype ", static_cast<int>(request.compute_dtype()),
          " is not FLOAT32, BFLOAT16 or DTYPE_UNSPECIFIED (the model's default)"));
  }
  const int64_t d_model = model.config.d_model;
  if (input.shape_size() != 2 || input.shape(1) != d_model) {
    std::vector<int64_t> shape(input.shape().begin(), input.shape().end());
    return absl::InvalidArgumentError(absl::StrCat("input shape [", absl::StrJoin(shape, ", "),
                                                   "] is not [tokens, d_model = ", d_model, "]"));
  }
  v.tokens = input.shape(0);
  if (v.tokens < 1 || v.tokens > model.max_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("input has ", v.tokens,
                                                   " tokens; model '", model.config.name,
                                                   "' accepts 1 to ", model.max_tokens));
  }
  const uint64_t expected_bytes =
      static_cast<uint64_t>(v.tokens * d_model) * ElementBytes(v.input_type);
  if (input.data().size() != expected_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input data has ", input.data().size(), " bytes; shape [", v.tokens, ", ", d_model,
        "] of ", v1::DType_Name(input.dtype()), " needs ", expected_bytes));
  }
  return v;
}

absl::Status FfnServiceImpl::Authenticate(const grpc::CallbackServerContext& context) const {
  if (options_.auth_token.empty()) return absl::OkStatus();
  const std::string expected = "Bearer " + options_.auth_token;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  const std::string given = it == metadata.end() ? std::string()
                                                 : std::string(it->second.data(), it->second.size());
  // Constant time in the token: every byte of `expected` is compared.
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    difference |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  }
  if (difference != 0) {
    return absl::UnauthenticatedError(
        "missing or wrong bearer token: send metadata 'authorization: Bearer <token>'");
  }
  return absl::OkStatus();
}

void FfnServiceImpl::Submit(grpc::CallbackServerContext* context, const v1::InferRequest& request,
                            v1::InferResponse* response,
                            std::function<void(const absl::Status&)> done) {
  const auto arrival = Clock::now();
  auto validated = ValidateInfer(registry_, request);
  if (!validated.ok()) {
    const Model* model = registry_.Find(request.model());
    auto activation = ParseActivation(request.activation());
    const absl::StatusCode code = validated.status().code();
    if (model != nullptr && (request.activation().empty() ||
                             (activation && IsGated(*activation) ==
                                                (model->config.kind == FfnKind::kGated)))) {
      // The variant is known (a bad tensor): count it against the variant.
      stats_.RecordError({model->config.name,
                          request.activation().empty()
                              ? std::string(ActivationName(model->config.default_activation))
                              : request.activation(),
                          request.compute_dtype() == v1::BFLOAT16 ||
                                  (request.compute_dtype() == v1::DTYPE_UNSPECIFIED &&
                                   model->config.dtype == DataType::kBf16)
                              ? DataType::kBf16
                              : DataType::kF32},
                         code);
    } else {
      stats_.RecordRejected(code);
    }
    spdlog::debug("Infer rejected: {}", validated.status().ToString());
    done(validated.status());
    return;
  }
  const ValidatedInfer v = *validated;
  const VariantKey key = VariantFor(*v.model, v.activation, v.compute);
  v1::Tensor* output = response->mutable_output();
  output->set_dtype(request.input().dtype());
  output->add_shape(v.tokens);
  output->add_shape(v.model->config.d_model);
  std::string* bytes = output->mutable_data();
  bytes->resize(static_cast<size_t>(v.tokens * v.model->config.d_model) *
                ElementBytes(v.input_type));

  InferTask task;
  task.model = v.model;
  task.activation = v.activation;
  task.tokens = v.tokens;
  task.compute = v.compute;
  task.input = request.input().data().data();
  task.input_type = v.input_type;
  task.output = bytes->data();
  task.output_type = v.input_type;
  task.arrival = arrival;
  task.deadline = context->deadline();
  task.cancelled = [context] { return context->IsCancelled(); };
  task.done = [this, response, key, tokens = v.tokens, done](const absl::Status& status,
                                                            const RequestTimings& t) {
    if (!status.ok()) {
      stats_.RecordError(key, status.code());
      if (status.code() == absl::StatusCode::kInternal) {
        spdlog::error("Infer {} / {}: {}", key.model, key.activation, status.ToString());
      }
      response->clear_output();
      done(status);
      return;
    }
    stats_.RecordSuccess(key, tokens, t);
    v1::Variant* variant = response->mutable_variant();
    variant->set_model(key.model);
    variant->set_activation(key.activation);
    variant->set_dtype(ToProtoDType(key.dtype));
    response->set_queue_us(t.queue_ns / 1000);
    response->set_compute_us(t.compute_ns / 1000);
    response->set_total_us(t.total_ns / 1000);
    response->set_batch_tokens(t.batch_tokens);
    spdlog::debug("Infer {} / {}: {} tokens in a batch of {}, queue {} us, compute {} us",
                  key.model, key.activation, tokens, t.batch_tokens, t.queue_ns / 1000,
                  t.compute_ns / 1000);
    done(absl::OkStatus());
  };
  absl::Status submitted = scheduler_.Submit(std::move(task));
  if (!submitted.ok()) {
    stats_.RecordError(key, submitted.code());
    response->clear_output();
    done(submitted);
  }
}

grpc::ServerUnaryReactor* FfnServiceImpl::Infer(grpc::CallbackServerContext* context,
                                                const v1::InferRequest* request,
                                                v1::InferResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status auth = Authenticate(*context); !auth.ok()) {
    reactor->Finish(ToGrpcStatus(auth));
    return reactor;
  }
  Submit(context, *request, response,
         [reactor](const absl::Status& status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

grpc::ServerBidiReactor<v1::InferRequest, v1::InferResponse>* FfnServiceImpl::InferStream(
    grpc::CallbackServerContext* context) {
  return new InferStreamReactor(this, context, options_.max_stream_inflight,
                                Authenticate(*context));
}

grpc::ServerUnaryReactor* FfnServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                     const v1::ListModelsRequest* /*request*/,
                                                     v1::ListModelsResponse* response) {
  if (absl::Status auth = Authenticate(*context); !auth.ok()) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpcStatus(auth));
    return reactor;
  }
  for (const auto& model : registry_.models()) *response->add_models() = model->info;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* FfnServiceImpl::GetStats(grpc::CallbackServerContext* context,
                                                   const v1::GetStatsRequest* /*request*/,
                                                   v1::GetStatsResponse* response) {
  if (absl::Status auth = Authenticate(*context); !auth.ok()) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpcStatus(auth));
    return reactor;
  }
  *response = stats_.Snapshot();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace ffn
