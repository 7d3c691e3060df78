// Hugging Face checkpoints served as the checkpoint's own framework computes
// them. The fixtures (tests/fixtures/huggingface, made by
// tools/make_hf_fixtures.py with transformers itself) hold tiny random models
// of every supported architecture and what their MLP modules and FFN
// sub-layers return on a fixed input. Every layer is served through gRPC
// and compared with them:
//   f32 compute against transformers in float32: scaled error (|y − ref| /
//   (|ref| + rms(ref)), CompareToReference) ≤ 2e-6 — only the summation
//   order differs;
//   bf16 compute of bf16 checkpoints against transformers in bfloat16, which
//   rounds after every op where ffnserve rounds once: ≤ 2^-6 (4 bf16 ulps).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ffn/common/huggingface.h"
#include "ffn/common/safetensors.h"
#include "ffn/kernels/reference.h"
#include "ffn/server/config.h"
#include "ffn/server/model_registry.h"
#include "ffn/server/server.h"
#include "ffn/v1/ffn.grpc.pb.h"

namespace ffn {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtures = FFN_HF_FIXTURES_DIR;
constexpr double kF32Tolerance = 2e-6;
constexpr double kBf16Tolerance = 1.0 / 64;

std::vector<std::string> FixtureNames() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(kFixtures)) {
    if (entry.is_directory()) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The layer ids an expected.safetensors covers ("0", "encoder.1", ...).
std::vector<std::string> ExpectedLayers(const SafetensorsFile& expected) {
  std::vector<std::string> layers;
  for (const std::string& name : expected.Names()) {
    if (absl::EndsWith(name, ".mlp")) layers.push_back(name.substr(0, name.size() - 4));
  }
  return layers;
}

std::vector<float> Read(const SafetensorsFile& file, const std::string& name) {
  auto entry = file.Get(name);
  EXPECT_TRUE(entry.ok()) << entry.status();
  if (!entry.ok()) return {};
  auto values = file.ReadFloat(name, entry->shape);
  EXPECT_TRUE(values.ok()) << values.status();
  return values.ok() ? *values : std::vector<float>{};
}

class ServedCheckpointTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string yaml = "server: {address: \"127.0.0.1:0\"}\nmodels:\n";
    for (const std::string& name : FixtureNames()) {
      const std::string path = (kFixtures / name).string();
      absl::StrAppend(&yaml, "  - {name: ", name, ", huggingface: {path: ", path, "}}\n",
                      "  - {name: ", name, "-sub, huggingface: {path: ", path,
                      ", sublayer: true}}\n");
    }
    auto config = ParseConfig(yaml, "");
    ASSERT_TRUE(config.ok()) << config.status();
    auto server = FfnServer::Start(*config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    stub_ = v1::FfnService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                                        grpc::InsecureChannelCredentials()))
                .release();
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete server_;
  }

  static std::vector<float> Serve(const std::string& model, const std::vector<float>& x,
                                  int64_t d_model, v1::DType compute) {
    v1::InferRequest request;
    request.set_model(model);
    request.set_compute_dtype(compute);
    request.mutable_input()->set_dtype(v1::FLOAT32);
    request.mutable_input()->add_shape(static_cast<int64_t>(x.size()) / d_model);
    request.mutable_input()->add_shape(d_model);
    request.mutable_input()->set_data(x.data(), x.size() * sizeof(float));
    grpc::ClientContext context;
    v1::InferResponse response;
    const grpc::Status status = stub_->Infer(&context, request, &response);
    EXPECT_TRUE(status.ok()) << model << ": " << status.error_message();
    std::vector<float> y(x.size());
    if (response.output().data().size() != y.size() * sizeof(float)) {
      ADD_FAILURE() << model << ": " << response.output().data().size() << " output bytes";
      return y;
    }
    std::memcpy(y.data(), response.output().data().data(), response.output().data().size());
    return y;
  }

  static FfnServer* server_;
  static v1::FfnService::Stub* stub_;
};

FfnServer* ServedCheckpointTest::server_ = nullptr;
v1::FfnService::Stub* ServedCheckpointTest::stub_ = nullptr;

TEST_F(ServedCheckpointTest, EveryLayerMatchesTransformers) {
  for (const std::string& fixture : FixtureNames()) {
    auto expected = SafetensorsFile::Open((kFixtures / fixture / "expected.safetensors").string());
    ASSERT_TRUE(expected.ok()) << expected.status();
    const std::vector<float> x = Read(**expected, "x");
    auto x_entry = (*expected)->Get("x");
    ASSERT_TRUE(x_entry.ok());
    const int64_t d_model = x_entry->shape[1];
    const std::vector<std::string> layers = ExpectedLayers(**expected);
    ASSERT_FALSE(layers.empty()) << fixture;
    for (const std::string& layer : layers) {
      for (const char* part : {"mlp", "sublayer"}) {
        const std::string model =
            absl::StrCat(fixture, std::string(part) == "sublayer" ? "-sub." : ".", layer);
        SCOPED_TRACE(model);
        const std::vector<float> want = Read(**expected, absl::StrCat(layer, ".", part));
        const std::vector<double> reference(want.begin(), want.end());
        const ReferenceComparison f32 =
            CompareToReference(Serve(model, x, d_model, v1::FLOAT32).data(), reference);
        EXPECT_LE(f32.max_scaled_error, kF32Tolerance) << "f32 at index " << f32.worst_index;
        RecordProperty(model + "_f32", absl::StrCat(f32.max_scaled_error));
        const std::string native = absl::StrCat(layer, ".", part, ".native");
        if (!(*expected)->Get(native).ok()) continue;
        const std::vector<float> want_native = Read(**expected, native);
        const ReferenceComparison bf16 = CompareToReference(
            Serve(model, x, d_model, v1::BFLOAT16).data(),
            std::vector<double>(want_native.begin(), want_native.end()));
        EXPECT_LE(bf16.max_scaled_error, kBf16Tolerance) << "bf16 at index " << bf16.worst_index;
        RecordProperty(model + "_bf16", absl::StrCat(bf16.max_scaled_error));
      }
    }
  }
}

TEST_F(ServedCheckpointTest, ListModelsDescribesEachLayer) {
  grpc::ClientContext context;
  v1::ListModelsResponse response;
  ASSERT_TRUE(stub_->ListModels(&context, {}, &response).ok());
  std::map<std::string, v1::ModelInfo> by_name;
  for (const v1::ModelInfo& info : response.models()) by_name[info.name()] = info;
  ASSERT_TRUE(by_name.contains("llama-bf16-sharded.1"));
  const v1::ModelInfo& llama = by_name["llama-bf16-sharded.1"];
  EXPECT_EQ(llama.huggingface().architecture(), "LlamaForCausalLM");
  EXPECT_EQ(llama.huggingface().model_type(), "llama");
  EXPECT_EQ(llama.huggingface().layer(), "1");
  EXPECT_EQ(llama.huggingface().stored_dtype(), "bf16");
  EXPECT_EQ(llama.huggingface().hidden_act(), "silu");
  EXPECT_FALSE(llama.huggingface().sublayer());
  EXPECT_EQ(llama.default_activation(), "swiglu");
  EXPECT_EQ(llama.kind(), v1::GATED);
  EXPECT_EQ(llama.norm(), "none");
  EXPECT_FALSE(llama.residual());
  const v1::ModelInfo& llama_sub = by_name["llama-bf16-sharded-sub.1"];
  EXPECT_TRUE(llama_sub.huggingface().sublayer());
  EXPECT_EQ(llama_sub.norm(), "rmsnorm");
  EXPECT_TRUE(llama_sub.residual());
  const v1::ModelInfo& bert = by_name["bert-f32-sub.0"];
  EXPECT_EQ(bert.norm(), "none");
  EXPECT_EQ(bert.output_norm(), "layernorm");
  EXPECT_TRUE(bert.output_norm_after_residual());
  EXPECT_TRUE(bert.has_bias());
  EXPECT_EQ(by_name["gpt2-f16-sharded.0"].huggingface().stored_dtype(), "f16");
  EXPECT_EQ(by_name["gpt2-f16-sharded.0"].default_activation(), "gelu_tanh");
  EXPECT_TRUE(by_name.contains("t5-f32.encoder.1"));
  EXPECT_TRUE(by_name.contains("t5-f32.decoder.0"));
}

// --- Reading checkpoints: what is selected, what is refused --------------

class CheckpointFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "ffn-hf-XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A copy of a fixture to break.
  fs::path Copy(const std::string& fixture) {
    const fs::path to = dir_ / fixture;
    fs::copy(kFixtures / fixture, to, fs::copy_options::recursive);
    return to;
  }
  static void Write(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
  }
  static std::string ReadText(const fs::path& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void Replace(const fs::path& path, const std::string& from, const std::string& to) {
    std::string text = ReadText(path);
    const size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from << " not in " << path;
    text.replace(at, from.size(), to);
    Write(path, text);
  }

  fs::path dir_;
};

TEST_F(CheckpointFilesTest, SelectsLayersByNumberAndNamesThemLayerByLayer) {
  auto checkpoint = HuggingFaceCheckpoint::Open((kFixtures / "t5-f32").string());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ((*checkpoint)->layers().size(), 4u);
  auto selected = (*checkpoint)->Select(false, {1});
  ASSERT_TRUE(selected.ok());
  ASSERT_EQ(selected->size(), 2u);  // the encoder's and the decoder's layer 1
  EXPECT_EQ((*selected)[0].id, "encoder.1");
  EXPECT_EQ((*selected)[1].id, "decoder.1");
  auto missing = (*checkpoint)->Select(false, {2});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("no layer 2"), std::string::npos);

  auto config = ParseConfig(absl::StrCat("models:\n  - {name: t, huggingface: {path: ",
                                         (kFixtures / "llama-f32").string(), ", layers: \"1-1\"}}\n"),
                            "");
  ASSERT_TRUE(config.ok()) << config.status();
  auto expanded = ExpandHuggingFace(config->models[0]);
  ASSERT_TRUE(expanded.ok()) << expanded.status();
  ASSERT_EQ(expanded->size(), 1u);
  EXPECT_EQ((*expanded)[0].name, "t.1");
  EXPECT_EQ((*expanded)[0].d_model, 32);
  EXPECT_EQ((*expanded)[0].d_ff, 72);
  EXPECT_EQ((*expanded)[0].default_activation, Activation::kSwiglu);
}

TEST_F(CheckpointFilesTest, ReadsTheSameWeightsFromEveryStoredDtype) {
  // The same model saved as f32 and as sharded bf16: the bf16 weights are
  // the f32 ones rounded, read exactly.
  auto f32 = HuggingFaceCheckpoint::Open((kFixtures / "llama-f32").string());
  auto bf16 = HuggingFaceCheckpoint::Open((kFixtures / "llama-bf16-sharded").string());
  ASSERT_TRUE(f32.ok() && bf16.ok());
  auto a = (*f32)->ReadLayer("1", true);
  auto b = (*bf16)->ReadLayer("1", true);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(a->stored_dtype, "f32");
  EXPECT_EQ(b->stored_dtype, "bf16");
  ASSERT_EQ(a->weights.w2.size(), b->weights.w2.size());
  for (size_t i = 0; i < a->weights.w2.size(); ++i) {
    ASSERT_EQ(b->weights.w2[i], Bf16ToFloat(FloatToBf16(a->weights.w2[i]))) << i;
  }
  EXPECT_EQ(b->weights.norm, NormKind::kRmsNorm);
  EXPECT_TRUE(b->weights.residual);
  EXPECT_TRUE(b->weights.Validate().ok());
}

struct Breakage {
  const char* what;
  const char* fixture;
  std::function<void(const fs::path&)> apply;
  const char* message;  // part of the error
};

TEST_F(CheckpointFilesTest, BrokenFoldersGiveOneClearError) {
  const std::vector<Breakage> breakages = {
      {"no config.json", "llama-f32", [](const fs::path& d) { fs::remove(d / "config.json"); },
       "config.json: cannot open"},
      {"config.json not JSON", "llama-f32",
       [](const fs::path& d) { Write(d / "config.json", "{\"model_type\": "); }, "not a JSON object"},
      {"unsupported model_type", "llama-f32",
       [](const fs::path& d) { Replace(d / "config.json", "\"model_type\": \"llama\"", "\"model_type\": \"mamba\""); },
       "model_type 'mamba' is not supported"},
      {"unsupported hidden_act", "llama-f32",
       [](const fs::path& d) { Replace(d / "config.json", "\"hidden_act\": \"silu\"", "\"hidden_act\": \"mish\""); },
       "activation 'mish' is not supported"},
      {"shape not matching config.json", "llama-f32",
       [](const fs::path& d) { Replace(d / "config.json", "\"intermediate_size\": 72", "\"intermediate_size\": 80"); },
       "has shape [32, 72], expected [32, 80]"},
      {"GPT-2's default d_ff (4 × n_embd) out of range", "gpt2-f16-sharded",
       [](const fs::path& d) { Replace(d / "config.json", "\"n_embd\": 32", "\"n_embd\": 40000"); },
       "'n_inner' is 160000 (its default), not in [1, 131072]"},
      {"more layers than the file has", "llama-f32",
       [](const fs::path& d) { Replace(d / "config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"); },
       "layer 2 has no tensor 'model.layers.2.mlp.up_proj.weight'"},
      {"missing shard", "llama-bf16-sharded",
       [](const fs::path& d) { fs::remove(d / "model-00002-of-00003.safetensors"); },
       "shard model-00002-of-00003.safetensors"},
      {"no weights", "llama-f32", [](const fs::path& d) { fs::remove(d / "model.safetensors"); },
       "no model.safetensors"},
      {"pickle weights only", "llama-f32",
       [](const fs::path& d) {
         fs::rename(d / "model.safetensors", d / "pytorch_model.bin");
       },
       "safe_serialization"},
      {"a shard path leaving the folder", "llama-bf16-sharded",
       [](const fs::path& d) {
         Replace(d / "model.safetensors.index.json", "\"model-00001-of-00003.safetensors\"",
                 "\"../model-00001-of-00003.safetensors\"");
       },
       "is not a file name"},
  };
  for (const Breakage& breakage : breakages) {
    SCOPED_TRACE(breakage.what);
    const fs::path folder = Copy(breakage.fixture);
    breakage.apply(folder);
    absl::Status status;
    auto checkpoint = HuggingFaceCheckpoint::Open(folder.string());
    if (!checkpoint.ok()) {
      status = checkpoint.status();
    } else {
      for (const HuggingFaceLayer& layer : (*checkpoint)->layers()) {
        if (auto read = (*checkpoint)->ReadLayer(layer.id, true); !read.ok()) {
          status = read.status();
          break;
        }
      }
    }
    EXPECT_FALSE(status.ok());
    EXPECT_NE(status.message().find(breakage.message), std::string::npos) << status;
    fs::remove_all(folder);
  }
}

TEST_F(CheckpointFilesTest, RefusesWeightsThatAreNotFinite) {
  // A copy of the fixture's weights (as f32) with one NaN in a down_proj.
  const fs::path folder = Copy("llama-f32");
  std::vector<SafetensorsTensorToWrite> tensors;
  auto original = SafetensorsFile::Open((kFixtures / "llama-f32" / "model.safetensors").string());
  ASSERT_TRUE(original.ok());
  for (const std::string& name : (*original)->Names()) {
    auto e = (*original)->Get(name);
    std::vector<float> v = *(*original)->ReadFloat(name, e->shape);
    if (name == "model.layers.0.mlp.down_proj.weight") v[5] = NAN;
    tensors.push_back({name, e->shape, std::move(v)});
  }
  ASSERT_TRUE(WriteSafetensors((folder / "model.safetensors").string(), tensors).ok());
  auto checkpoint = HuggingFaceCheckpoint::Open(folder.string());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  auto layer = (*checkpoint)->ReadLayer("0", false);
  EXPECT_EQ(layer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(layer.status().message().find("1 of 2304 values are not finite; the first, at index 5, is nan"), std::string::npos)
      << layer.status();
}

TEST(HuggingFaceConfigTest, ParsesTheCheckpointKeysAndRefusesShapeKeys) {
  auto parse = [](const std::string& model) {
    return ParseConfig(absl::StrCat("models:\n  - ", model, "\n"), "/base");
  };
  auto all = parse("{name: m, huggingface: {path: ckpt}}");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_TRUE(all->models[0].huggingface.has_value());
  EXPECT_EQ(all->models[0].huggingface->path, "/base/ckpt");
  EXPECT_TRUE(all->models[0].huggingface->all_layers);
  EXPECT_FALSE(all->models[0].huggingface->sublayer);
  auto list = parse("{name: m, dtype: bf16, huggingface: {path: /c, layers: [0, 5, 21], sublayer: true}}");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->models[0].huggingface->layers, (std::vector<int64_t>{0, 5, 21}));
  EXPECT_TRUE(list->models[0].huggingface->sublayer);
  EXPECT_EQ(list->models[0].dtype, DataType::kBf16);
  auto range = parse("{name: m, huggingface: {path: /c, layers: \"0-3\"}}");
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_EQ(range->models[0].huggingface->layers, (std::vector<int64_t>{0, 1, 2, 3}));
  auto one = parse("{name: m, huggingface: {path: /c, layers: 7}}");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->models[0].huggingface->layers, (std::vector<int64_t>{7}));
  for (const char* bad : {"{name: m, d_model: 8, huggingface: {path: /c}}",
                          "{name: m, activation: gelu, huggingface: {path: /c}}",
                          "{name: m, huggingface: {layers: all}}",
                          "{name: m, huggingface: {path: /c, layers: \"3-1\"}}",
                          "{name: m, huggingface: {path: /c, layers: [1, 1]}}",
                          "{name: m, huggingface: {path: /c, layers: []}}",
                          "{name: m, huggingface: {path: /c, layers: -1}}",
                          "{name: m, huggingface: {path: /c, shards: 2}}"}) {
    EXPECT_EQ(parse(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace ffn
