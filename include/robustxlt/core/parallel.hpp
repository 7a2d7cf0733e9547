#pragma once
// Thread-count setting shared by our own loops and by Eigen's GEMM. Work is split statically, and every
// parallel loop writes disjoint outputs, so results are bitwise identical for a given seed and thread count.

#include <Eigen/Core>
#include <atomic>
#include <cstddef>

#include "robustxlt/core/error.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace robustxlt {

namespace detail {
inline std::atomic<int>& thread_setting() {
  static std::atomic<int> n{1};
  return n;
}
}  // namespace detail

// Sets the number of threads used by robustxlt kernels and Eigen products (process-wide, like
// torch.set_num_threads). Throws InvalidArgument when n < 1. Without OpenMP everything runs on one thread.
inline void set_num_threads(int n) {
  if (n < 1) detail::fail("set_num_threads: n must be >= 1, got ", n);
  detail::thread_setting() = n;
  Eigen::setNbThreads(n);
}

// The current thread setting (1 by default).
inline int num_threads() noexcept { return detail::thread_setting().load(); }

// Calls fn(i) for i in [begin, end) with a static split over num_threads() threads. fn must only write
// state owned by index i. Runs serially inside an enclosing parallel region.
template <class Fn>
void parallel_for(std::ptrdiff_t begin, std::ptrdiff_t end, Fn&& fn) {
#if defined(_OPENMP)
  const int threads = num_threads();
  if (threads > 1 && end - begin > 1 && !omp_in_parallel()) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::ptrdiff_t i = begin; i < end; ++i) fn(i);
    return;
  }
#endif
  for (std::ptrdiff_t i = begin; i < end; ++i) fn(i);
}

}  // namespace robustxlt
