// libFuzzer target: the YAML config parser on arbitrary text. It must answer
// every input with a config or an INVALID_ARGUMENT, never crash or hang.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "ffn/server/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = ffn::ParseConfig(text, "/nonexistent");
  if (!config.ok() && config.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
  return 0;
}
