#pragma once
// Seeded random streams. A stream is keyed by (seed, stream, substream), e.g. (seed, example, copy), so
// draws depend only on the key: never on thread count or on the order in which work items run.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "robustxlt/core/simd.hpp"

namespace robustxlt {

// One step of SplitMix64: a bijective 64-bit mixer, used to derive well-spread states from keys.
constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  state += 0x9e3779b97f4a7c15ULL;
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// xoshiro256** generator whose state is derived from a key. Satisfies UniformRandomBitGenerator.
class Rng {
  __extension__ typedef unsigned __int128 u128;  // GCC/Clang extension; -Wpedantic-clean via __extension__

 public:
  using result_type = std::uint64_t;

  explicit Rng(std::uint64_t seed, std::uint64_t stream = 0, std::uint64_t substream = 0) noexcept {
    std::uint64_t k = seed;
    // Fold each key part through the mixer so that (s, a, b) and (s, b, a) give unrelated streams.
    std::uint64_t h = splitmix64(k);
    k = h ^ (stream * 0xd1b54a32d192ed03ULL);
    h = splitmix64(k);
    k = h ^ (substream * 0x8cb92ba72f3d8dd7ULL);
    for (auto& s : s_) s = splitmix64(k);
  }

  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }

  result_type operator()() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with the full mantissa of T (24 bits for float, 53 for double).
  template <class T>
  T uniform() noexcept {
    constexpr int bits = std::numeric_limits<T>::digits;
    return static_cast<T>((*this)() >> (64 - bits)) * (T(1) / static_cast<T>(std::uint64_t(1) << bits));
  }

  // Uniform integer in [0, n), without modulo bias (Lemire's multiply-shift with rejection). n > 0.
  std::uint64_t below(std::uint64_t n) noexcept {
    for (;;) {
      const u128 m = static_cast<u128>((*this)()) * n;
      const auto low = static_cast<std::uint64_t>(m);
      if (low >= n || low >= (0 - n) % n) return static_cast<std::uint64_t>(m >> 64);
    }
  }

  // Fills out[0..n) with standard normal draws: n uniforms, then a vectorised Box-Muller transform. Much
  // faster than n calls of normal(); the values differ from those calls but depend only on the stream.
  template <class T>
  void fill_normal(T* out, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) out[i] = T(1) - uniform<T>();  // (0, 1]: log stays finite
    const std::size_t done = simd::box_muller_inplace(n, out);
    for (std::size_t i = done; i < n; ++i) out[i] = normal<T>();
  }

  // Standard normal draw (Box-Muller; both values of a pair are used before drawing again).
  template <class T>
  T normal() noexcept {
    if (has_spare_) {
      has_spare_ = false;
      return static_cast<T>(spare_);
    }
    double u1;
    do u1 = uniform<double>(); while (u1 <= 0.0);
    const double u2 = uniform<double>();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double a = 6.283185307179586476925286766559 * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return static_cast<T>(r * std::cos(a));
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4]{};
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace robustxlt
