// Tests of the YAML config: the embedded default, a full example, and one
// clear INVALID_ARGUMENT per kind of mistake.
#include "ffn/server/config.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "ffn/server/listen_address.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ffn {
namespace {

using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// Parses `yaml` and expects INVALID_ARGUMENT whose message has every one of `parts`.
void ExpectInvalid(const std::string& yaml, std::initializer_list<std::string> parts) {
  auto config = ParseConfig(yaml, "/base");
  ASSERT_FALSE(config.ok()) << "parsed but should not have:\n" << yaml;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << config.status();
  for (const std::string& part : parts) {
    EXPECT_THAT(Message(config.status()), HasSubstr(part)) << "for:\n" << yaml;
  }
}

// A one-model config with `model_body` as the model's keys (indented 4).
std::string OneModel(const std::string& model_body) {
  return "models:\n  - " + model_body;
}

TEST(ConfigTest, DefaultConfigParses) {
  auto config = ParseConfig(DefaultConfigYaml(), "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.address, "127.0.0.1:50051");
  EXPECT_EQ(config->server.threads, 0);
  ASSERT_EQ(config->models.size(), 3u);

  const ModelConfig& ffn = config->models[0];
  EXPECT_EQ(ffn.name, "ffn-768");
  EXPECT_EQ(ffn.d_model, 768);
  EXPECT_EQ(ffn.d_ff, 3072);
  EXPECT_EQ(ffn.default_activation, Activation::kGelu);
  EXPECT_EQ(ffn.kind, FfnKind::kPlain);
  EXPECT_EQ(ffn.dtype, DataType::kF32);
  EXPECT_TRUE(ffn.random_weights);
  EXPECT_EQ(ffn.seed, 1u);
  EXPECT_TRUE(ffn.tensors.empty());
  EXPECT_EQ(ffn.max_tokens, 0);

  const ModelConfig& glu = config->models[1];
  EXPECT_EQ(glu.name, "glu-768");
  EXPECT_EQ(glu.d_model, 768);
  EXPECT_EQ(glu.d_ff, 2048);
  EXPECT_EQ(glu.default_activation, Activation::kSwiglu);
  EXPECT_EQ(glu.kind, FfnKind::kGated);
  EXPECT_TRUE(glu.random_weights);
  EXPECT_EQ(glu.seed, 2u);
  EXPECT_FALSE(glu.moe.has_value());

  const ModelConfig& moe = config->models[2];
  EXPECT_EQ(moe.name, "moe-768");
  EXPECT_EQ(moe.d_ff, 1024);
  EXPECT_EQ(moe.kind, FfnKind::kGated);
  ASSERT_TRUE(moe.moe.has_value());
  EXPECT_EQ(moe.moe->experts, 8);
  EXPECT_EQ(moe.moe->top_k, 2);
  EXPECT_EQ(moe.moe->shared_d_ff, 0);
}

TEST(ConfigTest, MoeSettingsAreChecked) {
  auto parse = [](const std::string& moe, const std::string& activation = "swiglu") {
    return ParseConfig(absl::StrCat("models:\n  - {name: m, d_model: 8, d_ff: 16, activation: ",
                                    activation, ", weights: {random: {seed: 1}}, moe: ", moe, "}\n"),
                       "");
  };
  auto ok = parse("{experts: 4, top_k: 2, shared: 24}");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->models[0].moe->shared_d_ff, 24);
  const std::pair<std::string, std::string> bad[] = {
      {"{experts: 4, top_k: 5}", "top_k: must be in [1, 4]"},
      {"{experts: 0, top_k: 1}", "experts: must be in [1, 1024]"},
      {"{experts: 4}", "needs experts and top_k"},
      {"{experts: 4, top_k: 1, capacity: 2}", "capacity"},
      {"8", "must be a mapping"},
  };
  for (const auto& [moe, message] : bad) {
    auto config = parse(moe);
    ASSERT_FALSE(config.ok()) << moe;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(message)) << moe;
  }
  auto plain = parse("{experts: 4, top_k: 2}", "gelu");
  ASSERT_FALSE(plain.ok());
  EXPECT_THAT(std::string(plain.status().message()), HasSubstr("must be a gated one"));
}

constexpr char kExample[] = R"(
server:
  address: "0.0.0.0:6000"
  threads: 4
  max_tokens_per_request: 4096
  max_queue_tokens: 64
  max_message_bytes: 1048576
  stats_window_seconds: 30
models:
  - name: tiny-swiglu
    d_model: 64
    d_ff: 172
    activation: swiglu       # gated activation: a gated model
    dtype: f32
    weights: {random: {seed: 7}}
  - name: bert-ffn
    d_model: 768
    d_ff: 3072
    activation: gelu
    max_tokens: 512
    weights:
      safetensors: weights/bert.safetensors
      tensors:
        w1: encoder.layer.0.intermediate.dense.weight
        b1: encoder.layer.0.intermediate.dense.bias
        w2: encoder.layer.0.output.dense.weight
        b2: encoder.layer.0.output.dense.bias
  - name: llama-mlp
    d_model: 64
    d_ff: 128
    activation: swiglu
    weights:
      safetensors: /abs/llama.safetensors
      tensors: {wg: mlp.gate_proj.weight, wu: mlp.up_proj.weight, w2: mlp.down_proj.weight}
)";

TEST(ConfigTest, ExampleWithSafetensorsAndRandomParses) {
  auto config = ParseConfig(kExample, "/etc/ffn");
  ASSERT_TRUE(config.ok()) << config.status();
  const ServerSettings& s = config->server;
  EXPECT_EQ(s.address, "0.0.0.0:6000");
  EXPECT_EQ(s.threads, 4);
  EXPECT_EQ(s.max_tokens_per_request, 4096);
  EXPECT_EQ(s.batching.max_queue_tokens, 64);
  EXPECT_EQ(s.max_message_bytes, 1048576);
  EXPECT_EQ(s.stats_window_seconds, 30);
  ASSERT_EQ(config->models.size(), 3u);

  const ModelConfig& tiny = config->models[0];
  EXPECT_EQ(tiny.name, "tiny-swiglu");
  EXPECT_EQ(tiny.kind, FfnKind::kGated);
  EXPECT_TRUE(tiny.random_weights);
  EXPECT_EQ(tiny.seed, 7u);

  const ModelConfig& bert = config->models[1];
  EXPECT_EQ(bert.kind, FfnKind::kPlain);
  EXPECT_EQ(bert.default_activation, Activation::kGelu);
  EXPECT_FALSE(bert.random_weights);
  EXPECT_EQ(bert.max_tokens, 512);
  // Relative paths resolve against the config's folder.
  EXPECT_EQ(bert.safetensors_path, "/etc/ffn/weights/bert.safetensors");
  EXPECT_EQ(bert.tensors.size(), 4u);
  EXPECT_EQ(bert.tensors.at("w1"), "encoder.layer.0.intermediate.dense.weight");
  EXPECT_EQ(bert.tensors.at("b2"), "encoder.layer.0.output.dense.bias");

  const ModelConfig& llama = config->models[2];
  EXPECT_EQ(llama.kind, FfnKind::kGated);
  EXPECT_EQ(llama.safetensors_path, "/abs/llama.safetensors");  // absolute stays
  EXPECT_EQ(llama.tensors.at("wg"), "mlp.gate_proj.weight");
  EXPECT_EQ(llama.tensors.at("wu"), "mlp.up_proj.weight");
  EXPECT_EQ(llama.tensors.at("w2"), "mlp.down_proj.weight");
}

TEST(ConfigTest, RelativePathWithoutBaseDirStaysRelative) {
  auto config = ParseConfig(OneModel(R"({name: m, d_model: 4, d_ff: 8, activation: relu,
      weights: {safetensors: ./w/../m.safetensors, tensors: {w1: a, w2: b}}})"),
                            "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->models[0].safetensors_path, "m.safetensors");
}

TEST(ConfigTest, RandomWithoutSeedIsSeedZero) {
  auto config = ParseConfig(OneModel("{name: m, d_model: 4, d_ff: 8, activation: elu, weights: {random: {}}}"), "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->models[0].random_weights);
  EXPECT_EQ(config->models[0].seed, 0u);
}

TEST(ConfigTest, EveryActivationNameIsAccepted) {
  for (Activation a : AllActivations()) {
    auto config = ParseConfig(OneModel(std::string("{name: m, d_model: 4, d_ff: 8, activation: ") +
                                       ActivationName(a) + ", weights: {random: {seed: 1}}}"),
                              "");
    ASSERT_TRUE(config.ok()) << ActivationName(a) << ": " << config.status();
    EXPECT_EQ(config->models[0].default_activation, a);
    EXPECT_EQ(config->models[0].kind, IsGated(a) ? FfnKind::kGated : FfnKind::kPlain);
  }
}

TEST(ConfigTest, NotYaml) {
  ExpectInvalid("models: [unclosed", {"config: YAML"});
  ExpectInvalid("a: b: c", {"config: YAML"});
}

TEST(ConfigTest, NotAMap) {
  ExpectInvalid("- just\n- a list\n", {"top level", "must be a mapping"});
  ExpectInvalid("plain scalar", {"top level"});
  ExpectInvalid("", {"top level"});
}

TEST(ConfigTest, UnknownTopLevelKey) {
  ExpectInvalid("modles: []\n", {"top level", "unknown key 'modles'", "models, server"});
}

TEST(ConfigTest, ModelsMissingOrEmpty) {
  ExpectInvalid("server: {threads: 1}\n", {"models", "non-empty list"});
  ExpectInvalid("models: []\n", {"models", "non-empty list"});
  ExpectInvalid("models: {a: 1}\n", {"models", "non-empty list"});
}

TEST(ConfigTest, UnknownModelKey) {
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, weights: {random: {}}, "
                         "activaton: gelu}"),
                {"models[0]", "unknown key 'activaton'"});
}

TEST(ConfigTest, MissingRequiredModelKeys) {
  const std::string all[] = {"name: m", "d_model: 4", "d_ff: 8", "activation: relu",
                             "weights: {random: {seed: 1}}"};
  const char* keys[] = {"name", "d_model", "d_ff", "activation", "weights"};
  for (int skip = 0; skip < 5; ++skip) {
    std::string body = "{";
    for (int i = 0; i < 5; ++i) {
      if (i == skip) continue;
      if (body.size() > 1) body += ", ";
      body += all[i];
    }
    body += "}";
    ExpectInvalid(OneModel(body), {"models[0]", std::string("missing '") + keys[skip] + "'"});
  }
}

TEST(ConfigTest, EmptyName) {
  ExpectInvalid(OneModel(R"({name: "", d_model: 4, d_ff: 8, activation: relu, weights: {random: {}}})"),
                {"models[0].name", "must not be empty"});
}

TEST(ConfigTest, UnknownActivationListsValidNames) {
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: swish, weights: {random: {}}}"),
                {"model 'm'.activation", "unknown 'swish'", "relu", "leaky_relu", "gelu_tanh", "silu",
                 "quick_gelu", "swiglu", "geglu_tanh", "reglu"});
}

TEST(ConfigTest, DimensionsMustBePositiveAndBounded) {
  ExpectInvalid(OneModel("{name: m, d_model: 0, d_ff: 8, activation: relu, weights: {random: {}}}"),
                {"model 'm'.d_model", "must be in [1, 131072]"});
  ExpectInvalid(OneModel("{name: m, d_model: -4, d_ff: 8, activation: relu, weights: {random: {}}}"),
                {"model 'm'.d_model"});
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: -1, activation: relu, weights: {random: {}}}"),
                {"model 'm'.d_ff"});
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 131073, activation: relu, weights: {random: {}}}"),
                {"model 'm'.d_ff"});
  ExpectInvalid(OneModel("{name: m, d_model: four, d_ff: 8, activation: relu, weights: {random: {}}}"),
                {"model 'm'.d_model", "not a valid value"});
}

TEST(ConfigTest, DtypeIsF32OrBf16) {
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, dtype: f16, weights: {random: {}}}"),
                {"model 'm'.dtype", "'f16' is not one of f32, bf16"});
  auto config = ParseConfig(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, dtype: bf16, weights: {random: {}}}"), "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->models[0].dtype, DataType::kBf16);
}

TEST(ConfigTest, MaxTokensMustBePositiveAndBounded) {
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, max_tokens: 0, weights: {random: {}}}"),
                {"model 'm'.max_tokens", "must be in [1, 16777216]"});
  // Unbounded, tokens × d_model overflowed the byte-count check of a request.
  ExpectInvalid(OneModel("{name: m, d_model: 768, d_ff: 8, activation: relu, "
                         "max_tokens: 6000000000000000, weights: {random: {}}}"),
                {"model 'm'.max_tokens", "must be in [1, 16777216]"});
}

TEST(ConfigTest, MaxMessageBytesFitsGrpcsInt) {
  // 2^31 used to be accepted and silently became gRPC's 4 MiB default.
  ExpectInvalid("server: {max_message_bytes: 2147483648}\n" +
                    OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, weights: {random: {}}}"),
                {"server.max_message_bytes", "must be in [1024, 2147483647]"});
  auto config = ParseConfig("server: {max_message_bytes: 2147483647}\n" +
                                OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, weights: {random: {}}}"),
                            "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.max_message_bytes, 2147483647);
}

TEST(ConfigTest, DuplicateKeysAreRefused) {
  // Used to be accepted, the first value silently winning.
  ExpectInvalid(OneModel("{name: a, name: b, d_model: 4, d_ff: 8, activation: relu, weights: {random: {}}}"),
                {"line 2", "duplicate key 'name'"});
  ExpectInvalid("server: {threads: 1}\nserver: {threads: 2}\n" +
                    OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, weights: {random: {}}}"),
                {"line 2", "duplicate key 'server'"});
  ExpectInvalid(R"(
models:
  - name: m
    d_model: 4
    d_ff: 8
    activation: relu
    weights:
      safetensors: w.safetensors
      tensors: {w1: a, w2: b, w1: c}
)",
                {"line 9", "duplicate key 'w1'"});
}

TEST(ConfigTest, DuplicateModelNames) {
  ExpectInvalid(R"(
models:
  - {name: twin, d_model: 4, d_ff: 8, activation: relu, weights: {random: {seed: 1}}}
  - {name: other, d_model: 4, d_ff: 8, activation: relu, weights: {random: {seed: 1}}}
  - {name: twin, d_model: 8, d_ff: 8, activation: gelu, weights: {random: {seed: 2}}}
)",
                {"models[2]", "duplicate name 'twin'"});
}

TEST(ConfigTest, BothRandomAndSafetensors) {
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, "
                         "weights: {random: {seed: 1}, safetensors: w.safetensors, tensors: {w1: a, w2: b}}}"),
                {"model 'm'.weights", "random or safetensors, not both"});
}

TEST(ConfigTest, NeitherRandomNorSafetensors) {
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, weights: {}}"),
                {"model 'm'.weights", "needs random"});
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, weights: random}"),
                {"model 'm'.weights", "must be a mapping"});
}

TEST(ConfigTest, TensorsOnlyWithSafetensors) {
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, "
                         "weights: {random: {seed: 1}, tensors: {w1: a, w2: b}}}"),
                {"model 'm'.weights", "tensors only go with safetensors"});
}

TEST(ConfigTest, BatchInvariantNeedsAnOrderFixedStrategy) {
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, strategy: unfused, "
                         "batch_invariant: true, weights: {random: {}}}"),
                {"model 'm'.batch_invariant", "needs strategy auto or fused"});
  auto config = ParseConfig("server: {batch_invariant: false}\n" +
                                OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, "
                                         "batch_invariant: true, weights: {random: {}}}"),
                            "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->server.batch_invariant);
  EXPECT_EQ(config->models[0].batch_invariant, true);
  EXPECT_TRUE(ServerSettings().batch_invariant);  // on by default
}

TEST(ConfigTest, CallThreadsIsAdaptiveOrAll) {
  EXPECT_TRUE(ServerSettings().adaptive_call_threads);  // adaptive by default
  const std::string model = OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, "
                                     "weights: {random: {}}}");
  auto all = ParseConfig("server: {call_threads: all}\n" + model, "");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_FALSE(all->server.adaptive_call_threads);
  auto adaptive = ParseConfig("server: {call_threads: adaptive}\n" + model, "");
  ASSERT_TRUE(adaptive.ok()) << adaptive.status();
  EXPECT_TRUE(adaptive->server.adaptive_call_threads);
  ExpectInvalid("server: {call_threads: 1}\n" + model,
                {"server.call_threads", "'1' is not one of adaptive, all"});
}

TEST(ConfigTest, QuantizationIsInt8OrNone) {
  auto config = ParseConfig(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, "
                                     "quantization: int8, weights: {random: {}}}"),
                            "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->models[0].quantization, Quantization::kInt8);
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, "
                         "quantization: int4, weights: {random: {}}}"),
                {"model 'm'.quantization", "'int4' is not one of none, int8"});
  auto moe = ParseConfig(OneModel("{name: m, d_model: 4, d_ff: 8, activation: swiglu, "
                                  "quantization: int8, weights: {random: {}}, "
                                  "moe: {experts: 2, top_k: 1}}"),
                         "");
  ASSERT_TRUE(moe.ok()) << moe.status();
  EXPECT_EQ(moe->models[0].quantization, Quantization::kInt8);
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, strategy: postops, "
                         "quantization: int8, weights: {random: {}}}"),
                {"model 'm'.quantization", "strategy postops"});
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, batch_invariant: false, "
                         "quantization: int8, weights: {random: {}}}"),
                {"model 'm'.quantization", "always batch-invariant"});
}

TEST(ConfigTest, PlanCheckSecondsIsBounded) {
  const std::string model = OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, "
                                     "weights: {random: {}}}");
  EXPECT_EQ(ServerSettings().plan_check_seconds, 10);
  auto off = ParseConfig("server: {plan_check_seconds: 0}\n" + model, "");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->server.plan_check_seconds, 0);
  ExpectInvalid("server: {plan_check_seconds: -1}\n" + model,
                {"server.plan_check_seconds", "must be in [0, 3600]"});
}

TEST(ConfigTest, SafetensorsWithoutTensors) {
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, weights: {safetensors: w.st}}"),
                {"model 'm'.weights", "safetensors needs tensors"});
}

TEST(ConfigTest, MissingRequiredRole) {
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, "
                         "weights: {safetensors: w.st, tensors: {w2: b}}}"),
                {"model 'm'.weights.tensors", "missing 'w1'"});
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, "
                         "weights: {safetensors: w.st, tensors: {w1: a}}}"),
                {"model 'm'.weights.tensors", "missing 'w2'"});
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: swiglu, "
                         "weights: {safetensors: w.st, tensors: {wg: g, w2: d}}}"),
                {"model 'm'.weights.tensors", "missing 'wu'"});
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: geglu, "
                         "weights: {safetensors: w.st, tensors: {wu: u, w2: d}}}"),
                {"missing 'wg'"});
}

TEST(ConfigTest, BiasesComeInPairs) {
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, "
                         "weights: {safetensors: w.st, tensors: {w1: a, w2: b, b1: c}}}"),
                {"model 'm'.weights.tensors", "give both b1 and b2"});
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, "
                         "weights: {safetensors: w.st, tensors: {w1: a, w2: b, b2: c}}}"),
                {"give both b1 and b2"});
}

TEST(ConfigTest, RoleNotValidForKind) {
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, "
                         "weights: {safetensors: w.st, tensors: {w1: a, w2: b, wg: c}}}"),
                {"model 'm'.weights.tensors", "unknown key 'wg'", "alpha, b1, b2, norm_bias, norm_weight, w1, w2"});
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: swiglu, "
                         "weights: {safetensors: w.st, tensors: {wg: g, wu: u, w2: d, b1: c}}}"),
                {"unknown key 'b1'", "w2, wg, wu"});
  ExpectInvalid(OneModel("{name: m, d_model: 4, d_ff: 8, activation: swiglu, "
                         "weights: {safetensors: w.st, tensors: {wg: g, wu: u, w2: d, alpha: p}}}"),
                {"unknown key 'alpha'"});
}

TEST(ConfigTest, ServerSettingsErrors) {
  const std::string models = OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, weights: {random: {}}}");
  ExpectInvalid("server: {threads: -1}\n" + models, {"server.threads", "must be in [0, 1024]"});
  ExpectInvalid("server: {threads: many}\n" + models, {"server.threads", "not a valid value"});
  ExpectInvalid("server: {thread: 2}\n" + models, {"server", "unknown key 'thread'"});
  ExpectInvalid("server: {max_tokens_per_request: 0}\n" + models, {"server.max_tokens_per_request", "must be in [1,"});
  ExpectInvalid("server: {max_queue_tokens: -5}\n" + models, {"server.max_queue_tokens"});
  ExpectInvalid("server: {max_message_bytes: 0}\n" + models, {"server.max_message_bytes"});
  ExpectInvalid("server: {stats_window_seconds: 0.5}\n" + models, {"server.stats_window_seconds", "[1, 3600]"});
  ExpectInvalid("server: [1, 2]\n" + models, {"server", "must be a mapping"});
}

TEST(ConfigTest, ListenAddressesAreHostPort) {
  for (const char* good : {"127.0.0.1:0", "0.0.0.0:50051", "localhost:65535", "[::1]:9090", "[::]:1"}) {
    auto a = ParseListenAddress(good);
    EXPECT_TRUE(a.ok()) << good << ": " << a.status();
  }
  EXPECT_EQ(ParseListenAddress("[::1]:50051")->host, "[::1]");
  EXPECT_EQ(ParseListenAddress("[::1]:50051")->port, 50051);
  for (const char* bad : {"127.0.0.1:99999", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:",
                          ":50051", "127.0.0.1", "localhost:http", "::1:50051", "[::1:50051",
                          "[]:1", "127.0.0.1:0x10", "127.0.0.1:123456", "a b:1"}) {
    auto a = ParseListenAddress(bad);
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(a.status()), HasSubstr(std::string("'") + bad + "'"));
  }
  const std::string models = OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, weights: {random: {}}}");
  ExpectInvalid("server: {address: \"127.0.0.1:99999\"}\n" + models,
                {"server", "--address", "'127.0.0.1:99999'", "[0, 65535]"});
  ExpectInvalid("server: {metrics_address: \"0.0.0.0\"}\n" + models,
                {"--metrics-address", "'0.0.0.0'", "no ':PORT'"});
  // Flags change the settings after parsing; the same check covers them.
  ServerSettings settings;
  EXPECT_TRUE(ValidateServerSettings(settings).ok());
  settings.address = "127.0.0.1:99999";
  EXPECT_THAT(Message(ValidateServerSettings(settings)), HasSubstr("'127.0.0.1:99999'"));
}

TEST(ConfigTest, ServerThreadsZeroMeansAllCores) {
  auto config = ParseConfig("server: {threads: 0}\n" +
                                OneModel("{name: m, d_model: 4, d_ff: 8, activation: relu, weights: {random: {}}}"),
                            "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.threads, 0);
}

// A key that is itself a sequence or map cannot be a setting's name; the
// parser must say so, not throw.
// A non-scalar key is a config error, not an exception that ends ffn-server.
TEST(ConfigTest, ComplexKeyIsAnErrorNotAnException) {
  absl::StatusOr<ServerConfig> config = absl::UnknownError("not run");
  EXPECT_NO_THROW(config = ParseConfig("? [a, b]\n: 1\nmodels: []\n", ""));
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << config.status();
}

class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "ffn_config_test_" + std::to_string(::getpid());
    std::filesystem::create_directories(dir_ + "/conf");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(ConfigFileTest, RelativeWeightsResolveAgainstTheFilesFolder) {
  const std::string path = Write("conf/ffn.yaml", R"(
models:
  - name: m
    d_model: 4
    d_ff: 8
    activation: relu
    weights: {safetensors: ../weights/m.safetensors, tensors: {w1: a, w2: b}}
)");
  auto config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->models[0].safetensors_path,
            std::filesystem::path(dir_ + "/weights/m.safetensors").lexically_normal().string());
}

TEST_F(ConfigFileTest, ErrorsNameTheFile) {
  const std::string path = Write("conf/bad.yaml", "server: {threads: -3}\nmodels: []\n");
  auto config = LoadConfigFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(config.status()), HasSubstr(path));
  EXPECT_THAT(Message(config.status()), HasSubstr("server.threads"));
}

TEST_F(ConfigFileTest, MissingFileIsNotFound) {
  auto config = LoadConfigFile(dir_ + "/no_such.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(config.status()), HasSubstr("no_such.yaml"));
}

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

TEST(ConfigNormTest, NormAndResidualParse) {
  auto config = ParseConfig(R"(
models:
  - {name: m, d_model: 8, d_ff: 16, activation: swiglu, norm: rmsnorm, norm_eps: 1e-6,
     residual: true, weights: {random: {seed: 3}}}
)", "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->models[0].norm, NormKind::kRmsNorm);
  EXPECT_FLOAT_EQ(config->models[0].norm_eps, 1e-6f);
  EXPECT_TRUE(config->models[0].residual);
}

TEST(ConfigNormTest, BadNormSettingsAreErrors) {
  auto error = [](const std::string& model) {
    auto config = ParseConfig("models:\n  - " + model + "\n", "");
    return config.ok() ? std::string("parsed") : std::string(config.status().message());
  };
  const std::string base = "{name: m, d_model: 8, d_ff: 16, activation: relu, ";
  EXPECT_NE(error(base + "norm: batchnorm, weights: {random: {}}}").find("not one of none, layernorm, rmsnorm"), std::string::npos);
  EXPECT_NE(error(base + "norm: rmsnorm, norm_eps: 0, weights: {random: {}}}").find("norm_eps"), std::string::npos);
  EXPECT_NE(error(base + "residual: maybe, weights: {random: {}}}").find("residual"), std::string::npos);
  EXPECT_NE(error(base + "norm: layernorm, weights: {safetensors: f.st, tensors: {w1: a, w2: b, norm_weight: g}}}")
                .find("layernorm needs 'norm_bias'"),
            std::string::npos);
  EXPECT_NE(error(base + "weights: {safetensors: f.st, tensors: {w1: a, w2: b, norm_weight: g}}}")
                .find("'norm_weight' given but the model has no norm"),
            std::string::npos);
}

}  // namespace
}  // namespace ffn

namespace ffn {
namespace {

TEST(ConfigStrategyTest, ServerDefaultAndModelOverride) {
  auto config = ParseConfig(R"(
server: {strategy: unfused}
models:
  - {name: a, d_model: 8, d_ff: 16, activation: relu, weights: {random: {}}}
  - {name: b, d_model: 8, d_ff: 16, activation: relu, strategy: fused, weights: {random: {}}}
)", "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.strategy, Strategy::kUnfused);
  EXPECT_EQ(config->models[0].strategy, std::nullopt);
  EXPECT_EQ(config->models[1].strategy, Strategy::kFused);
  auto defaults = ParseConfig(DefaultConfigYaml(), "");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->server.strategy, Strategy::kAuto);
}

TEST(ConfigStrategyTest, UnknownStrategyIsAnError) {
  auto config = ParseConfig(
      "models:\n  - {name: m, d_model: 8, d_ff: 16, activation: relu, strategy: fast, "
      "weights: {random: {}}}\n",
      "");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(std::string(config.status().message()).find("model 'm'.strategy"), std::string::npos);
  EXPECT_NE(std::string(config.status().message()).find("'fast' is not one of auto, unfused, postops, fused"),
            std::string::npos);
  config = ParseConfig(
      "server: {strategy: [1]}\nmodels:\n  - {name: m, d_model: 8, d_ff: 16, activation: relu, "
      "weights: {random: {}}}\n",
      "");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(std::string(config.status().message()).find("server.strategy"), std::string::npos);
}

}  // namespace
}  // namespace ffn
