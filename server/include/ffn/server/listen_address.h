// Listening addresses as the gRPC server and the metrics endpoint take them:
// HOST:PORT, checked before anything binds, so a mistake is a usage error
// that names the value (gRPC and civetweb would wrap a port above 65535, or
// pick a port from a name, without a word).
//
// Example:
//   ASSIGN_OR_RETURN(ffn::ListenAddress a, ffn::ParseListenAddress("[::1]:50051"));
//   // a.host == "[::1]", a.port == 50051
#ifndef FFN_SERVER_LISTEN_ADDRESS_H_
#define FFN_SERVER_LISTEN_ADDRESS_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ffn {

struct ListenAddress {
  std::string host;  // a name, an IPv4 address, or an IPv6 address in brackets
  int port = 0;      // 0: the system picks a free port
};

// Parses HOST:PORT: a non-empty host (IPv6 in brackets, as in [::1]:50051)
// and a decimal port in [0, 65535]. INVALID_ARGUMENT quoting `address` and
// saying what is wrong otherwise.
absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view address);

}  // namespace ffn

#endif  // FFN_SERVER_LISTEN_ADDRESS_H_
