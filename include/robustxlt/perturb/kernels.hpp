#pragma once
// Building blocks of the embedding perturbers, over [B, T, D] row-major tensors (xtensor containers or
// xt::adapt views of a caller's buffer) with an optional padding mask [B, T] (1 = token, 0 = padding; any
// integral or bool tensor, or a TokenMask already parsed): steepest-ascent directions, projections onto
// balls, fused step + projection kernels and random starts, on top of the grouped norms of core/norms.hpp.
// Every kernel writes its first argument. Padded positions never receive perturbation (they are written as
// zero) and never count in a norm. A radius is a Ball (core/norms.hpp): epsilon 0 perturbs nothing,
// Ball::unbounded never projects.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/norms.hpp"
#include "robustxlt/core/parallel.hpp"
#include "robustxlt/core/random.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"

namespace robustxlt::perturb {

using robustxlt::Ball;
using robustxlt::BatchIndex;
using robustxlt::Granularity;
using robustxlt::Norm;
using robustxlt::norm_name;
using robustxlt::norms;
using robustxlt::TokenMask;

// How an ascent step turns a gradient into a direction.
enum class Direction {
  steepest,    // sign(g) for Linf, g / ||g||_2 for L2 (the PGD step)
  normalized,  // g / ||g|| in the ball's own norm per group (FreeLB's Linf step: g / max|g|)
};

namespace detail {

using robustxlt::detail::check_ball;
using robustxlt::detail::check_finite;
using robustxlt::detail::check_same_shape;
using robustxlt::detail::for_each_group;
using robustxlt::detail::group_count;
using robustxlt::detail::group_norm;
using robustxlt::detail::max_abs;
using robustxlt::detail::view3;
using robustxlt::detail::zero_padding;

// x = clamp(x + a * dir(g), -eps, eps) over n elements, dir = sign (sign_step) or g * inv (scaled step).
// eps = +infinity disables the clamp.
template <class T>
void linf_step_clamp(std::size_t n, T* x, const T* g, T a, T inv, bool sign_step, T eps) noexcept {
  using B = simd::batch<T>;
  constexpr std::size_t W = simd::width<T>;
  const bool clamp = eps != std::numeric_limits<T>::infinity();
  const B va(a), vinv(inv), lo(-eps), hi(eps), zero(T(0)), one(T(1));
  std::size_t i = 0;
  for (; i + W <= n; i += W) {
    const B gv = B::load_unaligned(g + i);
    B d;
    if (sign_step) {
      // sign with sign(0) = 0: +1 where g > 0, -1 where g < 0.
      d = xsimd::select(gv > zero, one, zero) - xsimd::select(gv < zero, one, zero);
    } else {
      d = gv * vinv;
    }
    B v = xsimd::fma(va, d, B::load_unaligned(x + i));
    if (clamp) v = xsimd::min(xsimd::max(v, lo), hi);
    v.store_unaligned(x + i);
  }
  for (; i < n; ++i) {
    const T d = sign_step ? T((g[i] > T(0)) - (g[i] < T(0))) : g[i] * inv;
    T v = x[i] + a * d;
    if (clamp) v = std::min(std::max(v, -eps), eps);
    x[i] = v;
  }
}

// <g, g>, <d, g>, <d, d> over n elements in one pass, with two independent accumulator sets so the FMA
// chains overlap.
template <class T>
void dot3(std::size_t n, const T* d, const T* g, T& gg, T& dg, T& dd) noexcept {
  using B = simd::batch<T>;
  constexpr std::size_t W = simd::width<T>;
  B a0(T(0)), a1(T(0)), b0(T(0)), b1(T(0)), c0(T(0)), c1(T(0));
  std::size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const B g0 = B::load_unaligned(g + i), g1 = B::load_unaligned(g + i + W);
    const B d0 = B::load_unaligned(d + i), d1 = B::load_unaligned(d + i + W);
    a0 = xsimd::fma(g0, g0, a0);
    a1 = xsimd::fma(g1, g1, a1);
    b0 = xsimd::fma(d0, g0, b0);
    b1 = xsimd::fma(d1, g1, b1);
    c0 = xsimd::fma(d0, d0, c0);
    c1 = xsimd::fma(d1, d1, c1);
  }
  for (; i + W <= n; i += W) {
    const B g0 = B::load_unaligned(g + i), d0 = B::load_unaligned(d + i);
    a0 = xsimd::fma(g0, g0, a0);
    b0 = xsimd::fma(d0, g0, b0);
    c0 = xsimd::fma(d0, d0, c0);
  }
  gg = xsimd::hadd(a0 + a1);
  dg = xsimd::hadd(b0 + b1);
  dd = xsimd::hadd(c0 + c1);
  for (; i < n; ++i) {
    gg += g[i] * g[i];
    dg += d[i] * g[i];
    dd += d[i] * d[i];
  }
}

// out = a * sign(g) (sign_step) or a * g, over n elements.
template <class T>
void scaled_direction(std::size_t n, T* out, const T* g, T a, bool sign_step) noexcept {
  using B = simd::batch<T>;
  constexpr std::size_t W = simd::width<T>;
  const B va(a), zero(T(0));
  std::size_t i = 0;
  for (; i + W <= n; i += W) {
    const B gv = B::load_unaligned(g + i);
    // a * sign(g) with sign(0) = 0: copy g's sign bit onto a, then zero where g == 0.
    const B v = sign_step ? xsimd::select(gv != zero, xsimd::copysign(va, gv), zero) : va * gv;
    v.store_unaligned(out + i);
  }
  for (; i < n; ++i) out[i] = sign_step ? a * T((g[i] > T(0)) - (g[i] < T(0))) : a * g[i];
}

// x = s * (x + a * g) over n elements.
template <class T>
void scaled_axpy(std::size_t n, T* x, const T* g, T a, T s) noexcept {
  using B = simd::batch<T>;
  constexpr std::size_t W = simd::width<T>;
  const B va(a), vs(s);
  std::size_t i = 0;
  for (; i + W <= n; i += W)
    (vs * xsimd::fma(va, B::load_unaligned(g + i), B::load_unaligned(x + i))).store_unaligned(x + i);
  for (; i < n; ++i) x[i] = s * (x[i] + a * g[i]);
}

template <class T>
void check_step_size(const char* where, T step_size) {
  if (!(step_size > T(0)) || !std::isfinite(step_size))
    robustxlt::detail::fail(where, ": step_size must be > 0 and finite, got ", step_size);
}

}  // namespace detail

// Projects delta onto the ball in place: L2 scales each group by min(1, eps / ||delta||), Linf clamps to
// [-eps, eps]; epsilon 0 gives zeros, an unbounded ball leaves delta as it is. Padded positions become
// zero. Throws InvalidArgument when epsilon < 0 or NaN, ShapeError on a mask of another shape.
template <class E, class M, class T>
void project(E& delta, const M& mask, const Ball<T>& ball) {
  detail::check_ball("project", ball);
  auto v = detail::view3(delta, "project", "delta");
  const TokenMask& m = TokenMask::from(mask, v.B, v.T, "project");
  const T eps = ball.epsilon;
  if (ball.bounded()) detail::for_each_group(m, ball.granularity, [&](std::size_t, const std::size_t* toks, std::size_t count) {
    if (ball.norm == Norm::linf) {
      for (std::size_t k = 0; k < count; ++k)
        detail::linf_step_clamp(v.D, v.data + toks[k] * v.D, v.data + toks[k] * v.D, T(0), T(0), false, eps);
      return;
    }
    const T n = detail::group_norm(v.data, toks, count, v.D, Norm::l2);
    if (n > eps) {
      const T s = eps / n;
      for (std::size_t k = 0; k < count; ++k) simd::scale(v.D, s, v.data + toks[k] * v.D);
    }
  });
  detail::zero_padding(v.data, m, v.D);
}

// Writes the ascent direction of grad into dir (same shape): sign(g) for Linf, g / ||g||_2 per group for L2
// (a group whose gradient is zero gets a zero direction, never NaN). Padded positions get zero.
template <class ED, class EG, class M>
void ascent_direction(ED& dir, const EG& grad, const M& mask, Norm norm, Granularity granularity) {
  auto g = detail::view3(grad, "ascent_direction", "grad");
  auto d = detail::view3(dir, "ascent_direction", "dir");
  detail::check_same_shape("ascent_direction", "grad", g, "dir", d);
  using T = std::remove_pointer_t<decltype(d.data)>;
  const TokenMask& m = TokenMask::from(mask, g.B, g.T, "ascent_direction");
  detail::for_each_group(m, granularity, [&](std::size_t, const std::size_t* toks, std::size_t count) {
    T inv = 0;
    if (norm == Norm::l2) {
      const T n = detail::group_norm(g.data, toks, count, g.D, Norm::l2);
      inv = n > T(0) ? T(1) / n : T(0);
    }
    for (std::size_t k = 0; k < count; ++k)
      detail::scaled_direction(g.D, d.data + toks[k] * g.D, g.data + toks[k] * g.D, norm == Norm::linf ? T(1) : inv,
                               norm == Norm::linf);
  });
  detail::zero_padding(d.data, m, d.D);
}

// The FGSM step written directly: delta = eps * dir(grad) per group (sign for Linf, g / ||g||_2 for L2, zero
// for a zero gradient), reading grad once and writing delta once. Padded positions get zero. Throws
// InvalidArgument on an unbounded ball (a step of infinite size) or epsilon < 0.
template <class ED, class EG, class M, class T>
void fgsm_step(ED& delta, const EG& grad, const M& mask, const Ball<T>& ball) {
  detail::check_ball("fgsm_step", ball, false);
  auto g = detail::view3(grad, "fgsm_step", "grad");
  auto d = detail::view3(delta, "fgsm_step", "delta");
  detail::check_same_shape("fgsm_step", "grad", g, "delta", d);
  const TokenMask& m = TokenMask::from(mask, g.B, g.T, "fgsm_step");
  const T eps = ball.epsilon;
  detail::for_each_group(m, ball.norm == Norm::linf ? Granularity::token : ball.granularity,
                         [&](std::size_t, const std::size_t* toks, std::size_t count) {
                           T a = eps;
                           if (ball.norm == Norm::l2) {
                             const T n = detail::group_norm(g.data, toks, count, g.D, Norm::l2);
                             a = n > T(0) ? eps / n : T(0);
                           }
                           for (std::size_t k = 0; k < count; ++k)
                             detail::scaled_direction(g.D, d.data + toks[k] * g.D, g.data + toks[k] * g.D, a,
                                                      ball.norm == Norm::linf);
                         });
  detail::zero_padding(d.data, m, d.D);
}

// Scales each group onto the sphere of the ball, in place: x <- eps * x / (||x||_group + tiny) (SMART's rule
// for a per-token Linf ball). Padded positions become zero. Throws InvalidArgument when tiny < 0, on an
// unbounded ball or epsilon < 0.
template <class E, class M, class T>
void normalize_to_ball(E& x, const M& mask, const Ball<T>& ball, T tiny) {
  detail::check_ball("normalize_to_ball", ball, false);
  if (!(tiny >= T(0)) || !std::isfinite(tiny)) robustxlt::detail::fail("normalize_to_ball: tiny must be >= 0, got ", tiny);
  auto v = detail::view3(x, "normalize_to_ball", "x");
  const TokenMask& m = TokenMask::from(mask, v.B, v.T, "normalize_to_ball");
  detail::for_each_group(m, ball.granularity, [&](std::size_t, const std::size_t* toks, std::size_t count) {
    const T den = detail::group_norm(v.data, toks, count, v.D, ball.norm) + tiny;
    if (!(den > T(0))) return;
    for (std::size_t k = 0; k < count; ++k) {
      T* r = v.data + toks[k] * v.D;
      simd::scale(v.D, T(1) / den, r);
      if (ball.epsilon != T(1)) simd::scale(v.D, ball.epsilon, r);
    }
  });
  detail::zero_padding(v.data, m, v.D);
}

// SMART's normalisation, in place: each token's row x / (max_d |x_d| + tiny). Padded positions become zero.
template <class E, class M, class T>
void normalize_per_token_max(E& x, const M& mask, T tiny) {
  normalize_to_ball(x, mask, Ball<T>{Norm::linf, Granularity::token, T(1)}, tiny);
}

// One fused ascent step with projection, in place: delta <- Proj_ball(delta + step_size * direction(grad)).
// Reads delta and grad once and writes delta once (per-group passes stay in cache). L2: the new norm comes
// from ||d||^2 + 2 a <d, g> + a^2 ||g||^2, so no second pass over memory. A group whose gradient is zero is
// left unchanged (no step, no NaN). An unbounded ball steps without projecting (FreeLB's default); epsilon 0
// leaves zeros. Padded positions become zero.
// Throws ShapeError on mismatched shapes, InvalidArgument when step_size <= 0 or epsilon < 0.
template <class ED, class EG, class M, class T>
void step_and_project(ED& delta, const EG& grad, const M& mask, const Ball<T>& ball, T step_size,
                      Direction direction = Direction::steepest) {
  detail::check_ball("step_and_project", ball);
  detail::check_step_size("step_and_project", step_size);
  auto d = detail::view3(delta, "step_and_project", "delta");
  auto g = detail::view3(grad, "step_and_project", "grad");
  detail::check_same_shape("step_and_project", "delta", d, "grad", g);
  const TokenMask& m = TokenMask::from(mask, d.B, d.T, "step_and_project");
  const std::size_t D = d.D;
  const T eps = ball.epsilon;
  const bool project = ball.bounded();
  detail::for_each_group(m, ball.granularity, [&](std::size_t, const std::size_t* toks, std::size_t count) {
    if (ball.norm == Norm::linf) {
      const bool sign_step = direction == Direction::steepest;
      T inv = 0;
      if (!sign_step) {
        T mx = 0;
        for (std::size_t k = 0; k < count; ++k) mx = std::max(mx, detail::max_abs(D, g.data + toks[k] * D));
        inv = mx > T(0) ? T(1) / mx : T(0);
      }
      for (std::size_t k = 0; k < count; ++k)
        detail::linf_step_clamp(D, d.data + toks[k] * D, g.data + toks[k] * D, step_size, inv, sign_step, eps);
      return;
    }
    double gg = 0, dg = 0, dd = 0;
    for (std::size_t k = 0; k < count; ++k) {
      T tgg, tdg, tdd;
      detail::dot3(D, d.data + toks[k] * D, g.data + toks[k] * D, tgg, tdg, tdd);
      gg += static_cast<double>(tgg);
      dg += static_cast<double>(tdg);
      dd += static_cast<double>(tdd);
    }
    const double gnorm = std::sqrt(gg);
    if (gnorm == 0.0) return;  // zero gradient: no step, and delta stays bit-for-bit as it was
    const double a = static_cast<double>(step_size) / gnorm;
    const double n2 = std::max(0.0, dd + 2 * a * dg + a * a * gg);
    const double n = std::sqrt(n2);
    const double s = (project && n > static_cast<double>(eps)) ? static_cast<double>(eps) / n : 1.0;
    for (std::size_t k = 0; k < count; ++k)
      detail::scaled_axpy(D, d.data + toks[k] * D, g.data + toks[k] * D, static_cast<T>(a), static_cast<T>(s));
  });
  detail::zero_padding(d.data, m, D);
}

// ---------------------------------------------------------------------------------------------------------
// Random starts. Token t of sequence b draws from the stream (seed, at.first_example + b, at.step, t)
// (core/random.hpp keyed_stream), so an example's start depends on its global index and the step only:
// not on the batch it is in, the thread count or the order of work.

namespace detail {
inline Rng token_stream(std::uint64_t seed, BatchIndex at, std::size_t b, std::size_t t) noexcept {
  return keyed_stream(seed, at.first_example + b, at.step, t);
}
}  // namespace detail

// Exactly uniform in the ball, per group: L2 draws a Gaussian direction over the group's n unmasked
// elements and a radius eps * U^(1/n) (U from the stream of the group's first token, position T); Linf
// draws each element from U(-eps, eps). Throws InvalidArgument on an unbounded ball or epsilon < 0.
template <class E, class M, class T>
void uniform_ball_start(E& delta, const M& mask, const Ball<T>& ball, std::uint64_t seed, BatchIndex at = {}) {
  detail::check_ball("uniform_ball_start", ball, false);
  auto v = detail::view3(delta, "uniform_ball_start", "delta");
  const TokenMask& m = TokenMask::from(mask, v.B, v.T, "uniform_ball_start");
  std::fill_n(v.data, v.size(), T(0));
  const T eps = ball.epsilon;
  if (ball.norm == Norm::linf) {
    detail::for_each_group(m, Granularity::token, [&](std::size_t n, const std::size_t*, std::size_t) {
      Rng rng = detail::token_stream(seed, at, n / v.T, n % v.T);
      T* r = v.data + n * v.D;
      for (std::size_t i = 0; i < v.D; ++i) r[i] = eps * (T(2) * rng.uniform<T>() - T(1));
    });
    return;
  }
  detail::for_each_group(m, ball.granularity, [&](std::size_t, const std::size_t* toks, std::size_t count) {
    if (count == 0) return;
    double ss = 0;
    for (std::size_t k = 0; k < count; ++k) {
      Rng rng = detail::token_stream(seed, at, toks[k] / v.T, toks[k] % v.T);
      T* r = v.data + toks[k] * v.D;
      rng.fill_normal(r, v.D);
      ss += static_cast<double>(simd::dot(v.D, r, r));
    }
    // Position T (never a token's) of the group's first token's sequence: the radius draw.
    Rng radius_rng = detail::token_stream(seed, at, toks[0] / v.T, v.T + toks[0] % v.T);
    const double dims = static_cast<double>(count * v.D);
    const double radius = static_cast<double>(eps) * std::pow(radius_rng.uniform<double>(), 1.0 / dims);
    const T s = ss > 0 ? static_cast<T>(radius / std::sqrt(ss)) : T(0);
    for (std::size_t k = 0; k < count; ++k) simd::scale(v.D, s, v.data + toks[k] * v.D);
  });
}

// N(0, sigma^2) at every unmasked element (SMART's start); zero at padded positions.
// Throws InvalidArgument when sigma < 0 or not finite.
template <class E, class M, class T>
void gaussian_start(E& delta, const M& mask, T sigma, std::uint64_t seed, BatchIndex at = {}) {
  if (!(sigma >= T(0)) || !std::isfinite(sigma)) robustxlt::detail::fail("gaussian_start: sigma must be >= 0, got ", sigma);
  auto v = detail::view3(delta, "gaussian_start", "delta");
  const TokenMask& m = TokenMask::from(mask, v.B, v.T, "gaussian_start");
  std::fill_n(v.data, v.size(), T(0));
  detail::for_each_group(m, Granularity::token, [&](std::size_t n, const std::size_t*, std::size_t) {
    Rng rng = detail::token_stream(seed, at, n / v.T, n % v.T);
    T* r = v.data + n * v.D;
    rng.fill_normal(r, v.D);
    simd::scale(v.D, sigma, r);
  });
}

// FreeLB's start: L2: U(-1, 1) * magnitude / sqrt(T_valid * D) per element of sequence b (T_valid its
// number of tokens); Linf: U(-magnitude, magnitude). Zero at padded positions; magnitude 0 gives zeros.
// Throws InvalidArgument when magnitude < 0 or not finite.
template <class E, class M, class T>
void freelb_start(E& delta, const M& mask, Norm norm, T magnitude, std::uint64_t seed, BatchIndex at = {}) {
  if (!(magnitude >= T(0)) || !std::isfinite(magnitude))
    robustxlt::detail::fail("freelb_start: magnitude must be >= 0, got ", magnitude);
  auto v = detail::view3(delta, "freelb_start", "delta");
  const TokenMask& m = TokenMask::from(mask, v.B, v.T, "freelb_start");
  std::fill_n(v.data, v.size(), T(0));
  detail::for_each_group(m, Granularity::token, [&](std::size_t n, const std::size_t*, std::size_t) {
    const std::size_t valid = m.tokens(n / v.T).size();
    const T scale = norm == Norm::l2 ? magnitude / std::sqrt(static_cast<T>(valid * v.D)) : magnitude;
    Rng rng = detail::token_stream(seed, at, n / v.T, n % v.T);
    T* r = v.data + n * v.D;
    for (std::size_t i = 0; i < v.D; ++i) r[i] = scale * (T(2) * rng.uniform<T>() - T(1));
  });
}

}  // namespace robustxlt::perturb
