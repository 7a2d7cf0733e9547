#pragma once
// Elementwise and row kernels written once with xsimd (float and double), with scalar tails.
// Every pointer argument points at n contiguous elements; in-place use is allowed where noted.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <xsimd/xsimd.hpp>

namespace robustxlt::simd {

template <class T>
using batch = xsimd::batch<T>;

template <class T>
constexpr std::size_t width = batch<T>::size;

template <class T>
inline constexpr bool is_supported_scalar = std::is_same_v<T, float> || std::is_same_v<T, double>;

// y[i] += a * x[i]
template <class T>
void axpy(std::size_t n, T a, const T* x, T* y) noexcept {
  std::size_t i = 0;
  const batch<T> va(a);
  for (; i + width<T> <= n; i += width<T>)
    xsimd::fma(va, batch<T>::load_unaligned(x + i), batch<T>::load_unaligned(y + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

// out[i] = a[i] + b[i]  (out may alias a or b)
template <class T>
void add(std::size_t n, const T* a, const T* b, T* out) noexcept {
  std::size_t i = 0;
  for (; i + width<T> <= n; i += width<T>)
    (batch<T>::load_unaligned(a + i) + batch<T>::load_unaligned(b + i)).store_unaligned(out + i);
  for (; i < n; ++i) out[i] = a[i] + b[i];
}

// y[i] += x[i]
template <class T>
void add_inplace(std::size_t n, const T* x, T* y) noexcept {
  add(n, y, x, y);
}

// x[i] *= a
template <class T>
void scale(std::size_t n, T a, T* x) noexcept {
  std::size_t i = 0;
  const batch<T> va(a);
  for (; i + width<T> <= n; i += width<T>) (batch<T>::load_unaligned(x + i) * va).store_unaligned(x + i);
  for (; i < n; ++i) x[i] *= a;
}

// out[i] = a[i] * b[i]  (out may alias a or b)
template <class T>
void mul(std::size_t n, const T* a, const T* b, T* out) noexcept {
  std::size_t i = 0;
  for (; i + width<T> <= n; i += width<T>)
    (batch<T>::load_unaligned(a + i) * batch<T>::load_unaligned(b + i)).store_unaligned(out + i);
  for (; i < n; ++i) out[i] = a[i] * b[i];
}

// sum of x[i]
template <class T>
T sum(std::size_t n, const T* x) noexcept {
  std::size_t i = 0;
  batch<T> acc(T(0));
  for (; i + width<T> <= n; i += width<T>) acc += batch<T>::load_unaligned(x + i);
  T s = xsimd::hadd(acc);
  for (; i < n; ++i) s += x[i];
  return s;
}

// sum of a[i] * b[i] (two accumulators so consecutive FMAs do not wait on each other)
template <class T>
T dot(std::size_t n, const T* a, const T* b) noexcept {
  constexpr std::size_t W = width<T>;
  std::size_t i = 0;
  batch<T> acc(T(0)), acc1(T(0));
  for (; i + 2 * W <= n; i += 2 * W) {
    acc = xsimd::fma(batch<T>::load_unaligned(a + i), batch<T>::load_unaligned(b + i), acc);
    acc1 = xsimd::fma(batch<T>::load_unaligned(a + i + W), batch<T>::load_unaligned(b + i + W), acc1);
  }
  for (; i + W <= n; i += W)
    acc = xsimd::fma(batch<T>::load_unaligned(a + i), batch<T>::load_unaligned(b + i), acc);
  T s = xsimd::hadd(acc + acc1);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Largest lane of a batch.
template <class T>
T reduce_max(const batch<T>& b) noexcept {
  alignas(64) T lanes[width<T>];
  b.store_aligned(lanes);
  return *std::max_element(lanes, lanes + width<T>);
}

// Smallest lane of a batch.
template <class T>
T reduce_min(const batch<T>& b) noexcept {
  alignas(64) T lanes[width<T>];
  b.store_aligned(lanes);
  return *std::min_element(lanes, lanes + width<T>);
}

// Index of the first x[i] == value, or n.
template <class T>
std::size_t find_first(std::size_t n, const T* x, T value) noexcept {
  constexpr std::size_t W = width<T>;
  const batch<T> v(value);
  std::size_t i = 0;
  for (; i + W <= n; i += W)
    if (xsimd::any(batch<T>::load_unaligned(x + i) == v)) break;
  for (; i < n; ++i)
    if (x[i] == value) return i;
  return n;
}

// max of x[i]; n > 0
template <class T>
T max(std::size_t n, const T* x) noexcept {
  std::size_t i = 0;
  T m = -std::numeric_limits<T>::infinity();
  if (n >= width<T>) {
    batch<T> acc = batch<T>::load_unaligned(x);
    for (i = width<T>; i + width<T> <= n; i += width<T>) acc = xsimd::max(acc, batch<T>::load_unaligned(x + i));
    m = reduce_max(acc);
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

// True when every x[i] is finite.
template <class T>
bool all_finite(std::size_t n, const T* x) noexcept {
  constexpr std::size_t W = width<T>;
  std::size_t i = 0;
  // x - x is 0 for finite x and NaN for NaN or Inf, so one sum tells; four accumulators keep the adds
  // independent of each other.
  batch<T> a0(T(0)), a1(T(0)), a2(T(0)), a3(T(0));
  for (; i + 4 * W <= n; i += 4 * W) {
    const auto v0 = batch<T>::load_unaligned(x + i), v1 = batch<T>::load_unaligned(x + i + W);
    const auto v2 = batch<T>::load_unaligned(x + i + 2 * W), v3 = batch<T>::load_unaligned(x + i + 3 * W);
    a0 += v0 - v0;
    a1 += v1 - v1;
    a2 += v2 - v2;
    a3 += v3 - v3;
  }
  for (; i + W <= n; i += W) {
    const auto v = batch<T>::load_unaligned(x + i);
    a0 += v - v;
  }
  T s = xsimd::hadd((a0 + a1) + (a2 + a3));
  for (; i < n; ++i) s += x[i] - x[i];
  return s == T(0);
}

// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)).  out may alias x.
template <class T>
void gelu_forward(std::size_t n, const T* x, T* out) noexcept {
  const T inv_sqrt2 = T(0.70710678118654752440);
  std::size_t i = 0;
  const batch<T> half(T(0.5)), one(T(1)), c(inv_sqrt2);
  for (; i + width<T> <= n; i += width<T>) {
    const auto v = batch<T>::load_unaligned(x + i);
    (half * v * (one + xsimd::erf(v * c))).store_unaligned(out + i);
  }
  for (; i < n; ++i) out[i] = T(0.5) * x[i] * (T(1) + std::erf(x[i] * inv_sqrt2));
}

// dx[i] += dout[i] * GELU'(x[i]),  GELU'(x) = Phi(x) + x phi(x).
template <class T>
void gelu_backward(std::size_t n, const T* x, const T* dout, T* dx) noexcept {
  const T inv_sqrt2 = T(0.70710678118654752440);
  const T inv_sqrt2pi = T(0.39894228040143267794);
  std::size_t i = 0;
  const batch<T> half(T(0.5)), one(T(1)), c(inv_sqrt2), k(inv_sqrt2pi), mhalf(T(-0.5));
  for (; i + width<T> <= n; i += width<T>) {
    const auto v = batch<T>::load_unaligned(x + i);
    const auto cdf = half * (one + xsimd::erf(v * c));
    const auto pdf = k * xsimd::exp(mhalf * v * v);
    const auto g = xsimd::fma(v, pdf, cdf);
    xsimd::fma(batch<T>::load_unaligned(dout + i), g, batch<T>::load_unaligned(dx + i)).store_unaligned(dx + i);
  }
  for (; i < n; ++i) {
    const T cdf = T(0.5) * (T(1) + std::erf(x[i] * inv_sqrt2));
    const T pdf = inv_sqrt2pi * std::exp(T(-0.5) * x[i] * x[i]);
    dx[i] += dout[i] * (cdf + x[i] * pdf);
  }
}

// In-place, max-shifted softmax of x[0..n). Entries equal to -inf (masked) get probability 0; a row
// that is entirely -inf becomes all zeros rather than NaN, so a fully masked row contributes nothing.
template <class T>
void softmax_inplace(std::size_t n, T* x) noexcept {
  const T m = max(n, x);
  if (m == -std::numeric_limits<T>::infinity()) {
    std::fill(x, x + n, T(0));
    return;
  }
  std::size_t i = 0;
  const batch<T> vm(m);
  batch<T> acc(T(0));
  for (; i + width<T> <= n; i += width<T>) {
    const auto e = xsimd::exp(batch<T>::load_unaligned(x + i) - vm);
    e.store_unaligned(x + i);
    acc += e;
  }
  T s = xsimd::hadd(acc);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    s += x[i];
  }
  scale(n, T(1) / s, x);
}

// Layer norm of one row: out = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps) with the biased
// variance. Returns mean and rstd for the backward pass. out may alias x.
template <class T>
void layer_norm_row(std::size_t d, const T* x, const T* w, const T* b, T eps, T* out, T& mean_out,
                    T& rstd_out) noexcept {
  const T mean = sum(d, x) / static_cast<T>(d);
  // Two-pass variance: exact for constant rows, unlike E[x^2] - E[x]^2.
  std::size_t i = 0;
  const batch<T> vm(mean);
  batch<T> acc(T(0));
  for (; i + width<T> <= d; i += width<T>) {
    const auto c = batch<T>::load_unaligned(x + i) - vm;
    acc = xsimd::fma(c, c, acc);
  }
  T var = xsimd::hadd(acc);
  for (; i < d; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<T>(d);
  const T rstd = T(1) / std::sqrt(var + eps);
  const batch<T> vr(rstd);
  for (i = 0; i + width<T> <= d; i += width<T>) {
    const auto xh = (batch<T>::load_unaligned(x + i) - vm) * vr;
    xsimd::fma(xh, batch<T>::load_unaligned(w + i), batch<T>::load_unaligned(b + i)).store_unaligned(out + i);
  }
  for (; i < d; ++i) out[i] = (x[i] - mean) * rstd * w[i] + b[i];
  mean_out = mean;
  rstd_out = rstd;
}

// Input gradient of one layer-norm row (accumulated): with xhat = (x - mean) rstd and g = dout * w,
// dx += rstd (g - mean(g) - xhat mean(g xhat)).
template <class T>
void layer_norm_row_backward_input(std::size_t d, const T* x, const T* w, const T* dout, T mean, T rstd,
                                   T* dx) noexcept {
  std::size_t i = 0;
  const batch<T> vm(mean), vr(rstd);
  batch<T> acc_g(T(0)), acc_gx(T(0));
  for (; i + width<T> <= d; i += width<T>) {
    const auto xh = (batch<T>::load_unaligned(x + i) - vm) * vr;
    const auto g = batch<T>::load_unaligned(dout + i) * batch<T>::load_unaligned(w + i);
    acc_g += g;
    acc_gx = xsimd::fma(g, xh, acc_gx);
  }
  T sg = xsimd::hadd(acc_g), sgx = xsimd::hadd(acc_gx);
  for (; i < d; ++i) {
    const T xh = (x[i] - mean) * rstd;
    const T g = dout[i] * w[i];
    sg += g;
    sgx += g * xh;
  }
  const T mg = sg / static_cast<T>(d), mgx = sgx / static_cast<T>(d);
  const batch<T> vmg(mg), vmgx(mgx);
  for (i = 0; i + width<T> <= d; i += width<T>) {
    const auto xh = (batch<T>::load_unaligned(x + i) - vm) * vr;
    const auto g = batch<T>::load_unaligned(dout + i) * batch<T>::load_unaligned(w + i);
    const auto v = vr * (g - vmg - xh * vmgx);
    (batch<T>::load_unaligned(dx + i) + v).store_unaligned(dx + i);
  }
  for (; i < d; ++i) {
    const T xh = (x[i] - mean) * rstd;
    dx[i] += rstd * (dout[i] * w[i] - mg - xh * mgx);
  }
}

// Parameter gradients of one layer-norm row (accumulated): dw += dout * xhat, db += dout.
template <class T>
void layer_norm_row_backward_params(std::size_t d, const T* x, const T* dout, T mean, T rstd, T* dw,
                                    T* db) noexcept {
  std::size_t i = 0;
  const batch<T> vm(mean), vr(rstd);
  for (; i + width<T> <= d; i += width<T>) {
    const auto xh = (batch<T>::load_unaligned(x + i) - vm) * vr;
    const auto g = batch<T>::load_unaligned(dout + i);
    xsimd::fma(g, xh, batch<T>::load_unaligned(dw + i)).store_unaligned(dw + i);
    (batch<T>::load_unaligned(db + i) + g).store_unaligned(db + i);
  }
  for (; i < d; ++i) {
    dw[i] += dout[i] * (x[i] - mean) * rstd;
    db[i] += dout[i];
  }
}

// ---------------------------------------------------------------------------------------------------------
// Fast float logarithm and sine/cosine for the normal generator (core/random.hpp). Both use truncated Taylor
// series whose neglected terms are below float rounding on the reduced interval, so the error is a few
// rounding steps; tests/test_core.cpp checks them exhaustively on every input the generator can produce.

// Natural logarithm of positive normal floats (2^-126 <= x < inf; 0, subnormals, infinities and NaN are not
// handled). x = 2^e * m with m in [sqrt(1/2), sqrt(2)), then ln m = 2 atanh(s), s = (m - 1) / (m + 1),
// |s| <= 0.1716, summed to s^9 (the first neglected term is below 2e-9 relative).
inline batch<float> log_positive(const batch<float>& x) noexcept {
  using bi = xsimd::batch<std::int32_t>;
  const bi sqrt_half(0x3f3504f3);  // bits of 0.70710677f
  const bi bits = xsimd::bitwise_cast<bi>(x) - sqrt_half;
  const bi e = bits >> 23;  // arithmetic shift: the exponent of x relative to the interval above
  const auto m = xsimd::bitwise_cast<batch<float>>((bits & bi(0x007fffff)) + sqrt_half);
  const batch<float> f = m - batch<float>(1.0f);  // exact (Sterbenz)
  const batch<float> s = f / (f + batch<float>(2.0f));
  const batch<float> z = s * s;
  batch<float> p = xsimd::fma(z, batch<float>(1.0f / 9), batch<float>(1.0f / 7));
  p = xsimd::fma(p, z, batch<float>(1.0f / 5));
  p = xsimd::fma(p, z, batch<float>(1.0f / 3));
  const batch<float> s2 = s + s;
  const batch<float> ln_m = xsimd::fma(s2 * z, p, s2);  // 2s (1 + z/3 + z^2/5 + z^3/7 + z^4/9)
  return xsimd::fma(xsimd::batch_cast<float>(e), batch<float>(0.693147180559945309f), ln_m);
}

// sin x and cos x for |x| <= pi/4 (the normal generator draws its angles there and maps them to the
// other quarter turns with random bits): sin summed to x^9, cos to x^8 (neglected terms below 2e-9 and
// 3e-8). Returns {sin, cos}.
inline std::pair<batch<float>, batch<float>> sincos_pi4(const batch<float>& x) noexcept {
  const batch<float> z = x * x;
  batch<float> ps = xsimd::fma(z, batch<float>(1.0f / 362880), batch<float>(-1.0f / 5040));
  ps = xsimd::fma(ps, z, batch<float>(1.0f / 120));
  ps = xsimd::fma(ps, z, batch<float>(-1.0f / 6));
  batch<float> pc = xsimd::fma(z, batch<float>(1.0f / 40320), batch<float>(-1.0f / 720));
  pc = xsimd::fma(pc, z, batch<float>(1.0f / 24));
  pc = xsimd::fma(pc, z, batch<float>(-0.5f));
  return {xsimd::fma(x * z, ps, x), xsimd::fma(pc, z, batch<float>(1.0f))};
}

}  // namespace robustxlt::simd
