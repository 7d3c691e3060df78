// Choosing the (model, activation) pairs a load test sends.
//
//   "all"                    every model × every activation it accepts
//   "gelu"                   gelu on every model that accepts it
//   "glu-768:swiglu"         one pair
//   "ffn-768"                every activation of that model
//   "gelu,glu-768:swiglu"    a comma-separated list of the above
//
// Example:
//   std::vector<ffn::v1::ModelInfo> models;  // from ListModels
//   ASSIGN_OR_RETURN(auto variants, ffn::client::SelectVariants("gelu,glu-768", models));
//   ASSIGN_OR_RETURN(auto mix, ffn::client::SelectWeightedVariants("gelu=3,glu-768", models));
#ifndef FFN_CLIENT_VARIANTS_H_
#define FFN_CLIENT_VARIANTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ffn/v1/ffn.pb.h"

namespace ffn::client {

struct VariantSpec {
  std::string model;
  std::string activation;

  // "model/activation", as reports print it; "model" when the activation is
  // left to the server (--protocol v2 names a model, or MODEL:ACTIVATION).
  std::string Name() const { return activation.empty() ? model : model + "/" + activation; }
  bool operator==(const VariantSpec&) const = default;
};

// The variants `spec` names among `models` (as ListModels reports them), in
// the order of the list and, within an entry, of `models` and their
// activations; a pair named twice appears once. An entry is a model name
// before an activation name if it is both.
// INVALID_ARGUMENT for an empty spec or entry, an unknown model or
// activation, or a pair the model does not accept; the message lists what
// the server offers.
absl::StatusOr<std::vector<VariantSpec>> SelectVariants(const std::string& spec,
                                                        const std::vector<v1::ModelInfo>& models);

// A variant and its share of a load test's calls.
struct WeightedVariant {
  VariantSpec variant;
  uint64_t weight = 1;
};

// SelectVariants with weights: any entry (including "all") may end in "=W",
// a positive integer weight (default 1) given to every variant the entry
// names. "relu=3,gelu" sends relu three times as often as gelu on each
// model. A pair named by several entries gets the sum of their weights.
// INVALID_ARGUMENT as SelectVariants, or for a weight that is not a positive
// integer up to 10000.
absl::StatusOr<std::vector<WeightedVariant>> SelectWeightedVariants(
    const std::string& spec, const std::vector<v1::ModelInfo>& models);

}  // namespace ffn::client

#endif  // FFN_CLIENT_VARIANTS_H_
