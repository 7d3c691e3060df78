// FfnBlock: the coordinator. Run() validates, brings the input to the
// compute type (with pre-norm), hands the core to the planned strategy
// (strategies.h) and finishes with residual and output conversion. The
// prepared weights, the oneDNN cache and the plan live in their own files.
#include "ffn/kernels/ffn_block.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ffn/common/status_macros.h"
#include "moe_layer.h"
#include "onednn_matmul.h"
#include "plan.h"
#include "prepared_weights.h"
#include "strategies.h"

namespace ffn {
namespace {

// out[r] = norm(x[r]) for `rows` rows of `cols`, with double sums; `out`
// may be `x` (each row is summed before it is written).
void NormRows(NormKind norm, float eps, const std::vector<float>& gamma,
              const std::vector<float>& beta, const float* x, float* out, int64_t rows,
              int64_t cols) {
  const bool layer = norm == NormKind::kLayerNorm;
#pragma omp parallel for schedule(static) if (rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * cols;
    float* o = out + r * cols;
    double sum = 0, square = 0;
    for (int64_t k = 0; k < cols; ++k) {
      sum += in[k];
      square += static_cast<double>(in[k]) * in[k];
    }
    const double mean = sum / static_cast<double>(cols);
    const double mean_square = square / static_cast<double>(cols);
    const double variance = layer ? std::max(0.0, mean_square - mean * mean) : mean_square;
    const float scale = static_cast<float>(1.0 / std::sqrt(variance + eps));
    const float shift = layer ? static_cast<float>(mean) : 0.0f;
    for (int64_t k = 0; k < cols; ++k) {
      const float normed = (in[k] - shift) * scale * gamma[static_cast<size_t>(k)];
      o[k] = layer ? normed + beta[static_cast<size_t>(k)] : normed;
    }
  }
}

}  // namespace

struct FfnBlock::Impl {
  // A dense block.
  Impl(FfnWeights w, const ActivationParams& p, bool int8)
      : dense(std::make_unique<const PreparedWeights>(std::move(w), p, int8)) {}
  // A mixture of experts: `outer` without matrices.
  Impl(FfnWeights outer, const ActivationParams& p, std::unique_ptr<MoeLayer> layer)
      : moe_outer(std::move(outer)), moe_params(p), moe(std::move(layer)) {}

  const std::unique_ptr<const PreparedWeights> dense;  // null for MoE
  const FfnWeights moe_outer;
  const ActivationParams moe_params;
  const std::unique_ptr<MoeLayer> moe;
  MatmulCache matmuls;
  StrategyPlan plan;
  // What `plan` was made from (SetPlan), for Plan() and Retime().
  mutable absl::Mutex tuned_mu;
  std::optional<TuneResult> tuned ABSL_GUARDED_BY(tuned_mu);

  const FfnWeights& weights() const { return dense ? dense->weights() : moe_outer; }
  Activation representative() const { return RepresentativeActivation(weights().kind); }
  bool int8() const { return dense && dense->int8(); }
};

const char* QuantizationName(Quantization quantization) {
  return quantization == Quantization::kInt8 ? "int8" : "none";
}

std::optional<Quantization> ParseQuantization(std::string_view name) {
  for (Quantization q : {Quantization::kNone, Quantization::kInt8}) {
    if (name == QuantizationName(q)) return q;
  }
  return std::nullopt;
}

FfnBlock::FfnBlock(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FfnBlock::~FfnBlock() = default;

absl::StatusOr<std::unique_ptr<FfnBlock>> FfnBlock::Create(FfnWeights weights,
                                                           ActivationParams params,
                                                           Quantization quantization) {
  RETURN_IF_ERROR(weights.Validate());
  const bool int8 = quantization == Quantization::kInt8;
  try {
    return std::unique_ptr<FfnBlock>(
        new FfnBlock(std::make_unique<Impl>(std::move(weights), params, int8)));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory for the packed weights");
  }
}

absl::StatusOr<std::unique_ptr<FfnBlock>> FfnBlock::CreateMoe(MoeWeights weights,
                                                              ActivationParams params,
                                                              Quantization quantization) {
  RETURN_IF_ERROR(weights.Validate());
  FfnWeights outer = weights.outer;
  try {
    ASSIGN_OR_RETURN(std::unique_ptr<MoeLayer> layer,
                     MoeLayer::Create(std::move(weights), params, quantization));
    return std::unique_ptr<FfnBlock>(
        new FfnBlock(std::make_unique<Impl>(std::move(outer), params, std::move(layer))));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory for the experts' packed weights");
  }
}

const FfnWeights& FfnBlock::weights() const { return impl_->weights(); }
FfnWeights FfnBlock::UnpackedWeights() const {
  return impl_->dense ? impl_->dense->Unpacked() : impl_->moe_outer;
}
DataType FfnBlock::MatrixType() const {
  return impl_->dense ? impl_->dense->stored() : impl_->moe->expert(0).MatrixType();
}
Quantization FfnBlock::quantization() const {
  if (impl_->moe) return expert(0).quantization();
  return impl_->int8() ? Quantization::kInt8 : Quantization::kNone;
}
const ActivationParams& FfnBlock::params() const {
  return impl_->dense ? impl_->dense->params() : impl_->moe->expert(0).params();
}
const MoeWeights* FfnBlock::moe() const { return impl_->moe ? &impl_->moe->meta() : nullptr; }
int64_t FfnBlock::num_experts() const { return impl_->moe ? impl_->moe->num_experts() : 0; }
const FfnBlock& FfnBlock::expert(int64_t e) const { return impl_->moe->expert(e); }
const FfnBlock* FfnBlock::shared_expert() const {
  return impl_->moe ? impl_->moe->shared() : nullptr;
}

double FfnBlock::Flops(int64_t m) const {
  if (impl_->moe) {
    // The top_k experts each token runs, and the shared one.
    return static_cast<double>(moe()->top_k) * expert(0).Flops(m) +
           (shared_expert() != nullptr ? shared_expert()->Flops(m) : 0.0);
  }
  const double per_token = 2.0 * static_cast<double>(d_model()) * static_cast<double>(d_ff()) *
                           (kind() == FfnKind::kGated ? 3.0 : 2.0);
  return per_token * static_cast<double>(m);
}

absl::Status FfnBlock::Prepare(int64_t max_m, bool batch_invariant) const {
  if (impl_->moe) {
    for (int64_t e = 0; e < num_experts(); ++e) {
      RETURN_IF_ERROR(expert(e).Prepare(max_m, batch_invariant));
    }
    if (shared_expert() != nullptr) RETURN_IF_ERROR(shared_expert()->Prepare(max_m, batch_invariant));
    return absl::OkStatus();
  }
  // One call per token count and dtype with the planned strategy builds and
  // caches its primitives and weight forms.
  std::vector<float> x(static_cast<size_t>(max_m * d_model()), 0.5f), y(x.size());
  // An int8 block runs one path whatever the compute dtype: one warm-up each.
  const std::vector<DataType> dtypes =
      impl_->int8() ? std::vector{DataType::kF32} : std::vector{DataType::kF32, DataType::kBf16};
  for (int64_t m = 1; m <= max_m; ++m) {
    for (DataType compute : dtypes) {
      FfnRun run{impl_->representative(), compute, x.data(), DataType::kF32, m, y.data(),
                 DataType::kF32};
      run.batch_invariant = batch_invariant;
      RETURN_IF_ERROR(Run(run));
    }
  }
  return absl::OkStatus();
}

void FfnBlock::SetStrategy(Strategy strategy) {
  if (impl_->moe) impl_->moe->SetStrategy(strategy);
  impl_->plan.Force(strategy);
  absl::MutexLock lock(&impl_->tuned_mu);
  impl_->tuned.reset();
}

std::optional<TuneResult> FfnBlock::Plan() const {
  absl::MutexLock lock(&impl_->tuned_mu);
  return impl_->tuned;
}

absl::StatusOr<TuneResult::Probe> FfnBlock::Retime(int64_t m, DataType compute) {
  std::optional<TuneResult> plan = Plan();
  auto find = [&](TuneResult& in) -> TuneResult::Probe* {
    for (TuneResult::Probe& p : in.probes) {
      if (p.m == m && p.compute == compute) return &p;
    }
    return nullptr;
  };
  TuneResult::Probe* current = plan ? find(*plan) : nullptr;
  if (current == nullptr) {
    return absl::NotFoundError(absl::StrCat("the plan has no probe at m=", m, " for ",
                                            DataTypeName(compute)));
  }
  TuneResult::Probe fresh = *current;
  RETURN_IF_ERROR(TimeProbe(d_model(), impl_->representative(),
                            [this](const FfnRun& run) { return Run(run); }, fresh));
  // Swapped into the plan as it is now, should it have changed meanwhile.
  absl::MutexLock lock(&impl_->tuned_mu);
  if (!impl_->tuned) return absl::NotFoundError("the block no longer runs a tuned plan");
  TuneResult::Probe* now = find(*impl_->tuned);
  if (now == nullptr) return absl::NotFoundError("the plan lost its probe while it was timed");
  *now = fresh;
  RETURN_IF_ERROR(ApplyPlan(*impl_->tuned));
  return fresh;
}

absl::Status FfnBlock::SetPlan(const TuneResult& tuned) {
  absl::MutexLock lock(&impl_->tuned_mu);
  RETURN_IF_ERROR(ApplyPlan(tuned));
  impl_->tuned = tuned;
  return absl::OkStatus();
}

absl::Status FfnBlock::ApplyPlan(const TuneResult& tuned) {
  std::vector<PlanEntry> entries[2];
  for (const TuneResult::Probe& p : tuned.probes) {
    if (p.m <= 0 || (p.chosen != Strategy::kUnfused && p.chosen != Strategy::kFused)) {
      return absl::InvalidArgumentError(absl::StrCat("a plan probe needs m > 0 and unfused or fused; got m=",
                                                     p.m, " ", StrategyName(p.chosen)));
    }
    entries[p.compute == DataType::kBf16].push_back({p.m, p.chosen, p.chosen});
  }
  for (std::vector<PlanEntry>& e : entries) {
    std::sort(e.begin(), e.end(), [](const PlanEntry& a, const PlanEntry& b) { return a.m < b.m; });
  }
  impl_->plan.Set(std::move(entries[0]), std::move(entries[1]));
  return absl::OkStatus();
}

Strategy FfnBlock::PlannedStrategy(int64_t m, DataType compute) const {
  return impl_->plan.Resolve(Strategy::kAuto, m, compute, impl_->representative(), params());
}

absl::StatusOr<TuneResult> FfnBlock::Tune(int64_t max_m) {
  if (impl_->moe) {
    return absl::FailedPreconditionError(
        "a mixture-of-experts block is not tuned: its experts run batch-invariant, or the "
        "untuned rule");
  }
  if (impl_->int8()) {
    return absl::FailedPreconditionError("an int8 block is not tuned: it runs one path at every M");
  }
  const Activation activation = impl_->representative();
  ASSIGN_OR_RETURN(TuneResult tuned,
                   MeasureStrategies(max_m, d_model(), activation,
                                     [this](const FfnRun& run) { return Run(run); }));
  RETURN_IF_ERROR(SetPlan(tuned));
  // Keep only the packed weights the plan reads: drop them all and let one
  // planned call per probe pack what it needs again.
  impl_->matmuls.DropPacked();
  const int64_t largest = tuned.probes.empty() ? 1 : tuned.probes.back().m;
  std::vector<float> x(static_cast<size_t>(largest * d_model()), 0.5f), y(x.size());
  for (const TuneResult::Probe& probe : tuned.probes) {
    RETURN_IF_ERROR(Run({activation, probe.compute, x.data(), DataType::kF32, probe.m, y.data(),
                         DataType::kF32}));
  }
  return tuned;
}

size_t FfnBlock::PackedWeightBytes() const { return impl_->matmuls.PackedBytes(); }
size_t FfnBlock::WeightBytes() const {
  if (impl_->moe) {
    size_t bytes = impl_->moe->meta().router.size() * sizeof(float);
    for (int64_t e = 0; e < num_experts(); ++e) bytes += expert(e).WeightBytes();
    if (shared_expert() != nullptr) bytes += shared_expert()->WeightBytes();
    return bytes;
  }
  return impl_->dense->Bytes() + impl_->matmuls.PackedBytes();
}

absl::StatusOr<std::string> FfnBlock::ImplementationFor(int64_t m, DataType compute,
                                                        bool batch_invariant) const {
  if (impl_->moe) {
    ASSIGN_OR_RETURN(std::string each, expert(0).ImplementationFor(m, compute, batch_invariant));
    return absl::StrCat("mixture of ", num_experts(), " experts, top ", moe()->top_k,
                        shared_expert() != nullptr ? " + a shared expert" : "", "; each: ", each);
  }
  if (impl_->int8()) {
    return absl::StrCat("int8: ffnserve ",
                        ActiveKernelTable().small_m_native_int8 ? "avx512-vnni" : "portable",
                        " int8 dot products (tokens in scaled groups of 32, weights per output "
                        "channel), in chunks of up to ",
                        kInvariantChunkTokens, " tokens");
  }
  if (batch_invariant) {
    return absl::StrCat("fused, batch-invariant: ffnserve ",
                        IsaName(ActiveIsa()), " ", DataTypeName(compute),
                        " dot products in chunks of up to ", kInvariantChunkTokens, " tokens");
  }
  const Strategy strategy = PlannedStrategy(m, compute);
  if (strategy == Strategy::kFused && FusedRunsSmallM(ActiveKernelTable(), m, compute)) {
    return absl::StrCat("fused: ffnserve avx512 ", DataTypeName(compute), " dot products");
  }
  const PreparedWeights& w = *impl_->dense;
  const int64_t n = strategy == Strategy::kFused ? w.block_cols(0) * (w.gated() ? 2 : 1)
                                                 : w.up_cols();
  try {
    MatmulSpec up{m, d_model(), n, d_model(), d_model(), n, compute, DataType::kF32, false};
    MatmulSpec down{m, d_ff(), d_model(), d_ff(), d_ff(), d_model(), compute, DataType::kF32,
                    false};
    return absl::StrCat(StrategyName(strategy), ": ", impl_->matmuls.ImplementationName(up), " / ",
                        impl_->matmuls.ImplementationName(down));
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
  }
}

absl::Status FfnBlock::Run(const FfnRun& run) const {
  const FfnWeights& w = weights();
  const int64_t m = run.m;
  if (m <= 0) return absl::InvalidArgumentError(absl::StrCat("token count must be positive, got ", m));
  // The rows' activations: one for all, or one per segment.
  const ActivationSegment whole{m, run.activation};
  const std::span<const ActivationSegment> segments =
      run.segments.empty() ? std::span<const ActivationSegment>(&whole, 1) : run.segments;
  int64_t covered = 0;
  for (const ActivationSegment& segment : segments) {
    if (segment.rows <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("an activation segment must have rows, got ", segment.rows));
    }
    if (IsGated(segment.activation) != (w.kind == FfnKind::kGated)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "activation ", std::string(ActivationName(segment.activation)), " needs a ",
          IsGated(segment.activation) ? "gated" : "plain", " model; this one is ",
          w.kind == FfnKind::kGated ? "gated" : "plain"));
    }
    covered += segment.rows;
  }
  if (covered != m) {
    return absl::InvalidArgumentError(
        absl::StrCat("the activation segments cover ", covered, " rows; the call has ", m));
  }
  const Activation first = segments.front().activation;
  if (impl_->int8() && run.strategy != Strategy::kAuto && run.strategy != Strategy::kFused) {
    return absl::InvalidArgumentError(absl::StrCat("an int8 model runs its int8 path; strategy ",
                                                   StrategyName(run.strategy), " needs f32 or bf16 weights"));
  }
  if (run.batch_invariant && run.strategy != Strategy::kAuto && run.strategy != Strategy::kFused) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a batch-invariant call runs the fused strategy; ", StrategyName(run.strategy),
        " sums in an order that depends on the token count"));
  }
  const Strategy strategy =
      run.batch_invariant || impl_->moe || impl_->int8()
          ? Strategy::kFused
          : impl_->plan.Resolve(run.strategy, m, run.compute, first, params());
  if (!impl_->moe && strategy == Strategy::kPostops && segments.size() > 1) {
    // A post-op computes one activation: one call per segment.
    int64_t row = 0;
    for (const ActivationSegment& segment : segments) {
      FfnRun part = run;
      part.segments = {};
      part.activation = segment.activation;
      part.m = segment.rows;
      part.x = static_cast<const char*>(run.x) + row * w.d_model * ElementBytes(run.x_type);
      part.y = static_cast<char*>(run.y) + row * w.d_model * ElementBytes(run.y_type);
      RETURN_IF_ERROR(Run(part));
      row += segment.rows;
    }
    return absl::OkStatus();
  }
  if (!impl_->moe && strategy == Strategy::kPostops && !PostopsSupports(first, params())) {
    return absl::UnimplementedError(
        "strategy postops cannot run per-channel prelu: oneDNN 2.6 has its prelu post-op only "
        "in the reference matmul, which fails; use unfused or fused");
  }
  const int64_t d_model = w.d_model;
  const int64_t io_size = m * d_model;
  thread_local Scratch scratch;
  Activation* row_activation = Scratch::Get(scratch.row_activation, m);
  for (const ActivationSegment& segment : segments) {
    row_activation = std::fill_n(row_activation, segment.rows, segment.activation);
  }
  try {
    dnnl::stream stream(CpuEngine());
    // Pre-norm and residual read the input in f32.
    const void* x = run.x;
    DataType x_type = run.x_type;
    const float* x_original = nullptr;
    if (w.norm != NormKind::kNone || w.residual) {
      if (run.x_type == DataType::kBf16) {
        x_original = Scratch::Get(scratch.x_in_f32, io_size);
        ConvertRows(stream, run.x, DataType::kBf16, scratch.x_in_f32.data(), DataType::kF32, m,
                    d_model);
        stream.wait();
      } else {
        x_original = static_cast<const float*>(run.x);
      }
      x = x_original;
      x_type = DataType::kF32;
      if (w.norm != NormKind::kNone) {
        float* normed = Scratch::Get(scratch.x_normed, io_size);
        NormRows(w.norm, w.norm_eps, w.norm_gamma, w.norm_beta, x_original, normed, m, d_model);
        x = normed;
      }
    }
    // The core writes f32: into y, or into scratch to convert to bf16.
    float* y_out = run.y_type == DataType::kBf16 ? Scratch::Get(scratch.y_f32, io_size)
                                                 : static_cast<float*>(run.y);
    if (impl_->moe) {
      // The experts read f32 rows (and use this thread's scratch, of which
      // only x_in_f32, x_normed and y_f32, which they never touch, are held
      // across the call).
      const float* x_f32 = static_cast<const float*>(x);
      if (x_type != DataType::kF32) {
        float* converted = Scratch::Get(scratch.x_in_f32, io_size);
        ConvertRows(stream, x, x_type, converted, DataType::kF32, m, d_model);
        stream.wait();
        x_f32 = converted;
        x_original = converted;
      }
      const std::vector<Activation> activations(scratch.row_activation.begin(),
                                                scratch.row_activation.begin() + m);
      RETURN_IF_ERROR(impl_->moe->Run(run, activations.data(), x_f32, m, y_out));
    } else {
    // The source in the compute type (int8 models quantize f32 tokens).
    const DataType compute = impl_->int8() ? DataType::kF32 : run.compute;
    if (x_type != compute) {
      void* converted = compute == DataType::kBf16
                            ? static_cast<void*>(Scratch::Get(scratch.x_bf16, io_size))
                            : static_cast<void*>(Scratch::Get(scratch.x_f32, io_size));
      ConvertRows(stream, x, x_type, converted, compute, m, d_model);
      stream.wait();
      x = converted;
    }
    const CoreCall core{*impl_->dense, impl_->matmuls, ActiveKernelTable(), scratch.row_activation.data(), first,
                        compute,        x,              m,                   y_out,
                        run.skip_epilogue_for_timing, run.batch_invariant};
    if (impl_->int8()) {
      RunInt8(core, scratch);
    } else {
      switch (strategy) {
        case Strategy::kUnfused: RunUnfused(core, scratch, stream); break;
        case Strategy::kPostops: RunPostops(core, scratch, stream); break;
        case Strategy::kFused:
        case Strategy::kAuto: RunFused(core, scratch, stream); break;
      }
    }
    stream.wait();
    }
    const auto norm_output = [&] {
      NormRows(w.out_norm, w.out_norm_eps, w.out_norm_gamma, w.out_norm_beta, y_out, y_out, m,
               d_model);
    };
    if (w.out_norm != NormKind::kNone && w.out_norm_place == OutputNormPlace::kBeforeResidual) {
      norm_output();
    }
    if (w.residual) {
#pragma omp parallel for schedule(static) if (io_size > 65536)
      for (int64_t i = 0; i < io_size; ++i) y_out[i] += x_original[i];
    }
    if (w.out_norm != NormKind::kNone && w.out_norm_place == OutputNormPlace::kAfterResidual) {
      norm_output();
    }
    if (run.y_type == DataType::kBf16) {
      ConvertRows(stream, y_out, DataType::kF32, run.y, DataType::kBf16, m, d_model);
      stream.wait();
    }
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN failed: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory for the ", m, "-token intermediate buffers"));
  }
  return absl::OkStatus();
}

}  // namespace ffn
