#include "ffn/server/listen_address.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace ffn {

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view address) {
  auto invalid = [address](const char* why) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", std::string(address), "' is not HOST:PORT: ", why));
  };
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return invalid("no ':PORT'");
  const std::string_view host = address.substr(0, colon);
  const std::string_view port = address.substr(colon + 1);
  if (host.empty()) return invalid("the host is empty (0.0.0.0 listens on every interface)");
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return invalid("an IPv6 host needs [ADDRESS]");
  } else if (host.find(':') != std::string_view::npos) {
    return invalid("an IPv6 host goes in brackets, as in [::1]:50051");
  }
  for (char c : host) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '/') {
      return invalid("the host has a space or '/'");
    }
  }
  // Digits only: no sign, no service name ("http"), at most 5 so no overflow.
  if (port.empty() || port.size() > 5) return invalid("the port must be a number in [0, 65535]");
  int value = 0;
  for (char c : port) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return invalid("the port must be a number in [0, 65535]");
    }
    value = value * 10 + (c - '0');
  }
  if (value > 65535) return invalid("the port must be a number in [0, 65535]");
  return ListenAddress{std::string(host), value};
}

}  // namespace ffn
