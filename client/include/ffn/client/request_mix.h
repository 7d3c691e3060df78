// What each call of a load test carries: how many tokens (a distribution) and
// which variant (a weighted round robin). Both are pure functions of the
// call's number, so any thread can deal call n without locks and a run is
// reproducible from its seed.
//
// Example:
//   const uint64_t seed = 1, n = 0;  // the run's seed and the call's number
//   ASSIGN_OR_RETURN(ffn::client::TokenDistribution tokens,
//                    ffn::client::TokenDistribution::Parse("1-8=70,64=30"));
//   int64_t rows = tokens.Sample(ffn::client::MixBits(seed, n));
//   ffn::client::WeightedCycle cycle({3, 1});  // 0 0 1 0 0 0 1 0 ...: index 0 three times as often
//   size_t variant = cycle.At(n);
#ifndef FFN_CLIENT_REQUEST_MIX_H_
#define FFN_CLIENT_REQUEST_MIX_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ffn::client {

// A distribution of tokens per request.
class TokenDistribution {
 public:
  // Parses a spec:
  //   "16"               every request has 16 tokens
  //   "1-64"             uniform over the integers 1..64
  //   "1=50,16=30,64=20" a comma list of values or ranges, each with an
  //   "1-8=3,512"        optional integer weight (default 1)
  // INVALID_ARGUMENT for an empty spec or entry, a value below 1, a range
  // whose low end exceeds its high end, or a weight that is not a positive
  // integer (or weights summing above 2^40).
  static absl::StatusOr<TokenDistribution> Parse(const std::string& spec);
  // Every request `tokens` tokens (tokens >= 1).
  static TokenDistribution Fixed(int64_t tokens);

  // A sample, given 64 uniformly random bits (see MixBits).
  int64_t Sample(uint64_t random_bits) const;
  int64_t Min() const;
  int64_t Max() const;
  // The exact expected tokens per request.
  double Mean() const;
  // The spec it was parsed from ("16" for Fixed(16)).
  const std::string& spec() const { return spec_; }

 private:
  struct Entry {
    int64_t low = 1;
    int64_t high = 1;  // inclusive
    uint64_t weight = 1;
  };
  std::vector<Entry> entries_;
  uint64_t total_weight_ = 0;
  std::string spec_;
};

// A weighted round robin: over one cycle, index i appears weights[i] times,
// interleaved as evenly as nginx's smooth weighted round robin does (weights
// {5, 1, 1} deal 0 0 1 0 2 0 0, not 0 0 0 0 0 1 2).
class WeightedCycle {
 public:
  WeightedCycle() = default;
  // Requires at least one weight, each >= 1, summing to at most 1e6.
  explicit WeightedCycle(const std::vector<uint64_t>& weights);

  // The index dealt to the n-th call: cycle position n % size().
  size_t At(uint64_t n) const { return order_[n % order_.size()]; }
  // The cycle's length: the sum of the weights.
  size_t size() const { return order_.size(); }

 private:
  std::vector<uint32_t> order_;
};

// 64 well-mixed bits from (seed, n): SplitMix64 of their combination.
uint64_t MixBits(uint64_t seed, uint64_t n);

}  // namespace ffn::client

#endif  // FFN_CLIENT_REQUEST_MIX_H_
