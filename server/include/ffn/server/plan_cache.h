// A file of tuned engine plans (server.plan_cache, --plan-cache), so that a
// restart neither re-tunes nor changes its plan. Each plan is stored under a
// key naming everything it depends on (PlanKey): the CPU, the kernels' ISA,
// oneDNN's version and ISA, the threads of an executor, the model's shape and
// its largest batch. A model whose key is not in the file is tuned and added.
//
// Example:
//   ASSIGN_OR_RETURN(ffn::PlanCache cache, ffn::PlanCache::Load("/var/cache/ffn/plans.json"));
//   ffn::TuneResult tuned;  // from FfnBlock::Tune
//   cache.Put("some key", tuned);
//   RETURN_IF_ERROR(cache.Save());
#ifndef FFN_SERVER_PLAN_CACHE_H_
#define FFN_SERVER_PLAN_CACHE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ffn/kernels/ffn_block.h"

namespace ffn {

class PlanCache {
 public:
  // Reads `path`. A missing file is an empty cache; one that is not a plan
  // cache (bad JSON, another format, a bad entry) is INVALID_ARGUMENT naming
  // the file, so a mistyped path never silently re-tunes.
  static absl::StatusOr<PlanCache> Load(const std::string& path);

  // The plan stored under `key`, if any.
  std::optional<TuneResult> Find(const std::string& key) const;
  // Stores `tuned` under `key` (replacing what was there).
  void Put(const std::string& key, const TuneResult& tuned);
  // True once Put has been called since Load.
  bool changed() const { return changed_; }
  // Writes the file whole: to a temporary file beside it, then renamed over it.
  absl::Status Save() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::map<std::string, TuneResult> plans_;
  bool changed_ = false;
};

// The key of a model's plan: "cpu=...; kernels=...; onednn=...; threads=N;
// plain 768x3072 bias norm=none residual=0; max_batch=512". Models of one
// shape share a plan.
std::string PlanKey(const FfnWeights& weights, int threads, int64_t max_batch_tokens);

}  // namespace ffn

#endif  // FFN_SERVER_PLAN_CACHE_H_
