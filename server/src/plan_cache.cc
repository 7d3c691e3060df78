#include "ffn/server/plan_cache.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "ffn/kernels/epilogue.h"
#include "nlohmann/json.hpp"

namespace ffn {
namespace {

constexpr char kFormat[] = "ffnserve plan cache 1";

// The CPU's model name from /proc/cpuinfo ("unknown" where there is none).
std::string CpuModel() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

}  // namespace

std::string PlanKey(const FfnWeights& weights, int threads,
                    int64_t max_batch_tokens) {
  static const std::string cpu = CpuModel();
  return absl::StrCat("cpu=", cpu, "; kernels=", IsaName(ActiveIsa()), "; onednn=",
                      OneDnnVersion(), "; threads=", threads, "; ",
                      weights.kind == FfnKind::kGated ? "gated " : "plain ", weights.d_model, "x",
                      weights.d_ff, weights.kind == FfnKind::kPlain && weights.has_bias ? " bias" : "",
                      " norm=", NormName(weights.norm), " residual=", weights.residual ? 1 : 0,
                      "; max_batch=", max_batch_tokens);
}

absl::StatusOr<PlanCache> PlanCache::Load(const std::string& path) {
  PlanCache cache;
  cache.path_ = path;
  std::error_code missing;
  if (!std::filesystem::exists(path, missing)) return cache;  // tuned plans will make it
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan cache ", path, ": cannot read: ", std::strerror(errno)));
  }
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan cache ", path, ": ", why, " (delete the file to tune again)"));
  };
  const nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return bad("not JSON");
  if (doc.value("format", "") != kFormat) return bad(absl::StrCat("not '", kFormat, "'"));
  const auto plans = doc.find("plans");
  if (plans == doc.end() || !plans->is_object()) return bad("no 'plans' object");
  for (const auto& [key, entry] : plans->items()) {
    TuneResult tuned;
    if (!entry.is_array()) return bad(absl::StrCat("plan '", key, "' is not a list"));
    for (const nlohmann::json& p : entry) {
      const std::optional<DataType> dtype = ParseDataType(p.value("dtype", ""));
      const std::optional<Strategy> chosen = ParseStrategy(p.value("strategy", ""));
      const int64_t m = p.value("m", int64_t{0});
      if (!dtype || !chosen || m <= 0 ||
          (*chosen != Strategy::kUnfused && *chosen != Strategy::kFused)) {
        return bad(absl::StrCat("plan '", key, "' has a bad probe: ", p.dump()));
      }
      tuned.probes.push_back({*dtype, m,
                              {p.value("unfused_ms", -1.0), -1, p.value("fused_ms", -1.0)},
                              *chosen});
    }
    cache.plans_[key] = std::move(tuned);
  }
  return cache;
}

std::optional<TuneResult> PlanCache::Find(const std::string& key) const {
  auto it = plans_.find(key);
  if (it == plans_.end()) return std::nullopt;
  return it->second;
}

void PlanCache::Put(const std::string& key, const TuneResult& tuned) {
  plans_[key] = tuned;
  changed_ = true;
}

absl::Status PlanCache::Save() const {
  nlohmann::json plans = nlohmann::json::object();
  for (const auto& [key, tuned] : plans_) {
    nlohmann::json probes = nlohmann::json::array();
    for (const TuneResult::Probe& p : tuned.probes) {
      probes.push_back({{"dtype", DataTypeName(p.compute)},
                        {"m", p.m},
                        {"strategy", StrategyName(p.chosen)},
                        {"unfused_ms", p.ms[0]},
                        {"fused_ms", p.ms[2]}});
    }
    plans[key] = std::move(probes);
  }
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << nlohmann::json{{"format", kFormat}, {"plans", plans}}.dump(2) << "\n";
    if (!out) {
      return absl::InternalError(absl::StrCat("plan cache ", tmp, ": cannot write: ",
                                              std::strerror(errno)));
    }
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("plan cache ", path_, ": cannot replace: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace ffn
