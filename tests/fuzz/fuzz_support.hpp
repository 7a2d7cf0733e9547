// Shared by the libFuzzer targets. Each target feeds the fuzzer's bytes to one parser: a robustxlt::Error is
// the expected answer to bad input and is swallowed; any other exception escapes and terminates the process,
// which libFuzzer reports as a crash, as it does sanitizer reports and leaks. FUZZ_CHECK turns a broken
// invariant on accepted input (a round trip that changes the data, an index out of range) into a crash too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "robustxlt/core/error.hpp"

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

namespace robustxlt_fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Runs fn(); returns true when it completed, false when it threw a robustxlt::Error.
template <class Fn>
bool accepts(Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const robustxlt::Error&) {
    return false;
  }
}

}  // namespace robustxlt_fuzz
