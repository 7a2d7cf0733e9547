#pragma once
// The transformer's row kernels, written once with xsimd (float and double) with scalar tails: exact GELU
// and its derivative, and layer norm of one row with its input and parameter gradients. nn/ops.hpp applies
// them over the rows of a batch. Every pointer argument points at n (or d) contiguous elements; in-place
// use is allowed where noted.

#include <cmath>
#include <cstddef>
#include <xsimd/xsimd.hpp>

#include "robustxlt/core/simd.hpp"

namespace robustxlt::nn::kernels {

// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)).  out may alias x.
template <class T>
void gelu_forward(std::size_t n, const T* x, T* out) noexcept {
  const T inv_sqrt2 = T(0.70710678118654752440);
  std::size_t i = 0;
  const simd::batch<T> half(T(0.5)), one(T(1)), c(inv_sqrt2);
  for (; i + simd::width<T> <= n; i += simd::width<T>) {
    const auto v = simd::batch<T>::load_unaligned(x + i);
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
  const simd::batch<T> half(T(0.5)), one(T(1)), c(inv_sqrt2), k(inv_sqrt2pi), mhalf(T(-0.5));
  for (; i + simd::width<T> <= n; i += simd::width<T>) {
    const auto v = simd::batch<T>::load_unaligned(x + i);
    const auto cdf = half * (one + xsimd::erf(v * c));
    const auto pdf = k * xsimd::exp(mhalf * v * v);
    const auto g = xsimd::fma(v, pdf, cdf);
    xsimd::fma(simd::batch<T>::load_unaligned(dout + i), g, simd::batch<T>::load_unaligned(dx + i)).store_unaligned(dx + i);
  }
  for (; i < n; ++i) {
    const T cdf = T(0.5) * (T(1) + std::erf(x[i] * inv_sqrt2));
    const T pdf = inv_sqrt2pi * std::exp(T(-0.5) * x[i] * x[i]);
    dx[i] += dout[i] * (cdf + x[i] * pdf);
  }
}

// Layer norm of one row: out = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps) with the biased
// variance. Returns mean and rstd for the backward pass. out may alias x.
template <class T>
void layer_norm_row(std::size_t d, const T* x, const T* w, const T* b, T eps, T* out, T& mean_out,
                    T& rstd_out) noexcept {
  const T mean = simd::sum(d, x) / static_cast<T>(d);
  // Two-pass variance: exact for constant rows, unlike E[x^2] - E[x]^2.
  std::size_t i = 0;
  const simd::batch<T> vm(mean);
  simd::batch<T> acc(T(0));
  for (; i + simd::width<T> <= d; i += simd::width<T>) {
    const auto c = simd::batch<T>::load_unaligned(x + i) - vm;
    acc = xsimd::fma(c, c, acc);
  }
  T var = xsimd::hadd(acc);
  for (; i < d; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<T>(d);
  const T rstd = T(1) / std::sqrt(var + eps);
  const simd::batch<T> vr(rstd);
  for (i = 0; i + simd::width<T> <= d; i += simd::width<T>) {
    const auto xh = (simd::batch<T>::load_unaligned(x + i) - vm) * vr;
    xsimd::fma(xh, simd::batch<T>::load_unaligned(w + i), simd::batch<T>::load_unaligned(b + i)).store_unaligned(out + i);
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
  const simd::batch<T> vm(mean), vr(rstd);
  simd::batch<T> acc_g(T(0)), acc_gx(T(0));
  for (; i + simd::width<T> <= d; i += simd::width<T>) {
    const auto xh = (simd::batch<T>::load_unaligned(x + i) - vm) * vr;
    const auto g = simd::batch<T>::load_unaligned(dout + i) * simd::batch<T>::load_unaligned(w + i);
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
  const simd::batch<T> vmg(mg), vmgx(mgx);
  for (i = 0; i + simd::width<T> <= d; i += simd::width<T>) {
    const auto xh = (simd::batch<T>::load_unaligned(x + i) - vm) * vr;
    const auto g = simd::batch<T>::load_unaligned(dout + i) * simd::batch<T>::load_unaligned(w + i);
    const auto v = vr * (g - vmg - xh * vmgx);
    (simd::batch<T>::load_unaligned(dx + i) + v).store_unaligned(dx + i);
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
  const simd::batch<T> vm(mean), vr(rstd);
  for (; i + simd::width<T> <= d; i += simd::width<T>) {
    const auto xh = (simd::batch<T>::load_unaligned(x + i) - vm) * vr;
    const auto g = simd::batch<T>::load_unaligned(dout + i);
    xsimd::fma(g, xh, simd::batch<T>::load_unaligned(dw + i)).store_unaligned(dw + i);
    (simd::batch<T>::load_unaligned(db + i) + g).store_unaligned(db + i);
  }
  for (; i < d; ++i) {
    dw[i] += dout[i] * (x[i] - mean) * rstd;
    db[i] += dout[i];
  }
}

}  // namespace robustxlt::nn::kernels
