// Max error of every plain activation against the fp64 reference, for each
// ISA of our kernels, oneDNN's eltwise primitive and a glibc float
// formulation, over a dense sample of all floats or over all 2^32 of them.
//
//   build/bench/activation_accuracy                    # every 97th bit pattern + specials
//   build/bench/activation_accuracy --exhaustive --csv accuracy.csv
//   build/bench/activation_accuracy --special          # outputs at ±0, ±inf, NaN, ...
//   build/bench/activation_accuracy --exhaustive --activations quick_gelu,geglu_tanh
//
// A gated activation named in --activations is measured as its gate: our
// kernels through `gated` with up = 1 (so out = gate_act(g) exactly), oneDNN
// and glibc as the gate function.
//
// Metric, per activation and implementation (r = ActivationReference in fp64,
// y = the fp32 result):
//   ULP error = |y − r| / ulp(float(r)), ulp(v) the spacing of floats at |v|
//   (2^-149 for denormals); its max is taken where |r| >= FLT_MIN and x is
//   finite. Where |r| < FLT_MIN the max absolute error is reported instead.
//   "bad" counts results of the wrong class: NaN where r is not NaN or the
//   reverse, inf where r is finite, finite (or the wrong inf) where r is inf.
// Inputs run in chunks of 1 Mi floats on OpenMP threads; each chunk computes
// the reference once per activation and checks every implementation on it.
// Results are in docs/ACCURACY.md.
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

#include "ffn/kernels/activation.h"
#include "baselines.h"
#include "ffn/kernels/epilogue.h"
#include "ffn/kernels/reference.h"

namespace ffn {
namespace {

using bench::BenchParams;
using bench::GlibcApply;
using bench::OnednnAlgorithm;
using bench::OnednnEltwise;
using bench::OnednnFor;

constexpr size_t kChunk = size_t{1} << 20;
// The error above which the table says where errors start.
constexpr double kLargeUlp = 2.0;
constexpr uint64_t kAllPatterns = uint64_t{1} << 32;

// ---- the implementations compared ------------------------------------------


enum class ImplKind { kOurs, kOnednn, kGlibc };
struct Impl {
  std::string name;
  ImplKind kind;
  Isa isa = Isa::kScalar;
};

std::vector<Impl> Implementations() {
  std::vector<Impl> impls;
  std::vector<Isa> isas = SupportedIsas();
  std::reverse(isas.begin(), isas.end());  // best first, as in the tables
  for (Isa isa : isas) impls.push_back({IsaName(isa), ImplKind::kOurs, isa});
  impls.push_back({"onednn", ImplKind::kOnednn});
  impls.push_back({"glibc", ImplKind::kGlibc});
  return impls;
}

// ---- error statistics ------------------------------------------------------

struct ErrorStats {
  uint64_t compared = 0;
  double max_ulp = 0;
  uint32_t max_ulp_bits = 0;
  double max_abs_denormal = 0;
  uint32_t max_abs_denormal_bits = 0;
  // Where the error first exceeds kLargeUlp (normal range): the bit pattern
  // of the smallest such x >= 0 and of the smallest-magnitude such x < 0.
  uint32_t large_positive_bits = UINT32_MAX;
  uint32_t large_negative_bits = UINT32_MAX;
  uint64_t bad = 0;
  // The bad result with the smallest input bit pattern.
  uint32_t bad_bits = UINT32_MAX;
  float bad_y = 0;
  double bad_ref = 0;

  // Keeps the larger error; on a tie the smaller input bit pattern, so the
  // result does not depend on the order threads finish chunks.
  static void Keep(double err, uint32_t bits, double& max, uint32_t& max_bits) {
    if (err > max || (err == max && err > 0 && bits < max_bits)) {
      max = err;
      max_bits = bits;
    }
  }
  void Merge(const ErrorStats& o) {
    compared += o.compared;
    Keep(o.max_ulp, o.max_ulp_bits, max_ulp, max_ulp_bits);
    Keep(o.max_abs_denormal, o.max_abs_denormal_bits, max_abs_denormal, max_abs_denormal_bits);
    large_positive_bits = std::min(large_positive_bits, o.large_positive_bits);
    large_negative_bits = std::min(large_negative_bits, o.large_negative_bits);
    bad += o.bad;
    if (o.bad > 0 && o.bad_bits < bad_bits) {
      bad_bits = o.bad_bits;
      bad_y = o.bad_y;
      bad_ref = o.bad_ref;
    }
  }
};

uint32_t BitsOf(float v) { return std::bit_cast<uint32_t>(v); }
float FloatOf(uint32_t bits) { return std::bit_cast<float>(bits); }

// 1 / ulp(v) for a finite float v, where ulp(v) is the spacing of floats at
// |v|: 2^(e−23) for a normal number with exponent e, 2^-149 for zero and
// denormals. A power of two, so multiplying by it is exact.
inline double InverseUlpOf(float v) {
  const uint32_t biased = std::max<uint32_t>((BitsOf(v) >> 23) & 0xffu, 1u);
  return std::bit_cast<double>(static_cast<uint64_t>(150 - biased + 1023) << 52);
}

void CompareSlow(const float* x, const float* y, const double* ref, size_t n, ErrorStats& s);

// The largest ULP error (|r| >= FLT_MIN) and absolute error (|r| < FLT_MIN)
// over finite x, y and r, and the number of bad results, in n elements.
// Branch-free so that it vectorizes.
// Cloned for AVX-512, dispatched at load time: it is most of the run time.
__attribute__((noinline, target_clones("avx512f", "default"))) int BlockErrors(
    const float* x, const float* y, const double* ref, size_t n, double& max_ulp,
    double& max_abs, uint32_t& large_positive_bits, uint32_t& large_negative_bits) {
  double block_ulp = 0, block_abs = 0;
  int bad = 0;
  uint32_t large_positive = UINT32_MAX, large_negative = UINT32_MAX;
#pragma omp simd reduction(max : block_ulp, block_abs) reduction(+ : bad) \
    reduction(min : large_positive, large_negative)
  for (size_t i = 0; i < n; ++i) {
    const double r = ref[i];
    const double yi = y[i];
    const double xi = x[i];
    const bool r_nan = r != r, y_nan = yi != yi;
    const bool r_inf = std::abs(r) == INFINITY, y_inf = std::abs(yi) == INFINITY;
    bad += (r_nan != y_nan) | (r_inf & (yi != r)) | (!r_nan & !r_inf & y_inf);
    const bool ok = (std::abs(xi) <= FLT_MAX) & !r_nan & !r_inf & !y_nan & !y_inf;
    // Every operation runs on every lane; selects pick what counts.
    const double diff = std::abs(yi - r);
    const double scaled = diff * InverseUlpOf(static_cast<float>(r));
    const bool normal = std::abs(r) >= FLT_MIN;
    const double ulp_err = ok & normal ? scaled : 0.0;
    const double abs_err = ok & !normal ? diff : 0.0;
    block_ulp = ulp_err > block_ulp ? ulp_err : block_ulp;
    block_abs = abs_err > block_abs ? abs_err : block_abs;
    // Sign-magnitude bits order each sign's x by magnitude.
    const uint32_t bits = std::bit_cast<uint32_t>(x[i]);
    const bool large = ulp_err > kLargeUlp;
    const uint32_t positive = large & (bits < 0x80000000u) ? bits : UINT32_MAX;
    const uint32_t negative = large & (bits >= 0x80000000u) ? bits : UINT32_MAX;
    large_positive = positive < large_positive ? positive : large_positive;
    large_negative = negative < large_negative ? negative : large_negative;
  }
  max_ulp = block_ulp;
  max_abs = block_abs;
  large_positive_bits = large_positive;
  large_negative_bits = large_negative;
  return bad;
}

// Only a block of 256 that beats the running maximum (or has a bad result)
// is scanned again one element at a time, for where.
void Compare(const float* x, const float* y, const double* ref, size_t n, ErrorStats& s) {
  constexpr size_t kBlock = 256;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t m = std::min(kBlock, n - b);
    double block_ulp, block_abs;
    uint32_t large_positive, large_negative;
    const int bad = BlockErrors(x + b, y + b, ref + b, m, block_ulp, block_abs, large_positive,
                                large_negative);
    s.large_positive_bits = std::min(s.large_positive_bits, large_positive);
    s.large_negative_bits = std::min(s.large_negative_bits, large_negative);
    if (bad > 0 || (block_ulp > 0 && block_ulp >= s.max_ulp) ||
        (block_abs > 0 && block_abs >= s.max_abs_denormal)) {
      ErrorStats block;
      CompareSlow(x + b, y + b, ref + b, m, block);
      s.Merge(block);
    } else {
      s.compared += m;
    }
  }
}

// The same, one element at a time, recording where each maximum occurs.
void CompareSlow(const float* x, const float* y, const double* ref, size_t n, ErrorStats& s) {
  for (size_t i = 0; i < n; ++i) {
    const double r = ref[i];
    const float yi = y[i];
    bool bad;
    if (std::isnan(r) || std::isnan(yi)) {
      bad = std::isnan(r) != std::isnan(yi);
    } else if (std::isinf(r)) {
      bad = static_cast<double>(yi) != r;
    } else if (std::isinf(yi)) {
      bad = true;
    } else {
      bad = false;
      if (std::isfinite(x[i])) {
        const double err = std::abs(static_cast<double>(yi) - r);
        const uint32_t bits = BitsOf(x[i]);
        if (std::abs(r) >= FLT_MIN) {
          ErrorStats::Keep(err * InverseUlpOf(static_cast<float>(r)), bits, s.max_ulp,
                           s.max_ulp_bits);
        } else {
          ErrorStats::Keep(err, bits, s.max_abs_denormal, s.max_abs_denormal_bits);
        }
      }
    }
    if (bad) {
      ++s.bad;
      const uint32_t bits = BitsOf(x[i]);
      if (bits < s.bad_bits) {
        s.bad_bits = bits;
        s.bad_y = yi;
        s.bad_ref = r;
      }
    }
  }
  s.compared += n;
}

// |gelu − gelu_tanh| between the two fp64 references.
struct GeluGap {
  double max_abs = 0;
  uint32_t max_abs_bits = 0;
  double max_rel = 0;  // over |gelu(x)| >= FLT_MIN
  uint32_t max_rel_bits = 0;
  double max_rel_core = 0;  // over |x| <= 3
  uint32_t max_rel_core_bits = 0;
  bool measured = false;  // gelu and gelu_tanh were both run, in that order

  void Add(const float* x, const double* gelu, const double* gelu_tanh, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(x[i])) continue;
      const double d = std::abs(gelu[i] - gelu_tanh[i]);
      const uint32_t bits = BitsOf(x[i]);
      ErrorStats::Keep(d, bits, max_abs, max_abs_bits);
      if (std::abs(gelu[i]) >= FLT_MIN) {
        const double rel = d / std::abs(gelu[i]);
        ErrorStats::Keep(rel, bits, max_rel, max_rel_bits);
        if (std::abs(x[i]) <= 3.0f) ErrorStats::Keep(rel, bits, max_rel_core, max_rel_core_bits);
      }
    }
  }
  void Merge(const GeluGap& o) {
    measured = measured || o.measured;
    ErrorStats::Keep(o.max_abs, o.max_abs_bits, max_abs, max_abs_bits);
    ErrorStats::Keep(o.max_rel, o.max_rel_bits, max_rel, max_rel_bits);
    ErrorStats::Keep(o.max_rel_core, o.max_rel_core_bits, max_rel_core, max_rel_core_bits);
  }
};

// ---- inputs ------------------------------------------------------------------

// ±0, ±inf, NaNs, denormals, FLT_MIN/MAX and both neighbours of every
// threshold the kernels branch on (0.2, 0.5, 0.875·k, 12, 14, 88, ...).
std::vector<float> SpecialInputs() {
  std::vector<float> v = {0.0f,
                          -0.0f,
                          INFINITY,
                          -INFINITY,
                          FloatOf(0x7fc00000u),
                          FloatOf(0xffc00000u),
                          FloatOf(0x7f800001u),
                          FloatOf(0x7fffffffu),
                          FloatOf(1u),
                          FloatOf(0x80000001u),
                          FloatOf(0x007fffffu),
                          FloatOf(0x807fffffu),
                          FLT_MIN,
                          -FLT_MIN,
                          FLT_MAX,
                          -FLT_MAX};
  std::vector<float> thresholds = {1e-30f, 1e-7f, 0.2f,     0.5f,   0.625f, 1.0f,   12.0f,
                                   14.0f,  88.0f, 88.7228f, 89.0f,  100.0f, 103.97f, 104.0f,
                                   150.0f, 1e10f};
  for (int k = 1; k <= 16; ++k) thresholds.push_back(0.875f * static_cast<float>(k));
  for (float t : thresholds) {
    for (float s : {t, -t}) {
      v.push_back(std::nextafter(s, -INFINITY));
      v.push_back(s);
      v.push_back(std::nextafter(s, INFINITY));
    }
  }
  return v;
}

struct Options {
  uint64_t step = 97;
  bool exhaustive = false;
  bool special = false;
  std::string csv_path;
  std::vector<Activation> activations{PlainActivations().begin(), PlainActivations().end()};
};

[[noreturn]] void Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--step N | --exhaustive] [--csv FILE] [--special]\n"
               "          [--activations NAME,NAME,...]\n"
               "  default: every 97th float bit pattern plus special values\n"
               "  --special: print each implementation's output at special inputs and exit\n"
               "  --activations: those only (default: every plain one); a gated one is\n"
               "    measured as its gate, through the gated kernels with up = 1\n",
               argv0);
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--exhaustive") {
      o.exhaustive = true;
    } else if (arg == "--special") {
      o.special = true;
    } else if (arg == "--step" && i + 1 < argc) {
      o.step = std::strtoull(argv[++i], nullptr, 10);
      if (o.step == 0) Usage(argv[0]);
    } else if (arg == "--csv" && i + 1 < argc) {
      o.csv_path = argv[++i];
    } else if (arg == "--activations" && i + 1 < argc) {
      o.activations.clear();
      std::string_view list = argv[++i];
      while (!list.empty()) {
        const size_t comma = std::min(list.find(','), list.size());
        const std::optional<Activation> a = ParseActivation(list.substr(0, comma));
        if (!a) Usage(argv[0]);
        o.activations.push_back(*a);
        list.remove_prefix(std::min(comma + 1, list.size()));
      }
      if (o.activations.empty()) Usage(argv[0]);
    } else {
      Usage(argv[0]);
    }
  }
  if (o.exhaustive) o.step = 1;
  return o;
}

// ---- per-thread work ---------------------------------------------------------

struct Worker {
  std::vector<Impl> impls;
  std::vector<Activation> activations;
  ActivationParams params = BenchParams();
  // onednn[a] is null when oneDNN lacks activation a.
  std::vector<std::unique_ptr<OnednnEltwise>> onednn;
  std::vector<float> x = std::vector<float>(kChunk), y = std::vector<float>(kChunk);
  std::vector<double> ref = std::vector<double>(kChunk), ref_gelu = std::vector<double>(kChunk);
  // The up operand of a gated activation: out = gate_act(g)·1, exact.
  std::vector<float> ones = std::vector<float>(kChunk, 1.0f);
  // stats[a * impls.size() + k]
  std::vector<ErrorStats> stats;
  GeluGap gap;

  Worker(const dnnl::engine& engine, const std::vector<Impl>& all_impls,
         const std::vector<Activation>& measured)
      : impls(all_impls), activations(measured) {
    for (Activation a : activations) {
      auto algo = OnednnFor(GateFunction(a), params);
      onednn.push_back(algo ? std::make_unique<OnednnEltwise>(engine, *algo, kChunk) : nullptr);
    }
    stats.resize(activations.size() * impls.size());
  }

  bool Has(size_t a, const Impl& impl) const {
    return impl.kind != ImplKind::kOnednn || onednn[a] != nullptr;
  }

  void Evaluate(size_t a, const Impl& impl, float* out) {
    const Activation act = activations[a];
    switch (impl.kind) {
      case ImplKind::kOurs:
        if (IsGated(act)) {
          KernelsFor(impl.isa).gated(act, params, x.data(), ones.data(), 0, out, 0, 1, kChunk);
        } else {
          KernelsFor(impl.isa).bias_act(act, params, x.data(), 0, nullptr, out, 0, 1, kChunk);
        }
        break;
      case ImplKind::kOnednn: onednn[a]->Run(x.data(), out); break;
      case ImplKind::kGlibc: GlibcApply(GateFunction(act), params, x.data(), out, kChunk); break;
    }
  }

  // x[0, n) holds the inputs; the rest of the chunk is zero padding.
  void RunChunk(size_t n) {
    bool have_gelu_ref = false;  // the gap needs gelu's reference first
    for (size_t a = 0; a < activations.size(); ++a) {
      const Activation act = activations[a];
      for (size_t i = 0; i < n; ++i) ref[i] = ActivationReference(act, params, x[i]);
      for (size_t k = 0; k < impls.size(); ++k) {
        if (!Has(a, impls[k])) continue;
        Evaluate(a, impls[k], y.data());
        Compare(x.data(), y.data(), ref.data(), n, stats[a * impls.size() + k]);
      }
      if (act == Activation::kGelu) {
        std::copy(ref.begin(), ref.begin() + n, ref_gelu.begin());
        have_gelu_ref = true;
      }
      if (act == Activation::kGeluTanh && have_gelu_ref) {
        gap.Add(x.data(), ref_gelu.data(), ref.data(), n);
        gap.measured = true;
      }
    }
  }
};

// ---- output -------------------------------------------------------------------

std::string Hex(uint32_t bits) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08" PRIx32, bits);
  return buf;
}
std::string Num(double v, const char* format = "%.9g") {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

std::string BitsOrEmpty(uint32_t bits) {
  return bits == UINT32_MAX ? "" : Num(FloatOf(bits));
}

// "x ≤ −5.71, x ≥ 9.5": the errors above kLargeUlp lie at these x or beyond
// (not necessarily at all of them); "–" when there are none.
std::string LargeErrorRange(const ErrorStats& s) {
  std::string out;
  if (s.large_negative_bits != UINT32_MAX) out = "x ≤ " + Num(FloatOf(s.large_negative_bits), "%.4g");
  if (s.large_positive_bits != UINT32_MAX) {
    if (!out.empty()) out += ", ";
    out += "x ≥ " + Num(FloatOf(s.large_positive_bits), "%.4g");
  }
  return out.empty() ? "–" : out;
}

void PrintSpecial(const std::vector<Impl>& impls, const std::vector<Activation>& activations,
                  const dnnl::engine& engine) {
  const std::vector<float> inputs = SpecialInputs();
  Worker w(engine, impls, activations);
  std::fill(w.x.begin(), w.x.end(), 0.0f);
  std::copy(inputs.begin(), inputs.end(), w.x.begin());
  std::vector<std::vector<float>> out(impls.size(), std::vector<float>(kChunk));
  for (size_t a = 0; a < w.activations.size(); ++a) {
    std::printf("\n### %s\n\n| x | bits | fp64 reference |", ActivationName(w.activations[a]));
    for (const Impl& impl : impls) std::printf(" %s |", impl.name.c_str());
    std::printf("\n|---|---|---|");
    for (size_t k = 0; k < impls.size(); ++k) std::printf("---|");
    std::printf("\n");
    for (size_t k = 0; k < impls.size(); ++k) {
      if (w.Has(a, impls[k])) w.Evaluate(a, impls[k], out[k].data());
    }
    for (size_t i = 0; i < inputs.size(); ++i) {
      const float x = inputs[i];
      std::printf("| %.9g | %s | %.9g |", x, Hex(BitsOf(x)).c_str(),
                  ActivationReference(w.activations[a], w.params, x));
      for (size_t k = 0; k < impls.size(); ++k) {
        if (!w.Has(a, impls[k])) {
          std::printf(" – |");
          continue;
        }
        const float y = out[k][i];
        // Flag a result whose float differs from the correctly rounded one.
        const float want = static_cast<float>(ActivationReference(w.activations[a], w.params, x));
        const bool same = BitsOf(y) == BitsOf(want) || (std::isnan(y) && std::isnan(want));
        std::printf(" %.9g%s |", y, same ? "" : " *");
      }
      std::printf("\n");
    }
  }
  std::printf("\n`*`: differs (value or sign of zero) from the fp64 reference rounded to float.\n");
}

}  // namespace
}  // namespace ffn

int main(int argc, char** argv) {
  using namespace ffn;
  const Options options = ParseOptions(argc, argv);
  const std::vector<Impl> impls = Implementations();
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  if (options.special) {
    PrintSpecial(impls, options.activations, engine);
    return 0;
  }

  const uint64_t samples = (kAllPatterns + options.step - 1) / options.step;
  const uint64_t chunks = (samples + kChunk - 1) / kChunk;
  const std::vector<float> specials = SpecialInputs();
  const int threads = std::min(omp_get_max_threads(), 2);
  std::vector<std::unique_ptr<Worker>> workers(static_cast<size_t>(threads));
  for (auto& w : workers) w = std::make_unique<Worker>(engine, impls, options.activations);

  const auto start = std::chrono::steady_clock::now();
  // Chunk `chunks` is the special values (only in sampled mode: the
  // exhaustive sweep already has them).
  const int64_t tasks = static_cast<int64_t>(chunks) + (options.exhaustive ? 0 : 1);
  int64_t done = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t c = 0; c < tasks; ++c) {
    Worker& w = *workers[static_cast<size_t>(omp_get_thread_num())];
    size_t n;
    if (c == static_cast<int64_t>(chunks)) {
      n = specials.size();
      std::copy(specials.begin(), specials.end(), w.x.begin());
    } else {
      const uint64_t first = static_cast<uint64_t>(c) * kChunk;
      n = static_cast<size_t>(std::min<uint64_t>(kChunk, samples - first));
      for (size_t i = 0; i < n; ++i) {
        w.x[i] = FloatOf(static_cast<uint32_t>((first + i) * options.step));
      }
    }
    std::fill(w.x.begin() + static_cast<ptrdiff_t>(n), w.x.end(), 0.0f);
    w.RunChunk(n);
    int64_t now_done;
#pragma omp atomic capture
    now_done = ++done;
    if (now_done % 256 == 0) {
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "%" PRId64 "/%" PRId64 " chunks, %.0f s\n", now_done, tasks, s);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  Worker& total = *workers[0];
  for (size_t t = 1; t < workers.size(); ++t) {
    for (size_t i = 0; i < total.stats.size(); ++i) total.stats[i].Merge(workers[t]->stats[i]);
    total.gap.Merge(workers[t]->gap);
  }

  const uint64_t inputs = samples + (options.exhaustive ? 0 : specials.size());
  if (options.exhaustive) {
    std::printf("Inputs: all 2^32 float bit patterns (%" PRIu64 ").\n", inputs);
  } else {
    std::printf("Inputs: every %" PRIu64 "th float bit pattern plus %zu special values (%" PRIu64
                " in all).\n",
                options.step, specials.size(), inputs);
  }
  std::printf("Threads: %d. Time: %.1f s.\n\n", threads, seconds);
  std::printf(
      "| activation | ISA/impl | max ULP | at x | > %g ULP from | max abs err (denormal range) "
      "| at x | bad |\n",
      kLargeUlp);
  std::printf("|---|---|---|---|---|---|---|---|\n");
  FILE* csv = nullptr;
  if (!options.csv_path.empty()) {
    csv = std::fopen(options.csv_path.c_str(), "w");
    if (csv == nullptr) {
      std::perror(options.csv_path.c_str());
      return 1;
    }
    std::fprintf(csv,
                 "activation,impl,compared,max_ulp,max_ulp_x,max_ulp_x_bits,max_abs_denormal,"
                 "max_abs_denormal_x,max_abs_denormal_x_bits,bad,first_bad_x_bits,first_bad_y,"
                 "first_bad_ref,large_ulp_from_positive_x,large_ulp_from_negative_x\n");
  }
  std::string bad_examples;
  for (size_t a = 0; a < total.activations.size(); ++a) {
    const char* act = ActivationName(total.activations[a]);
    for (size_t k = 0; k < impls.size(); ++k) {
      if (!total.Has(a, impls[k])) continue;
      const ErrorStats& s = total.stats[a * impls.size() + k];
      const float ulp_x = FloatOf(s.max_ulp_bits), abs_x = FloatOf(s.max_abs_denormal_bits);
      std::printf("| %s | %s | %s | %s (%s) | %s | %s | %s (%s) | %" PRIu64 " |\n", act,
                  impls[k].name.c_str(), Num(s.max_ulp, "%.3f").c_str(), Num(ulp_x).c_str(),
                  Hex(s.max_ulp_bits).c_str(), LargeErrorRange(s).c_str(),
                  Num(s.max_abs_denormal, "%.3g").c_str(), Num(abs_x).c_str(),
                  Hex(s.max_abs_denormal_bits).c_str(), s.bad);
      if (csv != nullptr) {
        std::fprintf(csv,
                     "%s,%s,%" PRIu64 ",%.6f,%.9g,%s,%.9g,%.9g,%s,%" PRIu64 ",%s,%.9g,%.17g,%s,%s\n",
                     act, impls[k].name.c_str(), s.compared, s.max_ulp, ulp_x,
                     Hex(s.max_ulp_bits).c_str(), s.max_abs_denormal, abs_x,
                     Hex(s.max_abs_denormal_bits).c_str(), s.bad,
                     s.bad > 0 ? Hex(s.bad_bits).c_str() : "", s.bad_y, s.bad_ref,
                     BitsOrEmpty(s.large_positive_bits).c_str(),
                     BitsOrEmpty(s.large_negative_bits).c_str());
      }
      if (s.bad > 0) {
        bad_examples += "- " + std::string(act) + " / " + impls[k].name + ": " +
                        std::to_string(s.bad) + " bad; first at x = " +
                        Num(FloatOf(s.bad_bits)) + " (" + Hex(s.bad_bits) + "): got " +
                        Num(s.bad_y) + ", reference " + Num(s.bad_ref, "%.17g") + "\n";
      }
    }
  }
  if (csv != nullptr) std::fclose(csv);
  if (!bad_examples.empty()) std::printf("\nBad results:\n\n%s", bad_examples.c_str());

  const GeluGap& g = total.gap;
  if (!g.measured) return 0;
  std::printf("\ngelu vs gelu_tanh (fp64 references, finite inputs above):\n\n");
  std::printf("- max |gelu − gelu_tanh| = %.6g at x = %.9g (%s)\n", g.max_abs,
              FloatOf(g.max_abs_bits), Hex(g.max_abs_bits).c_str());
  std::printf("- max |gelu − gelu_tanh| / |gelu| = %.6g at x = %.9g (%s), over |gelu(x)| >= FLT_MIN\n",
              g.max_rel, FloatOf(g.max_rel_bits), Hex(g.max_rel_bits).c_str());
  std::printf("- max |gelu − gelu_tanh| / |gelu| = %.6g at x = %.9g (%s), over |x| <= 3\n",
              g.max_rel_core, FloatOf(g.max_rel_core_bits), Hex(g.max_rel_core_bits).c_str());
  return 0;
}
