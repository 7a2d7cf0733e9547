#pragma once
// Small helpers the example programs share: the predicted class of a logits row and a wall-clock stopwatch.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <robustxlt/core.hpp>

namespace examples {

// The class with the largest logit in row b of z [B, C]; ties go to the lowest class.
inline std::int64_t argmax_row(const robustxlt::Tensor<float, 2>& z, std::size_t b) {
  std::size_t best = 0;
  for (std::size_t c = 1; c < z.shape()[1]; ++c)
    if (z(b, c) > z(b, best)) best = c;
  return static_cast<std::int64_t>(best);
}

// Seconds of wall-clock time since construction.
class Stopwatch {
 public:
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace examples
