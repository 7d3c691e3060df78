#include "ffn/server/bearer_token.h"

namespace ffn {

absl::Status CheckBearerToken(const std::string& token, const std::string& authorization) {
  if (token.empty()) return absl::OkStatus();
  const std::string expected = "Bearer " + token;
  // Constant time in the token: every byte of `expected` is compared.
  unsigned char difference = authorization.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    difference |= static_cast<unsigned char>(
        expected[i] ^ (i < authorization.size() ? authorization[i] : 0));
  }
  if (difference != 0) {
    return absl::UnauthenticatedError(
        "missing or wrong bearer token: send metadata 'authorization: Bearer <token>'");
  }
  return absl::OkStatus();
}

}  // namespace ffn
