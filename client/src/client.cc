#include "ffn/client/client.h"

#include <chrono>
#include <fstream>
#include <sstream>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/ascii.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_interceptor.h"

namespace ffn::client {
namespace {

namespace gx = grpc::experimental;

// Adds "authorization: Bearer <token>" to every call's initial metadata.
class BearerTokenInterceptor : public gx::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string& header) : header_(header) {}
  void Intercept(gx::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(gx::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", header_);
    }
    methods->Proceed();
  }

 private:
  const std::string& header_;  // owned by the factory, which the channel keeps
};

class BearerTokenFactory : public gx::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenFactory(const std::string& token) : header_("Bearer " + token) {}
  gx::Interceptor* CreateClientInterceptor(gx::ClientRpcInfo*) override {
    return new BearerTokenInterceptor(header_);
  }

 private:
  const std::string header_;
};

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (in.is_open()) text << in.rdbuf();
  if (!in.is_open() || in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the ", what, " file ", path));
  }
  return text.str();
}

}  // namespace

absl::StatusOr<ChannelSecurity> LoadChannelSecurity(const SecurityFiles& files) {
  ChannelSecurity security;
  security.tls = files.tls || !files.ca.empty() || !files.cert.empty() || !files.key.empty() ||
                 !files.server_name.empty();
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate needs its key and the other way round (--tls-cert with --tls-key)");
  }
  for (auto [path, field, what] :
       {std::tuple{&files.ca, &security.root_certs, "CA certificate"},
        std::tuple{&files.cert, &security.cert_chain, "client certificate"},
        std::tuple{&files.key, &security.private_key, "client key"},
        std::tuple{&files.token, &security.token, "auth token"}}) {
    if (path->empty()) continue;
    auto text = ReadFile(*path, what);
    if (!text.ok()) return text.status();
    *field = std::move(*text);
  }
  security.server_name = files.server_name;
  if (!files.token.empty()) {
    security.token = std::string(absl::StripAsciiWhitespace(security.token));
    if (security.token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("the auth token file ", files.token, " is empty"));
    }
  }
  return security;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, int channel_index,
                                           const std::string& lb_policy,
                                           const ChannelSecurity& security) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // Without a local pool, channels with equal arguments share one connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("ffn.channel_index", channel_index);
  if (!lb_policy.empty()) args.SetLoadBalancingPolicyName(lb_policy);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (security.tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = security.root_certs;
    ssl.pem_cert_chain = security.cert_chain;
    ssl.pem_private_key = security.private_key;
    credentials = grpc::SslCredentials(ssl);
    if (!security.server_name.empty()) args.SetSslTargetNameOverride(security.server_name);
  }
  if (security.token.empty()) return grpc::CreateCustomChannel(target, credentials, args);
  std::vector<std::unique_ptr<gx::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<BearerTokenFactory>(security.token));
  return gx::CreateCustomChannelWithInterceptors(target, credentials, args, std::move(interceptors));
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
