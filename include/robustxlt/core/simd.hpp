#pragma once
// Vector kernels written once with xsimd (float and double), with scalar tails, for every module: axpy,
// sums and dot products, finiteness checks, and the masked softmax of a row (used by attention in nn/ and by
// softmax alignment extraction in align/). The transformer's own row kernels (GELU, layer norm) are in
// nn/row_kernels.hpp; the normal generator's float math is in core/detail/normal_math.hpp.
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

}  // namespace robustxlt::simd
