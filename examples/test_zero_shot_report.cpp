// Unit test of the zero-shot demo's paired-difference arithmetic (examples/zero_shot/report.hpp): Student t
// quantiles and the paired mean, standard deviation and 95% interval on small cases computed by hand.
#include "../tests/test_support.hpp"
#include "zero_shot/report.hpp"

using zero_shot::paired_difference;
using zero_shot::student_t_quantile;

TEST_CASE("t quantiles: closed forms for df 1 and 2, SciPy's values elsewhere") {
  const double pi = 3.14159265358979323846;
  // df 1 (Cauchy): tan(pi (p - 1/2)); df 2: (2p - 1) sqrt(2 / (4 p (1 - p))).
  CHECK(student_t_quantile(0.975, 1) == doctest::Approx(std::tan(pi * 0.475)).epsilon(1e-12));
  CHECK(student_t_quantile(0.975, 2) == doctest::Approx(0.95 * std::sqrt(2.0 / (4 * 0.975 * 0.025))).epsilon(1e-12));
  CHECK(student_t_quantile(0.9, 2) == doctest::Approx(0.8 * std::sqrt(2.0 / (4 * 0.9 * 0.1))).epsilon(1e-12));
  // scipy.stats.t.ppf(0.975, df), SciPy 1.10.1.
  const std::pair<std::size_t, double> scipy[] = {{3, 3.182446305284263},   {4, 2.7764451051977987}, {5, 2.5705818366147395},
                                                  {9, 2.2621571627409915},  {10, 2.2281388519649385}, {29, 2.045229642132703},
                                                  {30, 2.0422724563012373}, {99, 1.9842169515086827}};
  for (const auto& [df, t] : scipy) CHECK(student_t_quantile(0.975, df) == doctest::Approx(t).epsilon(1e-9));
  CHECK(student_t_quantile(0.5, 7) == doctest::Approx(0.0));
  CHECK_THROWS(student_t_quantile(0.975, 0));
  CHECK_THROWS(student_t_quantile(1.0, 3));
}

TEST_CASE("paired difference: three seeds by hand") {
  // d = (0.71 - 0.70, 0.74 - 0.72, 0.80 - 0.74) = (0.01, 0.02, 0.06): mean 0.03, deviations -0.02, -0.01,
  // 0.03, sum of squares 0.0014, sd = sqrt(0.0014 / 2) = 0.01 sqrt(7); half-width 4.302653 * 0.01 sqrt(7/3).
  const auto p = paired_difference({0.71, 0.74, 0.80}, {0.70, 0.72, 0.74});
  CHECK(p.n == 3);
  CHECK(p.mean == doctest::Approx(0.03).epsilon(1e-12));
  CHECK(p.sd == doctest::Approx(0.01 * std::sqrt(7.0)).epsilon(1e-12));
  CHECK(p.t == doctest::Approx(4.302652729749464).epsilon(1e-12));
  const double half = 4.302652729749464 * 0.01 * std::sqrt(7.0 / 3.0);  // 0.065724...
  CHECK(half == doctest::Approx(0.0657241).epsilon(1e-6));
  CHECK(p.low == doctest::Approx(0.03 - half).epsilon(1e-12));
  CHECK(p.high == doctest::Approx(0.03 + half).epsilon(1e-12));
  CHECK_FALSE(p.excludes_zero());  // -0.036 .. 0.096
}

TEST_CASE("paired difference: two seeds, an interval above zero, one seed") {
  // d = (0.05, 0.06): mean 0.055, sd 0.01 / sqrt(2), half-width 12.706205 * 0.005 = 0.063531: includes 0.
  auto p = paired_difference({0.85, 0.86}, {0.80, 0.80});
  CHECK(p.mean == doctest::Approx(0.055).epsilon(1e-12));
  CHECK(p.high - p.mean == doctest::Approx(12.706204736174698 * 0.005).epsilon(1e-12));
  CHECK_FALSE(p.excludes_zero());
  // Five seeds, d = (0.04, 0.05, 0.05, 0.06, 0.05): mean 0.05, sd sqrt(0.0002 / 4) = 0.007071, half-width
  // 2.776445 * 0.007071 / sqrt(5) = 0.008780: the interval 0.041 .. 0.059 excludes 0.
  p = paired_difference({0.84, 0.85, 0.85, 0.86, 0.85}, {0.80, 0.80, 0.80, 0.80, 0.80});
  CHECK(p.high - p.mean == doctest::Approx(2.7764451051977987 * std::sqrt(0.0002 / 4) / std::sqrt(5.0)).epsilon(1e-9));
  CHECK(p.low == doctest::Approx(0.05 - 0.0087797).epsilon(1e-5));
  CHECK(p.excludes_zero());
  // A loss: the interval lies below zero.
  p = paired_difference({0.76, 0.75, 0.75, 0.74, 0.75}, {0.80, 0.80, 0.80, 0.80, 0.80});
  CHECK(p.high < 0);
  CHECK(p.excludes_zero());
  // One seed: the difference, no interval.
  p = paired_difference({0.9}, {0.8});
  CHECK(p.mean == doctest::Approx(0.1));
  CHECK(std::isnan(p.low));
  CHECK_FALSE(p.excludes_zero());
  CHECK_THROWS(paired_difference({0.9, 0.8}, {0.8}));
}
