// Hugging Face checkpoint folders: the feed-forward block of each layer, as
// the checkpoint's own framework (transformers) computes it.
//
// A folder holds config.json and the weights: model.safetensors, or shards
// listed by model.safetensors.index.json. config.json's model_type picks the
// architecture, which fixes the tensor names, their layout and the norms
// around the MLP:
//   llama, mistral, qwen2, qwen3   gate_proj/up_proj/down_proj, RMSNorm
//   gemma, gemma2                  the same with (1 + w) RMSNorms; Gemma 2 also
//                                  norms the MLP's output before the residual
//   phi3                           fused gate_up_proj (gate first), RMSNorm
//   gpt2                           Conv1D c_fc/c_proj (stored [in, out]), biases
//   gpt_neox                       dense_h_to_4h/dense_4h_to_h, biases, LayerNorm
//   opt                            fc1/fc2, biases, pre- or post-LayerNorm
//   bert, roberta                  intermediate.dense/output.dense, post-LayerNorm
//   t5                             wi/wo (v1.0) or wi_0/wi_1/wo (v1.1, gated),
//                                  RMSNorm; encoder and decoder stacks
//   mixtral, qwen2_moe, qwen3_moe  mixtures of experts: a router and gated
//                                  experts (w1/w3/w2, or gate/up/down_proj),
//                                  Qwen2-MoE's sigmoid-gated shared expert
// A gated MLP is served as the gated activation whose gate function is
// config.json's hidden_act (silu → swiglu, gelu_pytorch_tanh → geglu_tanh).
//
// Example:
//   ASSIGN_OR_RETURN(auto checkpoint, ffn::HuggingFaceCheckpoint::Open("/models/TinyLlama"));
//   for (const ffn::HuggingFaceLayer& layer : checkpoint->layers()) {
//     ASSIGN_OR_RETURN(ffn::HuggingFaceLayerWeights w,
//                      checkpoint->ReadLayer(layer.id, /*sublayer=*/false));
//   }
// Open() reads config.json and the safetensors headers only; ReadLayer()
// reads (through mmap) that layer's tensors and nothing else.
#ifndef FFN_COMMON_HUGGINGFACE_H_
#define FFN_COMMON_HUGGINGFACE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "ffn/kernels/activation.h"
#include "ffn/kernels/ffn_weights.h"
#include "ffn/kernels/moe.h"

namespace ffn {

struct HuggingFaceLayer {
  std::string id;      // "0", "1", ...; T5: "encoder.0", ..., "decoder.0", ...
  int64_t index = 0;   // the layer's number within its stack
  std::string prefix;  // the names of its MLP and norm tensors start with this
};

// A mixture-of-experts layer: router, experts (and Qwen2-MoE's shared
// expert), and the norm and residual with sublayer.
struct HuggingFaceMoeLayerWeights {
  MoeWeights weights;
  std::string stored_dtype;  // the experts' dtype in the file
};

struct HuggingFaceLayerWeights {
  FfnWeights weights;
  std::string stored_dtype;  // the MLP weights' dtype in the file: "bf16", "f16", "f32"
};

class HuggingFaceCheckpoint {
 public:
  // Reads `dir`/config.json and the weight files' headers. INVALID_ARGUMENT or
  // NOT_FOUND naming the file and the fault: no config.json, unsupported
  // model_type or hidden_act, a dimension missing or out of range, no weights
  // (or only pytorch_model.bin), a missing shard, no MLP tensors where the
  // architecture puts them.
  static absl::StatusOr<std::unique_ptr<HuggingFaceCheckpoint>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const std::string& model_type() const { return model_type_; }
  // config.json's architectures[0] ("LlamaForCausalLM"), or model_type.
  const std::string& architecture() const { return architecture_; }
  // As config.json names it ("silu", "gelu_new", ...).
  const std::string& hidden_act() const { return hidden_act_; }
  // What serves it: plain, or gated with hidden_act as the gate function.
  Activation activation() const { return activation_; }
  FfnKind kind() const { return IsGated(activation_) ? FfnKind::kGated : FfnKind::kPlain; }
  int64_t d_model() const { return d_model_; }
  int64_t d_ff() const { return d_ff_; }
  // Every layer with an MLP, in stack order.
  const std::vector<HuggingFaceLayer>& layers() const { return layers_; }

  // Selects layers by index ("all", or indices; T5 selects the index in both
  // stacks). INVALID_ARGUMENT naming an index the checkpoint does not have.
  absl::StatusOr<std::vector<HuggingFaceLayer>> Select(bool all,
                                                       const std::vector<int64_t>& indices) const;

  // The weights of layer `id` in nn.Linear layout (f32, converted exactly
  // from bf16/f16; Conv1D transposed; a fused gate_up split); keep_bf16: the
  // matrices as bf16 (matrix_type kBf16) where all of them are stored in
  // bf16, for an engine that keeps them so. sublayer: also
  // the norms and residual around the MLP, as the decoder/encoder layer
  // applies them (pre-norm x + MLP(norm(x)); post-norm norm(x + MLP(x));
  // Gemma 2 x + norm(MLP(norm(x)))). Errors name the file and the tensor
  // (missing, wrong shape or dtype, not finite).
  absl::StatusOr<HuggingFaceLayerWeights> ReadLayer(std::string_view id, bool sublayer,
                                                     bool keep_bf16 = false) const;
  // Mixture-of-experts checkpoints (mixtral, qwen2_moe, qwen3_moe): every
  // layer's MLP is `experts()` gated experts of d_ff() each, top_k() per
  // token, and a shared expert of shared_d_ff() (0: none); ReadMoeLayer
  // reads them, ReadLayer refuses them (FAILED_PRECONDITION), and the other
  // way round.
  bool is_moe() const { return experts_ > 0; }
  int64_t experts() const { return experts_; }
  int64_t top_k() const { return top_k_; }
  int64_t shared_d_ff() const { return shared_d_ff_; }
  bool normalize_top_k() const { return normalize_top_k_; }
  absl::StatusOr<HuggingFaceMoeLayerWeights> ReadMoeLayer(std::string_view id, bool sublayer,
                                                          bool keep_bf16 = false) const;
  // kBf16 if every matrix of layer `id` is stored in bf16 (what ReadLayer
  // with keep_bf16 gives), else kF32. Reads the headers only.
  absl::StatusOr<DataType> MatrixType(std::string_view id) const;

 private:
  HuggingFaceCheckpoint() = default;
  absl::Status ReadConfig();
  absl::Status IndexWeights();
  absl::Status FindLayers();

  std::string dir_;
  std::string model_type_, architecture_, hidden_act_;
  Activation activation_ = Activation::kRelu;
  int64_t d_model_ = 0, d_ff_ = 0;
  // Architecture details read from config.json.
  int64_t num_layers_ = 0, num_decoder_layers_ = 0;
  int64_t experts_ = 0, top_k_ = 0, shared_d_ff_ = 0;  // mixtures of experts
  bool normalize_top_k_ = false;
  float norm_eps_ = 1e-5f;
  bool post_norm_ = false;         // bert, roberta, opt without do_layer_norm_before
  bool norm_affine_ = true;        // opt: layer_norm_elementwise_affine
  bool has_bias_ = false;
  std::string base_prefix_;        // "model.", "transformer.", "" ...
  std::map<std::string, std::string, std::less<>> shard_of_;  // tensor -> file
  std::vector<HuggingFaceLayer> layers_;
};

// config.json's activation names: the plain activation serving each
// ("gelu_new" → gelu_tanh); nullopt if not supported.
std::optional<Activation> ActivationForHiddenAct(std::string_view hidden_act);

}  // namespace ffn

#endif  // FFN_COMMON_HUGGINGFACE_H_
