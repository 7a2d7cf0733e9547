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

// The rows of one group's tokens in a [B, T, D] tensor (Granularity: one token, one sequence or the batch).
template <class T>
struct GroupRows {
  T* data;
  const std::size_t* toks;  // flat indices b * T + t of the group's tokens
  std::size_t count;        // number of tokens in the group
  std::size_t D;            // row length
  std::size_t length;       // T, the sequence length
  T* row(std::size_t k) const noexcept { return data + toks[k] * D; }
  std::size_t sequence(std::size_t k) const noexcept { return toks[k] / length; }
  std::size_t position(std::size_t k) const noexcept { return toks[k] % length; }
  T norm(Norm n) const noexcept { return group_norm(data, toks, count, D, n); }
};

// The skeleton every kernel shares: a view of the tensor it writes (`out`, named `name` in errors), the
// mask parsed once at this boundary, fn(rows) for each group of the granularity (in parallel where
// for_each_group runs them so), then zeros at every padded position.
template <class E, class M, class Fn>
void over_groups(const char* where, const char* name, E& out, const M& mask, Granularity granularity, Fn&& fn) {
  auto v = view3(out, where, name);
  using T = std::remove_pointer_t<decltype(v.data)>;
  const TokenMask& m = TokenMask::from(mask, v.B, v.T, where);
  for_each_group(m, granularity, [&](std::size_t, const std::size_t* toks, std::size_t count) {
    fn(GroupRows<T>{v.data, toks, count, v.D, v.T});
  });
  zero_padding(v.data, m, v.D);
}

// The same with a second tensor of the same shape read alongside (a gradient): fn(out_rows, in_rows).
template <class EO, class EI, class M, class Fn>
void over_groups(const char* where, const char* out_name, EO& out, const char* in_name, const EI& in, const M& mask,
                 Granularity granularity, Fn&& fn) {
  auto o = view3(out, where, out_name);
  auto i = view3(in, where, in_name);
  check_same_shape(where, out_name, o, in_name, i);
  using T = std::remove_pointer_t<decltype(o.data)>;
  using U = std::remove_pointer_t<decltype(i.data)>;
  const TokenMask& m = TokenMask::from(mask, o.B, o.T, where);
  for_each_group(m, granularity, [&](std::size_t, const std::size_t* toks, std::size_t count) {
    fn(GroupRows<T>{o.data, toks, count, o.D, o.T}, GroupRows<U>{i.data, toks, count, i.D, i.T});
  });
  zero_padding(o.data, m, o.D);
}

}  // namespace detail

// Projects delta onto the ball in place: L2 scales each group by min(1, eps / ||delta||), Linf clamps to
// [-eps, eps]; epsilon 0 gives zeros, an unbounded ball leaves delta as it is. Padded positions become
// zero. Throws InvalidArgument when epsilon < 0 or NaN, ShapeError on a mask of another shape.
template <class E, class M, class T>
void project(E& delta, const M& mask, const Ball<T>& ball) {
  detail::check_ball("project", ball);
  const T eps = ball.epsilon;
  detail::over_groups("project", "delta", delta, mask, ball.granularity, [&](const auto& x) {
    if (!ball.bounded()) return;
    if (ball.norm == Norm::linf) {
      for (std::size_t k = 0; k < x.count; ++k) detail::linf_step_clamp(x.D, x.row(k), x.row(k), T(0), T(0), false, eps);
      return;
    }
    const T n = x.norm(Norm::l2);
    if (n > eps)
      for (std::size_t k = 0; k < x.count; ++k) simd::scale(x.D, eps / n, x.row(k));
  });
}

// Writes the ascent direction of grad into dir (same shape): sign(g) for Linf, g / ||g||_2 per group for L2
// (a group whose gradient is zero gets a zero direction, never NaN). Padded positions get zero.
template <class ED, class EG, class M>
void ascent_direction(ED& dir, const EG& grad, const M& mask, Norm norm, Granularity granularity) {
  detail::over_groups("ascent_direction", "dir", dir, "grad", grad, mask, granularity, [&](const auto& d, const auto& g) {
    using T = std::remove_pointer_t<decltype(d.data)>;
    T a = 1;  // Linf: sign(g); L2: g / ||g||_2, zero for a zero gradient
    if (norm == Norm::l2) {
      const T n = g.norm(Norm::l2);
      a = n > T(0) ? T(1) / n : T(0);
    }
    for (std::size_t k = 0; k < d.count; ++k) detail::scaled_direction(d.D, d.row(k), g.row(k), a, norm == Norm::linf);
  });
}

// The FGSM step written directly: delta = eps * dir(grad) per group (sign for Linf, g / ||g||_2 for L2, zero
// for a zero gradient), reading grad once and writing delta once. Padded positions get zero. Throws
// InvalidArgument on an unbounded ball (a step of infinite size) or epsilon < 0.
template <class ED, class EG, class M, class T>
void fgsm_step(ED& delta, const EG& grad, const M& mask, const Ball<T>& ball) {
  detail::check_ball("fgsm_step", ball, false);
  const T eps = ball.epsilon;
  const Granularity granularity = ball.norm == Norm::linf ? Granularity::token : ball.granularity;
  detail::over_groups("fgsm_step", "delta", delta, "grad", grad, mask, granularity, [&](const auto& d, const auto& g) {
    T a = eps;
    if (ball.norm == Norm::l2) {
      const T n = g.norm(Norm::l2);
      a = n > T(0) ? eps / n : T(0);
    }
    for (std::size_t k = 0; k < d.count; ++k) detail::scaled_direction(d.D, d.row(k), g.row(k), a, ball.norm == Norm::linf);
  });
}

// Scales each group onto the sphere of the ball, in place: x <- eps * x / (||x||_group + tiny) (SMART's rule
// for a per-token Linf ball). Padded positions become zero. Throws InvalidArgument when tiny < 0, on an
// unbounded ball or epsilon < 0.
template <class E, class M, class T>
void normalize_to_ball(E& x, const M& mask, const Ball<T>& ball, T tiny) {
  detail::check_ball("normalize_to_ball", ball, false);
  if (!(tiny >= T(0)) || !std::isfinite(tiny)) robustxlt::detail::fail("normalize_to_ball: tiny must be >= 0, got ", tiny);
  detail::over_groups("normalize_to_ball", "x", x, mask, ball.granularity, [&](const auto& v) {
    const T den = v.norm(ball.norm) + tiny;
    if (!(den > T(0))) return;
    for (std::size_t k = 0; k < v.count; ++k) {
      simd::scale(v.D, T(1) / den, v.row(k));
      if (ball.epsilon != T(1)) simd::scale(v.D, ball.epsilon, v.row(k));
    }
  });
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
  const T eps = ball.epsilon;
  const bool project = ball.bounded();
  detail::over_groups("step_and_project", "delta", delta, "grad", grad, mask, ball.granularity, [&](const auto& d, const auto& g) {
    const std::size_t D = d.D;
    if (ball.norm == Norm::linf) {
      const bool sign_step = direction == Direction::steepest;
      T inv = 0;
      if (!sign_step) {
        const T mx = g.norm(Norm::linf);
        inv = mx > T(0) ? T(1) / mx : T(0);
      }
      for (std::size_t k = 0; k < d.count; ++k) detail::linf_step_clamp(D, d.row(k), g.row(k), step_size, inv, sign_step, eps);
      return;
    }
    double gg = 0, dg = 0, dd = 0;
    for (std::size_t k = 0; k < d.count; ++k) {
      T tgg, tdg, tdd;
      detail::dot3(D, d.row(k), g.row(k), tgg, tdg, tdd);
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
    for (std::size_t k = 0; k < d.count; ++k) detail::scaled_axpy(D, d.row(k), g.row(k), static_cast<T>(a), static_cast<T>(s));
  });
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
  const T eps = ball.epsilon;
  const Granularity granularity = ball.norm == Norm::linf ? Granularity::token : ball.granularity;
  detail::over_groups("uniform_ball_start", "delta", delta, mask, granularity, [&](const auto& x) {
    if (x.count == 0) return;
    if (ball.norm == Norm::linf) {
      using V = std::remove_pointer_t<decltype(x.data)>;
      Rng rng = detail::token_stream(seed, at, x.sequence(0), x.position(0));
      rng.fill_symmetric_uniform(x.row(0), x.D, static_cast<V>(eps));
      return;
    }
    double ss = 0;
    for (std::size_t k = 0; k < x.count; ++k) {
      Rng rng = detail::token_stream(seed, at, x.sequence(k), x.position(k));
      rng.fill_normal(x.row(k), x.D);
      ss += static_cast<double>(simd::dot(x.D, x.row(k), x.row(k)));
    }
    // Position T (never a token's) of the group's first token's sequence: the radius draw.
    Rng radius_rng = detail::token_stream(seed, at, x.sequence(0), x.length + x.position(0));
    const double radius = radius_rng.ball_radius(static_cast<double>(eps), x.count * x.D);
    const T s = ss > 0 ? static_cast<T>(radius / std::sqrt(ss)) : T(0);
    for (std::size_t k = 0; k < x.count; ++k) simd::scale(x.D, s, x.row(k));
  });
}

// N(0, sigma^2) at every unmasked element (SMART's start); zero at padded positions.
// Throws InvalidArgument when sigma < 0 or not finite.
template <class E, class M, class T>
void gaussian_start(E& delta, const M& mask, T sigma, std::uint64_t seed, BatchIndex at = {}) {
  if (!(sigma >= T(0)) || !std::isfinite(sigma)) robustxlt::detail::fail("gaussian_start: sigma must be >= 0, got ", sigma);
  detail::over_groups("gaussian_start", "delta", delta, mask, Granularity::token, [&](const auto& x) {
    Rng rng = detail::token_stream(seed, at, x.sequence(0), x.position(0));
    rng.fill_normal(x.row(0), x.D);
    simd::scale(x.D, sigma, x.row(0));
  });
}

// FreeLB's start: L2: U(-1, 1) * magnitude / sqrt(T_valid * D) per element of sequence b (T_valid its
// number of tokens); Linf: U(-magnitude, magnitude). Zero at padded positions; magnitude 0 gives zeros.
// Throws InvalidArgument when magnitude < 0 or not finite.
template <class E, class M, class T>
void freelb_start(E& delta, const M& mask, Norm norm, T magnitude, std::uint64_t seed, BatchIndex at = {}) {
  if (!(magnitude >= T(0)) || !std::isfinite(magnitude))
    robustxlt::detail::fail("freelb_start: magnitude must be >= 0, got ", magnitude);
  detail::over_groups("freelb_start", "delta", delta, mask, Granularity::sequence, [&](const auto& x) {
    const T scale = norm == Norm::l2 ? magnitude / std::sqrt(static_cast<T>(x.count * x.D)) : magnitude;
    for (std::size_t k = 0; k < x.count; ++k) {
      using V = std::remove_pointer_t<decltype(x.data)>;
      Rng rng = detail::token_stream(seed, at, x.sequence(k), x.position(k));
      rng.fill_symmetric_uniform(x.row(k), x.D, static_cast<V>(scale));
    }
  });
}

}  // namespace robustxlt::perturb
