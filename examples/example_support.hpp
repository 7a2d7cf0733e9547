#pragma once
// Small helpers the example programs share: a wall-clock stopwatch. (The predicted class of a logits row is
// the library's nn::predictions.)
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <robustxlt/core.hpp>

namespace examples {

// Seconds of wall-clock time since construction.
class Stopwatch {
 public:
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace examples
