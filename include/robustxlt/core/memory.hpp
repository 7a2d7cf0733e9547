#pragma once
// The memory budget: a process-wide cap on the bytes one library call may allocate for a batch (the
// transformer's parameters, its forward activations, its backward scratch). Calls that know their needs in
// advance compare them with the budget first and throw MemoryBudgetError before allocating anything, so
// an oversized batch or a hostile checkpoint config fails with a message instead of an out-of-memory kill
// half-way through. It bounds single requests; it does not account for memory held across calls.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "robustxlt/core/error.hpp"

namespace robustxlt {

// 64 GiB (or the whole address space on 32-bit hosts): far above what the library needs for the models it
// targets, low enough that a size computed from garbage is caught.
inline constexpr std::size_t default_memory_budget =
    static_cast<std::size_t>(std::min<std::uint64_t>(std::uint64_t(64) << 30, std::numeric_limits<std::size_t>::max()));

namespace detail {
inline std::atomic<std::size_t>& memory_budget_setting() {
  static std::atomic<std::size_t> bytes{default_memory_budget};
  return bytes;
}

// a * b and a + b, saturating at SIZE_MAX, for size estimates computed from untrusted shapes.
constexpr std::size_t saturating_mul(std::size_t a, std::size_t b) noexcept {
  return (a != 0 && b > std::numeric_limits<std::size_t>::max() / a) ? std::numeric_limits<std::size_t>::max() : a * b;
}
constexpr std::size_t saturating_add(std::size_t a, std::size_t b) noexcept {
  return b > std::numeric_limits<std::size_t>::max() - a ? std::numeric_limits<std::size_t>::max() : a + b;
}
}  // namespace detail

// Sets the budget in bytes (process-wide). Throws InvalidArgument when bytes is 0.
inline void set_memory_budget(std::size_t bytes) {
  if (bytes == 0) detail::fail("set_memory_budget: bytes must be > 0, got 0");
  detail::memory_budget_setting() = bytes;
}

// The current budget in bytes (default_memory_budget unless set).
inline std::size_t memory_budget() noexcept { return detail::memory_budget_setting().load(); }

// Throws MemoryBudgetError "<where>: <what> needs <bytes> bytes, over the memory budget of <budget> bytes"
// when bytes exceeds the budget.
inline void check_memory_budget(const char* where, const std::string& what, std::size_t bytes) {
  const std::size_t budget = memory_budget();
  if (bytes > budget)
    detail::fail<MemoryBudgetError>(where, ": ", what, " needs ", bytes, " bytes, over the memory budget of ", budget,
                                    " bytes (robustxlt::set_memory_budget)");
}

// Sets the budget for the lifetime of the object and restores the previous one afterwards.
class MemoryBudgetScope {
 public:
  explicit MemoryBudgetScope(std::size_t bytes) : previous_(memory_budget()) { set_memory_budget(bytes); }
  ~MemoryBudgetScope() { detail::memory_budget_setting() = previous_; }
  MemoryBudgetScope(const MemoryBudgetScope&) = delete;
  MemoryBudgetScope& operator=(const MemoryBudgetScope&) = delete;

 private:
  std::size_t previous_;
};

}  // namespace robustxlt
