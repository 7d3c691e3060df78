// Mixture-of-experts layers shaped like real models, bf16 weights, through
// the engine (FfnBlock::CreateMoe, batch-invariant as served by default):
// time per call at M = 1, 32, 512 (median of interleaved repetitions),
// tokens/s, and at M = 1 the bytes the chosen experts' weights take against
// the machine's read bandwidth, measured in the same run.
//
//   build/bench/moe_bench [shape ...]     shapes: qwen3-30b-a3b, mixtral (default both)
//
// qwen3-30b-a3b: d_model 2048, expert d_ff 768, 128 experts, top 8.
// mixtral:       d_model 4096, expert d_ff 14336, 8 experts, top 2.
// Random weights U(±√(3/fan_in)) rounded to bf16; bf16 compute; 2 threads
// unless OMP_NUM_THREADS says otherwise. Run on a quiet machine.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ffn/kernels/dtype.h"
#include "ffn/kernels/ffn_block.h"
#include "ffn/kernels/moe.h"

namespace {

using ffn::DataType;

struct Shape {
  const char* name;
  int64_t d_model, d_ff, experts, top_k;
};

constexpr Shape kShapes[] = {{"qwen3-30b-a3b", 2048, 768, 128, 8}, {"mixtral", 4096, 14336, 8, 2}};

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<uint16_t> RandomBf16(uint64_t seed, ffn::RandomStream stream, int64_t n, float scale) {
  std::vector<float> f(static_cast<size_t>(n));
  ffn::FillUniform(seed, stream, scale, f);
  std::vector<uint16_t> out(f.size());
  ffn::CopyConverting(f.data(), DataType::kF32, out.data(), DataType::kBf16, f.size());
  return out;
}

ffn::MoeWeights Weights(const Shape& s) {
  ffn::MoeWeights w;
  w.outer.kind = ffn::FfnKind::kGated;
  w.outer.d_model = s.d_model;
  w.outer.d_ff = s.d_ff;
  w.top_k = s.top_k;
  w.normalize_top_k = true;
  w.router.resize(static_cast<size_t>(s.experts * s.d_model));
  ffn::FillUniform(1, ffn::RandomStream::kW1, std::sqrt(3.0f / s.d_model), w.router);
  for (int64_t e = 0; e < s.experts; ++e) {
    ffn::FfnWeights f;
    f.kind = ffn::FfnKind::kGated;
    f.d_model = s.d_model;
    f.d_ff = s.d_ff;
    f.matrix_type = DataType::kBf16;
    const uint64_t seed = 100 + static_cast<uint64_t>(e);
    const int64_t n = s.d_model * s.d_ff;
    f.wg_bf16 = RandomBf16(seed, ffn::RandomStream::kWg, n, std::sqrt(3.0f / s.d_model));
    f.wu_bf16 = RandomBf16(seed, ffn::RandomStream::kWu, n, std::sqrt(3.0f / s.d_model));
    f.w2_bf16 = RandomBf16(seed, ffn::RandomStream::kW2, n, std::sqrt(3.0f / s.d_ff));
    w.experts.push_back(std::move(f));
  }
  return w;
}

// GB/s of reading `buffer` once with every thread (a sum, so nothing is
// skipped): the machine's read bandwidth for data far beyond the caches.
double ReadBandwidth(const std::vector<float>& buffer) {
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (size_t i = 0; i < buffer.size(); i += 16) {
      float s = 0;
      for (size_t j = 0; j < 16; ++j) s += buffer[i + j];
      total += s;
    }
    const double took = Seconds(start);
    if (total == 12345.678) std::printf(" ");  // keeps the sum
    best = std::max(best, static_cast<double>(buffer.size() * sizeof(float)) / took / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<Shape> shapes;
  for (int i = 1; i < argc; ++i) {
    for (const Shape& s : kShapes) {
      if (argv[i] == std::string(s.name)) shapes.push_back(s);
    }
  }
  if (shapes.empty()) shapes.assign(std::begin(kShapes), std::end(kShapes));
  if (std::getenv("OMP_NUM_THREADS") == nullptr) omp_set_num_threads(2);
  std::vector<float> stream(size_t{1} << 29, 1.0f);  // 2 GiB
  const double bandwidth = ReadBandwidth(stream);
  stream = {};
  std::printf("%s; %d threads; read bandwidth %.1f GB/s (2 GiB, best of 5)\n\n",
              ffn::OneDnnDescription().c_str(), omp_get_max_threads(), bandwidth);
  std::printf("| shape | M | ms per call (median) | tokens/s | M=1: expert bytes | GB/s | of bandwidth |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const Shape& s : shapes) {
    const auto load = std::chrono::steady_clock::now();
    auto block = ffn::FfnBlock::CreateMoe(Weights(s));
    if (!block.ok()) {
      std::fprintf(stderr, "%s: %s\n", s.name, block.status().ToString().c_str());
      return 1;
    }
    const double load_s = Seconds(load);
    for (const int64_t m : {int64_t{1}, int64_t{32}, int64_t{512}}) {
      std::vector<float> x(static_cast<size_t>(m * s.d_model)), y(x.size());
      const int reps = m == 512 ? 5 : 21;
      std::vector<double> ms;
      int64_t expert_tokens = 0;
      for (int r = 0; r < reps + 1; ++r) {
        // New tokens each call: other experts, as in decoding.
        ffn::FillUniform(static_cast<uint64_t>(r), ffn::RandomStream::kInput, ffn::kRandomInputScale, x);
        ffn::MoeCounters counters;
        ffn::FfnRun run{ffn::Activation::kSwiglu, DataType::kBf16, x.data(), DataType::kF32, m,
                        y.data(), DataType::kF32};
        run.batch_invariant = true;
        run.counters = &counters;
        const auto start = std::chrono::steady_clock::now();
        if (!(*block)->Run(run).ok()) return 1;
        if (r > 0) ms.push_back(Seconds(start) * 1e3);  // the first warms up
        for (int64_t t : counters.tokens) expert_tokens += t > 0 ? 1 : 0;
      }
      std::sort(ms.begin(), ms.end());
      const double median = ms[ms.size() / 2];
      if (m == 1) {
        const double bytes = static_cast<double>(s.top_k) * 3.0 * static_cast<double>(s.d_model) *
                             static_cast<double>(s.d_ff) * 2.0;
        const double gbs = bytes / (median * 1e-3) / 1e9;
        std::printf("| %s | %lld | %.3f | %.0f | %.1f MB | %.1f | %.0f %% |\n", s.name,
                    static_cast<long long>(m), median, 1e3 * m / median, bytes / 1e6, gbs,
                    100.0 * gbs / bandwidth);
      } else {
        std::printf("| %s | %lld | %.3f | %.0f | | | |\n", s.name, static_cast<long long>(m),
                    median, 1e3 * m / median);
      }
    }
    std::printf("<!-- %s: created in %.1f s, %.0f MB of weights held -->\n", s.name, load_s,
                static_cast<double>((*block)->WeightBytes()) / 1e6);
  }
  return 0;
}
