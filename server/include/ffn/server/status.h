// The one place where absl::Status becomes grpc::Status. absl's codes are
// gRPC's codes, so the mapping is one to one and keeps the message.
#ifndef FFN_SERVER_STATUS_H_
#define FFN_SERVER_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace ffn {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace ffn

#endif  // FFN_SERVER_STATUS_H_
