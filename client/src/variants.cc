#include "ffn/client/variants.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ffn::client {
namespace {

bool Accepts(const v1::ModelInfo& model, const std::string& activation) {
  const auto& accepted = model.activations();
  return std::find(accepted.begin(), accepted.end(), activation) != accepted.end();
}

const v1::ModelInfo* FindByName(const std::vector<v1::ModelInfo>& models, const std::string& name) {
  for (const v1::ModelInfo& model : models) {
    if (model.name() == name) return &model;
  }
  return nullptr;
}

// "models: a (x, y), b (z)", for error messages.
std::string Offered(const std::vector<v1::ModelInfo>& models) {
  std::vector<std::string> parts;
  for (const v1::ModelInfo& model : models) {
    parts.push_back(
        absl::StrCat(model.name(), " (", absl::StrJoin(model.activations(), ", "), ")"));
  }
  return absl::StrCat("the server has: ", absl::StrJoin(parts, "; "));
}

void AddAll(const v1::ModelInfo& model, std::vector<VariantSpec>& out) {
  for (const std::string& activation : model.activations())
    out.push_back({model.name(), activation});
}

// Appends the variants of one list entry.
absl::Status AddEntry(const std::string& entry, const std::vector<v1::ModelInfo>& models,
                      std::vector<VariantSpec>& out) {
  if (entry.empty()) return absl::InvalidArgumentError("empty entry in the variant list");
  const size_t colon = entry.find(':');
  if (colon != std::string::npos) {
    const std::string name = entry.substr(0, colon), activation = entry.substr(colon + 1);
    const v1::ModelInfo* model = FindByName(models, name);
    if (model == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("no model named '", name, "'; ", Offered(models)));
    }
    if (!Accepts(*model, activation)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", name, "' does not accept '", activation, "'; ", Offered(models)));
    }
    out.push_back({name, activation});
    return absl::OkStatus();
  }
  if (const v1::ModelInfo* model = FindByName(models, entry)) {
    AddAll(*model, out);
    return absl::OkStatus();
  }
  bool found = false;
  for (const v1::ModelInfo& model : models) {
    if (!Accepts(model, entry)) continue;
    out.push_back({model.name(), entry});
    found = true;
  }
  if (!found) {
    return absl::InvalidArgumentError(absl::StrCat("'", entry,
                                                   "' is neither a model nor an activation any "
                                                   "model accepts; ",
                                                   Offered(models)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<VariantSpec>> SelectVariants(const std::string& spec,
                                                        const std::vector<v1::ModelInfo>& models) {
  std::vector<VariantSpec> selected;
  if (spec == "all") {
    for (const v1::ModelInfo& model : models) AddAll(model, selected);
  } else {
    for (absl::string_view piece : absl::StrSplit(spec, ',')) {
      const std::string entry(absl::StripAsciiWhitespace(piece));
      if (auto s = AddEntry(entry, models, selected); !s.ok()) return s;
    }
  }
  std::vector<VariantSpec> unique;
  for (VariantSpec& v : selected) {
    if (std::find(unique.begin(), unique.end(), v) == unique.end()) unique.push_back(std::move(v));
  }
  if (unique.empty())
    return absl::InvalidArgumentError(absl::StrCat("no variants; ", Offered(models)));
  return unique;
}

absl::StatusOr<std::vector<WeightedVariant>> SelectWeightedVariants(
    const std::string& spec, const std::vector<v1::ModelInfo>& models) {
  constexpr uint64_t kMaxWeight = 10000;
  std::vector<WeightedVariant> out;
  for (absl::string_view piece : absl::StrSplit(spec, ',')) {
    std::string entry(absl::StripAsciiWhitespace(piece));
    uint64_t weight = 1;
    const size_t equals = entry.rfind('=');
    if (equals != std::string::npos) {
      const std::string text(absl::StripAsciiWhitespace(entry.substr(equals + 1)));
      if (!absl::SimpleAtoi(text, &weight) || weight < 1 || weight > kMaxWeight) {
        return absl::InvalidArgumentError(absl::StrCat(
            "variant entry '", entry, "': the weight must be an integer from 1 to ", kMaxWeight));
      }
      entry = std::string(absl::StripAsciiWhitespace(entry.substr(0, equals)));
    }
    auto selected = SelectVariants(entry, models);
    if (!selected.ok()) return selected.status();
    for (VariantSpec& v : *selected) {
      auto same = std::find_if(out.begin(), out.end(),
                               [&](const WeightedVariant& w) { return w.variant == v; });
      if (same != out.end()) {
        same->weight += weight;
      } else {
        out.push_back({std::move(v), weight});
      }
    }
  }
  return out;
}

}  // namespace ffn::client
