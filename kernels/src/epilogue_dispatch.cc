// Chooses the epilogue kernels once: the best ISA the CPU has, unless the
// environment variable FFN_ISA names another.
#include <cstdlib>
#include <cstring>

#include "epilogue_internal.h"

namespace ffn {
namespace {

bool CpuHas(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }
  return false;
}

Isa BestIsa() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2}) {
    if (CpuHas(isa)) return isa;
  }
  return Isa::kScalar;
}

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

std::optional<Isa> ParseIsa(std::string_view name) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (name == IsaName(isa)) return isa;
  }
  return std::nullopt;
}

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (CpuHas(isa)) isas.push_back(isa);
  }
  return isas;
}

Isa ActiveIsa() {
  static const Isa active = [] {
    const char* forced = std::getenv("FFN_ISA");
    if (forced != nullptr && *forced != '\0') {
      auto isa = ParseIsa(forced);
      if (isa && CpuHas(*isa)) return *isa;
    }
    return BestIsa();
  }();
  return active;
}

const EpilogueKernels& KernelsFor(Isa isa) {
  if (!CpuHas(isa)) isa = BestIsa();
  switch (isa) {
    case Isa::kAvx512: return Avx512EpilogueKernels();
    case Isa::kAvx2: return Avx2EpilogueKernels();
    case Isa::kScalar: break;
  }
  return ScalarEpilogueKernels();
}

const EpilogueKernels& ActiveKernels() { return KernelsFor(ActiveIsa()); }

uint16_t FloatToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(bits >> 16);
}

float Bf16ToFloat(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

}  // namespace ffn
