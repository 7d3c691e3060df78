// Speed of a plain activation pass (in → out, fp32) for each ISA of our
// kernels, oneDNN's eltwise primitive, a plain glibc loop and memcpy, in
// Gelem/s and GB/s (8 bytes per element: one read, one write).
//
//   build/bench/activation_bench --benchmark_filter='act/gelu/'
//   build/bench/activation_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// Names: act/<activation>/<impl>/<size>/threads:<t>, gated/<swiglu|geglu|geglu_tanh>/
// <isa>/<size>/threads:<t> and copy/<size>/threads:<t> (Google Benchmark
// appends /real_time). Sizes:
//   64Mi   64 Mi floats (256 MiB in, 256 MiB out): memory-bound. The array
//          is split evenly across t OpenMP threads inside the timed loop;
//          onednn runs one primitive over all of it on oneDNN's own t
//          threads (omp_set_num_threads).
//   64KiB  a 16 Ki-float block per thread that stays in L2, processed
//          kL2Repeats times per iteration (compute-bound). onednn: each
//          thread executes the primitive on its own block.
// Inputs are spread over [-10, 10], the same on every run.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

#include "ffn/kernels/activation.h"
#include "baselines.h"
#include "ffn/kernels/epilogue.h"

namespace ffn {
namespace {

using bench::BenchParams;
using bench::GlibcApply;
using bench::OnednnAlgorithm;
using bench::OnednnEltwise;
using bench::OnednnFor;

constexpr size_t kLargeFloats = size_t{64} << 20;
constexpr size_t kL2Floats = size_t{16} << 10;
constexpr int kL2Repeats = 64;
constexpr int kMaxThreads = 2;

// ---- buffers ---------------------------------------------------------------

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], FreeDeleter>;

// Deterministic values spread over [-10, 10): a multiplicative hash of the
// index (different per `stream`), so neighbours differ and branches on the
// sign cannot be predicted. Filled by the threads that later use the pages.
Buffer MakeInput(size_t n, uint64_t stream) {
  Buffer b(static_cast<float*>(std::aligned_alloc(64, n * sizeof(float))));
#pragma omp parallel for schedule(static) num_threads(kMaxThreads)
  for (size_t i = 0; i < n; ++i) {
    const uint64_t h = (i + stream * 0x632be59bd9b4e019ull) * 0x9e3779b97f4a7c15ull;
    b[i] = -10.0f + 20.0f * static_cast<float>(h >> 40) * 0x1p-24f;
  }
  return b;
}

struct Buffers {
  Buffer in, up, out;  // 64Mi each
  // Per thread L2 blocks: in, up, out.
  Buffer l2_in[kMaxThreads], l2_up[kMaxThreads], l2_out[kMaxThreads];
};

const Buffers& GetBuffers() {
  static const Buffers* buffers = [] {
    auto* b = new Buffers;
    b->in = MakeInput(kLargeFloats, 1);
    b->up = MakeInput(kLargeFloats, 2);
    b->out = MakeInput(kLargeFloats, 3);
    for (int t = 0; t < kMaxThreads; ++t) {
      b->l2_in[t] = MakeInput(kL2Floats, 10 + t);
      b->l2_up[t] = MakeInput(kL2Floats, 20 + t);
      b->l2_out[t] = MakeInput(kL2Floats, 30 + t);
    }
    return b;
  }();
  return *buffers;
}

// ---- the implementations ---------------------------------------------------


const dnnl::engine& Engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// ---- benchmarks ----------------------------------------------------------------

enum class Size { kLarge, kL2 };
const char* SizeName(Size size) { return size == Size::kLarge ? "64Mi" : "64KiB"; }

// Elements one iteration processes, over all threads.
double ElementsPerIteration(Size size, int threads) {
  return size == Size::kLarge ? static_cast<double>(kLargeFloats)
                              : static_cast<double>(kL2Floats) * kL2Repeats * threads;
}

void SetCounters(benchmark::State& state, Size size, int threads, double bytes_per_element) {
  const double elements = ElementsPerIteration(size, threads);
  state.counters["Gelem/s"] =
      benchmark::Counter(elements / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB/s"] = benchmark::Counter(elements * bytes_per_element / 1e9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

// Runs `pass(thread, in, up, out, n)` over the benchmark's data on
// `threads` OpenMP threads: a 1/threads slice of the 64Mi arrays each, or
// the thread's own L2 block kL2Repeats times.
template <typename Pass>
void RunSplit(Size size, int threads, Pass&& pass) {
  const Buffers& b = GetBuffers();
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    if (size == Size::kLarge) {
      const size_t begin = kLargeFloats * static_cast<size_t>(t) / static_cast<size_t>(threads);
      const size_t end = kLargeFloats * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
      pass(t, b.in.get() + begin, b.up.get() + begin, b.out.get() + begin, end - begin);
    } else {
      for (int r = 0; r < kL2Repeats; ++r) {
        pass(t, b.l2_in[t].get(), b.l2_up[t].get(), b.l2_out[t].get(), kL2Floats);
      }
    }
  }
}

void BM_Ours(benchmark::State& state, Activation activation, Isa isa, Size size, int threads) {
  const ActivationParams params = BenchParams();
  const EpilogueKernels& kernels = KernelsFor(isa);
  GetBuffers();  // allocated and first touched outside the timed loop
  for (auto _ : state) {
    RunSplit(size, threads, [&](int, const float* in, const float*, float* out, size_t n) {
      kernels.bias_act(activation, params, in, 0, nullptr, out, 0, 1, n);
    });
    benchmark::ClobberMemory();
  }
  SetCounters(state, size, threads, 8.0);
}

void BM_ScalarLoop(benchmark::State& state, Activation activation, Size size, int threads) {
  const ActivationParams params = BenchParams();
  GetBuffers();
  for (auto _ : state) {
    RunSplit(size, threads, [&](int, const float* in, const float*, float* out, size_t n) {
      GlibcApply(activation, params, in, out, n);
    });
    benchmark::ClobberMemory();
  }
  SetCounters(state, size, threads, 8.0);
}

void BM_Copy(benchmark::State& state, Size size, int threads) {
  GetBuffers();
  for (auto _ : state) {
    RunSplit(size, threads, [&](int, const float* in, const float*, float* out, size_t n) {
      std::memcpy(out, in, n * sizeof(float));
    });
    benchmark::ClobberMemory();
  }
  SetCounters(state, size, threads, 8.0);
}

void BM_Onednn(benchmark::State& state, Activation activation, Size size, int threads) {
  const ActivationParams params = BenchParams();
  const OnednnAlgorithm algo = *OnednnFor(activation, params);
  const Buffers& b = GetBuffers();
  omp_set_num_threads(threads);
  if (size == Size::kLarge) {
    OnednnEltwise eltwise(Engine(), algo, kLargeFloats);
    for (auto _ : state) {
      eltwise.Run(b.in.get(), b.out.get());
      benchmark::ClobberMemory();
    }
  } else {
    std::vector<std::unique_ptr<OnednnEltwise>> per_thread;
    for (int t = 0; t < threads; ++t) {
      per_thread.push_back(std::make_unique<OnednnEltwise>(Engine(), algo, kL2Floats));
    }
    for (auto _ : state) {
      // Inside this parallel region oneDNN runs on the calling thread.
      RunSplit(size, threads, [&](int t, const float* in, const float*, float* out, size_t) {
        per_thread[static_cast<size_t>(t)]->Run(in, out);
      });
      benchmark::ClobberMemory();
    }
  }
  omp_set_num_threads(kMaxThreads);
  SetCounters(state, size, threads, 8.0);
}

// Gated: out = gate_act(gate) · up; 12 bytes per element (two reads, one write).
void BM_Gated(benchmark::State& state, Activation activation, Isa isa, Size size, int threads) {
  const ActivationParams params = BenchParams();
  const EpilogueKernels& kernels = KernelsFor(isa);
  GetBuffers();  // allocated and first touched outside the timed loop
  for (auto _ : state) {
    RunSplit(size, threads, [&](int, const float* gate, const float* up, float* out, size_t n) {
      kernels.gated(activation, params, gate, up, 0, out, 0, 1, n);
    });
    benchmark::ClobberMemory();
  }
  SetCounters(state, size, threads, 12.0);
}

void Finish(benchmark::internal::Benchmark* b) {
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

int Register() {
  std::vector<Isa> isas = SupportedIsas();
  std::reverse(isas.begin(), isas.end());  // best first
  for (Size size : {Size::kLarge, Size::kL2}) {
    for (int threads = 1; threads <= kMaxThreads; ++threads) {
      const std::string suffix =
          std::string("/") + SizeName(size) + "/threads:" + std::to_string(threads);
      Finish(benchmark::RegisterBenchmark(("copy" + suffix).c_str(), BM_Copy, size, threads));
      for (Activation a : PlainActivations()) {
        const std::string prefix = std::string("act/") + ActivationName(a) + "/";
        for (Isa isa : isas) {
          Finish(benchmark::RegisterBenchmark((prefix + IsaName(isa) + suffix).c_str(), BM_Ours,
                                              a, isa, size, threads));
        }
        Finish(benchmark::RegisterBenchmark((prefix + "onednn" + suffix).c_str(), BM_Onednn, a,
                                            size, threads));
        Finish(benchmark::RegisterBenchmark((prefix + "scalar_loop" + suffix).c_str(),
                                            BM_ScalarLoop, a, size, threads));
      }
      for (Activation a : {Activation::kSwiglu, Activation::kGeglu, Activation::kGegluTanh}) {
        for (Isa isa : isas) {
          const std::string name =
              std::string("gated/") + ActivationName(a) + "/" + IsaName(isa) + suffix;
          Finish(benchmark::RegisterBenchmark(name.c_str(), BM_Gated, a, isa, size, threads));
        }
      }
    }
  }
  return 0;
}
const int registered = Register();

}  // namespace
}  // namespace ffn

BENCHMARK_MAIN();
