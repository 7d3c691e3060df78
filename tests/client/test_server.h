// In-process ffn-servers for the client's tests.
#ifndef FFN_TESTS_CLIENT_TEST_SERVER_H_
#define FFN_TESTS_CLIENT_TEST_SERVER_H_

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "ffn/server/config.h"
#include "ffn/server/server.h"
#include "gtest/gtest.h"

namespace ffn::client {

// A server for `yaml` on a free loopback port; null (with a test failure)
// if it does not start.
inline std::unique_ptr<FfnServer> StartServer(const std::string& yaml,
                                              const std::string& base_dir = "") {
  auto config = ParseConfig(yaml, base_dir);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  auto server = FfnServer::Start(*config);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

inline std::string TargetOf(const FfnServer& server) {
  return absl::StrCat("127.0.0.1:", server.port());
}

// Two tiny models (d_model 8, d_ff 16), plain and gated: calls cost little
// more than gRPC itself.
inline constexpr char kTinyConfig[] = R"(
server: {address: "127.0.0.1:0", threads: 1}
models:
  - name: tiny
    d_model: 8
    d_ff: 16
    activation: relu
    weights: {random: {seed: 1}}
  - name: tiny-glu
    d_model: 8
    d_ff: 16
    activation: swiglu
    weights: {random: {seed: 2}}
)";

}  // namespace ffn::client

#endif  // FFN_TESTS_CLIENT_TEST_SERVER_H_
