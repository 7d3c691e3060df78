// Tests of ModelRegistry and LoadWeights: safetensors files the test writes
// (F32 and BF16), random models, what ListModels reports, and errors.
#include "ffn/server/model_registry.h"
#include "ffn/server/plan_cache.h"

#include <unistd.h>

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ffn/common/safetensors.h"
#include "ffn/kernels/reference.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ffn {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kDm = 16, kDff = 40;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

std::vector<float> Values(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  FillUniform(seed, RandomStream::kW1, 0.5f, v);
  return v;
}

// Rounds to the nearest bf16 (ties to even) and returns its bits.
uint16_t ToBf16Bits(float f) {
  uint32_t bits = std::bit_cast<uint32_t>(f);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}
float FromBf16Bits(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

class ModelRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "ffn_registry_test_" + std::to_string(::getpid());
    std::filesystem::create_directories(dir_);
    w1_ = Values(kDff * kDm, 1);
    b1_ = Values(kDff, 2);
    w2_ = Values(kDm * kDff, 3);
    b2_ = Values(kDm, 4);
    alpha_ = Values(kDff, 5);
    wg_ = Values(kDff * kDm, 6);
    wu_ = Values(kDff * kDm, 7);
    const absl::Status s = WriteSafetensors(
        dir_ + "/model.safetensors",
        {{"fc1.weight", {kDff, kDm}, w1_},
         {"fc1.bias", {kDff}, b1_},
         {"fc2.weight", {kDm, kDff}, w2_},
         {"fc2.bias", {kDm}, b2_},
         {"act.weight", {kDff}, alpha_},
         {"act1.weight", {1}, {0.125f}},
         {"mlp.gate_proj.weight", {kDff, kDm}, wg_},
         {"mlp.up_proj.weight", {kDff, kDm}, wu_},
         {"mlp.down_proj.weight", {kDm, kDff}, w2_},
         {"bad_alpha", {3}, {1, 2, 3}}});
    ASSERT_TRUE(s.ok()) << s;
  }

  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A config in the test's folder; `models` is the YAML list body.
  absl::StatusOr<ServerConfig> Config(const std::string& models) {
    return ParseConfig("server: {max_tokens_per_request: 777}\nmodels:\n" + models, dir_);
  }

  // One config list item: a model of d_ff 40 read from `file`.
  static std::string FileModel(const std::string& name, int d_model, const std::string& activation,
                               const std::string& file, const std::string& tensors) {
    return absl::StrCat("  - name: ", name, "\n    d_model: ", d_model,
                        "\n    d_ff: 40\n    activation: ", activation,
                        "\n    weights: {safetensors: ", file, ", tensors: {", tensors, "}}\n");
  }

  // Loading `models` must fail with `code` and a message naming every
  // fragment.
  void ExpectLoadError(const std::string& models, absl::StatusCode code,
                       const std::vector<std::string>& fragments) {
    auto config = Config(models);
    ASSERT_TRUE(config.ok()) << config.status();
    auto registry = ModelRegistry::Load(*config);
    ASSERT_FALSE(registry.ok()) << models;
    EXPECT_EQ(registry.status().code(), code) << registry.status();
    for (const std::string& fragment : fragments) {
      EXPECT_THAT(Message(registry.status()), HasSubstr(fragment));
    }
  }

  std::string dir_;
  std::vector<float> w1_, b1_, w2_, b2_, alpha_, wg_, wu_;
};

constexpr char kPlainModel[] = R"(
  - name: plain
    d_model: 16
    d_ff: 40
    activation: prelu
    max_tokens: 99
    weights:
      safetensors: model.safetensors
      tensors: {w1: fc1.weight, b1: fc1.bias, w2: fc2.weight, b2: fc2.bias, alpha: act.weight}
)";
constexpr char kGatedModel[] = R"(
  - name: gated
    d_model: 16
    d_ff: 40
    activation: swiglu
    weights:
      safetensors: model.safetensors
      tensors: {wg: mlp.gate_proj.weight, wu: mlp.up_proj.weight, w2: mlp.down_proj.weight}
)";
constexpr char kRandomModels[] = R"(
  - {name: rand-plain, d_model: 24, d_ff: 56, activation: gelu, weights: {random: {seed: 77}}}
  - {name: rand-gated, d_model: 24, d_ff: 56, activation: geglu, weights: {random: {seed: 78}}}
)";

TEST_F(ModelRegistryTest, LoadsSafetensorsModels) {
  auto config = Config(std::string(kPlainModel) + kGatedModel);
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = ModelRegistry::Load(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  ASSERT_EQ((*registry)->models().size(), 2u);

  const Model* plain = (*registry)->Find("plain");
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain, (*registry)->models()[0].get());
  const FfnWeights pw = plain->block->UnpackedWeights();
  EXPECT_EQ(pw.kind, FfnKind::kPlain);
  EXPECT_EQ(pw.d_model, kDm);
  EXPECT_EQ(pw.d_ff, kDff);
  EXPECT_TRUE(pw.has_bias);
  EXPECT_EQ(pw.w1, w1_);
  EXPECT_EQ(pw.b1, b1_);
  EXPECT_EQ(pw.w2, w2_);
  EXPECT_EQ(pw.b2, b2_);
  EXPECT_EQ(pw.prelu_alpha, alpha_);
  EXPECT_THAT(std::vector<float>(plain->block->params().prelu_alpha.begin(),
                                 plain->block->params().prelu_alpha.end()),
              ElementsAreArray(alpha_));
  EXPECT_EQ(plain->max_tokens, 99);

  const Model* gated = (*registry)->Find("gated");
  ASSERT_NE(gated, nullptr);
  EXPECT_EQ(gated->block->kind(), FfnKind::kGated);
  EXPECT_EQ(gated->block->UnpackedWeights().w2, w2_);
  EXPECT_EQ(gated->max_tokens, 777);  // the server's default

  EXPECT_EQ((*registry)->Find("nope"), nullptr);
  EXPECT_EQ((*registry)->Find(""), nullptr);
}

// The engine the registry built computes with the file's weights.
TEST_F(ModelRegistryTest, LoadedBlocksComputeWithTheFileWeights) {
  auto config = Config(std::string(kPlainModel) + kGatedModel);
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = ModelRegistry::Load(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();

  FfnWeights plain;
  plain.kind = FfnKind::kPlain;
  plain.d_model = kDm;
  plain.d_ff = kDff;
  plain.has_bias = true;
  plain.w1 = w1_;
  plain.b1 = b1_;
  plain.w2 = w2_;
  plain.b2 = b2_;
  plain.prelu_alpha = alpha_;
  FfnWeights gated;
  gated.kind = FfnKind::kGated;
  gated.d_model = kDm;
  gated.d_ff = kDff;
  gated.wg = wg_;
  gated.wu = wu_;
  gated.w2 = w2_;

  std::vector<float> x(3 * kDm);
  FillUniform(1, RandomStream::kInput, kRandomInputScale, x);
  std::vector<float> y(3 * kDm);
  ActivationParams params;
  params.prelu_alpha = alpha_;
  ASSERT_TRUE((*registry)->Find("plain")->block->Run(Activation::kPrelu, x.data(), 3, y.data()).ok());
  EXPECT_TRUE(CompareToReference(y.data(), ReferenceFfn(plain, Activation::kPrelu, params, x.data(), 3))
                  .within(kFp32CheckTolerance));
  ASSERT_TRUE((*registry)->Find("gated")->block->Run(Activation::kSwiglu, x.data(), 3, y.data()).ok());
  EXPECT_TRUE(CompareToReference(y.data(), ReferenceFfn(gated, Activation::kSwiglu, params, x.data(), 3))
                  .within(kFp32CheckTolerance));
}

TEST_F(ModelRegistryTest, LoadWeightsReadsGatedTensors) {
  auto config = Config(kGatedModel);
  ASSERT_TRUE(config.ok()) << config.status();
  auto weights = LoadWeights(config->models[0]);
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ(weights->kind, FfnKind::kGated);
  EXPECT_FALSE(weights->has_bias);
  EXPECT_EQ(weights->wg, wg_);
  EXPECT_EQ(weights->wu, wu_);
  EXPECT_EQ(weights->w2, w2_);
  EXPECT_TRUE(weights->w1.empty());
}

TEST_F(ModelRegistryTest, PlainWithoutBiasesOrAlpha) {
  auto config = Config(R"(
  - name: nobias
    d_model: 16
    d_ff: 40
    activation: relu
    weights: {safetensors: model.safetensors, tensors: {w1: fc1.weight, w2: fc2.weight}}
)");
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = ModelRegistry::Load(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  const Model* m = (*registry)->Find("nobias");
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(m->block->weights().has_bias);
  EXPECT_TRUE(m->block->weights().b1.empty());
  EXPECT_EQ(m->block->weights().prelu_alpha, std::vector<float>{0.25f});  // the default
  EXPECT_FALSE(m->info.has_bias());
}

TEST_F(ModelRegistryTest, SingleAlpha) {
  auto config = Config(R"(
  - name: one-alpha
    d_model: 16
    d_ff: 40
    activation: prelu
    weights: {safetensors: model.safetensors, tensors: {w1: fc1.weight, w2: fc2.weight, alpha: act1.weight}}
)");
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = ModelRegistry::Load(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_EQ((*registry)->Find("one-alpha")->block->weights().prelu_alpha, std::vector<float>{0.125f});
  EXPECT_THAT((*registry)->Find("one-alpha")->info.params().prelu_alpha(), ElementsAreArray({0.125f}));
}

TEST_F(ModelRegistryTest, ModelInfoDescribesEachModel) {
  auto config = Config(std::string(kPlainModel) + kGatedModel + kRandomModels);
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = ModelRegistry::Load(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();

  std::vector<std::string> plain_names, gated_names;
  for (Activation a : PlainActivations()) plain_names.emplace_back(ActivationName(a));
  for (Activation a : GatedActivations()) gated_names.emplace_back(ActivationName(a));

  const v1::ModelInfo& plain = (*registry)->Find("plain")->info;
  EXPECT_EQ(plain.name(), "plain");
  EXPECT_EQ(plain.d_model(), kDm);
  EXPECT_EQ(plain.d_ff(), kDff);
  EXPECT_EQ(plain.kind(), v1::PLAIN);
  EXPECT_EQ(plain.default_activation(), "prelu");
  EXPECT_THAT(plain.activations(), ElementsAreArray(plain_names));
  EXPECT_EQ(plain.dtype(), v1::FLOAT32);
  EXPECT_TRUE(plain.has_bias());
  EXPECT_EQ(plain.max_tokens(), 99);
  ASSERT_TRUE(plain.has_safetensors());
  EXPECT_EQ(plain.safetensors().path(), dir_ + "/model.safetensors");
  EXPECT_EQ(plain.safetensors().tensors().size(), 5u);
  EXPECT_EQ(plain.safetensors().tensors().at("w1"), "fc1.weight");
  EXPECT_EQ(plain.safetensors().tensors().at("alpha"), "act.weight");
  const v1::ActivationParams& params = plain.params();
  EXPECT_FLOAT_EQ(params.leaky_relu_slope(), 0.01f);
  EXPECT_FLOAT_EQ(params.rrelu_lower(), 1.0f / 8.0f);
  EXPECT_FLOAT_EQ(params.rrelu_upper(), 1.0f / 3.0f);
  EXPECT_FLOAT_EQ(params.rrelu_slope(), ActivationParams().rrelu_slope());
  EXPECT_FLOAT_EQ(params.elu_alpha(), 1.0f);
  EXPECT_THAT(params.prelu_alpha(), ElementsAreArray(alpha_));

  const v1::ModelInfo& gated = (*registry)->Find("gated")->info;
  EXPECT_EQ(gated.kind(), v1::GATED);
  EXPECT_EQ(gated.default_activation(), "swiglu");
  EXPECT_THAT(gated.activations(), ElementsAreArray(gated_names));
  EXPECT_FALSE(gated.has_bias());
  EXPECT_EQ(gated.params().prelu_alpha_size(), 0);
  EXPECT_EQ(gated.safetensors().tensors().at("wu"), "mlp.up_proj.weight");
  EXPECT_EQ(gated.max_tokens(), 777);

  const v1::ModelInfo& rand_plain = (*registry)->Find("rand-plain")->info;
  ASSERT_TRUE(rand_plain.has_random());
  EXPECT_EQ(rand_plain.random().seed(), 77u);
  EXPECT_FALSE(rand_plain.has_safetensors());
  EXPECT_TRUE(rand_plain.has_bias());
  EXPECT_EQ(rand_plain.kind(), v1::PLAIN);
  EXPECT_THAT(rand_plain.params().prelu_alpha(), ElementsAreArray({0.25f}));
  const v1::ModelInfo& rand_gated = (*registry)->Find("rand-gated")->info;
  EXPECT_EQ(rand_gated.random().seed(), 78u);
  EXPECT_EQ(rand_gated.kind(), v1::GATED);
  EXPECT_FALSE(rand_gated.has_bias());
}

TEST_F(ModelRegistryTest, RandomModelsUseTheSeededGenerator) {
  auto config = Config(kRandomModels);
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = ModelRegistry::Load(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();

  const FfnWeights want_plain = RandomFfnWeights(FfnKind::kPlain, 24, 56, 77);
  const FfnWeights plain = (*registry)->Find("rand-plain")->block->UnpackedWeights();
  EXPECT_EQ(plain.w1, want_plain.w1);
  EXPECT_EQ(plain.b1, want_plain.b1);
  EXPECT_EQ(plain.w2, want_plain.w2);
  EXPECT_EQ(plain.b2, want_plain.b2);
  EXPECT_EQ(plain.prelu_alpha, want_plain.prelu_alpha);

  const FfnWeights want_gated = RandomFfnWeights(FfnKind::kGated, 24, 56, 78);
  auto loaded_gated = LoadWeights(config->models[1]);
  ASSERT_TRUE(loaded_gated.ok()) << loaded_gated.status();
  EXPECT_EQ(loaded_gated->wg, want_gated.wg);
  EXPECT_EQ(loaded_gated->wu, want_gated.wu);
  EXPECT_EQ(loaded_gated->w2, want_gated.w2);
  EXPECT_EQ((*registry)->Find("rand-gated")->block->UnpackedWeights().w2, want_gated.w2);
  // A different seed is a different model.
  EXPECT_NE(RandomFfnWeights(FfnKind::kGated, 24, 56, 79).wg, want_gated.wg);
}

TEST_F(ModelRegistryTest, DefaultConfigLoads) {
  auto config = ParseConfig(DefaultConfigYaml(), "");
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = ModelRegistry::Load(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  ASSERT_NE((*registry)->Find("ffn-768"), nullptr);
  ASSERT_NE((*registry)->Find("glu-768"), nullptr);
  EXPECT_EQ((*registry)->Find("ffn-768")->block->d_ff(), 3072);
  EXPECT_EQ((*registry)->Find("glu-768")->block->kind(), FfnKind::kGated);
  EXPECT_EQ((*registry)->Find("glu-768")->max_tokens, ServerSettings().max_tokens_per_request);
}

TEST_F(ModelRegistryTest, StrategyAutoIsTunedAndFixedOnesAreKept) {
  auto config = ParseConfig(R"(
server: {max_batch_tokens: 64, batch_invariant: false}
models:
  - {name: tuned, d_model: 32, d_ff: 300, activation: gelu, weights: {random: {seed: 1}}}
  - {name: fixed, d_model: 32, d_ff: 300, activation: swiglu, strategy: postops,
     weights: {random: {seed: 2}}}
)", "");
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = ModelRegistry::Load(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  const Model* tuned = (*registry)->Find("tuned");
  const Model* fixed = (*registry)->Find("fixed");
  EXPECT_EQ(tuned->strategy, Strategy::kAuto);
  EXPECT_EQ(tuned->info.strategy(), "auto");
  // Probes 1, 2, 4, 8, 16, 32 and the model's largest batch, 64, per dtype.
  EXPECT_THAT(tuned->tuning, HasSubstr("f32 m=1 "));
  EXPECT_THAT(tuned->tuning, HasSubstr("bf16 m=64 "));
  EXPECT_EQ(fixed->info.strategy(), "postops");
  EXPECT_TRUE(fixed->tuning.empty());
  for (int64_t m : {1, 8, 100}) {
    EXPECT_EQ(fixed->block->PlannedStrategy(m, DataType::kF32), Strategy::kPostops);
    EXPECT_EQ(fixed->block->PlannedStrategy(m, DataType::kBf16), Strategy::kPostops);
  }
}

TEST_F(ModelRegistryTest, BatchInvariantByDefaultWhereTheStrategyAllows) {
  auto config = ParseConfig(R"(
server: {max_batch_tokens: 64}
models:
  - {name: auto, d_model: 32, d_ff: 300, activation: gelu, weights: {random: {seed: 1}}}
  - {name: fused, d_model: 32, d_ff: 300, activation: gelu, strategy: fused,
     weights: {random: {seed: 1}}}
  - {name: unfused, d_model: 32, d_ff: 300, activation: gelu, strategy: unfused,
     weights: {random: {seed: 1}}}
  - {name: opted-out, d_model: 32, d_ff: 300, activation: gelu, batch_invariant: false,
     weights: {random: {seed: 1}}}
)", "");
  ASSERT_TRUE(config.ok()) << config.status();
  auto registry = ModelRegistry::Load(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  for (const char* name : {"auto", "fused"}) {
    const Model* m = (*registry)->Find(name);
    EXPECT_TRUE(m->batch_invariant) << name;
    EXPECT_TRUE(m->info.batch_invariant()) << name;
    EXPECT_THAT(m->tuning, HasSubstr("batch-invariant")) << name;  // nothing to tune
  }
  EXPECT_FALSE((*registry)->Find("unfused")->info.batch_invariant());
  const Model* opted_out = (*registry)->Find("opted-out");
  EXPECT_FALSE(opted_out->info.batch_invariant());
  EXPECT_THAT(opted_out->tuning, HasSubstr("bf16 m=64 "));  // tuned as before
}

TEST_F(ModelRegistryTest, PlanCacheKeepsThePlanAcrossRestarts) {
  const std::string cache = dir_ + "/plans.json";
  std::filesystem::remove(cache);
  auto config = ParseConfig(R"(
server: {max_batch_tokens: 64, batch_invariant: false, plan_cache: )" + cache + R"(}
models:
  - {name: a, d_model: 32, d_ff: 300, activation: gelu, weights: {random: {seed: 1}}}
  - {name: same-shape, d_model: 32, d_ff: 300, activation: relu, weights: {random: {seed: 2}}}
)", "");
  ASSERT_TRUE(config.ok()) << config.status();
  auto first = ModelRegistry::Load(*config, 2);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT((*first)->Find("a")->tuning, Not(HasSubstr("plan cache")));
  // The second model has the first's shape: its plan comes from the cache.
  EXPECT_THAT((*first)->Find("same-shape")->tuning, HasSubstr("from the plan cache"));
  ASSERT_TRUE(std::filesystem::exists(cache));
  auto second = ModelRegistry::Load(*config, 2);  // a restart
  ASSERT_TRUE(second.ok()) << second.status();
  const Model* again = (*second)->Find("a");
  EXPECT_THAT(again->tuning, HasSubstr("from the plan cache " + cache));
  for (DataType compute : {DataType::kF32, DataType::kBf16}) {
    for (int64_t m : {1, 2, 4, 8, 16, 32, 64, 100}) {
      EXPECT_EQ(again->block->PlannedStrategy(m, compute),
                (*first)->Find("a")->block->PlannedStrategy(m, compute))
          << DataTypeName(compute) << " m=" << m;
    }
  }
  // Another thread count is another plan: tuned, and added beside the first.
  auto one_thread = ModelRegistry::Load(*config, 1);
  ASSERT_TRUE(one_thread.ok()) << one_thread.status();
  EXPECT_THAT((*one_thread)->Find("a")->tuning, Not(HasSubstr("plan cache")));
  auto plans = PlanCache::Load(cache);
  ASSERT_TRUE(plans.ok()) << plans.status();
  EXPECT_TRUE(plans->Find(PlanKey(again->block->weights(), 2, 64)).has_value());
  EXPECT_TRUE(plans->Find(PlanKey(again->block->weights(), 1, 64)).has_value());
  // A file that is not a plan cache stops the start, naming it.
  std::ofstream(cache) << "{\"format\": \"something else\"}";
  auto broken = ModelRegistry::Load(*config, 2);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(broken.status().message(), HasSubstr(cache));
  EXPECT_THAT(broken.status().message(), HasSubstr("delete the file"));
}

TEST_F(ModelRegistryTest, MissingFile) {
  ExpectLoadError(FileModel("lost", 16, "relu", "nowhere.safetensors", "w1: fc1.weight, w2: fc2.weight"),
                  absl::StatusCode::kNotFound, {"model 'lost'", "nowhere.safetensors"});
}

TEST_F(ModelRegistryTest, MissingTensorInFile) {
  ExpectLoadError(FileModel("typo", 16, "relu", "model.safetensors", "w1: fc1.weight, w2: fc2.weigth"),
                  absl::StatusCode::kNotFound, {"model 'typo'", "weight w2", "'fc2.weigth'"});
  // The same for the optional alpha role.
  ExpectLoadError(
      FileModel("typo-alpha", 16, "prelu", "model.safetensors", "w1: fc1.weight, w2: fc2.weight, alpha: nope"),
      absl::StatusCode::kNotFound, {"model 'typo-alpha'", "'nope'"});
}

TEST_F(ModelRegistryTest, WrongShapeNamesModelRoleAndShape) {
  // d_model 20 does not match the file's [40, 16] w1.
  ExpectLoadError(FileModel("misfit", 20, "relu", "model.safetensors", "w1: fc1.weight, w2: fc1.weight"),
                  absl::StatusCode::kInvalidArgument,
                  {"model 'misfit'", "weight w2", "has shape [40, 16], expected [20, 40]"});
  // A transposed w1 (nn.Linear layout is [d_ff, d_model]).
  ExpectLoadError(FileModel("transposed", 16, "relu", "model.safetensors", "w1: fc2.weight, w2: fc2.weight"),
                  absl::StatusCode::kInvalidArgument,
                  {"model 'transposed'", "weight w1", "expected [40, 16]"});
  // Alpha must be [1] or [d_ff].
  ExpectLoadError(
      FileModel("bad-alpha", 16, "prelu", "model.safetensors", "w1: fc1.weight, w2: fc2.weight, alpha: bad_alpha"),
      absl::StatusCode::kInvalidArgument, {"model 'bad-alpha'", "alpha", "d_ff = 40"});
}

TEST_F(ModelRegistryTest, NonFiniteWeightsAreRefused) {
  std::vector<float> w1 = w1_;
  w1[5] = std::numeric_limits<float>::quiet_NaN();
  w1[9] = -std::numeric_limits<float>::infinity();
  ASSERT_TRUE(WriteSafetensors(dir_ + "/nan.safetensors",
                               {{"fc1.weight", {kDff, kDm}, w1}, {"fc2.weight", {kDm, kDff}, w2_}})
                  .ok());
  ExpectLoadError(FileModel("poisoned", 16, "relu", "nan.safetensors", "w1: fc1.weight, w2: fc2.weight"),
                  absl::StatusCode::kInvalidArgument,
                  {"model 'poisoned'", "weight w1 (tensor 'fc1.weight')",
                   "2 of 640 values are not finite", "index 5, is nan"});
}

TEST_F(ModelRegistryTest, AModelThatCannotFitIsRefusedBeforeAllocating) {
  // 2 × 131072² floats = 128 GiB: this used to abort with std::bad_alloc.
  // Batch-invariant (the default): the f32 matrices as read, their packed
  // copy and its bf16 twin, 2·4 + 2 bytes per value.
  ExpectLoadError("  - {name: huge, d_model: 131072, d_ff: 131072, activation: relu, "
                  "weights: {random: {seed: 1}}}\n",
                  absl::StatusCode::kResourceExhausted,
                  {"model 'huge' (d_model 131072, d_ff 131072) needs about 320.0 GiB",
                   "GiB of memory is available"});
  // Tuned paths add rows and oneDNN's copies: 6 × the f32 bytes.
  ExpectLoadError("  - {name: huge, d_model: 131072, d_ff: 131072, activation: relu, "
                  "batch_invariant: false, weights: {random: {seed: 1}}}\n",
                  absl::StatusCode::kResourceExhausted,
                  {"model 'huge' (d_model 131072, d_ff 131072) needs about 768.0 GiB"});
}

// BF16 tensors (hand-written here) load as stored: the matrices stay bf16,
// denoting exactly the floats they widen to.
TEST_F(ModelRegistryTest, Bf16TensorsLoad) {
  std::vector<uint16_t> wg_bits, wu_bits, w2_bits;
  for (float v : wg_) wg_bits.push_back(ToBf16Bits(v));
  for (float v : wu_) wu_bits.push_back(ToBf16Bits(v));
  for (float v : w2_) w2_bits.push_back(ToBf16Bits(v));
  const size_t matrix_bytes = 2 * kDff * kDm;
  const std::string json = absl::StrCat(
      R"({"g":{"dtype":"BF16","shape":[40,16],"data_offsets":[0,)", matrix_bytes, R"(]},)",
      R"("u":{"dtype":"BF16","shape":[40,16],"data_offsets":[)", matrix_bytes, ",", 2 * matrix_bytes,
      R"(]},"d":{"dtype":"BF16","shape":[16,40],"data_offsets":[)", 2 * matrix_bytes, ",",
      3 * matrix_bytes, "]}}");
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
  bytes += json;
  for (const auto* bits : {&wg_bits, &wu_bits, &w2_bits}) {
    bytes.append(reinterpret_cast<const char*>(bits->data()), bits->size() * 2);
  }
  std::ofstream(dir_ + "/bf16.safetensors", std::ios::binary) << bytes;

  auto config = Config(R"(
  - name: bf16
    d_model: 16
    d_ff: 40
    activation: geglu
    weights: {safetensors: bf16.safetensors, tensors: {wg: g, wu: u, w2: d}}
)");
  ASSERT_TRUE(config.ok()) << config.status();
  auto loaded = LoadWeights(config->models[0]);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  // Kept as stored, and widened exactly.
  EXPECT_EQ(loaded->matrix_type, DataType::kBf16);
  EXPECT_EQ(loaded->wg_bf16, wg_bits);
  EXPECT_EQ(loaded->wu_bf16, wu_bits);
  EXPECT_EQ(loaded->w2_bf16, w2_bits);
  FfnWeights widened = *loaded;
  WidenMatrices(widened);
  const FfnWeights* weights = &widened;
  ASSERT_EQ(weights->wg.size(), wg_.size());
  size_t changed = 0;
  for (size_t i = 0; i < wg_.size(); ++i) {
    EXPECT_EQ(weights->wg[i], FromBf16Bits(wg_bits[i])) << i;
    EXPECT_EQ(weights->wu[i], FromBf16Bits(wu_bits[i])) << i;
    EXPECT_EQ(weights->w2[i], FromBf16Bits(w2_bits[i])) << i;
    EXPECT_NEAR(weights->wg[i], wg_[i], std::abs(wg_[i]) / 256.0f) << i;  // bf16: 8 bits
    changed += weights->wg[i] != wg_[i];
  }
  EXPECT_GT(changed, wg_.size() / 2) << "the test's values should need rounding";

  auto registry = ModelRegistry::Load(*config);
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_EQ((*registry)->Find("bf16")->block->UnpackedWeights().w2, weights->w2);
  EXPECT_EQ((*registry)->Find("bf16")->info.dtype(), v1::FLOAT32);
  EXPECT_EQ((*registry)->Find("bf16")->info.matrix_dtype(), "bf16");
}

// LoadWeights names the model in its errors even when called directly.
TEST_F(ModelRegistryTest, LoadWeightsErrorNamesModel) {
  ModelConfig mc;
  mc.name = "direct";
  mc.d_model = kDm;
  mc.d_ff = kDff;
  mc.kind = FfnKind::kPlain;
  mc.random_weights = false;
  mc.safetensors_path = dir_ + "/model.safetensors";
  mc.tensors = {{"w1", "fc1.weight"}, {"w2", "missing"}};
  auto weights = LoadWeights(mc);
  ASSERT_FALSE(weights.ok());
  EXPECT_EQ(weights.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(weights.status()), HasSubstr("model 'direct'"));
}

}  // namespace
}  // namespace ffn
