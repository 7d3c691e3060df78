// Test servers started in-process on a free loopback port: from a whole
// config, or the slow one the deadline and timeout tests share.
#ifndef FFN_TESTS_SERVER_START_SERVER_H_
#define FFN_TESTS_SERVER_START_SERVER_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "ffn/server/config.h"
#include "ffn/server/server.h"

namespace ffn {

// Parses `yaml` (a config document) and starts the server. Null (and a test
// failure naming the error) if either fails.
inline std::unique_ptr<FfnServer> StartServerFromYaml(const std::string& yaml) {
  auto config = ParseConfig(yaml, "");
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  auto started = FfnServer::Start(*config);
  EXPECT_TRUE(started.ok()) << started.status();
  return started.ok() ? std::move(*started) : nullptr;
}

// A server whose one model, "slow" (d_model 8, relu), takes 300 ms per
// engine call and one token per batch: a request queued behind another
// waits at least that long, so deadline and timeout tests need no race with
// the clock. `server_settings` adds to the server mapping (e.g.
// "metrics_address: \"127.0.0.1:0\"").
inline std::unique_ptr<FfnServer> StartSlowServer(const std::string& server_settings) {
  return StartServerFromYaml(R"(
server: {address: "127.0.0.1:0", )" + server_settings + R"(}
models:
  - {name: slow, d_model: 8, d_ff: 16, activation: relu, debug_delay_us: 300000,
     batching: {max_batch_tokens: 1}, weights: {random: {seed: 13}}}
)");
}

}  // namespace ffn

#endif  // FFN_TESTS_SERVER_START_SERVER_H_
