// Hugging Face checkpoints through the real binaries: ffn-server
// --model-dir and a config's huggingface entry, checked by ffn-client's fp64
// --check, and the memory one layer of a large checkpoint costs.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "ffn/common/safetensors.h"
#include "ffn/kernels/ffn_weights.h"
#include "process.h"

namespace ffn {
namespace {

using testing::CommandResult;
using testing::RunClient;
using testing::ServerProcess;
using testing::TempDir;

const std::filesystem::path kFixtures = FFN_HF_FIXTURES_DIR;

bool Contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

TEST(HuggingFaceServerTest, ModelDirServesEveryLayerAndTheClientChecksIt) {
  ServerProcess server({"--model-dir", (kFixtures / "llama-bf16-sharded").string(), "--threads", "2"});
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  CommandResult models = RunClient({"models", "--target", server.target()});
  ASSERT_EQ(models.exit_code, 0) << models.output;
  EXPECT_TRUE(Contains(models.output, "llama-bf16-sharded.0")) << models.output;
  EXPECT_TRUE(Contains(models.output, "llama-bf16-sharded.1")) << models.output;
  for (const char* compute : {"f32", "bf16"}) {
    for (const char* activation : {"swiglu", "geglu", "reglu"}) {
      CommandResult r = RunClient({"infer", "--target", server.target(), "--model",
                                   "llama-bf16-sharded.1", "--activation", activation, "--compute-dtype",
                                   compute, "--tokens", "9", "--check"});
      EXPECT_EQ(r.exit_code, 0) << compute << " " << activation << ": " << r.output;
      EXPECT_TRUE(Contains(r.output, "PASS")) << r.output;
    }
  }
  // A plain activation does not fit a gated layer.
  CommandResult plain = RunClient({"infer", "--target", server.target(), "--model",
                                   "llama-bf16-sharded.0", "--activation", "gelu"});
  EXPECT_EQ(plain.exit_code, 1) << plain.output;
  EXPECT_TRUE(Contains(plain.output, "INVALID_ARGUMENT")) << plain.output;
}

TEST(HuggingFaceServerTest, ConfigSelectsLayersAndSublayersOfSeveralCheckpoints) {
  TempDir dir;
  std::ofstream(dir.File("hf.yaml")) << absl::StrCat(
      "models:\n",
      "  - {name: t5, huggingface: {path: ", (kFixtures / "t5-f32").string(),
      ", layers: [1], sublayer: true}}\n",
      "  - {name: bert, huggingface: {path: ", (kFixtures / "bert-f32").string(),
      ", layers: \"0-1\", sublayer: true}}\n",
      "  - {name: gpt2, dtype: bf16, huggingface: {path: ", (kFixtures / "gpt2-f16-sharded").string(),
      ", layers: 0}}\n");
  ServerProcess server({"--config", dir.File("hf.yaml"), "--threads", "2"});
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  for (const char* model : {"t5.encoder.1", "t5.decoder.1", "bert.0", "bert.1", "gpt2.0"}) {
    CommandResult r = RunClient({"infer", "--target", server.target(), "--model", model,
                                 "--tokens", "4", "--check"});
    EXPECT_EQ(r.exit_code, 0) << model << ": " << r.output;
  }
  CommandResult missing = RunClient({"infer", "--target", server.target(), "--model", "t5.encoder.0"});
  EXPECT_TRUE(Contains(missing.output, "NOT_FOUND")) << missing.output;
}

TEST(HuggingFaceServerTest, MixtureOfExpertsCheckpointsAreServedAndChecked) {
  TempDir dir;
  std::ofstream(dir.File("moe.yaml")) << absl::StrCat(
      "models:\n",
      "  - {name: qwen2moe, huggingface: {path: ", (kFixtures / "qwen2-moe-bf16").string(), "}}\n",
      "  - {name: mixtral, huggingface: {path: ", (kFixtures / "mixtral-f32").string(),
      ", layers: [1], sublayer: true}}\n");
  ServerProcess server({"--config", dir.File("moe.yaml"), "--threads", "2"});
  ASSERT_TRUE(server.WaitReady()) << server.Log();
  CommandResult models = RunClient({"models", "--target", server.target()});
  EXPECT_TRUE(Contains(models.output, "moe 4/top2+shared")) << models.output;
  for (const char* model : {"qwen2moe.0", "qwen2moe.1", "mixtral.1"}) {
    for (const char* compute : {"f32", "bf16"}) {
      CommandResult r = RunClient({"infer", "--target", server.target(), "--model", model,
                                   "--compute-dtype", compute, "--tokens", "12", "--check"});
      EXPECT_EQ(r.exit_code, 0) << model << " " << compute << ": " << r.output;
      EXPECT_TRUE(Contains(r.output, "PASS")) << r.output;
    }
  }
  CommandResult stats = RunClient({"stats", "--target", server.target()});
  EXPECT_TRUE(Contains(stats.output, "qwen2moe.0: 48 token-expert pairs routed, 0 dropped"))
      << stats.output;
}

TEST(HuggingFaceServerTest, ABrokenCheckpointIsOneStartupErrorNamingTheFile) {
  TempDir dir;
  const std::filesystem::path copy = std::filesystem::path(dir.path()) / "broken";
  std::filesystem::copy(kFixtures / "llama-bf16-sharded", copy);
  std::filesystem::remove(copy / "model-00003-of-00003.safetensors");
  ServerProcess server({"--model-dir", copy.string()});
  EXPECT_NE(server.WaitExit(), 0);
  EXPECT_TRUE(Contains(server.Log(), "model-00003-of-00003.safetensors")) << server.Log();
  EXPECT_TRUE(Contains(server.Log(), "is missing")) << server.Log();
}

// Peak RSS of ffn-server serving layers of a LLaMA-layout checkpoint of
// `layers` layers (d_model × d_ff, stored in f32 or bf16), next to a tiny
// model's.
struct MemoryFigures {
  int64_t base = 0, one = 0, three = 0;  // tiny model, layer [17], layers [3, 11, 29]
  int64_t layer_bytes = 0, file_bytes = 0;
  std::string text;
};

MemoryFigures ServeLayersOfALargeCheckpoint(bool bf16, int64_t kLayers, int64_t kDModel,
                                             int64_t kDFf) {
  TempDir dir;
  const std::string folder = dir.File("big");
  std::filesystem::create_directory(folder);
  std::ofstream(folder + "/config.json") << absl::StrCat(
      R"({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": )", kDModel,
      R"(, "intermediate_size": )", kDFf, R"(, "num_hidden_layers": )", kLayers,
      R"(, "hidden_act": "silu", "rms_norm_eps": 1e-06})");
  std::vector<SafetensorsTensorToWrite> tensors;
  const int64_t matrix = kDModel * kDFf;
  for (int64_t layer = 0; layer < kLayers; ++layer) {
    const std::string prefix = absl::StrCat("model.layers.", layer, ".");
    for (const char* name : {"mlp.gate_proj.weight", "mlp.up_proj.weight"}) {
      std::vector<float> values(static_cast<size_t>(matrix));
      FillUniform(static_cast<uint64_t>(layer), RandomStream::kWg, 0.05f, values);
      tensors.push_back({prefix + name, {kDFf, kDModel}, std::move(values), bf16});
    }
    std::vector<float> down(static_cast<size_t>(matrix));
    FillUniform(static_cast<uint64_t>(layer), RandomStream::kW2, 0.05f, down);
    tensors.push_back({prefix + "mlp.down_proj.weight", {kDModel, kDFf}, std::move(down), bf16});
  }
  EXPECT_TRUE(WriteSafetensors(folder + "/model.safetensors", tensors).ok());
  tensors.clear();
  MemoryFigures f;
  f.layer_bytes = 3 * matrix * (bf16 ? 2 : 4);
  f.file_bytes = static_cast<int64_t>(std::filesystem::file_size(folder + "/model.safetensors"));

  auto peak_with = [&](const std::string& layers) {
    std::ofstream(dir.File("one.yaml"), std::ios::trunc) << absl::StrCat(
        "models:\n  - {name: big, huggingface: {path: ", folder, ", layers: ", layers, "}}\n");
    ServerProcess server({"--config", dir.File("one.yaml"), "--threads", "2"});
    EXPECT_TRUE(server.WaitReady()) << server.Log();
    const int64_t peak = testing::ProcessMemoryBytes(server.pid(), "VmHWM");
    EXPECT_EQ(server.Stop(SIGTERM), 0);
    return peak;
  };
  // The process with a tiny checkpoint, for comparison.
  ServerProcess tiny({"--model-dir", (kFixtures / "llama-f32").string(), "--threads", "2"});
  EXPECT_TRUE(tiny.WaitReady()) << tiny.Log();
  f.base = testing::ProcessMemoryBytes(tiny.pid(), "VmHWM");
  EXPECT_EQ(tiny.Stop(SIGTERM), 0);
  f.one = peak_with("[17]");
  f.three = peak_with("[3, 11, 29]");
  f.text = absl::StrCat("peak RSS: ", f.base >> 20, " MiB tiny model, ", f.one >> 20,
                        " MiB one layer, ", f.three >> 20, " MiB three layers of a ",
                        f.file_bytes >> 20, " MiB ", bf16 ? "bf16" : "f32", " file (",
                        f.layer_bytes >> 20, " MiB per layer)");
  return f;
}

TEST(HuggingFaceServerTest, OneLayerOfALargeCheckpointReadsOnlyThatLayer) {
#ifdef FFN_UNDER_ASAN
  GTEST_SKIP() << "RSS is not meaningful under AddressSanitizer";
#endif
  const MemoryFigures f = ServeLayersOfALargeCheckpoint(/*bf16=*/false, 48, 512, 1024);
  RecordProperty("peak_one_layer_mib", std::to_string(f.one >> 20));
  RecordProperty("peak_three_layers_mib", std::to_string(f.three >> 20));
  // Each layer served costs at least its f32 weights ...
  EXPECT_GT(f.three - f.one, f.layer_bytes) << f.text;
  // ... and one layer costs what the engine keeps of it (the packed f32
  // copy and its bf16 twin) and what loading holds at once, nothing like
  // the whole file: reading every layer would add its 288 MiB.
  EXPECT_LT(f.one - f.base, 4 * f.layer_bytes) << f.text;
  EXPECT_LT(f.one - f.base, f.file_bytes / 6) << f.text;
}

TEST(HuggingFaceServerTest, ALayerStoredInBf16IsKeptOnceInBf16) {
#ifdef FFN_UNDER_ASAN
  GTEST_SKIP() << "RSS is not meaningful under AddressSanitizer";
#endif
  // 12 MiB per layer, so that what every model holds besides its weights
  // (statistics, plans) is small next to them.
  const MemoryFigures f = ServeLayersOfALargeCheckpoint(/*bf16=*/true, 32, 1024, 2048);
  RecordProperty("peak_one_layer_mib", std::to_string(f.one >> 20));
  RecordProperty("peak_three_layers_mib", std::to_string(f.three >> 20));
  // Two more layers held cost about their bf16 bytes each: one packed copy
  // (an f32 copy alone would be twice that, the engine's former copies six
  // times).
  EXPECT_GT(f.three - f.one, 2 * f.layer_bytes * 9 / 10) << f.text;
  EXPECT_LT(f.three - f.one, 2 * 2 * f.layer_bytes) << f.text;
  // Loading one holds it as read and packed at once, never the whole file.
  EXPECT_LT(f.one - f.base, 4 * f.layer_bytes) << f.text;
}

}  // namespace
}  // namespace ffn
