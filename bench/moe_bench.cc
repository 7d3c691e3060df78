// Mixture-of-experts layers shaped like real models, bf16 weights, through
// the engine (FfnBlock::CreateMoe, batch-invariant as served by default):
// time per call at M = 1, 32, 512 (median of interleaved repetitions),
// tokens/s, and at M = 1 the bytes the chosen experts' weights take against
// the machine's read bandwidth, measured in the same run (2 GiB read by
// every thread with AVX-512 loads, best of 5; needs AVX-512F).
//
//   build/bench/moe_bench [int8] [shape ...]   shapes: qwen3-30b-a3b, mixtral (default both)
//   int8: the experts with quantization: int8 (bytes at M = 1: one per weight)
//
// qwen3-30b-a3b: d_model 2048, expert d_ff 768, 128 experts, top 8.
// mixtral:       d_model 4096, expert d_ff 14336, 8 experts, top 2.
// Random weights U(±√(3/fan_in)) rounded to bf16; bf16 compute; 2 threads
// unless OMP_NUM_THREADS says otherwise. Run on a quiet machine.
#include <immintrin.h>
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

// Reads [from, to) of `words` with AVX-512 loads from eight places at once
// (as the engine's kernels stream eight weight groups), XOR chains so the
// loads are the limit.
__attribute__((target("avx512f"))) uint64_t XorRange(const uint64_t* words, size_t from,
                                                     size_t to) {
  constexpr size_t kStreams = 8;
  const size_t part = (to - from) / kStreams / 8 * 8;
  __m512i acc[kStreams];
  for (__m512i& a : acc) a = _mm512_setzero_si512();
  for (size_t i = 0; i < part; i += 8) {
    for (size_t s = 0; s < kStreams; ++s) {
      acc[s] = _mm512_xor_si512(acc[s], _mm512_loadu_si512(words + from + s * part + i));
    }
  }
  __m512i all = _mm512_setzero_si512();
  for (const __m512i& a : acc) all = _mm512_xor_si512(all, a);
  alignas(64) uint64_t out[8];
  _mm512_store_si512(out, all);
  uint64_t total = 0;
  for (uint64_t v : out) total ^= v;
  return total;
}

// GB/s of reading `buffer` once with every thread: the machine's read
// bandwidth for data far beyond the caches, at this moment.
double ReadBandwidth(const std::vector<uint64_t>& buffer) {
  const auto start = std::chrono::steady_clock::now();
  uint64_t total = 0;
#pragma omp parallel reduction(^ : total)
  {
    const size_t chunks = buffer.size() / 64, t = static_cast<size_t>(omp_get_thread_num());
    const size_t threads = static_cast<size_t>(omp_get_num_threads());
    total ^= XorRange(buffer.data(), chunks * t / threads * 64, chunks * (t + 1) / threads * 64);
  }
  const double took = Seconds(start);
  if (total == 12345) std::printf(" ");  // keeps the reads
  return static_cast<double>(buffer.size() * sizeof(uint64_t)) / took / 1e9;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<Shape> shapes;
  ffn::Quantization quantization = ffn::Quantization::kNone;
  for (int i = 1; i < argc; ++i) {
    if (argv[i] == std::string("int8")) quantization = ffn::Quantization::kInt8;
    for (const Shape& s : kShapes) {
      if (argv[i] == std::string(s.name)) shapes.push_back(s);
    }
  }
  if (shapes.empty()) shapes.assign(std::begin(kShapes), std::end(kShapes));
  if (std::getenv("OMP_NUM_THREADS") == nullptr) omp_set_num_threads(2);
  // Bandwidth is measured next to every M = 1 call (the machine is shared:
  // it moves), on 1 GiB.
  const std::vector<uint64_t> stream(size_t{1} << 27, 1);
  std::printf("%s; %d threads; experts %s\n\n", ffn::OneDnnDescription().c_str(),
              omp_get_max_threads(), ffn::QuantizationName(quantization));
  std::printf("| shape | M | ms per call (median) | tokens/s | M=1: expert bytes | GB/s | read bandwidth then (GB/s) | share (median of pairs) |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const Shape& s : shapes) {
    const auto load = std::chrono::steady_clock::now();
    auto block = ffn::FfnBlock::CreateMoe(Weights(s), {}, quantization);
    if (!block.ok()) {
      std::fprintf(stderr, "%s: %s\n", s.name, block.status().ToString().c_str());
      return 1;
    }
    const double load_s = Seconds(load);
    for (const int64_t m : {int64_t{1}, int64_t{32}, int64_t{512}}) {
      std::vector<float> x(static_cast<size_t>(m * s.d_model)), y(x.size());
      const int reps = m == 512 ? 5 : 21;
      std::vector<double> ms, bandwidths, shares;
      const double bytes = static_cast<double>(s.top_k) * 3.0 * static_cast<double>(s.d_model) *
                           static_cast<double>(s.d_ff) *
                           (quantization == ffn::Quantization::kInt8 ? 1.0 : 2.0);
      for (int r = 0; r < reps + 1; ++r) {
        // New tokens each call: other experts, as in decoding.
        ffn::FillUniform(static_cast<uint64_t>(r), ffn::RandomStream::kInput, ffn::kRandomInputScale, x);
        ffn::FfnRun run{ffn::Activation::kSwiglu, DataType::kBf16, x.data(), DataType::kF32, m,
                        y.data(), DataType::kF32};
        run.batch_invariant = true;
        const double bandwidth = m == 1 ? ReadBandwidth(stream) : 0.0;
        const auto start = std::chrono::steady_clock::now();
        if (!(*block)->Run(run).ok()) return 1;
        const double took = Seconds(start);
        if (r == 0) continue;  // the first warms up
        ms.push_back(took * 1e3);
        if (m == 1) {
          bandwidths.push_back(bandwidth);
          shares.push_back(bytes / took / 1e9 / bandwidth);
        }
      }
      const double median = Median(ms);
      if (m == 1) {
        std::printf("| %s | %lld | %.3f | %.0f | %.1f MB | %.1f | %.1f | %.0f %% |\n", s.name,
                    static_cast<long long>(m), median, 1e3 * m / median, bytes / 1e6,
                    bytes / (median * 1e-3) / 1e9, Median(bandwidths), 100.0 * Median(shares));
      } else {
        std::printf("| %s | %lld | %.3f | %.0f | | | | |\n", s.name, static_cast<long long>(m),
                    median, 1e3 * m / median);
      }
    }
    std::printf("<!-- %s: created in %.1f s, %.0f MB of weights held -->\n", s.name, load_s,
                static_cast<double>((*block)->WeightBytes()) / 1e6);
  }
  return 0;
}
