// FfnBlock speed: one engine call per iteration, for the default shapes and
// LLaMA-7B's FFN, every activation, f32 and bf16 compute, each strategy
// (unfused, postops, fused; names end in /<dtype>/<strategy>) and int8
// weights (/int8/served), M = 1 … 512, next
// to the machine's measured limits (a large oneDNN matmul of each dtype, and
// memcpy bandwidth), and to the two matmuls alone ("identity": no epilogue),
// so the activation's cost is visible.
//
//   build/bench/ffn_block_bench --benchmark_filter='ffn-768/gelu/bf16/'
//       --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// Counters: GFLOP/s; peak_GFLOPs (a 2048³ oneDNN matmul of the same dtype);
// for M <= 8, weight_GBps (weight bytes streamed per second) next to
// copy_GBps (memcpy, bytes read + written) and read_GBps (a parallel sum of
// 1 GiB: the most a weight-streaming matmul can reach). OMP_NUM_THREADS sets
// the threads. Weights of the 768-wide shapes (9-19 MB) stay in the 32 MiB
// L3 between calls; LLaMA's (270-540 MB) stream from memory.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ffn/kernels/ffn_block.h"
#include "ffn/kernels/ffn_weights.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace ffn {
namespace {

struct Shape {
  const char* name;
  FfnKind kind;
  int64_t d_model, d_ff;
  uint64_t seed;
};
constexpr Shape kShapes[] = {
    {"ffn-768", FfnKind::kPlain, 768, 3072, 1},
    {"glu-768", FfnKind::kGated, 768, 2048, 2},
    {"llama-7b", FfnKind::kGated, 4096, 11008, 3},
};

// The shape's block, its matrices kept as given (f32) or quantized to int8.
const FfnBlock& Block(const Shape& shape, Quantization quantization) {
  static std::unique_ptr<FfnBlock> blocks[2][std::size(kShapes)];
  const size_t i = static_cast<size_t>(&shape - kShapes);
  std::unique_ptr<FfnBlock>& block = blocks[quantization == Quantization::kInt8][i];
  if (block == nullptr) {
    block = *FfnBlock::Create(RandomFfnWeights(shape.kind, shape.d_model, shape.d_ff, shape.seed),
                              {}, quantization);
  }
  return *block;
}

// The best of a few runs of a 2048³ oneDNN matmul of `type`, in GFLOP/s.
double MatmulPeakGflops(DataType type) {
  using dnnl::memory;
  static double cached[2] = {0, 0};
  double& peak = cached[type == DataType::kBf16];
  if (peak > 0) return peak;
  const int64_t n = 2048;
  const auto dt = type == DataType::kBf16 ? memory::data_type::bf16 : memory::data_type::f32;
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  memory::desc a({n, n}, dt, memory::format_tag::ab);
  memory::desc b({n, n}, dt, memory::format_tag::any);
  memory::desc c({n, n}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), engine);
  dnnl::matmul matmul(pd);
  memory am(a, engine), bm(pd.weights_desc(), engine), cm(c, engine);
  std::memset(am.get_data_handle(), 0, a.get_size());
  std::memset(bm.get_data_handle(), 0, pd.weights_desc().get_size());
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    matmul.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    stream.wait();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    peak = std::max(peak, 2.0 * n * n * n / s / 1e9);
  }
  return peak;
}

// memcpy of 256 MiB, best of a few, in GB/s of bytes read + written.
double CopyGBps() {
  static double cached = 0;
  if (cached > 0) return cached;
  const size_t bytes = size_t{256} << 20;
  std::vector<char> from(bytes, 1), to(bytes, 0);
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    std::memcpy(to.data(), from.data(), bytes);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    cached = std::max(cached, 2.0 * bytes / s / 1e9);
  }
  benchmark::DoNotOptimize(to.data());
  return cached;
}

// Reading 1 GiB with every thread (each sums its share as 32-bit integers,
// which the compiler vectorizes, so the sum never limits the rate), best of
// a few, in GB/s: the rate a weight-streaming matmul could at most reach.
double ReadGBps() {
  static double cached = 0;
  if (cached > 0) return cached;
  const int64_t n = int64_t{1} << 28;  // 32-bit words
  std::vector<uint32_t> data(static_cast<size_t>(n), 1);
  for (int i = 0; i < 5; ++i) {
    uint32_t total = 0;
    const auto start = std::chrono::steady_clock::now();
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int64_t j = 0; j < n; ++j) total += data[static_cast<size_t>(j)];
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    benchmark::DoNotOptimize(total);
    cached = std::max(cached, static_cast<double>(n) * sizeof(uint32_t) / s / 1e9);
  }
  return cached;
}

void BM_FfnBlock(benchmark::State& state, const Shape* shape, Activation activation, DataType compute,
                 Strategy strategy, bool batch_invariant, bool identity,
                 Quantization quantization) {
  const FfnBlock& block = Block(*shape, quantization);
  const int64_t m = state.range(0);
  std::vector<float> x(static_cast<size_t>(m * block.d_model()));
  std::vector<float> y(x.size());
  FillUniform(3, RandomStream::kInput, kRandomInputScale, x);
  FfnRun run{activation, compute, x.data(), DataType::kF32, m, y.data(), DataType::kF32};
  run.strategy = strategy;
  run.batch_invariant = batch_invariant;
  run.skip_epilogue_for_timing = identity;
  for (auto _ : state) {
    absl::Status s = block.Run(run);
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = block.Flops(m);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(m), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_GFLOPs"] = MatmulPeakGflops(compute);
  if (m <= 8) {
    const double weight_bytes =
        flops / (2.0 * m) *
        (quantization == Quantization::kInt8 ? 1.0 : compute == DataType::kBf16 ? 2.0 : 4.0);
    state.counters["weight_GBps"] =
        benchmark::Counter(weight_bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["copy_GBps"] = CopyGBps();
    state.counters["read_GBps"] = ReadGBps();
  }
}

int Register() {
  for (const Shape& shape : kShapes) {
    std::vector<std::pair<std::string, Activation>> runs;
    const auto activations = shape.kind == FfnKind::kGated ? GatedActivations() : PlainActivations();
    for (Activation a : activations) {
      if (std::string(shape.name) == "llama-7b" && a != Activation::kSwiglu && a != Activation::kGeglu) continue;
      runs.emplace_back(ActivationName(a), a);
    }
    runs.emplace_back("identity", activations.front());
    for (DataType compute : {DataType::kF32, DataType::kBf16}) {
      // "invariant": fused with FfnRun::batch_invariant, the server's default.
      for (const char* path : {"unfused", "postops", "fused", "invariant"}) {
        const bool invariant = std::string(path) == "invariant";
        const Strategy strategy = invariant ? Strategy::kFused : *ParseStrategy(path);
        for (const auto& [name, activation] : runs) {
          const bool identity = name == "identity";
          // postops has no matmul-only form: its identity is unfused's.
          if (identity && strategy == Strategy::kPostops) continue;
          const std::string label = std::string(shape.name) + "/" + name + "/" +
                                    DataTypeName(compute) + "/" + path;
          auto* b = benchmark::RegisterBenchmark(label.c_str(), BM_FfnBlock, &shape, activation,
                                                 compute, strategy, invariant, identity,
                                                 Quantization::kNone);
          b->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(32)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
        }
      }
    }
    // int8 weights (quantization: int8): one path at every M; "identity"
    // times the integer matmuls without the activation.
    for (const auto& [name, activation] : runs) {
      const std::string label = std::string(shape.name) + "/" + name + "/int8/served";
      auto* b = benchmark::RegisterBenchmark(label.c_str(), BM_FfnBlock, &shape, activation,
                                             DataType::kF32, Strategy::kAuto, true,
                                             name == "identity", Quantization::kInt8);
      b->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(32)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
    }
  }
  return 0;
}
const int registered = Register();

}  // namespace
}  // namespace ffn

BENCHMARK_MAIN();
