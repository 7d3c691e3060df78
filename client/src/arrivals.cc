#include "ffn/client/arrivals.h"

#include "absl/strings/str_cat.h"

namespace ffn::client {

absl::StatusOr<Arrival> ParseArrival(const std::string& name) {
  if (name == "constant") return Arrival::kConstant;
  if (name == "poisson") return Arrival::kPoisson;
  return absl::InvalidArgumentError(
      absl::StrCat("arrival '", name, "': must be constant or poisson"));
}

std::string ArrivalName(Arrival arrival) {
  return arrival == Arrival::kPoisson ? "poisson" : "constant";
}

ArrivalSchedule::ArrivalSchedule(double rate_per_second, Arrival arrival, uint64_t seed)
    : rate_(rate_per_second), arrival_(arrival), rng_(seed), gap_(rate_per_second) {}

double ArrivalSchedule::NextSeconds() {
  if (arrival_ == Arrival::kConstant) return static_cast<double>(count_++) / rate_;
  poisson_seconds_ += gap_(rng_);
  return poisson_seconds_;
}

}  // namespace ffn::client
