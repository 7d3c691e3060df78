// Tuning under noise: the same model tuned on a quiet machine and with
// threads spinning on every core, then both plans served quietly, so the cost
// of a plan spoiled at start-up shows as time per call.
//
//   build/bench/tune_noise [busy_threads]      (default: one per core)
//
// ffn-768 (plain 768×3072, gelu), 2 OpenMP threads, batch_invariant off (the
// plan only matters there). Prints both plans, then for M = 1, 32, 512 and
// f32/bf16 the minimum and median of 15 calls of each plan, interleaved.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "ffn/kernels/ffn_block.h"
#include "ffn/kernels/ffn_weights.h"

namespace {

double Ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ffn;
  const int busy = argc > 1 ? std::atoi(argv[1]) : static_cast<int>(std::thread::hardware_concurrency());
  omp_set_num_threads(2);
  const FfnWeights weights = RandomFfnWeights(FfnKind::kPlain, 768, 3072, 1);
  auto quiet = FfnBlock::Create(weights);
  auto noisy = FfnBlock::Create(weights);
  if (!quiet.ok() || !noisy.ok()) return 1;
  auto quiet_plan = (*quiet)->Tune(512);
  std::atomic<bool> spinning{true};
  std::vector<std::thread> burners;
  for (int i = 0; i < busy; ++i) {
    burners.emplace_back([&] {
      volatile double sink = 1;
      while (spinning.load(std::memory_order_relaxed)) sink = sink * 1.0000001 + 1e-9;
    });
  }
  auto noisy_plan = (*noisy)->Tune(512);
  spinning = false;
  for (std::thread& t : burners) t.join();
  if (!quiet_plan.ok() || !noisy_plan.ok()) return 1;
  std::printf("quiet plan: %s\n\nplan with %d busy threads: %s\n\n", quiet_plan->ToString().c_str(),
              busy, noisy_plan->ToString().c_str());
  std::printf("%-5s %5s %10s %10s %10s %10s %7s\n", "dtype", "M", "quiet min", "quiet med",
              "noisy min", "noisy med", "ratio");
  for (DataType compute : {DataType::kF32, DataType::kBf16}) {
    for (int64_t m : {1, 32, 512}) {
      std::vector<float> x(static_cast<size_t>(m * 768), 0.5f), y(x.size());
      const FfnRun run{Activation::kGelu, compute, x.data(), DataType::kF32, m, y.data(), DataType::kF32};
      std::vector<double> times[2];
      for (int round = 0; round < 16; ++round) {
        for (int which = 0; which < 2; ++which) {
          const FfnBlock& block = which == 0 ? **quiet : **noisy;
          const auto start = std::chrono::steady_clock::now();
          if (!block.Run(run).ok()) return 1;
          if (round > 0) times[which].push_back(Ms(start));  // round 0 warms up
        }
      }
      double min[2], median[2];
      for (int which = 0; which < 2; ++which) {
        std::sort(times[which].begin(), times[which].end());
        min[which] = times[which].front();
        median[which] = times[which][times[which].size() / 2];
      }
      std::printf("%-5s %5lld %10.3f %10.3f %10.3f %10.3f %7.3f\n", DataTypeName(compute),
                  static_cast<long long>(m), min[0], median[0], min[1], median[1], median[1] / median[0]);
    }
  }
  return 0;
}
