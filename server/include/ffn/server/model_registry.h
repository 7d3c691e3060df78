// The models a server holds: weights loaded, engines built, read-only after.
#ifndef FFN_SERVER_MODEL_REGISTRY_H_
#define FFN_SERVER_MODEL_REGISTRY_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "ffn/common/huggingface.h"
#include "ffn/kernels/ffn_block.h"
#include "ffn/server/config.h"
#include "ffn/v1/ffn.pb.h"

namespace ffn {

struct Model {
  ModelConfig config;
  std::unique_ptr<FfnBlock> block;
  int64_t max_tokens = 0;  // per request
  BatchingSettings batching;  // the server's defaults with this model's overrides
  Strategy strategy = Strategy::kAuto;  // the configured engine strategy
  bool batch_invariant = false;  // every call runs FfnRun::batch_invariant
  std::string tuning;  // auto: what Tune() measured and chose (for the log)
  v1::ModelInfo info;      // what ListModels reports
};

// Reads the weights a model config names: generated from its seed, or read
// from its safetensors file (F32, F16 or BF16, nn.Linear layout; matrices
// all stored in BF16 come as bf16, matrix_type kBf16). Errors name the
// model, the tensor and what was expected.
absl::StatusOr<FfnWeights> LoadWeights(const ModelConfig& config);

// A checkpoint entry (ModelConfig::huggingface without a layer) as one model
// per selected layer, named NAME.LAYER, with config.json's d_model, d_ff and
// activation; any other entry as itself. Errors name the model and the file.
absl::StatusOr<std::vector<ModelConfig>> ExpandHuggingFace(const ModelConfig& entry);

// Reads the weights of an expanded checkpoint layer (matrices stored in bf16
// stay bf16, as the engine keeps them), and describes its source for
// ListModels into `description` if given.
absl::StatusOr<HuggingFaceLayerWeights> LoadHuggingFaceLayer(
    const ModelConfig& config, v1::HuggingFaceWeights* description = nullptr);
// The same for a mixture-of-experts checkpoint's layer.
absl::StatusOr<HuggingFaceMoeLayerWeights> LoadHuggingFaceMoeLayer(
    const ModelConfig& config, v1::HuggingFaceWeights* description = nullptr);

class ModelRegistry {
 public:
  // Expands checkpoint entries (ExpandHuggingFace), loads every model and builds its engine (primitives for one token). A
  // model with the auto strategy is tuned with `tuning_threads` OpenMP
  // threads, the count each executor runs batches with; 0: the calling
  // thread's OpenMP default.
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Load(const ServerConfig& config,
                                                             int tuning_threads = 0);

  // nullptr if there is no model `name`.
  const Model* Find(std::string_view name) const;
  const std::vector<std::unique_ptr<Model>>& models() const { return models_; }

 private:
  std::vector<std::unique_ptr<Model>> models_;
  std::map<std::string, const Model*, std::less<>> by_name_;
};

// Fills each VariantStats.batch_sizes entry's planned_us from its model's
// plan (left 0 for models without one).
void AddPlannedTimes(const ModelRegistry& registry, v1::GetStatsResponse& stats);


}  // namespace ffn

#endif  // FFN_SERVER_MODEL_REGISTRY_H_
