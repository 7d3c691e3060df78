// FfnBlock throughput: GFLOP/s and tokens/s of one engine call, per
// activation and token count, on the embedded default shapes.
//
//   build/bench/ffn_block_bench --benchmark_filter='ffn-768/gelu'
//
// Set OMP_NUM_THREADS to choose the thread count (default: all cores).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "ffn/kernels/ffn_block.h"
#include "ffn/kernels/ffn_weights.h"

namespace ffn {
namespace {

const FfnBlock& Block(FfnKind kind) {
  static std::unique_ptr<FfnBlock> plain = *FfnBlock::Create(RandomFfnWeights(FfnKind::kPlain, 768, 3072, 1));
  static std::unique_ptr<FfnBlock> gated = *FfnBlock::Create(RandomFfnWeights(FfnKind::kGated, 768, 2048, 2));
  return kind == FfnKind::kPlain ? *plain : *gated;
}

void BM_FfnBlock(benchmark::State& state, Activation activation) {
  const FfnBlock& block = Block(IsGated(activation) ? FfnKind::kGated : FfnKind::kPlain);
  const int64_t m = state.range(0);
  std::vector<float> x(static_cast<size_t>(m * block.d_model()));
  std::vector<float> y(x.size());
  FillUniform(3, RandomStream::kInput, kRandomInputScale, x);
  for (auto _ : state) {
    absl::Status s = block.Run(activation, x.data(), m, y.data());
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(block.Flops(m) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(m), benchmark::Counter::kIsIterationInvariantRate);
}

int Register() {
  for (Activation a : AllActivations()) {
    const std::string name = std::string(IsGated(a) ? "glu-768/" : "ffn-768/") + ActivationName(a);
    benchmark::RegisterBenchmark(name.c_str(), BM_FfnBlock, a)
        ->Arg(1)->Arg(32)->Arg(512)->Unit(benchmark::kMicrosecond)->UseRealTime();
  }
  return 0;
}
const int registered = Register();

}  // namespace
}  // namespace ffn

BENCHMARK_MAIN();
