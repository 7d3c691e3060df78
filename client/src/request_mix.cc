#include "ffn/client/request_mix.h"

#include <algorithm>
#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ffn::client {
namespace {

constexpr uint64_t kMaxTotalWeight = uint64_t{1} << 40;

// A whole positive number, all of `text`.
bool ParsePositive(absl::string_view text, uint64_t& out) {
  text = absl::StripAsciiWhitespace(text);
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end && out >= 1;
}

absl::Status Invalid(const std::string& spec, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("tokens '", spec, "': ", why));
}

}  // namespace

absl::StatusOr<TokenDistribution> TokenDistribution::Parse(const std::string& spec) {
  TokenDistribution d;
  d.spec_ = spec;
  if (absl::StripAsciiWhitespace(spec).empty()) return Invalid(spec, "empty");
  for (absl::string_view entry : absl::StrSplit(spec, ',')) {
    entry = absl::StripAsciiWhitespace(entry);
    if (entry.empty()) return Invalid(spec, "empty entry");
    Entry e;
    const size_t equals = entry.rfind('=');
    if (equals != absl::string_view::npos) {
      if (!ParsePositive(entry.substr(equals + 1), e.weight)) {
        return Invalid(
            spec, absl::StrCat("weight of '", std::string(entry), "' is not a positive integer"));
      }
      entry = entry.substr(0, equals);
    }
    const size_t dash = entry.find('-');
    uint64_t low = 0, high = 0;
    const bool ok = dash == absl::string_view::npos
                        ? ParsePositive(entry, low) && (high = low, true)
                        : ParsePositive(entry.substr(0, dash), low) &&
                              ParsePositive(entry.substr(dash + 1), high);
    if (!ok || low > high || high > static_cast<uint64_t>(INT64_MAX)) {
      return Invalid(spec, absl::StrCat("'", std::string(entry),
                                        "' is not N or LOW-HIGH with 1 <= LOW <= HIGH"));
    }
    e.low = static_cast<int64_t>(low);
    e.high = static_cast<int64_t>(high);
    d.total_weight_ += e.weight;
    if (e.weight > kMaxTotalWeight || d.total_weight_ > kMaxTotalWeight) {
      return Invalid(spec, "weights sum above 2^40");
    }
    d.entries_.push_back(e);
  }
  return d;
}

TokenDistribution TokenDistribution::Fixed(int64_t tokens) {
  TokenDistribution d;
  d.entries_.push_back({tokens, tokens, 1});
  d.total_weight_ = 1;
  d.spec_ = absl::StrCat(tokens);
  return d;
}

int64_t TokenDistribution::Sample(uint64_t random_bits) const {
  // The low bits pick the entry, the rest the value within it: independent
  // enough for load generation, and bias-free when the sizes are powers of 2.
  uint64_t pick = random_bits % total_weight_;
  const uint64_t rest = random_bits / total_weight_;
  for (const Entry& e : entries_) {
    if (pick < e.weight) {
      const uint64_t width = static_cast<uint64_t>(e.high - e.low) + 1;
      return e.low + static_cast<int64_t>(width == 0 ? rest : rest % width);
    }
    pick -= e.weight;
  }
  return entries_.back().high;
}

int64_t TokenDistribution::Min() const {
  int64_t min = INT64_MAX;
  for (const Entry& e : entries_) min = std::min(min, e.low);
  return min;
}

int64_t TokenDistribution::Max() const {
  int64_t max = 0;
  for (const Entry& e : entries_) max = std::max(max, e.high);
  return max;
}

double TokenDistribution::Mean() const {
  double sum = 0;
  for (const Entry& e : entries_) {
    sum += static_cast<double>(e.weight) *
           (static_cast<double>(e.low) + static_cast<double>(e.high)) / 2;
  }
  return sum / static_cast<double>(total_weight_);
}

WeightedCycle::WeightedCycle(const std::vector<uint64_t>& weights) {
  uint64_t total = 0;
  for (uint64_t w : weights) total += w;
  // Smooth weighted round robin: each turn every index gains its weight, the
  // richest is dealt and pays the total.
  std::vector<int64_t> current(weights.size(), 0);
  order_.reserve(total);
  for (uint64_t turn = 0; turn < total; ++turn) {
    size_t best = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      current[i] += static_cast<int64_t>(weights[i]);
      if (current[i] > current[best]) best = i;
    }
    current[best] -= static_cast<int64_t>(total);
    order_.push_back(static_cast<uint32_t>(best));
  }
}

uint64_t MixBits(uint64_t seed, uint64_t n) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + n + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace ffn::client
