#pragma once
// The three distributions randomized smoothing needs, written out so that smooth/ compiles without a
// statistics library: the regularized incomplete beta function I_x(a, b) (Lentz's continued fraction), its
// inverse in x (the beta quantile, by bisection to full precision), and the standard normal quantile (a
// rational first guess refined by Halley steps on std::erfc). Checked against SciPy to 1e-9 relative by the
// smooth_scipy_reference test, and against hand values (Cohen et al.'s) in test_smooth.

#include <cmath>
#include <cstddef>
#include <limits>

#include "robustxlt/core/error.hpp"

namespace robustxlt::smooth::detail {

// ln Gamma(x) for x > 0: the Stirling series (terms to x^-9) after shifting x to at least 15, where the
// first omitted term is below 3e-16. Unlike std::lgamma it writes no global (signgam), so it is safe to call
// from several threads.
inline double log_gamma(double x) {
  double shift = 0.0;
  while (x < 15.0) {
    shift += std::log(x);
    x += 1.0;
  }
  const double r = 1.0 / x, r2 = r * r;
  const double series = r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 * (1.0 / 1680 - r2 * (1.0 / 1188)))));
  return (x - 0.5) * std::log(x) - x + 0.91893853320467274178 + series - shift;  // 0.918... = ln(2 pi) / 2
}

// The continued fraction of I_x(a, b) (modified Lentz), which converges quickly for x < (a + 1) / (a + b + 2).
inline double beta_fraction(double a, double b, double x) {
  constexpr double tiny = 1e-300, eps = 1e-16;
  const double qab = a + b, qap = a + 1.0, qam = a - 1.0;
  double c = 1.0, d = 1.0 - qab * x / qap;
  if (std::abs(d) < tiny) d = tiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 100000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1.0 + aa * d;
    if (std::abs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1.0 + aa * d;
    if (std::abs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1.0 / d;
    const double step = d * c;
    h *= step;
    if (std::abs(step - 1.0) < eps) return h;
  }
  robustxlt::detail::fail<NumericError>("incomplete beta: the continued fraction did not converge for a = ", a, ", b = ", b,
                                        ", x = ", x);
}

// The regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1]: for integer a and b,
// P(Bin(a + b - 1, x) >= a). The side of the mean that the fraction converges on is computed directly, the
// other as 1 minus it, so small tails keep their relative precision.
inline double incomplete_beta(double a, double b, double x) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  const double log_front = a * std::log(x) + b * std::log1p(-x) - (log_gamma(a) + log_gamma(b) - log_gamma(a + b));
  if (x < (a + 1.0) / (a + b + 2.0)) return std::exp(log_front) * beta_fraction(a, b, x) / a;
  return 1.0 - std::exp(log_front) * beta_fraction(b, a, 1.0 - x) / b;
}

// The p quantile of Beta(a, b): the x with I_x(a, b) = p, by bisection until the bracket is as narrow as
// the doubles around x allow (I is increasing in x).
inline double beta_quantile(double a, double b, double p) {
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 2000 && hi - lo > 4 * std::numeric_limits<double>::epsilon() * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    (incomplete_beta(a, b, mid) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// Phi^-1(p), p in (0, 1): Acklam's rational approximation (relative error below 1.2e-9), then two Halley
// steps on Phi(x) - p with Phi from std::erfc, which bring it to double precision.
inline double standard_normal_quantile(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00};
  constexpr double p_low = 0.02425;
  double x;
  if (p < p_low || p > 1.0 - p_low) {
    const double q = std::sqrt(-2.0 * std::log(p < p_low ? p : 1.0 - p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    if (p > 1.0 - p_low) x = -x;
  } else {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
  }
  for (int i = 0; i < 2; ++i) {
    // Upper tail through the complement, so p near 1 keeps its precision.
    const double e = p < 0.5 ? 0.5 * std::erfc(-x / std::sqrt(2.0)) - p : (1.0 - p) - 0.5 * std::erfc(x / std::sqrt(2.0));
    const double u = e * 2.50662827463100050242 * std::exp(0.5 * x * x);  // e / pdf(x), sqrt(2 pi) = 2.5066...
    x = x - u / (1.0 + 0.5 * x * u);
  }
  return x;
}

}  // namespace robustxlt::smooth::detail
