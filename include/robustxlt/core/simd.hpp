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
// Float -2 ln x and sine/cosine for the normal generator (core/random.hpp). Their polynomials are near-minimax
// fits whose approximation error is below float rounding on the reduced interval, so the error is a few
// rounding steps; tests/test_random.cpp checks them on every input the generator can give them, on every
// instruction set the tests are built for.

namespace detail {
// -2 ln x on AVX2 with FMA3 and on AVX-512: [sqrt(1/2), sqrt(2)) is cut into 8 slices by the top 3 bits of
// the mantissa offset from sqrt(1/2). Slice i has a multiplier c_i near the reciprocal of its middle, with
// at most 13 significant bits so that m c_i - 1 is nearly exact, chosen so that 2 ln c_i is within 7e-11
// of the float stored for it (c = 1 on the slice holding 1, which keeps the result exact in relative terms
// near x = 1).
// Entries 8-15 repeat 0-7 for AVX-512's 16-entry permute. Table of -2 c_i and of 2 ln c_i:
alignas(64) inline constexpr float neg2_log_scale[16] = {
    -2.694580078125f, -2.4945068359375f, -2.361083984375f,  -2.11474609375f,
    -2.0f,            -1.8055419921875f, -1.64111328125f,   -1.49285888671875f,
    -2.694580078125f, -2.4945068359375f, -2.361083984375f,  -2.11474609375f,
    -2.0f,            -1.8055419921875f, -1.64111328125f,   -1.49285888671875f};
alignas(64) inline constexpr float neg2_log_offset[16] = {
    0.5961903929710388f, 0.4418877363204956f,   0.33194729685783386f, 0.11157514899969101f,
    0.0f,                -0.20457272231578827f, -0.3955446779727936f, -0.5849083662033081f,
    0.5961903929710388f, 0.4418877363204956f,   0.33194729685783386f, 0.11157514899969101f,
    0.0f,                -0.20457272231578827f, -0.3955446779727936f, -0.5849083662033081f};

// The 8 entries of table at the low 3 bits of each lane of idx (4 bits and 16 entries on AVX-512). Only
// instantiated where neg2_log_has_permute holds.
template <class BI>
inline batch<float> lookup8(const float* table, const BI& idx) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (BI::size == 16) return _mm512_permutexvar_ps(idx, _mm512_load_ps(table));
#endif
#if XSIMD_WITH_AVX2
  if constexpr (BI::size == 8) return _mm256_permutevar8x32_ps(_mm256_load_ps(table), idx);
#endif
  static_assert(BI::size == 8 || BI::size == 16, "lookup8: needs AVX2 or AVX-512 batches");
  (void)idx;
  return batch<float>(table[0]);
}

// a b + c rounded once. xsimd::fma is a fused instruction on FMA3 builds, but xsimd 8 has no AVX-512 kernel
// for it and falls back to a * b + c, which only some compilers contract; the table path of neg2_log needs
// the single rounding (m c_i - 1 cancels the leading bits), so it asks for the instruction directly.
template <class B>
inline B fused_multiply_add(const B& a, const B& b, const B& c) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (B::size == 16) return _mm512_fmadd_ps(a, b, c);
#endif
  return xsimd::fma(a, b, c);
}

// Whether neg2_log uses the tables (AVX2 with FMA3, or AVX-512 batches) or a division (other instruction
// sets, where a fused multiply-add may not exist).
inline constexpr bool neg2_log_has_permute =
#if XSIMD_WITH_AVX512F
    batch<float>::size == 16 ||
#endif
#if XSIMD_WITH_AVX2 && XSIMD_WITH_FMA3_AVX2
    batch<float>::size == 8 ||
#endif
    false;
}  // namespace detail

// -2 ln(x 2^-ScaleExp) for positive normal floats x (2^-126 <= x < inf; 0, subnormals, infinities and NaN
// are not handled); ScaleExp folds a power-of-two scale into the exponent at no cost. x = 2^e m with m in
// [sqrt(1/2), sqrt(2)), and -2 ln x = -2 e ln 2 - 2 ln m:
// - on AVX2 with FMA3 and on AVX-512, -2 ln m = 2 ln c_i - 2 log1p(r) with r = m c_i - 1, |r| < 0.062,
//   from the tables above (two permutes, no division); -2 log1p(r) = r' + r'^2 Q(r') with r' = -2r and Q of
//   degree 3 (relative approximation error 1e-8);
// - elsewhere, -2 ln m = -4 atanh(s) with s = (m - 1) / (m + 1), |s| <= 0.1716, as -4s (1 + z P(z)),
//   z = s^2, P of degree 2 (relative approximation error 8e-10).
// The two paths agree to a few rounding steps, not bit for bit.
template <int ScaleExp = 0>
inline batch<float> neg2_log(const batch<float>& x) noexcept {
  using bi = xsimd::batch<std::int32_t>;
  using bf = batch<float>;
  static_assert(ScaleExp >= 0 && ScaleExp < 64, "neg2_log: ScaleExp must be in [0, 64)");
  constexpr std::int32_t sqrt_half = 0x3f3504f3;  // bits of 0.70710677f
  const bi bits = xsimd::bitwise_cast<bi>(x) - bi(sqrt_half + ScaleExp * (1 << 23));
  const bi e = bits >> 23;  // arithmetic shift: the exponent of x 2^-ScaleExp relative to the interval above
  const auto m = xsimd::bitwise_cast<bf>((bits & bi(0x007fffff)) + bi(sqrt_half));
  if constexpr (detail::neg2_log_has_permute) {
    const bi slice = bits >> 20;  // the permutes read only its low bits: the top 3 bits of the mantissa offset
    using detail::fused_multiply_add;
    const bf rp = fused_multiply_add(m, detail::lookup8(detail::neg2_log_scale, slice), bf(2.0f));  // -2 (m c_i - 1)
    const bf rp2 = rp * rp;
    const bf q = fused_multiply_add(rp2, fused_multiply_add(rp, bf(0.012555756606161594f), bf(0.03135000541806221f)),
                                    fused_multiply_add(rp, bf(0.08333300054073334f), bf(0.24999961256980896f)));
    // Estrin's scheme, and the exponent term added off the chain through r': the sqrt after this waits on it
    const bf offset = fused_multiply_add(xsimd::batch_cast<float>(e), bf(-1.386294361119890618f),
                                         detail::lookup8(detail::neg2_log_offset, slice));
    return fused_multiply_add(rp2, q, rp + offset);
  } else {
    const bf s4 = xsimd::fma(m, bf(-4.0f), bf(4.0f)) / (m + bf(1.0f));  // -4s; 4 - 4m is exact
    const bf z = s4 * s4;                                               // 16 s^2
    bf p = xsimd::fma(z, bf(0.1493547409772873f / 4096), bf(0.19988787174224854f / 256));
    p = xsimd::fma(p, z, bf(0.3333338797092438f / 16));
    return xsimd::fma(xsimd::batch_cast<float>(e), bf(-1.386294361119890618f), xsimd::fma(s4 * z, p, s4));
  }
}

// Lanes of a where bit Bit of the 32-bit lane of word is set, of b elsewhere. B is batch<float> and BU the
// batch of 32-bit unsigned integers of the same width. AVX-512 tests the bit into a mask register, AVX and
// SSE4.1 blend on the bit shifted into the sign, other instruction sets mask with the bit spread over the lane.
template <int Bit, class BU, class B>
inline B select_by_bit(const BU& word, const B& a, const B& b) noexcept {
  static_assert(Bit >= 0 && Bit < 32, "select_by_bit: Bit must be in [0, 32)");
  static_assert(BU::size == B::size, "select_by_bit: word and values must have the same number of lanes");
#if XSIMD_WITH_AVX512F
  if constexpr (B::size == 16)
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(word, _mm512_set1_epi32(std::int32_t(1u << Bit))), b, a);
#endif
  const auto sign = xsimd::bitwise_cast<B>(word << (31 - Bit));
#if XSIMD_WITH_AVX
  if constexpr (B::size == 8) return _mm256_blendv_ps(b, a, sign);
#endif
#if XSIMD_WITH_SSE4_1
  if constexpr (B::size == 4) return _mm_blendv_ps(b, a, sign);
#endif
  using bi = xsimd::batch<std::int32_t, typename B::arch_type>;
  const auto full = xsimd::bitwise_cast<B>(xsimd::bitwise_cast<bi>(sign) >> 31);
  return b ^ ((a ^ b) & full);
}

// a sin(pi x / 2) and a cos(pi x / 2) for |x| <= 1/2, so angles in [-pi/4, pi/4] (the normal generator draws
// its angles there, in units of a quarter turn, and maps them to the other quarter turns with random
// bits): with t = pi x / 2, sin t = t (1 + t^2 S(t^2)) and cos t = 1 + t^2 C(t^2), S and C of degree 2
// (relative approximation errors 4e-9 and 4e-8), the powers of pi / 2 folded into the coefficients, and
// so is the factor a (callers in a loop compute those products once). Returns {a sin, a cos}.
inline std::pair<batch<float>, batch<float>> sincos_half_pi(const batch<float>& x,
                                                            const batch<float>& a = batch<float>(1.0f)) noexcept {
  using bf = batch<float>;
  const bf z = x * x;
  bf ps = xsimd::fma(z, a * bf(-0.00460530924384514f), a * bf(0.07968157762828856f));
  ps = xsimd::fma(ps, z, a * bf(-0.6459636547279496f));
  bf pc = xsimd::fma(z, a * bf(-0.020417278987280733f), a * bf(0.25360319966332245f));
  pc = xsimd::fma(pc, z, a * bf(-1.2336976822991308f));
  return {x * xsimd::fma(z, ps, a * bf(1.5707963267948966f)), xsimd::fma(pc, z, a)};
}

}  // namespace robustxlt::simd
