// The bearer-token check every front end (ffn.v1, KServe v2 gRPC and HTTP)
// makes before it looks at a request.
//
// Example:
//   absl::Status CheckHeader(const std::string& header) {
//     return ffn::CheckBearerToken("s3cret", header);  // header: "Bearer s3cret"
//   }
#ifndef FFN_SERVER_BEARER_TOKEN_H_
#define FFN_SERVER_BEARER_TOKEN_H_

#include <string>

#include "absl/status/status.h"

namespace ffn {

// OK when `token` is empty (none configured) or `authorization` (the value
// of the call's "authorization" metadata or header, empty if absent) is
// exactly "Bearer <token>"; UNAUTHENTICATED otherwise. Takes the same time
// whatever prefix of the token matches.
absl::Status CheckBearerToken(const std::string& token, const std::string& authorization);

}  // namespace ffn

#endif  // FFN_SERVER_BEARER_TOKEN_H_
