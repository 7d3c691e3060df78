// libFuzzer target: the Hugging Face checkpoint reader on arbitrary
// config.json and model.safetensors.index.json text (the input, split at its
// first NUL byte), over a real weights file of a tiny LLaMA-layout model
// (with Mixtral and Qwen MoE tensors beside its MLPs). It
// must answer every input with a checkpoint or an error status, and read
// every layer it promises, never crash or hang.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "ffn/common/huggingface.h"
#include "ffn/common/safetensors.h"

namespace {

namespace fs = std::filesystem;

// A folder with the weights of a 2-layer model (d_model 4, d_ff 8, gated,
// with norms), written once.
const fs::path& Folder() {
  static const fs::path folder = [] {
    std::string pattern = (fs::temp_directory_path() / "ffn-hf-fuzz-XXXXXX").string();
    const fs::path dir = mkdtemp(pattern.data());
    std::vector<ffn::SafetensorsTensorToWrite> tensors;
    for (int layer = 0; layer < 2; ++layer) {
      const std::string p = absl::StrCat("model.layers.", layer, ".");
      tensors.push_back({p + "mlp.gate_proj.weight", {8, 4}, std::vector<float>(32, 0.5f)});
      tensors.push_back({p + "mlp.up_proj.weight", {8, 4}, std::vector<float>(32, 0.25f)});
      tensors.push_back({p + "mlp.down_proj.weight", {4, 8}, std::vector<float>(32, -0.5f)});
      tensors.push_back({p + "post_attention_layernorm.weight", {4}, std::vector<float>(4, 1.0f)});
      // The same layers as mixtures of two experts, Mixtral's and Qwen's
      // names (with Qwen2-MoE's shared expert).
      tensors.push_back({p + "block_sparse_moe.gate.weight", {2, 4}, std::vector<float>(8, 0.1f)});
      tensors.push_back({p + "mlp.gate.weight", {2, 4}, std::vector<float>(8, -0.1f)});
      for (int e = 0; e < 2; ++e) {
        const std::string m = absl::StrCat(p, "block_sparse_moe.experts.", e, ".");
        tensors.push_back({m + "w1.weight", {8, 4}, std::vector<float>(32, 0.5f)});
        tensors.push_back({m + "w3.weight", {8, 4}, std::vector<float>(32, 0.25f)});
        tensors.push_back({m + "w2.weight", {4, 8}, std::vector<float>(32, -0.5f)});
        const std::string q = absl::StrCat(p, "mlp.experts.", e, ".");
        tensors.push_back({q + "gate_proj.weight", {8, 4}, std::vector<float>(32, 0.5f)});
        tensors.push_back({q + "up_proj.weight", {8, 4}, std::vector<float>(32, 0.25f)});
        tensors.push_back({q + "down_proj.weight", {4, 8}, std::vector<float>(32, -0.5f)});
      }
      tensors.push_back({p + "mlp.shared_expert.gate_proj.weight", {8, 4}, std::vector<float>(32, 0.5f)});
      tensors.push_back({p + "mlp.shared_expert.up_proj.weight", {8, 4}, std::vector<float>(32, 0.5f)});
      tensors.push_back({p + "mlp.shared_expert.down_proj.weight", {4, 8}, std::vector<float>(32, 0.5f)});
      tensors.push_back({p + "mlp.shared_expert_gate.weight", {1, 4}, std::vector<float>(4, 0.5f)});
    }
    if (!ffn::WriteSafetensors((dir / "weights.safetensors").string(), tensors).ok()) std::abort();
    return dir;
  }();
  return folder;
}

void Write(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const fs::path& dir = Folder();
  Write(dir / "config.json", input.substr(0, nul));
  fs::remove(dir / "model.safetensors");
  fs::remove(dir / "model.safetensors.index.json");
  if (nul == std::string::npos) {
    // Single-file form: the weights under the name the reader looks for.
    fs::create_symlink(dir / "weights.safetensors", dir / "model.safetensors");
  } else {
    Write(dir / "model.safetensors.index.json", input.substr(nul + 1));
  }
  auto checkpoint = ffn::HuggingFaceCheckpoint::Open(dir.string());
  if (!checkpoint.ok()) return 0;
  for (const ffn::HuggingFaceLayer& layer : (*checkpoint)->layers()) {
    for (bool sublayer : {false, true}) {
      if ((*checkpoint)->is_moe()) {
        auto moe = (*checkpoint)->ReadMoeLayer(layer.id, sublayer);
        if (moe.ok() && !moe->weights.Validate().ok()) std::abort();
        continue;
      }
      auto weights = (*checkpoint)->ReadLayer(layer.id, sublayer);
      if (weights.ok() && !weights->weights.Validate().ok()) std::abort();
    }
  }
  return 0;
}
