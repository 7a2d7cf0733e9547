// Shared by the test executables: a doctest main that exits 77 (ctest's SKIP_RETURN_CODE) instead of 0 when
// a test that needs reference data (PyTorch or SciPy fixtures, converted lexicons) found none, so a missing
// package reads "skipped", never "passed"; and the error measure the reference comparisons use.
#pragma once
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace robustxlt_test {
inline bool parity_skipped = false;

// max_i |a_i - b_i| / max_i |b_i| (the absolute difference when b is all zeros); a and b expose data() and size().
template <class A, class B>
double max_relative(const A& a, const B& b) {
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
