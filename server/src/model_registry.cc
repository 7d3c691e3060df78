#include "ffn/server/model_registry.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ffn/common/huggingface.h"
#include "ffn/common/safetensors.h"
#include "ffn/common/status_macros.h"
#include "ffn/server/memory_budget.h"
#include "ffn/server/plan_cache.h"
#include "ffn/server/proto_dtype.h"

namespace ffn {
namespace {

absl::Status WithModel(const ModelConfig& config, const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrCat("model '", config.name, "': ", status.message()));
}

absl::StatusOr<FfnWeights> ReadSafetensorsWeights(const ModelConfig& config) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                   SafetensorsFile::Open(config.safetensors_path));
  FfnWeights w;
  w.kind = config.kind;
  w.d_model = config.d_model;
  w.d_ff = config.d_ff;
  const int64_t dm = config.d_model, dff = config.d_ff;
  // Reads role's tensor as f32, or as bf16 bits into a std::vector<uint16_t>.
  auto read = [&](const std::string& role, std::vector<int64_t> shape, auto& out) -> absl::Status {
    auto name = config.tensors.find(role);
    if (name == config.tensors.end()) {
      return absl::InvalidArgumentError(absl::StrCat("weight ", role, ": no tensor name given"));
    }
    auto values = [&] {
      if constexpr (sizeof(out[0]) == 2) {
        return file->ReadFiniteBf16(name->second, shape);
      } else {
        return file->ReadFiniteFloat(name->second, shape);
      }
    }();
    if (!values.ok()) {
      return absl::Status(values.status().code(),
                          absl::StrCat("weight ", role, " (tensor '", name->second, "'): ",
                                       values.status().message()));
    }
    out = std::move(*values);
    return absl::OkStatus();
  };
  // Matrices all stored in BF16 stay bf16, as the engine keeps them.
  const std::vector<std::string> matrices =
      config.kind == FfnKind::kPlain ? std::vector<std::string>{"w1", "w2"}
                                     : std::vector<std::string>{"wg", "wu", "w2"};
  const bool bf16 = std::all_of(matrices.begin(), matrices.end(), [&](const std::string& role) {
    auto name = config.tensors.find(role);
    if (name == config.tensors.end()) return false;
    auto entry = file->Get(name->second);
    return entry.ok() && entry->dtype == "BF16";
  });
  if (bf16) w.matrix_type = DataType::kBf16;
  absl::Status s = bf16 ? read("w2", {dm, dff}, w.w2_bf16) : read("w2", {dm, dff}, w.w2);
  if (config.kind == FfnKind::kPlain) {
    if (s.ok()) s = bf16 ? read("w1", {dff, dm}, w.w1_bf16) : read("w1", {dff, dm}, w.w1);
    w.has_bias = config.tensors.contains("b1");
    if (s.ok() && w.has_bias) s = read("b1", {dff}, w.b1);
    if (s.ok() && w.has_bias) s = read("b2", {dm}, w.b2);
    if (s.ok() && config.tensors.contains("alpha")) {
      auto entry = file->Get(config.tensors.at("alpha"));
      if (!entry.ok()) {
        return absl::Status(entry.status().code(),
                            absl::StrCat("weight alpha: ", entry.status().message()));
      }
      // PyTorch stores PReLU's weight as [1] or [num_parameters].
      const int64_t n = entry->shape.empty() ? 1 : entry->shape[0];
      if (entry->shape.size() > 1 || (n != 1 && n != dff)) {
        return absl::InvalidArgumentError(
            absl::StrCat("weight alpha: shape must be [1] or [d_ff = ", dff, "]"));
      }
      s = read("alpha", entry->shape, w.prelu_alpha);
    }
  } else {
    if (s.ok()) s = bf16 ? read("wg", {dff, dm}, w.wg_bf16) : read("wg", {dff, dm}, w.wg);
    if (s.ok()) s = bf16 ? read("wu", {dff, dm}, w.wu_bf16) : read("wu", {dff, dm}, w.wu);
  }
  if (s.ok() && config.norm != NormKind::kNone) {
    w.norm = config.norm;
    s = read("norm_weight", {dm}, w.norm_gamma);
    if (s.ok() && config.norm == NormKind::kLayerNorm) s = read("norm_bias", {dm}, w.norm_beta);
  }
  if (!s.ok()) return s;
  if (w.prelu_alpha.empty()) w.prelu_alpha = {0.25f};
  return w;
}

// What an int8 model promises, for ListModels (figures: docs/ACCURACY.md).
constexpr char kInt8Accuracy[] =
    "int8 weights (per output channel) and tokens (per group of 32 values): within 0.15 scaled "
    "error and 2.5e-2 relative Frobenius of the fp64 reference on the tested models; "
    "batch-invariant";

v1::ModelInfo DescribeModel(const Model& model, const v1::HuggingFaceWeights* huggingface) {
  const ModelConfig& c = model.config;
  v1::ModelInfo info;
  info.set_name(c.name);
  info.set_d_model(c.d_model);
  info.set_d_ff(c.d_ff);
  info.set_kind(c.kind == FfnKind::kGated ? v1::GATED : v1::PLAIN);
  info.set_default_activation(std::string(ActivationName(c.default_activation)));
  for (Activation a : c.kind == FfnKind::kGated ? GatedActivations() : PlainActivations()) {
    info.add_activations(std::string(ActivationName(a)));
  }
  info.set_dtype(ToProtoDType(c.dtype));
  info.add_compute_dtypes(ToProtoDType(DataType::kF32));
  info.add_compute_dtypes(ToProtoDType(DataType::kBf16));
  if (huggingface != nullptr) {
    *info.mutable_huggingface() = *huggingface;
  } else if (c.random_weights) {
    info.mutable_random()->set_seed(c.seed);
  } else {
    info.mutable_safetensors()->set_path(c.safetensors_path);
    for (const auto& [role, name] : c.tensors) (*info.mutable_safetensors()->mutable_tensors())[role] = name;
  }
  const FfnWeights& w = model.block->weights();
  info.set_has_bias(w.kind == FfnKind::kPlain && w.has_bias);
  const ActivationParams& p = model.block->params();
  v1::ActivationParams* params = info.mutable_params();
  params->set_leaky_relu_slope(p.leaky_relu_slope);
  params->set_rrelu_lower(p.rrelu_lower);
  params->set_rrelu_upper(p.rrelu_upper);
  params->set_rrelu_slope(p.rrelu_slope());
  params->set_elu_alpha(p.elu_alpha);
  if (w.kind == FfnKind::kPlain) {
    for (float a : w.prelu_alpha) params->add_prelu_alpha(a);
  }
  info.set_max_tokens(model.max_tokens);
  info.set_norm(NormName(w.norm));
  info.set_norm_eps(w.norm_eps);
  info.set_residual(w.residual);
  info.set_output_norm(NormName(w.out_norm));
  if (w.out_norm != NormKind::kNone) {
    info.set_output_norm_eps(w.out_norm_eps);
    info.set_output_norm_after_residual(w.out_norm_place == OutputNormPlace::kAfterResidual);
  }
  const bool int8 = model.block->quantization() == Quantization::kInt8;
  info.set_strategy(int8 ? "int8" : StrategyName(model.strategy));
  info.set_accuracy(int8 ? kInt8Accuracy : StrategyAccuracy(model.strategy));
  info.set_quantization(QuantizationName(model.block->quantization()));
  info.set_batch_invariant(model.batch_invariant);
  if (const MoeWeights* moe = model.block->moe()) {
    v1::MoeInfo* m = info.mutable_moe();
    m->set_experts(moe->num_experts());
    m->set_top_k(moe->top_k);
    m->set_shared_d_ff(model.block->shared_expert() != nullptr ? model.block->shared_expert()->d_ff()
                                                               : 0);
    m->set_normalize_top_k(moe->normalize_top_k);
  }
  info.set_matrix_dtype(int8 ? "int8" : DataTypeName(model.block->MatrixType()));
  info.set_weight_bytes(model.block->WeightBytes());
  return info;
}

}  // namespace

namespace {

// Opens an expanded checkpoint layer's folder, reads the layer with `read`
// (checkpoint, source) and describes it into `description` if given.
template <typename Read>
auto LoadCheckpointLayer(const ModelConfig& config, v1::HuggingFaceWeights* description, Read read)
    -> decltype(read(std::declval<const HuggingFaceCheckpoint&>(),
                     std::declval<const HuggingFaceSource&>())) {
  if (!config.huggingface || config.huggingface->layer.empty()) {
    return absl::InternalError(absl::StrCat("model '", config.name, "' is not a checkpoint layer"));
  }
  const HuggingFaceSource& source = *config.huggingface;
  auto checkpoint = HuggingFaceCheckpoint::Open(source.path);
  if (!checkpoint.ok()) return WithModel(config, checkpoint.status());
  auto layer = read(**checkpoint, source);
  if (!layer.ok()) return WithModel(config, layer.status());
  if (description != nullptr) {
    description->set_path(source.path);
    description->set_architecture((*checkpoint)->architecture());
    description->set_model_type((*checkpoint)->model_type());
    description->set_layer(source.layer);
    description->set_sublayer(source.sublayer);
    description->set_stored_dtype(layer->stored_dtype);
    description->set_hidden_act((*checkpoint)->hidden_act());
  }
  return layer;
}

}  // namespace

absl::StatusOr<HuggingFaceLayerWeights> LoadHuggingFaceLayer(const ModelConfig& config,
                                                             v1::HuggingFaceWeights* description) {
  return LoadCheckpointLayer(config, description,
                             [](const HuggingFaceCheckpoint& c, const HuggingFaceSource& s) {
                               return c.ReadLayer(s.layer, s.sublayer, /*keep_bf16=*/true);
                             });
}

absl::StatusOr<HuggingFaceMoeLayerWeights> LoadHuggingFaceMoeLayer(
    const ModelConfig& config, v1::HuggingFaceWeights* description) {
  return LoadCheckpointLayer(config, description,
                             [](const HuggingFaceCheckpoint& c, const HuggingFaceSource& s) {
                               return c.ReadMoeLayer(s.layer, s.sublayer, /*keep_bf16=*/true);
                             });
}

absl::StatusOr<std::vector<ModelConfig>> ExpandHuggingFace(const ModelConfig& entry) {
  if (!entry.huggingface || !entry.huggingface->layer.empty()) return std::vector{entry};
  const HuggingFaceSource& source = *entry.huggingface;
  auto checkpoint = HuggingFaceCheckpoint::Open(source.path);
  if (!checkpoint.ok()) return WithModel(entry, checkpoint.status());
  auto layers = (*checkpoint)->Select(source.all_layers, source.layers);
  if (!layers.ok()) return WithModel(entry, layers.status());
  std::vector<ModelConfig> expanded;
  for (const HuggingFaceLayer& layer : *layers) {
    ModelConfig mc = entry;
    mc.name = absl::StrCat(entry.name, ".", layer.id);
    mc.d_model = (*checkpoint)->d_model();
    mc.d_ff = (*checkpoint)->d_ff();
    mc.default_activation = (*checkpoint)->activation();
    mc.kind = (*checkpoint)->kind();
    mc.huggingface->layer = layer.id;
    if ((*checkpoint)->is_moe()) {
      mc.moe = MoeSettings{(*checkpoint)->experts(), (*checkpoint)->top_k(),
                           (*checkpoint)->shared_d_ff()};
    }
    expanded.push_back(std::move(mc));
  }
  return expanded;
}

absl::StatusOr<FfnWeights> LoadWeights(const ModelConfig& config) {
  absl::StatusOr<FfnWeights> weights;
  if (config.huggingface) {
    auto layer = LoadHuggingFaceLayer(config);
    if (!layer.ok()) return layer.status();
    return std::move(layer->weights);
  }
  if (config.random_weights) {
    weights = RandomFfnWeights(config.kind, config.d_model, config.d_ff, config.seed);
    AddRandomNorm(*weights, config.norm, config.seed);
  } else {
    weights = ReadSafetensorsWeights(config);
    if (!weights.ok()) return WithModel(config, weights.status());
  }
  weights->norm_eps = config.norm_eps;
  weights->residual = config.residual;
  return weights;
}

namespace {

// Refuses a model whose weights cannot fit before any of it is allocated: an
// allocation failure half-way through loading is a crash, not a message.
// `matrix_type` is the type the engine will keep the matrices in.
absl::Status CheckFits(const ModelConfig& config, DataType matrix_type, bool invariant,
                       uint64_t available_bytes) {
  const bool int8 = config.quantization == Quantization::kInt8;
  const uint64_t matrices = config.kind == FfnKind::kGated ? 3 : 2;
  const uint64_t dm = static_cast<uint64_t>(config.d_model);
  uint64_t values = matrices * dm * static_cast<uint64_t>(config.d_ff);
  if (config.moe) {
    // Every expert, and the shared one.
    values = values * static_cast<uint64_t>(config.moe->experts) +
             3 * dm * static_cast<uint64_t>(config.moe->shared_d_ff);
  }
  uint64_t needed;
  if (int8) {
    // The matrices as read, their int8 rows and the packed int8 copy.
    needed = values * (ElementBytes(matrix_type) + 2);
  } else if (invariant) {
    // Loading holds the matrices as read and their packed copy at once; f32
    // matrices also get a bf16 copy for bf16 compute. Measured: a 4096×11008
    // gated bf16 layer peaks at 2.0× its bf16 bytes and keeps 1.0×.
    needed = 2 * values * ElementBytes(matrix_type) +
             (matrix_type == DataType::kF32 ? values * sizeof(uint16_t) : 0);
  } else {
    // The tuned paths add the nn.Linear rows in both types and oneDNN's
    // packed copies of them: measured up to 5.2× the f32 bytes.
    needed = 6 * values * sizeof(float);
  }
  if (needed <= available_bytes) return absl::OkStatus();
  constexpr double kGiB = 1 << 30;
  return absl::ResourceExhaustedError(absl::StrFormat(
      "model '%s' (d_model %d, d_ff %d) needs about %.1f GiB for its weights and the "
      "engine's copies of them; %.1f GiB of memory is available",
      config.name, config.d_model, config.d_ff, static_cast<double>(needed) / kGiB,
      static_cast<double>(available_bytes) / kGiB));
}

// Loads, tunes (or takes its plan from `cache`) and prepares one model.
absl::StatusOr<std::unique_ptr<Model>> LoadModel(const ModelConfig& mc, const ServerConfig& config,
                                                 std::optional<PlanCache>& cache,
                                                 int tuning_threads) {
  if (mc.max_tokens > kMaxTokensLimit) {
    return WithModel(mc, absl::InvalidArgumentError(absl::StrCat(
                             "max_tokens ", mc.max_tokens, " is above ", kMaxTokensLimit)));
  }
  const Strategy strategy = mc.strategy.value_or(config.server.strategy);
  // Invariance applies where the strategy allows it (an explicit true with
  // another strategy is refused by the config parser); nothing to tune then.
  const bool int8 = mc.quantization == Quantization::kInt8;
  // int8 answers are batch-invariant whatever the settings (exact integer
  // sums at every M).
  const bool invariant = int8 || (mc.batch_invariant.value_or(config.server.batch_invariant) &&
                                  (strategy == Strategy::kAuto || strategy == Strategy::kFused));
  DataType matrix_type = DataType::kF32;
  if (mc.huggingface) {
    auto checkpoint = HuggingFaceCheckpoint::Open(mc.huggingface->path);
    if (!checkpoint.ok()) return WithModel(mc, checkpoint.status());
    auto type = (*checkpoint)->MatrixType(mc.huggingface->layer);
    if (!type.ok()) return WithModel(mc, type.status());
    matrix_type = *type;
  }
  RETURN_IF_ERROR(CheckFits(mc, matrix_type, invariant, AvailableMemoryBytes()));
  std::optional<v1::HuggingFaceWeights> huggingface;
  if (mc.huggingface) huggingface.emplace();
  absl::StatusOr<std::unique_ptr<FfnBlock>> block;
  if (mc.huggingface && mc.moe) {
    ASSIGN_OR_RETURN(HuggingFaceMoeLayerWeights layer, LoadHuggingFaceMoeLayer(mc, &*huggingface));
    block = FfnBlock::CreateMoe(std::move(layer.weights), {}, mc.quantization);
  } else if (mc.huggingface) {
    ASSIGN_OR_RETURN(HuggingFaceLayerWeights layer, LoadHuggingFaceLayer(mc, &*huggingface));
    block = FfnBlock::Create(std::move(layer.weights), {}, mc.quantization);
  } else if (mc.moe) {
    MoeWeights moe = RandomMoeWeights(
        {mc.d_model, mc.d_ff, mc.moe->experts, mc.moe->top_k, mc.moe->shared_d_ff}, mc.seed);
    AddRandomNorm(moe.outer, mc.norm, mc.seed);
    moe.outer.norm_eps = mc.norm_eps;
    moe.outer.residual = mc.residual;
    block = FfnBlock::CreateMoe(std::move(moe), {}, mc.quantization);
  } else {
    ASSIGN_OR_RETURN(FfnWeights weights, LoadWeights(mc));
    block = FfnBlock::Create(std::move(weights), {}, mc.quantization);
  }
  if (!block.ok()) return WithModel(mc, block.status());
  const BatchingSettings batching = mc.batching.Over(config.server.batching);
  // auto: time the strategies with the thread count each executor runs
  // batches with, up to the largest batch this model sees.
  std::string tuning;
  if (int8) {
    tuning = "int8: one integer path at every batch size, batch-invariant, not tuned";
  } else if (invariant) {
    tuning = "batch-invariant: fused small-M kernels at every batch size, not tuned";
  } else if ((*block)->moe() != nullptr) {
    (*block)->SetStrategy(strategy);
    tuning = "mixture of experts: its experts run the untuned rule";
  } else if (strategy == Strategy::kAuto) {
    const int saved = omp_get_max_threads();
    const int threads = tuning_threads > 0 ? tuning_threads : saved;
    const std::string key = PlanKey((*block)->weights(), threads, batching.max_batch_tokens);
    if (std::optional<TuneResult> cached = cache ? cache->Find(key) : std::nullopt) {
      if (absl::Status s = (*block)->SetPlan(*cached); !s.ok()) return WithModel(mc, s);
      tuning = absl::StrCat("from the plan cache ", cache->path(), ": ", cached->ToString());
    } else {
      omp_set_num_threads(threads);
      auto tuned = (*block)->Tune(batching.max_batch_tokens);
      omp_set_num_threads(saved);
      if (!tuned.ok()) return WithModel(mc, tuned.status());
      tuning = tuned->ToString();
      if (cache) cache->Put(key, *tuned);
    }
  } else {
    (*block)->SetStrategy(strategy);
  }
  // Small batches are the common ones: their matmuls are built before the
  // first request rather than during it (larger ones on first use).
  constexpr int64_t kPreparedTokens = 32;
  if (absl::Status s =
          (*block)->Prepare(std::min(kPreparedTokens, batching.max_batch_tokens), invariant);
      !s.ok()) {
    return WithModel(mc, s);
  }
  auto model = std::make_unique<Model>();
  model->config = mc;
  model->block = std::move(*block);
  model->max_tokens = mc.max_tokens > 0 ? mc.max_tokens : config.server.max_tokens_per_request;
  model->batching = batching;
  model->strategy = strategy;
  model->batch_invariant = invariant;
  model->tuning = std::move(tuning);
  model->info = DescribeModel(*model, huggingface ? &*huggingface : nullptr);
  return model;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Load(const ServerConfig& config,
                                                                   int tuning_threads) {
  auto registry = std::make_unique<ModelRegistry>();
  std::optional<PlanCache> cache;
  if (!config.server.plan_cache.empty()) {
    ASSIGN_OR_RETURN(cache, PlanCache::Load(config.server.plan_cache));
  }
  // Checkpoint entries become one model per layer.
  std::vector<ModelConfig> models;
  for (const ModelConfig& entry : config.models) {
    ASSIGN_OR_RETURN(std::vector<ModelConfig> expanded, ExpandHuggingFace(entry));
    for (ModelConfig& mc : expanded) {
      if (std::any_of(models.begin(), models.end(),
                      [&](const ModelConfig& other) { return other.name == mc.name; })) {
        return absl::InvalidArgumentError(
            absl::StrCat("two models are named '", mc.name, "' (a checkpoint's layers are NAME.LAYER)"));
      }
      models.push_back(std::move(mc));
    }
  }
  for (const ModelConfig& mc : models) {
    absl::StatusOr<std::unique_ptr<Model>> model;
    // CheckFits refuses what clearly cannot fit; this catches the rest (the
    // engine's copies, memory others took meanwhile) as a message, not a crash.
    try {
      model = LoadModel(mc, config, cache, tuning_threads);
    } catch (const std::bad_alloc&) {
      model = WithModel(mc, absl::ResourceExhaustedError(
                                "out of memory while loading its weights and engine"));
    }
    if (!model.ok()) return model.status();
    registry->by_name_.emplace(mc.name, model->get());
    registry->models_.push_back(std::move(*model));
  }
  if (cache && cache->changed()) RETURN_IF_ERROR(cache->Save());
  return registry;
}

const Model* ModelRegistry::Find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

void AddPlannedTimes(const ModelRegistry& registry, v1::GetStatsResponse& stats) {
  for (v1::VariantStats& v : *stats.mutable_variants()) {
    const Model* model = registry.Find(v.variant().model());
    const std::optional<DataType> compute = FromProtoDType(v.variant().dtype());
    if (model == nullptr || !compute) continue;
    const std::optional<TuneResult> plan = model->block->Plan();
    if (!plan) continue;
    for (v1::BatchSizeStats& size : *v.mutable_batch_sizes()) {
      const double ms = plan->PlannedMs(*compute, size.mean_tokens());
      if (ms > 0) size.set_planned_us(ms * 1e3);
    }
  }
}

}  // namespace ffn
