// libFuzzer target: a safetensors file of arbitrary bytes (header and data),
// opened and every tensor read as floats. Every fault must be a Status.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "ffn/common/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An in-memory file: Open maps a path like any weights file.
  const int fd = memfd_create("safetensors_fuzz", 0);
  if (fd < 0) std::abort();
  if (size > 0 && write(fd, data, size) != static_cast<ssize_t>(size)) std::abort();
  auto file = ffn::SafetensorsFile::Open("/proc/self/fd/" + std::to_string(fd));
  if (file.ok()) {
    for (const std::string& name : (*file)->Names()) {
      auto entry = (*file)->Get(name);
      if (!entry.ok()) std::abort();  // a listed name must be found
      (*file)->ReadFloat(name, entry->shape).IgnoreError();
    }
  }
  close(fd);
  return 0;
}
