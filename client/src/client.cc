#include "ffn/client/client.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace ffn::client {

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, int channel_index,
                                           const std::string& lb_policy) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // Without a local pool, channels with equal arguments share one connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("ffn.channel_index", channel_index);
  if (!lb_policy.empty()) args.SetLoadBalancingPolicyName(lb_policy);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::string StatusCodeName(absl::StatusCode code) { return absl::StatusCodeToString(code); }

std::string ErrorLine(const absl::Status& status) {
  return absl::StrCat("error: ", StatusCodeName(status.code()), ": ",
                      std::string(status.message()));
}

void SetTimeout(grpc::ClientContext& context, double timeout_seconds) {
  const auto timeout = std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::duration<double>(timeout_seconds));
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

absl::StatusOr<std::vector<v1::ModelInfo>> ListModels(v1::FfnService::StubInterface& stub,
                                                      double timeout_seconds) {
  grpc::ClientContext context;
  SetTimeout(context, timeout_seconds);
  v1::ListModelsResponse response;
  const grpc::Status status = stub.ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return std::vector<v1::ModelInfo>(response.models().begin(), response.models().end());
}

absl::StatusOr<v1::GetStatsResponse> GetStats(v1::FfnService::StubInterface& stub,
                                              double timeout_seconds) {
  grpc::ClientContext context;
  SetTimeout(context, timeout_seconds);
  v1::GetStatsResponse response;
  const grpc::Status status = stub.GetStats(&context, v1::GetStatsRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::InferResponse> Infer(v1::FfnService::StubInterface& stub,
                                        const v1::InferRequest& request, double timeout_seconds) {
  grpc::ClientContext context;
  SetTimeout(context, timeout_seconds);
  v1::InferResponse response;
  const grpc::Status status = stub.Infer(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::ModelInfo> FindModel(const std::vector<v1::ModelInfo>& models,
                                        const std::string& name) {
  std::vector<std::string> names;
  for (const v1::ModelInfo& info : models) {
    if (info.name() == name) return info;
    names.push_back(info.name());
  }
  return absl::NotFoundError(
      absl::StrCat("no model named '", name, "'; the server has: ", absl::StrJoin(names, ", ")));
}

}  // namespace ffn::client
