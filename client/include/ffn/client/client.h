// Talking to an ffn-server: channels, stubs and the unary calls, each with a
// deadline and its gRPC status turned into an absl::Status.
//
// Example:
//   auto stub = ffn::v1::FfnService::NewStub(ffn::client::MakeChannel("127.0.0.1:50051"));
//   absl::StatusOr<std::vector<ffn::v1::ModelInfo>> models =
//       ffn::client::ListModels(*stub, /*timeout_seconds=*/30);
//   if (!models.ok()) std::cerr << ffn::client::ErrorLine(models.status());
#ifndef FFN_CLIENT_CLIENT_H_
#define FFN_CLIENT_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ffn/v1/ffn.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace ffn::client {

// How to reach a server started with TLS (--tls-cert/--tls-key), mutual TLS
// (--tls-client-ca) or a bearer token (--auth-token-file).
struct ChannelSecurity {
  bool tls = false;
  std::string root_certs;                // PEM the server's certificate must chain to;
                                         // empty: gRPC's default roots
  std::string cert_chain, private_key;   // PEM client certificate (mutual TLS)
  std::string server_name;               // name to verify instead of the target's host
  std::string token;                     // sent as "authorization: Bearer <token>"
};

// File names, as the flags give them; empty: not used.
struct SecurityFiles {
  bool tls = false;  // implied by any of the TLS files or server_name
  std::string ca, cert, key, server_name, token;
};
// Reads the files. INVALID_ARGUMENT naming the file for one that cannot be
// read or an empty token, and for a certificate without its key (or back).
absl::StatusOr<ChannelSecurity> LoadChannelSecurity(const SecurityFiles& files);

// A channel to `target` (HOST:PORT, or any gRPC target such as
// "ipv4:127.0.0.1:5001,127.0.0.1:5002") that accepts answers up to
// kMaxMessageBytes, the server's default limit. Each call returns a channel
// with its own TCP connection (a local subchannel pool): `channel_index` only
// distinguishes them in channelz. A non-empty `lb_policy` ("pick_first",
// "round_robin") sets how the channel spreads calls over the addresses the
// target resolves to (the grpc.lb_policy_name channel argument). `security`
// adds TLS credentials and the bearer token (put on every call by a client
// interceptor, so it also works without TLS). Never fails; connecting
// happens on the first call.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, int channel_index = 0,
                                           const std::string& lb_policy = "",
                                           const ChannelSecurity& security = {});
inline constexpr int kMaxMessageBytes = 64 << 20;

// gRPC codes and absl codes are the same numbers; the message is kept.
absl::Status FromGrpcStatus(const grpc::Status& status);
// The canonical code name: "INVALID_ARGUMENT", "UNAVAILABLE", ...
std::string StatusCodeName(absl::StatusCode code);
// "error: <CODE>: <message>", what ffn-client prints when a call fails.
std::string ErrorLine(const absl::Status& status);

// Sets `context`'s deadline `timeout_seconds` from now.
void SetTimeout(grpc::ClientContext& context, double timeout_seconds);

// The unary calls. Each fails with the call's gRPC status (DEADLINE_EXCEEDED
// after `timeout_seconds`, UNAVAILABLE if the server cannot be reached).
absl::StatusOr<std::vector<v1::ModelInfo>> ListModels(v1::FfnService::StubInterface& stub,
                                                      double timeout_seconds);
absl::StatusOr<v1::GetStatsResponse> GetStats(v1::FfnService::StubInterface& stub,
                                              double timeout_seconds);
absl::StatusOr<v1::InferResponse> Infer(v1::FfnService::StubInterface& stub,
                                        const v1::InferRequest& request, double timeout_seconds);

// The model called `name`; NOT_FOUND listing the names in `models` otherwise.
absl::StatusOr<v1::ModelInfo> FindModel(const std::vector<v1::ModelInfo>& models,
                                        const std::string& name);

}  // namespace ffn::client

#endif  // FFN_CLIENT_CLIENT_H_
