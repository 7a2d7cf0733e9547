#pragma once
// Seeded random streams. A stream is keyed by (seed, stream, substream), e.g. (seed, example, copy), so
// draws depend only on the key: never on thread count or on the order in which work items run.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "robustxlt/core/detail/normal_math.hpp"
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

namespace detail {

// Eight xoshiro256+ generators stepped in SIMD registers (batches of 64-bit lanes: one batch on AVX-512, two
// on AVX2, four on SSE2; lane l is generator l on every instruction set). The 32 state words come from
// SplitMix64 over one key. xoshiro256+ is the member of the family meant for floating-point output: its
// sum scrambler costs one addition, and its weak bits are the lowest ones (the lowest three fail linearity
// tests), so callers use the upper 24 bits of each 32-bit half (bits 8-31 and 40-63) or the top 52.
class XoshiroLanes {
 public:
  using u64 = xsimd::batch<std::uint64_t>;
  static constexpr std::size_t lanes = 8;
  static constexpr std::size_t batches = lanes / u64::size;
  static_assert(lanes % u64::size == 0, "XoshiroLanes: the SIMD width must divide 8 lanes");

  explicit XoshiroLanes(std::uint64_t key) noexcept {
    alignas(64) std::uint64_t w[4][lanes];
    for (std::size_t l = 0; l < lanes; ++l)
      for (auto& row : w) row[l] = splitmix64(key);  // SplitMix64 is a bijection: no lane is all zero
    for (std::size_t b = 0; b < batches; ++b) {
      s0_[b] = u64::load_aligned(&w[0][b * u64::size]);
      s1_[b] = u64::load_aligned(&w[1][b * u64::size]);
      s2_[b] = u64::load_aligned(&w[2][b * u64::size]);
      s3_[b] = u64::load_aligned(&w[3][b * u64::size]);
    }
  }

  // The next output of the lanes of batch b (lanes b * u64::size onwards); the other batches do not move.
  u64 next(std::size_t b) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (u64::size == 8) {
      // The same step with AVX-512's three-input XOR (vpternlogq, truth table 0x96) and rotation: 7
      // instructions instead of 10.
      const __m512i s0 = s0_[b], s1 = s1_[b], s2 = s2_[b], s3 = s3_[b];
      s0_[b] = _mm512_ternarylogic_epi64(s0, s3, s1, 0x96);
      s1_[b] = _mm512_ternarylogic_epi64(s1, s2, s0, 0x96);
      s2_[b] = _mm512_ternarylogic_epi64(s2, s0, _mm512_slli_epi64(s1, 17), 0x96);
      s3_[b] = _mm512_rol_epi64(_mm512_xor_si512(s3, s1), 45);
      return _mm512_add_epi64(s0, s3);
    }
#endif
    const u64 out = s0_[b] + s3_[b];
    const u64 t = s1_[b] << 17;
    s2_[b] ^= s0_[b];
    s3_[b] ^= s1_[b];
    s1_[b] ^= s2_[b];
    s0_[b] ^= s3_[b];
    s2_[b] ^= t;
    s3_[b] = (s3_[b] << 45) | (s3_[b] >> 19);
    return out;
  }

 private:
  u64 s0_[batches], s1_[batches], s2_[batches], s3_[batches];
};

// Blocks of standard normals by the Box-Muller transform: every lane gives two outputs per block, a radius
// word and an angle word, and each pair (r cos t, r sin t) goes to value i of the block's first half and
// value i of its second half, r = sqrt(-2 ln u1). next(lanes, a, out) calls out(j, r, c, s) for each batch
// j, with radii r and points (c, s) of the circle of radius a (a = 1 gives the normals, other values scale
// them at no extra cost): the values r c belong at j * W of the first half and r s at j * W of the second.
template <class T>
struct NormalBlock;

// Float: both 32-bit halves of each output, 24 bits of each (32 values per block).
// - Radius: u1 = (k + 1) / 2^24 in (0, 1] for the 24-bit k in bits 8-31 of the radius word.
// - Angle: the point (cos t, sin t) for t = (pi/2) x in (-pi/4, pi/4), x = (2m + 1) / 2^23 - 1/2 for the
//   22-bit m in bits 8-29 of the angle word, moved to one of the four quarter turns by its top bits: bit 31
//   negates the cosine (t to pi - t) and then bit 30 swaps the coordinates (t to pi/2 - t). The four
//   images of (-pi/4, pi/4) tile the circle, so t is uniform over the 2^24 odd multiples of pi / 2^24.
//   x is exact: m goes into the mantissa of a float in (1, 2) with its lowest bit set, and 3/2 is subtracted.
template <>
struct NormalBlock<float> {
  static constexpr std::size_t half = 2 * XoshiroLanes::lanes, size = 2 * half, batches = XoshiroLanes::batches;
  static_assert(simd::width<float> * batches == half, "NormalBlock<float>: float batches must be twice 64-bit ones");

  template <class Out>
  static void next(XoshiroLanes& lanes, const simd::batch<float>& a, Out&& out) noexcept {
    using bu = xsimd::batch<std::uint32_t>;
    using bi = xsimd::batch<std::int32_t>;
    using bf = simd::batch<float>;
    for (std::size_t j = 0; j < batches; ++j) {
      const auto wr = xsimd::bitwise_cast<bu>(lanes.next(j));
      const auto wt = xsimd::bitwise_cast<bu>(lanes.next(j));
      const bf k1 = xsimd::batch_cast<float>(xsimd::bitwise_cast<bi>(wr >> 8) + bi(1));  // exact: k + 1 <= 2^24
      const bf r = xsimd::sqrt(simd::detail::neg2_log<24>(k1));
      const bf x = xsimd::bitwise_cast<bf>(((wt >> 7) & bu(0x007ffffeu)) | bu(0x3f800001u)) - bf(1.5f);
      const auto sc = simd::detail::sincos_half_pi(x, a);
      const bf c = sc.second ^ xsimd::bitwise_cast<bf>(wt & bu(0x80000000u));
      out(j, r, simd::detail::select_by_bit<30>(wt, sc.first, c), simd::detail::select_by_bit<30>(wt, c, sc.first));
    }
  }
};

// Double: one output per uniform, its top 52 bits (16 values per block), and xsimd's log and sincos.
template <>
struct NormalBlock<double> {
  static constexpr std::size_t half = XoshiroLanes::lanes, size = 2 * half, batches = XoshiroLanes::batches;
  static_assert(simd::width<double> * batches == half, "NormalBlock<double>: double and 64-bit batches must match");

  template <class Out>
  static void next(XoshiroLanes& lanes, const simd::batch<double>& a, Out&& out) noexcept {
    using bd = simd::batch<double>;
    const XoshiroLanes::u64 one(0x3ff0000000000000ULL);  // exponent of [1, 2): the top 52 bits become the mantissa
    for (std::size_t j = 0; j < batches; ++j) {
      const auto f1 = xsimd::bitwise_cast<bd>((lanes.next(j) >> 12) | one);
      const auto f2 = xsimd::bitwise_cast<bd>((lanes.next(j) >> 12) | one);
      const auto r = xsimd::sqrt(bd(-2.0) * xsimd::log(bd(2.0) - f1));  // u1 = 2 - f1 in (0, 1]
      const auto sc = xsimd::sincos(bd(6.283185307179586476925286766559) * (f2 - bd(1.0)));
      out(j, r, a * sc.second, a * sc.first);
    }
  }
};

}  // namespace detail

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

  // out[i] = scale (2 u_i - 1) for n uniforms u_i of this stream: uniform in [-scale, scale] (scale 1
  // gives 2 u - 1 exactly). The embedding noise of noise/ and the random starts of perturb/ draw with it.
  template <class T>
  void fill_symmetric_uniform(T* out, std::size_t n, T scale = T(1)) noexcept {
    for (std::size_t i = 0; i < n; ++i) out[i] = scale * (T(2) * uniform<T>() - T(1));
  }

  // The radius of a point uniform in the L2 ball of radius `radius` in `dims` dimensions, radius U^(1/dims)
  // from one uniform of this stream; the point is that radius along an independent Gaussian direction.
  double ball_radius(double radius, std::size_t dims) noexcept {
    return radius * std::pow(uniform<double>(), 1.0 / static_cast<double>(dims));
  }

  // Uniform integer in [0, n), without modulo bias (Lemire's multiply-shift with rejection). n > 0.
  std::uint64_t below(std::uint64_t n) noexcept {
    for (;;) {
      const u128 m = static_cast<u128>((*this)()) * n;
      const auto low = static_cast<std::uint64_t>(m);
      if (low >= n || low >= (0 - n) % n) return static_cast<std::uint64_t>(m >> 64);
    }
  }

  // Fills out[0..n) with standard normal draws. One 64-bit draw of this stream (none when n is 0) seeds
  // eight xoshiro256+ generators stepped together in SIMD registers (detail::XoshiroLanes); their
  // uniforms go through a vectorised Box-Muller transform in blocks of 32 floats or 16 doubles
  // (detail::NormalBlock), so the values depend only on the stream and n, not on the thread count, and
  // the first m values of a fill of n are those of a fill of m. Uniforms have 24 bits (float) or 52 bits
  // (double) and the radius uses u in (0, 1], so |z| <= sqrt(2 * 24 ln 2) = 5.77 for float and
  // sqrt(2 * 52 ln 2) = 8.49 for double (the normal probabilities beyond, 8e-9 and 2e-17, are never
  // drawn). Float uses the polynomial -2 ln x and sin/cos of core/detail/normal_math.hpp (within 2.5e-7
  // of the exact values), double the accurate xsimd log and sincos. The lanes, and so the uniforms, are
  // the same on every instruction set; the normals may differ there in the last bits (FMA against separate
  // multiply-add, and float's -2 ln u has a table path on AVX2 with FMA3 and on AVX-512 and a division path
  // elsewhere).
  template <class T>
  void fill_normal(T* out, std::size_t n) noexcept {
    for_each_normal_block<T>(
        n, T(1),
        [out](std::size_t ic, std::size_t is, const simd::batch<T>& r, const simd::batch<T>& c, const simd::batch<T>& s) {
          (r * c).store_unaligned(out + ic);
          (r * s).store_unaligned(out + is);
        },
        [out](std::size_t i, T z) { out[i] = z; });
  }

  // y[i] += a * z[i] for the normals z[0..n) that fill_normal(z, n) would write (same draws, no buffer;
  // a z[i] is computed as r (a cos t), rounded differently from a (r cos t), so sums may differ in the last
  // bit).
  template <class T>
  void add_normal(T a, T* y, std::size_t n) noexcept {
    for_each_normal_block<T>(
        n, a,
        [y](std::size_t ic, std::size_t is, const simd::batch<T>& r, const simd::batch<T>& c, const simd::batch<T>& s) {
          xsimd::fma(r, c, simd::batch<T>::load_unaligned(y + ic)).store_unaligned(y + ic);
          xsimd::fma(r, s, simd::batch<T>::load_unaligned(y + is)).store_unaligned(y + is);
        },
        [y, a](std::size_t i, T z) { y[i] += a * z; });
  }

  // One standard normal draw, for code that needs normals one at a time (test data, initialisation): the
  // trigonometric Box-Muller transform in double with std::log, std::sin and std::cos, two 64-bit
  // uniforms per pair, both values of a pair used before drawing again (the spare lives in the stream).
  // It is not the sequence fill_normal gives: fill_normal draws one key from the stream and generates whole
  // blocks in SIMD lanes with polynomial log and sin/cos, so normal() n times and fill_normal(out, n) give
  // different values (each exactly distributed up to rounding); mixing the two on one stream is allowed
  // and deterministic. Noise that must match across batch sizes uses fill_normal / add_normal.
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
  // Calls full(ic, is, r, c, s) for every batch of every complete block, where (c, s) lie on the circle of
  // radius a (the values r c belong at out[ic], r s at out[is]), and one(i, z) for each value z of a final
  // partial block (unscaled).
  template <class T, class Full, class One>
  void for_each_normal_block(std::size_t n, T a, Full&& full, One&& one) noexcept {
    using Block = detail::NormalBlock<T>;
    using B = simd::batch<T>;
    constexpr std::size_t W = simd::width<T>;
    if (n == 0) return;  // leaves the stream where it was
    detail::XoshiroLanes lanes((*this)());
    std::size_t i = 0;
    const B va(a);
    for (; i + Block::size <= n; i += Block::size)
      Block::next(lanes, va, [&full, i](std::size_t j, const B& r, const B& c, const B& s) {
        full(i + j * W, i + Block::half + j * W, r, c, s);
      });
    if (i == n) return;
    alignas(64) T tail[Block::size];
    Block::next(lanes, B(T(1)), [&tail](std::size_t j, const B& r, const B& c, const B& s) {
      (r * c).store_unaligned(tail + j * W);
      (r * s).store_unaligned(tail + Block::half + j * W);
    });
    for (std::size_t k = 0; i + k < n; ++k) one(i + k, tail[k]);
  }

  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4]{};
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// Where a batch sits in a run: sequence b of a [B, ...] batch is global example first_example + b, seen at
// training step `step`. Methods that draw per example (perturbers' random starts) key their streams by
// (seed, first_example + b, step), so a draw depends on neither the batch size, the thread or rank count,
// nor the order of processing. A training loop passes {index of its batch's first example, its step}.
struct BatchIndex {
  std::uint64_t first_example = 0;
  std::uint64_t step = 0;
};

// The stream keyed by (seed, example, step, position), e.g. token t of one example at one step.
inline Rng keyed_stream(std::uint64_t seed, std::uint64_t example, std::uint64_t step, std::uint64_t position) noexcept {
  Rng head(seed, example, step);
  return Rng(head(), position);
}

}  // namespace robustxlt
