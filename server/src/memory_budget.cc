#include "ffn/server/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace ffn {

MemoryBudget::Reservation& MemoryBudget::Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    Release();
    budget_ = other.budget_;
    bytes_ = other.bytes_;
    other.budget_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

void MemoryBudget::Reservation::Release() {
  if (budget_ != nullptr) budget_->held_bytes_.fetch_sub(bytes_, std::memory_order_relaxed);
  budget_ = nullptr;
  bytes_ = 0;
}

absl::StatusOr<MemoryBudget::Reservation> MemoryBudget::Reserve(int64_t bytes) {
  int64_t held = held_bytes_.load(std::memory_order_relaxed);
  do {
    if (bytes > capacity_bytes_ - held) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the server holds ", held, " bytes for requests in flight; this one needs ", bytes,
          " more and the budget (max_inflight_bytes) is ", capacity_bytes_, "; retry later"));
    }
  } while (!held_bytes_.compare_exchange_weak(held, held + bytes, std::memory_order_relaxed));
  granted_.fetch_add(1, std::memory_order_relaxed);
  return Reservation(this, bytes);
}

uint64_t AvailableMemoryBytes() {
  uint64_t available = static_cast<uint64_t>(sysconf(_SC_AVPHYS_PAGES)) *
                       static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::ifstream meminfo("/proc/meminfo");
  for (std::string key; meminfo >> key;) {
    uint64_t kib = 0;
    if (key == "MemAvailable:" && meminfo >> kib) available = kib << 10;
    meminfo.ignore(1 << 10, '\n');
  }
  uint64_t limit = 0, used = 0;
  if ((std::ifstream("/sys/fs/cgroup/memory.max") >> limit) &&
      (std::ifstream("/sys/fs/cgroup/memory.current") >> used) && limit > used) {
    available = std::min(available, limit - used);
  }
  return available;
}

int64_t DefaultInflightBytes() {
  return std::max<int64_t>(int64_t{64} << 20, static_cast<int64_t>(AvailableMemoryBytes() / 4));
}

}  // namespace ffn
