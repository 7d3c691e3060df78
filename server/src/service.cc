#include "ffn/server/service.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ffn/server/status.h"
#include "spdlog/spdlog.h"

namespace ffn {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NanosBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

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
  if (input.dtype() != v1::FLOAT32) {
    return absl::InvalidArgumentError(absl::StrCat("input dtype ", v1::DType_Name(input.dtype()),
                                                   " is not served by model '", model.config.name,
                                                   "'; send FLOAT32"));
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
  const uint64_t expected_bytes = static_cast<uint64_t>(v.tokens * d_model) * sizeof(float);
  if (input.data().size() != expected_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input data has ", input.data().size(), " bytes; shape [", v.tokens, ", ", d_model,
        "] of FLOAT32 needs ", expected_bytes));
  }
  return v;
}

grpc::ServerUnaryReactor* FfnServiceImpl::Infer(grpc::CallbackServerContext* context,
                                                const v1::InferRequest* request,
                                                v1::InferResponse* response) {
  const auto arrival = Clock::now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto validated = ValidateInfer(registry_, *request);
  if (!validated.ok()) {
    const Model* model = registry_.Find(request->model());
    auto activation = ParseActivation(request->activation());
    if (model != nullptr && (request->activation().empty() ||
                             (activation && IsGated(*activation) ==
                                                (model->config.kind == FfnKind::kGated)))) {
      // The variant is known (bad tensor): count it against the variant.
      stats_.RecordError({model->config.name,
                          request->activation().empty()
                              ? std::string(ActivationName(model->config.default_activation))
                              : request->activation(),
                          v1::FLOAT32});
    } else {
      stats_.RecordRejected();
    }
    spdlog::debug("Infer rejected: {}", validated.status().ToString());
    reactor->Finish(ToGrpcStatus(validated.status()));
    return reactor;
  }
  const ValidatedInfer v = *validated;
  const VariantKey key{v.model->config.name, std::string(ActivationName(v.activation)), v1::FLOAT32};
  absl::Status submitted = executor_.Submit([this, context, request, response, reactor, v, key,
                                             arrival] {
    const auto start = Clock::now();
    absl::Status status;
    if (context->IsCancelled()) {
      status = absl::CancelledError("the call was cancelled while queued");
    } else if (context->deadline() < std::chrono::system_clock::now()) {
      status = absl::DeadlineExceededError("the deadline passed while the request was queued");
    } else {
      v1::Tensor* output = response->mutable_output();
      output->set_dtype(v1::FLOAT32);
      output->add_shape(v.tokens);
      output->add_shape(v.model->config.d_model);
      std::string* bytes = output->mutable_data();
      bytes->resize(static_cast<size_t>(v.tokens * v.model->config.d_model) * sizeof(float));
      status = v.model->block->Run(v.activation,
                                   reinterpret_cast<const float*>(request->input().data().data()),
                                   v.tokens, reinterpret_cast<float*>(bytes->data()));
      if (v.model->config.debug_delay_us > 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(v.model->config.debug_delay_us));
      }
    }
    const auto end = Clock::now();
    if (!status.ok()) {
      stats_.RecordError(key);
      if (status.code() == absl::StatusCode::kInternal) {
        spdlog::error("Infer {} / {}: {}", key.model, key.activation, status.ToString());
      }
      response->Clear();
      reactor->Finish(ToGrpcStatus(status));
      return;
    }
    RequestTimings timings{NanosBetween(arrival, start), NanosBetween(start, end),
                           NanosBetween(arrival, end)};
    stats_.RecordSuccess(key, v.tokens, timings, v.model->block->Flops(v.tokens));
    v1::Variant* variant = response->mutable_variant();
    variant->set_model(key.model);
    variant->set_activation(key.activation);
    variant->set_dtype(key.dtype);
    response->set_queue_us(timings.queue_ns / 1000);
    response->set_compute_us(timings.compute_ns / 1000);
    response->set_total_us(timings.total_ns / 1000);
    spdlog::debug("Infer {} / {}: {} tokens, queue {} us, compute {} us", key.model,
                  key.activation, v.tokens, timings.queue_ns / 1000, timings.compute_ns / 1000);
    reactor->Finish(grpc::Status::OK);
  });
  if (!submitted.ok()) {
    stats_.RecordError(key);
    reactor->Finish(ToGrpcStatus(submitted));
  }
  return reactor;
}

grpc::ServerUnaryReactor* FfnServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                     const v1::ListModelsRequest* /*request*/,
                                                     v1::ListModelsResponse* response) {
  for (const auto& model : registry_.models()) *response->add_models() = model->info;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* FfnServiceImpl::GetStats(grpc::CallbackServerContext* context,
                                                   const v1::GetStatsRequest* /*request*/,
                                                   v1::GetStatsResponse* response) {
  *response = stats_.Snapshot();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace ffn
