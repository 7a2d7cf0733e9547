// Tests of core/random.hpp and the float kernels of the normal generator (core/detail/normal_math.hpp:
// neg2_log, sincos_half_pi, select_by_bit). CMake builds this file once with the default flags and, where
// the compiler and the CPU allow, again for AVX2 + FMA and for AVX-512, because those instruction sets take
// other code paths (core/detail/arch/: table lookups by permute, blends); each build checks that it runs
// the path it was built for.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <robustxlt/core.hpp>
#include <vector>

using namespace robustxlt;

// ROBUSTXLT_TEST_ISA is 2 for the AVX2 build, 3 for the AVX-512 build, absent for the default one. A CPU
// without those instructions skips the build made for them (ctest's skip code 77) before running anything.
int main(int argc, char** argv) {
#if defined(ROBUSTXLT_TEST_ISA) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
#if ROBUSTXLT_TEST_ISA == 2
  const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("fma");
#endif
  if (!supported) {
    std::puts("skipped: this CPU lacks the instruction set this test binary was built for");
    return 77;
  }
#endif
  doctest::Context context(argc, argv);
  return context.run();
}

TEST_CASE("the build runs the code path of its instruction set") {
  INFO("float batch width ", simd::width<float>);
#if defined(ROBUSTXLT_TEST_ISA) && ROBUSTXLT_TEST_ISA == 2
  CHECK(simd::width<float> == 8);
  CHECK(simd::detail::neg2_log_has_permute);
#elif defined(ROBUSTXLT_TEST_ISA) && ROBUSTXLT_TEST_ISA == 3
  CHECK(simd::width<float> == 16);
  CHECK(simd::detail::neg2_log_has_permute);
#else
  // Tables need a permute and a fused multiply-add: AVX-512, or AVX2 with FMA3.
  const bool expect = simd::width<float> == 16 || (simd::width<float> == 8 && XSIMD_WITH_FMA3_AVX2);
  CHECK(simd::detail::neg2_log_has_permute == expect);
#endif
}

TEST_CASE("Rng: keyed streams are reproducible and distinct") {
  Rng a(7, 1, 2), b(7, 1, 2), c(7, 2, 1), d(8, 1, 2);
  std::vector<std::uint64_t> va, vb, vc, vd;
  for (int i = 0; i < 16; ++i) {
    va.push_back(a());
    vb.push_back(b());
    vc.push_back(c());
    vd.push_back(d());
  }
  CHECK(va == vb);
  CHECK(va != vc);
  CHECK(va != vd);
}

TEST_CASE("Rng: uniform, below and normal have the right moments") {
  Rng rng(123);
  const int n = 200000;
  double s = 0, s2 = 0, ns = 0, ns2 = 0;
  std::vector<int> counts(7, 0);
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform<double>();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    s += u;
    s2 += u * u;
    counts[rng.below(7)]++;
    const double z = rng.normal<double>();
    ns += z;
    ns2 += z * z;
  }
  // Means within ~5 standard errors.
  CHECK(std::abs(s / n - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
  CHECK(std::abs(s2 / n - 1.0 / 3) < 0.005);
  CHECK(std::abs(ns / n) < 5 / std::sqrt(double(n)));
  CHECK(std::abs(ns2 / n - 1.0) < 0.02);
  // Chi-square for 7 equiprobable cells, 6 degrees of freedom: 99.9% quantile is 22.46.
  double chi2 = 0;
  for (int c : counts) chi2 += (c - n / 7.0) * (c - n / 7.0) / (n / 7.0);
  CHECK(chi2 < 22.46);
  float f = Rng(5).uniform<float>();
  CHECK(f >= 0.0f);
  CHECK(f < 1.0f);
}


TEST_CASE_TEMPLATE("Rng::fill_normal: moments, tails and a Kolmogorov-Smirnov check", T, float, double) {
  for (std::size_t n : {1u, 7u, 33u}) {
    std::vector<T> v(n);
    Rng(1).fill_normal(v.data(), n);
    for (T x : v) CHECK(std::isfinite(x));
  }
  const std::size_t n = 1000001;  // odd and not a multiple of 16: exercises the tails of both paths
  std::vector<T> x(n);
  Rng(9).fill_normal(x.data(), n);
  double s = 0, s2 = 0, s4 = 0;
  std::size_t beyond3 = 0, beyond4 = 0;
  for (T v : x) {
    s += v;
    s2 += double(v) * v;
    s4 += double(v) * v * v * v;
    beyond3 += std::abs(v) > 3;
    beyond4 += std::abs(v) > 4;
  }
  CHECK(std::abs(s / n) < 5 / std::sqrt(double(n)));
  CHECK(std::abs(s2 / n - 1) < 5 * std::sqrt(2.0 / n));
  CHECK(std::abs(s4 / n - 3) < 5 * std::sqrt(96.0 / n));
  // P(|Z| > 3) = 0.0026998, P(|Z| > 4) = 6.334e-5: within 5 standard errors.
  CHECK(std::abs(double(beyond3) - 0.0026998 * n) < 5 * std::sqrt(0.0026998 * n));
  CHECK(std::abs(double(beyond4) - 6.334e-5 * n) < 5 * std::sqrt(6.334e-5 * n));
  std::sort(x.begin(), x.end());
  double ks = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double cdf = 0.5 * std::erfc(-double(x[i]) / std::sqrt(2.0));
    ks = std::max({ks, std::abs(double(i + 1) / n - cdf), std::abs(cdf - double(i) / n)});
  }
  INFO("KS statistic ", ks);
  CHECK(ks < 1.95 / std::sqrt(double(n)));  // 99.9% critical value
  std::vector<T> a(50), b(50);
  Rng(3, 4, 5).fill_normal(a.data(), 50);
  Rng(3, 4, 5).fill_normal(b.data(), 50);
  CHECK(a == b);
}


// The float generator's own -2 ln x and sin/cos, checked against the double-precision C library on every
// input the generator can give them, and on sweeps of their whole documented domains.
TEST_CASE("neg2_log: every generator input and a sweep of all positive normal floats") {
  using bf = simd::batch<float>;
  constexpr std::size_t W = simd::width<float>;
  std::vector<float> in(W), out(W);
  double worst = 0;
  float worst_at = 0;
  auto check = [&](std::size_t m, bf (*f)(const bf&), double scale) {  // the first m of in[] are valid
    f(bf::load_unaligned(in.data())).store_unaligned(out.data());
    for (std::size_t l = 0; l < m; ++l) {
      const double ref = -2 * std::log(double(in[l]) * scale);
      const double err = ref == 0 ? std::abs(double(out[l])) : std::abs(double(out[l]) - ref) / std::abs(ref);
      if (!(err <= worst)) {  // also catches NaN
        worst = std::isnan(err) ? 1e9 : err;
        worst_at = in[l];
      }
    }
  };
  // The generator passes k + 1 for its 24-bit k and scales by 2^-24 inside: u = (k + 1) / 2^24 in (0, 1].
  const std::uint32_t top = 1u << 24;
  for (std::uint32_t k = 1; k <= top; k += W) {
    const std::size_t m = std::min<std::size_t>(W, top - k + 1);
    for (std::size_t l = 0; l < W; ++l) in[l] = float(std::min<std::uint32_t>(k + std::uint32_t(l), top));
    check(m, &simd::detail::neg2_log<24>, 1.0 / top);
  }
  INFO("generator inputs: worst relative error ", worst, " at ", worst_at);
  CHECK(worst < 2.5e-7);
  worst = 0;
  // Every 251st bit pattern from the smallest to the largest positive normal float.
  for (std::uint64_t b = 0x00800000u; b <= 0x7f7fffffu; b += 251 * W) {
    std::size_t m = 0;
    for (std::size_t l = 0; l < W; ++l) {
      const std::uint64_t bits = std::min<std::uint64_t>(b + 251 * l, 0x7f7fffffu);
      m += b + 251 * l <= 0x7f7fffffu;
      const auto u = static_cast<std::uint32_t>(bits);
      std::memcpy(&in[l], &u, sizeof u);
    }
    check(m, &simd::detail::neg2_log<0>, 1.0);
  }
  INFO("positive normal floats: worst relative error ", worst, " at ", worst_at);
  CHECK(worst < 2.5e-7);
}

TEST_CASE("sincos_half_pi: every generator angle and a sweep of [-1/2, 1/2]") {
  using bf = simd::batch<float>;
  constexpr std::size_t W = simd::width<float>;
  std::vector<float> in(W), so(W), co(W);
  double worst_abs = 0, worst_rel = 0;
  const double half_pi = 1.57079632679489661923;
  auto check = [&] {
    const auto sc = simd::detail::sincos_half_pi(bf::load_unaligned(in.data()));
    sc.first.store_unaligned(so.data());
    sc.second.store_unaligned(co.data());
    for (std::size_t l = 0; l < W; ++l) {
      const double t = half_pi * double(in[l]), rs = std::sin(t), rc = std::cos(t);
      const double es = std::abs(double(so[l]) - rs), ec = std::abs(double(co[l]) - rc);
      worst_abs = std::max({worst_abs, es, ec, std::isnan(es + ec) ? 1.0 : 0.0});
      if (rs != 0) worst_rel = std::max({worst_rel, es / std::abs(rs), ec / rc});
    }
  };
  // The generator's angles: x = (2m + 1) / 2^23 - 1/2 for m = 0 .. 2^22 - 1 (exact in float).
  for (std::uint32_t m = 0; m < (1u << 22); m += std::uint32_t(W)) {
    for (std::size_t l = 0; l < W; ++l) in[l] = float(2 * (m + l) + 1) / 8388608.0f - 0.5f;
    check();
  }
  // 2^20 + 1 evenly spaced points of [-1/2, 1/2], endpoints included.
  const std::size_t points = (1u << 20) + 1;
  for (std::size_t i = 0; i < points; i += W) {
    for (std::size_t l = 0; l < W; ++l) in[l] = float(-0.5 + double(std::min(i + l, points - 1)) / double(points - 1));
    check();
  }
  INFO("worst absolute error ", worst_abs, ", worst relative error ", worst_rel);
  CHECK(worst_abs < 1.5e-7);
  CHECK(worst_rel < 2.5e-7);
  // The scale a multiplies both: within a few float roundings of a times the unscaled values.
  const float a = 0.0123f;
  for (std::size_t l = 0; l < W; ++l) in[l] = float(l) / float(2 * W) - 0.25f;
  const auto one = simd::detail::sincos_half_pi(bf::load_unaligned(in.data()));
  const auto scaled = simd::detail::sincos_half_pi(bf::load_unaligned(in.data()), bf(a));
  std::vector<float> s1(W), c1(W), sa(W), ca(W);
  one.first.store_unaligned(s1.data());
  one.second.store_unaligned(c1.data());
  scaled.first.store_unaligned(sa.data());
  scaled.second.store_unaligned(ca.data());
  for (std::size_t l = 0; l < W; ++l) {
    CHECK(std::abs(sa[l] - a * s1[l]) <= 4e-7 * a);
    CHECK(std::abs(ca[l] - a * c1[l]) <= 4e-7 * a);
  }
}

TEST_CASE("select_by_bit reads only its bit of the word") {
  using bf = simd::batch<float>;
  using bu = xsimd::batch<std::uint32_t>;
  constexpr std::size_t W = simd::width<float>;
  std::vector<std::uint32_t> words(W);
  std::vector<float> a(W), b(W), out(W);
  for (std::size_t l = 0; l < W; ++l) {
    words[l] = static_cast<std::uint32_t>(0x9e3779b9u * (l + 1)) ^ (l % 3 == 0 ? 0xffffffffu : 0u);
    a[l] = float(l) + 0.5f;
    b[l] = -float(l) - 0.25f;
  }
  const bu w = bu::load_unaligned(words.data());
  const bf va = bf::load_unaligned(a.data()), vb = bf::load_unaligned(b.data());
  auto check = [&](int bit, const bf& got) {
    got.store_unaligned(out.data());
    for (std::size_t l = 0; l < W; ++l) CHECK(out[l] == ((words[l] >> bit) & 1u ? a[l] : b[l]));
  };
  check(0, simd::detail::select_by_bit<0>(w, va, vb));
  check(7, simd::detail::select_by_bit<7>(w, va, vb));
  check(30, simd::detail::select_by_bit<30>(w, va, vb));
  check(31, simd::detail::select_by_bit<31>(w, va, vb));
}

namespace {
// The generator written out in scalar double precision from its documentation: lanes are xoshiro256+
// seeded with SplitMix64 over the key (lane 0's four state words first), each lane gives a radius output and
// then an angle output per block, and value i of a block's first half (with value i of its second half)
// comes from lane i / 2 for float (32-bit half i % 2) and lane i for double.
template <class T>
std::vector<double> scalar_reference_normals(std::uint64_t key, std::size_t blocks) {
  constexpr std::size_t lanes = 8, half = std::is_same_v<T, float> ? 16 : 8;
  std::uint64_t s[lanes][4];
  for (auto& lane : s)
    for (auto& w : lane) w = splitmix64(key);
  auto next = [&s](std::size_t l) {
    const std::uint64_t out = s[l][0] + s[l][3], t = s[l][1] << 17;
    s[l][2] ^= s[l][0];
    s[l][3] ^= s[l][1];
    s[l][1] ^= s[l][2];
    s[l][0] ^= s[l][3];
    s[l][2] ^= t;
    s[l][3] = (s[l][3] << 45) | (s[l][3] >> 19);
    return out;
  };
  const double pi = 3.14159265358979323846;
  std::vector<double> z(blocks * 2 * half);
  for (std::size_t b = 0; b < blocks; ++b) {
    double* out = z.data() + b * 2 * half;
    for (std::size_t l = 0; l < lanes; ++l) {
      const std::uint64_t wr = next(l), wt = next(l);
      if constexpr (std::is_same_v<T, float>) {
        for (int h = 0; h < 2; ++h) {
          const auto r32 = static_cast<std::uint32_t>(wr >> (32 * h)), t32 = static_cast<std::uint32_t>(wt >> (32 * h));
          const double r = std::sqrt(-2 * std::log(double((r32 >> 8) + 1) / 16777216.0));
          const std::uint32_t m = (t32 >> 8) & 0x3fffffu;  // bits 8-29
          const double t = (double(2 * m + 1) - 4194304.0) * pi / 16777216.0;
          double c = std::cos(t), sn = std::sin(t);
          if (t32 & (1u << 31)) c = -c;
          if (t32 & (1u << 30)) std::swap(c, sn);
          out[2 * l + h] = r * c;
          out[half + 2 * l + h] = r * sn;
        }
      } else {
        const double u1 = 1.0 - double(wr >> 12) / 4503599627370496.0;  // 2 - (1 + f) for the top 52 bits f
        const double t = 2 * pi * (double(wt >> 12) / 4503599627370496.0);
        const double r = std::sqrt(-2 * std::log(u1));
        out[l] = r * std::cos(t);
        out[half + l] = r * std::sin(t);
      }
    }
  }
  return z;
}
}  // namespace

TEST_CASE_TEMPLATE("Rng::fill_normal matches the generator written out in scalar double precision", T, float, double) {
  constexpr std::size_t blocks = 20000, size = detail::NormalBlock<T>::size;
  for (std::uint64_t seed : {1u, 77u}) {
    Rng rng(seed, 3, 4);
    Rng copy = rng;
    const std::vector<double> ref = scalar_reference_normals<T>(copy(), blocks);
    std::vector<T> z(blocks * size);
    rng.fill_normal(z.data(), z.size());
    double worst = 0;
    std::size_t worst_at = 0;
    for (std::size_t i = 0; i < z.size(); ++i) {
      const double err = std::abs(double(z[i]) - ref[i]) / (1 + std::abs(ref[i]));
      if (!(err <= worst)) {
        worst = std::isnan(err) ? 1e9 : err;
        worst_at = i;
      }
    }
    INFO("seed ", seed, ": worst error ", worst, " at ", worst_at, " (", double(z[worst_at]), " against ", ref[worst_at], ")");
    CHECK(worst < (std::is_same_v<T, float> ? 5e-7 : 1e-14));
  }
}

namespace {
// Pearson's statistic of counts against equal expected counts.
double chi_square_uniform(const std::vector<std::size_t>& counts, std::size_t n) {
  const double e = double(n) / double(counts.size());
  double x2 = 0;
  for (std::size_t c : counts) x2 += (double(c) - e) * (double(c) - e) / e;
  return x2;
}
}  // namespace

TEST_CASE_TEMPLATE("Rng::fill_normal: chi-square of values, angles and radii, tails, bounds and prefixes", T, float, double) {
  const std::size_t n = 1000000;
  std::vector<T> z(n);
  Rng(2025, 7, 1).fill_normal(z.data(), n);
  // 100 bins of equal probability under the normal CDF; 99 degrees of freedom, 99.9% point 148.2.
  std::vector<std::size_t> bins(100, 0);
  std::size_t beyond4 = 0;
  double max_abs = 0;
  for (T v : z) {
    const double cdf = 0.5 * std::erfc(-double(v) / std::sqrt(2.0));
    ++bins[std::min<std::size_t>(99, static_cast<std::size_t>(cdf * 100))];
    beyond4 += std::abs(v) > 4;
    max_abs = std::max(max_abs, std::abs(double(v)));
  }
  const double x2 = chi_square_uniform(bins, n);
  INFO("chi-square of the values ", x2, ", |z| > 4: ", beyond4, ", max |z| ", max_abs);
  CHECK(x2 < 148.2);
  // P(|Z| > 4) = 6.334e-5: 63.3 expected, within 5 standard errors.
  CHECK(std::abs(double(beyond4) - 6.334e-5 * n) < 5 * std::sqrt(6.334e-5 * n));
  // The documented bound: sqrt(-2 ln 2^-24) for float, sqrt(-2 ln 2^-52) for double.
  CHECK(max_abs <= (std::is_same_v<T, float> ? 5.7684 : 8.4905));
  // Box-Muller pairs: value i of a block's first half and value i of its second half share one radius and
  // one angle. The angle must be uniform (64 bins, 99.9% point of chi-square(63) = 103.4) and r^2/2
  // exponential (CDF 1 - exp(-r^2/2) in 50 bins, 99.9% point of chi-square(49) = 85.4).
  constexpr std::size_t block = detail::NormalBlock<T>::size, half = detail::NormalBlock<T>::half;
  std::vector<std::size_t> angles(64, 0), radii(50, 0);
  std::size_t pairs = 0;
  for (std::size_t b = 0; b + block <= n; b += block)
    for (std::size_t i = 0; i < half; ++i, ++pairs) {
      const double c = z[b + i], s = z[b + half + i];
      const double a = (std::atan2(s, c) + M_PI) / (2 * M_PI);
      ++angles[std::min<std::size_t>(63, static_cast<std::size_t>(a * 64))];
      ++radii[std::min<std::size_t>(49, static_cast<std::size_t>((1 - std::exp(-(c * c + s * s) / 2)) * 50))];
    }
  const double xa = chi_square_uniform(angles, pairs), xr = chi_square_uniform(radii, pairs);
  INFO("chi-square of the angles ", xa, ", of the radii ", xr);
  CHECK(xa < 103.4);
  CHECK(xr < 85.4);
  // A fill of m values is the first m values of a longer fill from the same stream, whatever m.
  std::vector<T> longer(1000);
  Rng(5, 6).fill_normal(longer.data(), longer.size());
  for (std::size_t m : {1u, 15u, 16u, 17u, 31u, 32u, 33u, 100u, 999u}) {
    std::vector<T> shorter(m);
    Rng(5, 6).fill_normal(shorter.data(), m);
    CHECK(std::equal(shorter.begin(), shorter.end(), longer.begin()));
  }
  // An empty fill draws nothing; a non-empty one draws exactly one value of the stream to seed its lanes.
  Rng r0(11), r1(11), r2(11);
  r0.fill_normal(z.data(), 0);
  CHECK(r0() == r1());
  r0.fill_normal(z.data(), 3);
  r2();
  r2();
  CHECK(r0() == r2());
  // add_normal adds exactly the values fill_normal writes, scaled.
  for (std::size_t m : {5u, 64u, 70u}) {
    std::vector<T> y(m), expect(m), draws(m);
    for (std::size_t i = 0; i < m; ++i) y[i] = expect[i] = T(0.25) * T(i);
    Rng(8).fill_normal(draws.data(), m);
    for (std::size_t i = 0; i < m; ++i) expect[i] += T(0.5) * draws[i];
    Rng(8).add_normal(T(0.5), y.data(), m);
    for (std::size_t i = 0; i < m; ++i) CHECK(double(y[i]) == doctest::Approx(double(expect[i])).epsilon(1e-6));
  }
}
