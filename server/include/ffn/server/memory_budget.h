// One bound on the bytes the server holds for requests: queued, computing,
// waiting in a stream's slots, or answered but not yet read by the client.
// Every Infer request reserves its share before it is queued; the
// reservation is released when its answer has been sent (or dropped).
//
// Example:
//   absl::Status Admit(ffn::MemoryBudget& budget, int64_t bytes,
//                      ffn::MemoryBudget::Reservation& held) {
//     absl::StatusOr<ffn::MemoryBudget::Reservation> r = budget.Reserve(bytes);
//     if (!r.ok()) return r.status();  // RESOURCE_EXHAUSTED: over the budget
//     held = std::move(*r);            // released when `held` is destroyed
//     return absl::OkStatus();
//   }
#ifndef FFN_SERVER_MEMORY_BUDGET_H_
#define FFN_SERVER_MEMORY_BUDGET_H_

#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"

namespace ffn {

class MemoryBudget {
 public:
  // Bytes held at once by all reservations: at most `capacity_bytes` (> 0).
  explicit MemoryBudget(int64_t capacity_bytes) : capacity_bytes_(capacity_bytes) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Bytes of the budget, given back on destruction or reassignment. Empty
  // when default-constructed or moved from.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& other) noexcept { *this = std::move(other); }
    Reservation& operator=(Reservation&& other) noexcept;
    ~Reservation() { Release(); }
    int64_t bytes() const { return bytes_; }

   private:
    friend class MemoryBudget;
    Reservation(MemoryBudget* budget, int64_t bytes) : budget_(budget), bytes_(bytes) {}
    void Release();

    MemoryBudget* budget_ = nullptr;
    int64_t bytes_ = 0;
  };

  // A reservation of `bytes`, or RESOURCE_EXHAUSTED (saying how much is
  // held and the capacity) when it would take the total past the capacity.
  // Never blocks.
  absl::StatusOr<Reservation> Reserve(int64_t bytes);

  int64_t held_bytes() const { return held_bytes_.load(std::memory_order_relaxed); }
  // Reservations granted since construction: it stands still while no
  // request arrives.
  int64_t granted() const { return granted_.load(std::memory_order_relaxed); }
  int64_t capacity_bytes() const { return capacity_bytes_; }

 private:
  const int64_t capacity_bytes_;
  std::atomic<int64_t> held_bytes_{0};
  std::atomic<int64_t> granted_{0};
};

// Bytes this process may still allocate: the kernel's MemAvailable, or what
// the cgroup (a container's memory limit) leaves, whichever is less.
uint64_t AvailableMemoryBytes();

// The default capacity: a quarter of the memory this process may still
// allocate (MemAvailable, or the cgroup's limit if lower), at least 64 MiB.
int64_t DefaultInflightBytes();

}  // namespace ffn

#endif  // FFN_SERVER_MEMORY_BUDGET_H_
