// doctest main shared by the test executables: exits 77 (ctest's SKIP_RETURN_CODE) instead of 0 when a
// test that needs PyTorch fixtures found none, so a missing PyTorch reads "skipped", never "passed".
#pragma once
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

namespace robustxlt_test {
inline bool parity_skipped = false;
}  // namespace robustxlt_test

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int rc = context.run();
  if (context.shouldExit() || rc != 0) return rc;
  return robustxlt_test::parity_skipped ? 77 : 0;
}
