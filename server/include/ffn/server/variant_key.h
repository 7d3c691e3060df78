// What the statistics and the metrics record about a request: the variant
// it ran as, and how long it took. Shared by both, so neither includes the
// other's header for it.
//
// Example:
//   ffn::VariantKey variant{"glu-768", "swiglu", ffn::DataType::kBf16};
//   ffn::RequestTimings timings;
//   timings.total_ns = timings.queue_ns + timings.compute_ns;
#ifndef FFN_SERVER_VARIANT_KEY_H_
#define FFN_SERVER_VARIANT_KEY_H_

#include <compare>
#include <cstdint>
#include <string>

#include "ffn/kernels/dtype.h"

namespace ffn {

// A variant is (model, activation, compute dtype); each has its own queue,
// counters and metrics labels.
struct VariantKey {
  std::string model;
  std::string activation;  // ActivationName
  DataType dtype = DataType::kF32;
  auto operator<=>(const VariantKey&) const = default;
};

// Server-side timings of one request, and the batch it ran in.
struct RequestTimings {
  int64_t queue_ns = 0;    // arrival → its batch started computing
  int64_t compute_ns = 0;  // the batch's engine call
  int64_t total_ns = 0;    // arrival → its output was written
  int64_t batch_tokens = 0;
};

}  // namespace ffn

#endif  // FFN_SERVER_VARIANT_KEY_H_
