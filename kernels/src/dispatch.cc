// Chooses the kernels once: the best ISA the CPU has, unless the environment
// variable FFN_ISA names another. The only place that reads CPUID.
#include "dispatch.h"

#include <cstdlib>

#include "small_m.h"

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

const KernelTable& ActiveKernelTable() {
  static const KernelTable table = [] {
    const Isa isa = ActiveIsa();
    KernelTable t{&KernelsFor(isa), isa == Isa::kScalar ? ScalarSmallMKernels() : Avx2SmallMKernels()};
    if (isa == Isa::kAvx512) {
      t.small_m.f32 = SmallMPackedF32;
      t.small_m.f32_bf16_weights = SmallMPackedF32Bf16Weights;
      t.small_m_native_f32 = true;
      if (__builtin_cpu_supports("avx512bf16")) {
        t.small_m.bf16 = SmallMPackedBf16;
        t.small_m_native_bf16 = true;
      }
      if (__builtin_cpu_supports("avx512vnni")) {
        t.small_m.int8 = SmallMPackedInt8;
        t.small_m.quantize_int8 = QuantizeInt8Rows;
        t.small_m_native_int8 = true;
      }
    }
    return t;
  }();
  return table;
}

const EpilogueKernels& ActiveKernels() { return *ActiveKernelTable().epilogue; }

void ApplyActivationRows(Activation activation, const ActivationParams& params,
                         float* __restrict data, size_t rows, size_t cols, size_t row_stride) {
  ActiveKernels().bias_act(activation, params, data, row_stride, nullptr, data, row_stride, rows,
                           cols);
}

void ApplyGatedRows(Activation activation, const ActivationParams& params, const float* gate,
                    const float* __restrict up, float* out, size_t rows, size_t cols,
                    size_t in_stride, size_t out_stride) {
  ActiveKernels().gated(activation, params, gate, up, in_stride, out, out_stride, rows, cols);
}

}  // namespace ffn
