#include "ffn/client/variants.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ffn::client {
namespace {

v1::ModelInfo FakeModel(const std::string& name, v1::ModelKind kind,
                        const std::vector<std::string>& activations) {
  v1::ModelInfo info;
  info.set_name(name);
  info.set_kind(kind);
  for (const std::string& a : activations) info.add_activations(a);
  return info;
}

// What the server lists for its plain and gated models (ListModels).
const std::vector<std::string> kPlain = {"relu", "leaky_relu", "prelu",     "rrelu",
                                         "elu",  "sigmoid",    "tanh",      "gelu",
                                         "gelu_tanh", "silu",  "quick_gelu"};
const std::vector<std::string> kGated = {"glu", "swiglu", "geglu", "geglu_tanh", "reglu"};

std::vector<v1::ModelInfo> FakeModels() {
  return {FakeModel("ffn-768", v1::PLAIN, kPlain), FakeModel("glu-768", v1::GATED, kGated),
          FakeModel("tiny", v1::PLAIN, {"gelu", "relu"})};
}

std::vector<std::string> Names(const std::vector<VariantSpec>& variants) {
  std::vector<std::string> names;
  for (const VariantSpec& v : variants) names.push_back(v.Name());
  return names;
}

TEST(SelectVariantsTest, AllIsEveryModelTimesEveryAcceptedActivation) {
  auto variants = SelectVariants("all", FakeModels());
  ASSERT_TRUE(variants.ok()) << variants.status();
  ASSERT_EQ(variants->size(), kPlain.size() + kGated.size() + 2);
  EXPECT_EQ((*variants)[0], (VariantSpec{"ffn-768", "relu"}));
  EXPECT_EQ((*variants)[kPlain.size()], (VariantSpec{"glu-768", "glu"}));
  EXPECT_EQ(variants->back(), (VariantSpec{"tiny", "relu"}));
}

TEST(SelectVariantsTest, ActivationMatchesEveryModelThatAcceptsIt) {
  auto variants = SelectVariants("gelu", FakeModels());
  ASSERT_TRUE(variants.ok()) << variants.status();
  EXPECT_EQ(Names(*variants), (std::vector<std::string>{"ffn-768/gelu", "tiny/gelu"}));

  auto gated = SelectVariants("swiglu", FakeModels());
  ASSERT_TRUE(gated.ok()) << gated.status();
  EXPECT_EQ(Names(*gated), (std::vector<std::string>{"glu-768/swiglu"}));
}

TEST(SelectVariantsTest, ModelColonActivationIsOnePair) {
  auto variants = SelectVariants("glu-768:swiglu", FakeModels());
  ASSERT_TRUE(variants.ok()) << variants.status();
  EXPECT_EQ(Names(*variants), (std::vector<std::string>{"glu-768/swiglu"}));
}

TEST(SelectVariantsTest, ModelNameIsAllItsActivations) {
  auto variants = SelectVariants("glu-768", FakeModels());
  ASSERT_TRUE(variants.ok()) << variants.status();
  EXPECT_EQ(Names(*variants),
            (std::vector<std::string>{"glu-768/glu", "glu-768/swiglu", "glu-768/geglu",
                                      "glu-768/geglu_tanh", "glu-768/reglu"}));
}

TEST(SelectVariantsTest, ListKeepsOrderAndDropsRepeats) {
  auto variants = SelectVariants("tiny:relu, gelu,glu-768:reglu,ffn-768:gelu", FakeModels());
  ASSERT_TRUE(variants.ok()) << variants.status();
  EXPECT_EQ(Names(*variants),
            (std::vector<std::string>{"tiny/relu", "ffn-768/gelu", "tiny/gelu", "glu-768/reglu"}));
}

TEST(SelectVariantsTest, UnknownOrInvalidEntriesAreErrors) {
  for (const std::string spec : {"nope", "nope:gelu", "glu-768:gelu", "ffn-768:swiglu",
                                 "gelu,,relu", "", "ALL", "ffn-768:"}) {
    auto variants = SelectVariants(spec, FakeModels());
    EXPECT_EQ(variants.status().code(), absl::StatusCode::kInvalidArgument) << "spec: " << spec;
  }
  auto unknown = SelectVariants("nope", FakeModels());
  EXPECT_NE(unknown.status().message().find("glu-768 (glu, swiglu, geglu, geglu_tanh, reglu)"),
            absl::string_view::npos)
      << unknown.status();
}

TEST(SelectVariantsTest, NoModelsIsAnError) {
  EXPECT_EQ(SelectVariants("all", {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SelectWeightedVariantsTest, WeightsApplyToEveryVariantAnEntryNames) {
  auto mix = SelectWeightedVariants("relu=3, glu-768:swiglu, tiny:gelu=2", FakeModels());
  ASSERT_TRUE(mix.ok()) << mix.status();
  ASSERT_EQ(mix->size(), 4u);
  EXPECT_EQ((*mix)[0].variant, (VariantSpec{"ffn-768", "relu"}));
  EXPECT_EQ((*mix)[0].weight, 3u);
  EXPECT_EQ((*mix)[1].variant, (VariantSpec{"tiny", "relu"}));
  EXPECT_EQ((*mix)[1].weight, 3u);
  EXPECT_EQ((*mix)[2].variant, (VariantSpec{"glu-768", "swiglu"}));
  EXPECT_EQ((*mix)[2].weight, 1u);
  EXPECT_EQ((*mix)[3].weight, 2u);
}

TEST(SelectWeightedVariantsTest, AllTakesAWeightAndRepeatsAddUp) {
  auto mix = SelectWeightedVariants("all=2,tiny:gelu=5", FakeModels());
  ASSERT_TRUE(mix.ok()) << mix.status();
  ASSERT_EQ(mix->size(), kPlain.size() + kGated.size() + 2);
  for (const WeightedVariant& w : *mix) {
    const bool boosted = w.variant == VariantSpec{"tiny", "gelu"};
    EXPECT_EQ(w.weight, boosted ? 7u : 2u) << w.variant.Name();
  }
}

TEST(SelectWeightedVariantsTest, RejectsBadWeightsAndNames) {
  for (const char* spec : {"relu=0", "relu=-1", "relu=x", "relu=1.5", "relu=", "relu=10001",
                           "nope=2", "=3", "relu,,gelu"}) {
    EXPECT_EQ(SelectWeightedVariants(spec, FakeModels()).status().code(),
              absl::StatusCode::kInvalidArgument)
        << spec;
  }
}

}  // namespace
}  // namespace ffn::client
