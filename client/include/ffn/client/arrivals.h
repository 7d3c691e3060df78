// When an open-loop load test means to send each call: a constant interval,
// or Poisson arrivals (exponential gaps) from a seeded generator.
//
// Example:
//   ffn::client::ArrivalSchedule schedule(/*rate_per_second=*/500,
//                                         ffn::client::Arrival::kPoisson, /*seed=*/1);
//   double first = schedule.NextSeconds();   // offsets from the start of the run
//   double second = schedule.NextSeconds();
#ifndef FFN_CLIENT_ARRIVALS_H_
#define FFN_CLIENT_ARRIVALS_H_

#include <cstdint>
#include <random>
#include <string>

#include "absl/status/statusor.h"

namespace ffn::client {

enum class Arrival { kConstant, kPoisson };

// "constant" or "poisson"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Arrival> ParseArrival(const std::string& name);
std::string ArrivalName(Arrival arrival);

class ArrivalSchedule {
 public:
  // Requires rate_per_second > 0.
  ArrivalSchedule(double rate_per_second, Arrival arrival, uint64_t seed);

  // The next intended send time, in seconds from the start of the run.
  // Constant: 0, 1/rate, 2/rate, ... computed as i/rate, so no error
  // accumulates. Poisson: the sum of independent exponential gaps of mean
  // 1/rate, the first gap included; the same seed gives the same times.
  double NextSeconds();

 private:
  double rate_;
  Arrival arrival_;
  uint64_t count_ = 0;
  double poisson_seconds_ = 0;
  std::mt19937_64 rng_;
  std::exponential_distribution<double> gap_;
};

}  // namespace ffn::client

#endif  // FFN_CLIENT_ARRIVALS_H_
