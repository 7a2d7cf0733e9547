// Shared by the test executables: a doctest main that exits 77 (ctest's SKIP_RETURN_CODE) instead of 0 when
// a test that needs reference data (PyTorch or SciPy fixtures, converted lexicons) found none, so a missing
// package reads "skipped", never "passed"; the error measure the reference comparisons use; and the skip
// decorator of tests that compare thread counts.
#pragma once
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace robustxlt_test {
inline bool parity_skipped = false;

// Without OpenMP every thread count runs on one thread, so a test comparing 1 and 2 threads could not fail:
// such tests are declared TEST_CASE("..." * robustxlt_test::needs_threads()) and doctest reports them
// skipped.
#if defined(_OPENMP)
inline constexpr bool openmp = true;
#else
inline constexpr bool openmp = false;
#endif
inline auto needs_threads() { return doctest::skip(!openmp); }

namespace detail {
template <class T, class = void>
struct has_shape : std::false_type {};
template <class T>
struct has_shape<T, std::void_t<decltype(std::declval<const T&>().shape())>> : std::true_type {};

template <class A>
std::vector<std::size_t> shape_of(const A& a) {
  if constexpr (has_shape<A>::value) return std::vector<std::size_t>(a.shape().begin(), a.shape().end());
  else return {a.size()};
}
inline std::string shape_text(const std::vector<std::size_t>& s) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  return os.str() + ']';
}
}  // namespace detail

// max_i |a_i - b_i| / max_i |b_i| (the absolute difference when b is all zeros); a and b expose data() and
// size(). Throws std::invalid_argument when the shapes differ (tensors by shape(), flat buffers by size()),
// so a wrongly shaped result never compares as a prefix of the reference.
template <class A, class B>
double max_relative(const A& a, const B& b) {
  const auto sa = detail::shape_of(a), sb = detail::shape_of(b);
  const bool same = (detail::has_shape<A>::value && detail::has_shape<B>::value) ? sa == sb : a.size() == b.size();
  if (!same)
    throw std::invalid_argument("max_relative: shapes differ, " + detail::shape_text(sa) + " against " + detail::shape_text(sb));
  double d = 0, m = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    d = std::max(d, std::abs(double(a.data()[i]) - double(b.data()[i])));
    m = std::max(m, std::abs(double(b.data()[i])));
  }
  return m == 0 ? d : d / m;
}
}  // namespace robustxlt_test

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int rc = context.run();
  if (context.shouldExit() || rc != 0) return rc;
  return robustxlt_test::parity_skipped ? 77 : 0;
}
