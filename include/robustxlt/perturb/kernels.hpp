#pragma once
// Building blocks of the embedding perturbers, over [B, T, D] row-major tensors (xtensor containers or
// xt::adapt views of a caller's buffer) with an optional padding mask [B, T] (non-zero = token):
// group norms, steepest-ascent directions, projections onto epsilon balls, fused step + projection
// kernels and random starts. Padded positions never receive perturbation (they are written as zero) and
// never count in a norm.
//
// Granularity decides which elements share one norm: per token (the D values of one position), per
// sequence (the Frobenius norm over the unmasked T x D block, as FreeLB) or per batch (everything).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/parallel.hpp"
#include "robustxlt/core/random.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"

namespace robustxlt::perturb {

enum class Norm { l2, linf };
enum class Granularity { token, sequence, batch };

// How an ascent step turns a gradient into a direction.
enum class Direction {
  steepest,    // sign(g) for Linf, g / ||g||_2 for L2 (the PGD step)
  normalized,  // g / ||g|| in the ball's own norm per group (FreeLB's Linf step: g / max|g|)
};

inline const char* norm_name(Norm n) noexcept { return n == Norm::l2 ? "l2" : "linf"; }

// A norm ball: which norm, which elements share it, and its radius.
template <class T>
struct Ball {
  Norm norm = Norm::l2;
  Granularity granularity = Granularity::token;
  T epsilon = T(1);
};

namespace detail {

// Pointer and shape of a contiguous row-major rank-3 xtensor container or adaptor; throws ShapeError
// otherwise (strided views must be evaluated by the caller first).
template <class E>
auto view3(E& e, const char* where, const char* name) {
  using value_type = std::remove_const_t<typename std::decay_t<E>::value_type>;
  static_assert(simd::is_supported_scalar<value_type>, "perturb: tensors must hold float or double");
  using ptr_type = std::conditional_t<std::is_const_v<std::remove_reference_t<E>>, const value_type*, value_type*>;
  if (e.dimension() != 3)
    robustxlt::detail::fail<ShapeError>(where, ": ", name, " must have rank 3 [B, T, D], got shape ", shape_string(e.shape()));
  const auto& s = e.shape();
  const auto& st = e.strides();
  const bool contiguous = (s[2] <= 1 || st[2] == 1) && (s[1] <= 1 || static_cast<std::size_t>(st[1]) == s[2]) &&
                          (s[0] <= 1 || static_cast<std::size_t>(st[0]) == s[1] * s[2]);
  if (!contiguous)
    robustxlt::detail::fail<ShapeError>(where, ": ", name, " must be contiguous and row-major, got strides ",
                                        shape_string(st));
  struct Out {
    ptr_type data;
    std::size_t B, T, D;
    std::size_t size() const noexcept { return B * T * D; }
  };
  return Out{static_cast<ptr_type>(e.data()), s[0], s[1], s[2]};
}

template <class A, class B>
void check_same_shape(const char* where, const char* name_a, const A& a, const char* name_b, const B& b) {
  if (a.B != b.B || a.T != b.T || a.D != b.D)
    robustxlt::detail::fail<ShapeError>(where, ": ", name_b, " must have the shape of ", name_a, " [", a.B, ", ", a.T,
                                        ", ", a.D, "], got [", b.B, ", ", b.T, ", ", b.D, "]");
}

}  // namespace detail

// Which positions are tokens, with the token lists each granularity groups by.
class TokenMask {
 public:
  // All B x T positions are tokens.
  TokenMask(std::size_t B, std::size_t T) : B_(B), T_(T), valid_(B * T, 1) { index(); }

  // From a [B, T] mask (any integer or bool xtensor; non-zero = token). An empty mask means all tokens.
  // Throws ShapeError when the shape differs from [B, T].
  template <class M>
  static TokenMask from(const M& mask, std::size_t B, std::size_t T, const char* where) {
    TokenMask m(B, T);
    if (mask.size() == 0) return m;
    if (mask.dimension() != 2 || mask.shape()[0] != B || mask.shape()[1] != T)
      robustxlt::detail::fail<ShapeError>(where, ": mask must have shape [", B, ", ", T, "], got ", shape_string(mask.shape()));
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t t = 0; t < T; ++t) m.valid_[b * T + t] = mask(b, t) != 0 ? 1 : 0;
    m.index();
    return m;
  }

  std::size_t batch() const noexcept { return B_; }
  std::size_t length() const noexcept { return T_; }
  bool valid(std::size_t n) const noexcept { return valid_[n] != 0; }                  // n = b * T + t
  const std::vector<std::size_t>& tokens(std::size_t b) const { return seq_[b]; }     // valid n of sequence b
  const std::vector<std::size_t>& all_tokens() const noexcept { return all_; }

 private:
  void index() {
    seq_.assign(B_, {});
    all_.clear();
    for (std::size_t n = 0; n < B_ * T_; ++n)
      if (valid_[n]) {
        seq_[n / T_].push_back(n);
        all_.push_back(n);
      }
  }
  std::size_t B_, T_;
  std::vector<std::uint8_t> valid_;
  std::vector<std::vector<std::size_t>> seq_;
  std::vector<std::size_t> all_;
};

namespace detail {

// Calls fn(group_index, token list) for every group of the granularity; groups run in parallel (token and
// sequence granularity), each touching only its own elements, so results do not depend on threads.
// For token granularity the "list" is a one-element array.
template <class Fn>
void for_each_group(const TokenMask& m, Granularity g, Fn&& fn) {
  switch (g) {
    case Granularity::token: {
      const auto& all = m.all_tokens();
      parallel_for(0, static_cast<std::ptrdiff_t>(all.size()), [&](std::ptrdiff_t i) {
        const std::size_t n = all[static_cast<std::size_t>(i)];
        fn(n, &n, std::size_t(1));
      });
      break;
    }
    case Granularity::sequence:
      parallel_for(0, static_cast<std::ptrdiff_t>(m.batch()), [&](std::ptrdiff_t b) {
        const auto& toks = m.tokens(static_cast<std::size_t>(b));
        fn(static_cast<std::size_t>(b), toks.data(), toks.size());
      });
      break;
    case Granularity::batch:
      fn(std::size_t(0), m.all_tokens().data(), m.all_tokens().size());
      break;
  }
}

inline std::size_t group_count(const TokenMask& m, Granularity g) {
  return g == Granularity::token ? m.batch() * m.length() : g == Granularity::sequence ? m.batch() : 1;
}

// Writes zeros at every padded position.
template <class T>
void zero_padding(T* x, const TokenMask& m, std::size_t D) {
  for (std::size_t n = 0; n < m.batch() * m.length(); ++n)
    if (!m.valid(n)) std::fill_n(x + n * D, D, T(0));
}

// max |x[i]|
template <class T>
T max_abs(std::size_t n, const T* x) noexcept {
  using B = simd::batch<T>;
  constexpr std::size_t W = simd::width<T>;
  std::size_t i = 0;
  B acc(T(0));
  for (; i + W <= n; i += W) acc = xsimd::max(acc, xsimd::abs(B::load_unaligned(x + i)));
  alignas(64) T lanes[W];
  acc.store_aligned(lanes);
  T m = *std::max_element(lanes, lanes + W);
  for (; i < n; ++i) m = std::max(m, std::abs(x[i]));
  return m;
}

// Norm of one group of tokens (rows of length D starting at x + n * D).
template <class T>
T group_norm(const T* x, const std::size_t* toks, std::size_t count, std::size_t D, Norm norm) noexcept {
  if (norm == Norm::linf) {
    T m = 0;
    for (std::size_t k = 0; k < count; ++k) m = std::max(m, max_abs(D, x + toks[k] * D));
    return m;
  }
  double ss = 0;  // double: a sequence of 10^5 float squares loses digits in float
  for (std::size_t k = 0; k < count; ++k) {
    const T* r = x + toks[k] * D;
    ss += static_cast<double>(simd::dot(D, r, r));
  }
  return static_cast<T>(std::sqrt(ss));
}

// x = clamp(x + a * dir(g), -eps, eps) over n elements, dir = sign (sign_step) or g * inv (scaled step).
// eps <= 0 disables the clamp.
template <class T>
void linf_step_clamp(std::size_t n, T* x, const T* g, T a, T inv, bool sign_step, T eps) noexcept {
  using B = simd::batch<T>;
  constexpr std::size_t W = simd::width<T>;
  const bool clamp = eps > T(0);
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
void check_ball(const char* where, const Ball<T>& ball, bool allow_unbounded) {
  if (!(ball.epsilon >= T(0)) || !std::isfinite(ball.epsilon))
    robustxlt::detail::fail(where, ": epsilon must be >= 0 and finite, got ", ball.epsilon);
  if (!allow_unbounded && !(ball.epsilon > T(0)))
    robustxlt::detail::fail(where, ": epsilon must be > 0, got ", ball.epsilon);
}

}  // namespace detail

// Norm of x per group: [B * T] for token granularity (0 at padded positions), [B] per sequence, [1] per batch.
template <class E, class M>
auto norms(const E& x, const M& mask, Norm norm, Granularity granularity) {
  auto v = detail::view3(x, "norms", "x");
  using T = std::remove_const_t<std::remove_pointer_t<decltype(v.data)>>;
  const TokenMask m = TokenMask::from(mask, v.B, v.T, "norms");
  Tensor<T, 1> out = xt::zeros<T>({detail::group_count(m, granularity)});
  detail::for_each_group(m, granularity, [&](std::size_t g, const std::size_t* toks, std::size_t count) {
    out(g) = detail::group_norm(v.data, toks, count, v.D, norm);
  });
  return out;
}

// Projects delta onto the ball in place: L2 scales each group by min(1, eps / ||delta||), Linf clamps to
// [-eps, eps]. Padded positions become zero. Throws InvalidArgument when epsilon <= 0.
template <class E, class M, class T>
void project(E& delta, const M& mask, const Ball<T>& ball) {
  detail::check_ball("project", ball, false);
  auto v = detail::view3(delta, "project", "delta");
  const TokenMask m = TokenMask::from(mask, v.B, v.T, "project");
  const T eps = ball.epsilon;
  detail::for_each_group(m, ball.granularity, [&](std::size_t, const std::size_t* toks, std::size_t count) {
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
template <class EG, class ED, class M>
void ascent_direction(const EG& grad, ED& dir, const M& mask, Norm norm, Granularity granularity) {
  auto g = detail::view3(grad, "ascent_direction", "grad");
  auto d = detail::view3(dir, "ascent_direction", "dir");
  detail::check_same_shape("ascent_direction", "grad", g, "dir", d);
  using T = std::remove_pointer_t<decltype(d.data)>;
  const TokenMask m = TokenMask::from(mask, g.B, g.T, "ascent_direction");
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
// for a zero gradient), reading grad once and writing delta once. Padded positions get zero.
template <class EG, class ED, class M, class T>
void fgsm_step(const EG& grad, ED& delta, const M& mask, const Ball<T>& ball) {
  detail::check_ball("fgsm_step", ball, false);
  auto g = detail::view3(grad, "fgsm_step", "grad");
  auto d = detail::view3(delta, "fgsm_step", "delta");
  detail::check_same_shape("fgsm_step", "grad", g, "delta", d);
  const TokenMask m = TokenMask::from(mask, g.B, g.T, "fgsm_step");
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

// SMART's normalisation, in place: each token's row x / (max_d |x_d| + tiny). Padded positions become zero.
template <class E, class M, class T>
void normalize_per_token_max(E& x, const M& mask, T tiny) {
  auto v = detail::view3(x, "normalize_per_token_max", "x");
  if (!(tiny >= T(0))) robustxlt::detail::fail("normalize_per_token_max: tiny must be >= 0, got ", tiny);
  const TokenMask m = TokenMask::from(mask, v.B, v.T, "normalize_per_token_max");
  detail::for_each_group(m, Granularity::token, [&](std::size_t, const std::size_t* toks, std::size_t) {
    T* r = v.data + toks[0] * v.D;
    const T den = detail::max_abs(v.D, r) + tiny;
    if (den > T(0)) simd::scale(v.D, T(1) / den, r);
  });
  detail::zero_padding(v.data, m, v.D);
}

// One fused ascent step with projection, in place: delta <- Proj_ball(delta + alpha * direction(grad)).
// Reads delta and grad once and writes delta once (per-group passes stay in cache). L2: the new norm comes
// from ||d||^2 + 2 a <d, g> + a^2 ||g||^2, so no second pass over memory. A group whose gradient is zero is
// left unchanged (no step, no NaN).
// With project = false the step is unbounded (FreeLB's max_norm = 0). Padded positions become zero.
// Throws ShapeError on mismatched shapes, InvalidArgument when alpha <= 0 or epsilon <= 0 while projecting.
template <class ED, class EG, class M, class T>
void step_and_project(ED& delta, const EG& grad, const M& mask, const Ball<T>& ball, T alpha,
                      Direction direction = Direction::steepest, bool project = true) {
  detail::check_ball("step_and_project", ball, !project);
  if (!(alpha > T(0)) || !std::isfinite(alpha)) robustxlt::detail::fail("step_and_project: alpha must be > 0, got ", alpha);
  auto d = detail::view3(delta, "step_and_project", "delta");
  auto g = detail::view3(grad, "step_and_project", "grad");
  detail::check_same_shape("step_and_project", "delta", d, "grad", g);
  const TokenMask m = TokenMask::from(mask, d.B, d.T, "step_and_project");
  const std::size_t D = d.D;
  const T eps = project ? ball.epsilon : T(0);
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
        detail::linf_step_clamp(D, d.data + toks[k] * D, g.data + toks[k] * D, alpha, inv, sign_step, eps);
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
    const double a = static_cast<double>(alpha) / gnorm;
    const double n2 = std::max(0.0, dd + 2 * a * dg + a * a * gg);
    const double n = std::sqrt(n2);
    const double s = (project && n > static_cast<double>(eps)) ? static_cast<double>(eps) / n : 1.0;
    for (std::size_t k = 0; k < count; ++k)
      detail::scaled_axpy(D, d.data + toks[k] * D, g.data + toks[k] * D, static_cast<T>(a), static_cast<T>(s));
  });
  detail::zero_padding(d.data, m, D);
}

// ---------------------------------------------------------------------------------------------------------
// Random starts. Streams are keyed by (seed, sequence, position), so results do not depend on threads.

// Exactly uniform in the ball, per group: L2 draws a Gaussian direction over the group's n unmasked
// elements and a radius eps * U^(1/n); Linf draws each element from U(-eps, eps).
template <class E, class M, class T>
void uniform_ball_start(E& delta, const M& mask, const Ball<T>& ball, std::uint64_t seed) {
  detail::check_ball("uniform_ball_start", ball, false);
  auto v = detail::view3(delta, "uniform_ball_start", "delta");
  const TokenMask m = TokenMask::from(mask, v.B, v.T, "uniform_ball_start");
  std::fill_n(v.data, v.size(), T(0));
  const T eps = ball.epsilon;
  if (ball.norm == Norm::linf) {
    detail::for_each_group(m, Granularity::token, [&](std::size_t n, const std::size_t*, std::size_t) {
      Rng rng(seed, n / v.T, n % v.T);
      T* r = v.data + n * v.D;
      for (std::size_t i = 0; i < v.D; ++i) r[i] = eps * (T(2) * rng.uniform<T>() - T(1));
    });
    return;
  }
  detail::for_each_group(m, ball.granularity, [&](std::size_t group, const std::size_t* toks, std::size_t count) {
    if (count == 0) return;
    double ss = 0;
    for (std::size_t k = 0; k < count; ++k) {
      Rng rng(seed, toks[k] / v.T, toks[k] % v.T);
      T* r = v.data + toks[k] * v.D;
      rng.fill_normal(r, v.D);
      ss += static_cast<double>(simd::dot(v.D, r, r));
    }
    Rng radius_rng(seed, ~std::uint64_t(0), group);
    const double dims = static_cast<double>(count * v.D);
    const double radius = static_cast<double>(eps) * std::pow(radius_rng.uniform<double>(), 1.0 / dims);
    const T s = ss > 0 ? static_cast<T>(radius / std::sqrt(ss)) : T(0);
    for (std::size_t k = 0; k < count; ++k) simd::scale(v.D, s, v.data + toks[k] * v.D);
  });
}

// N(0, sigma^2) at every unmasked element (SMART's start); zero at padded positions.
template <class E, class M, class T>
void gaussian_start(E& delta, const M& mask, T sigma, std::uint64_t seed) {
  if (!(sigma >= T(0)) || !std::isfinite(sigma)) robustxlt::detail::fail("gaussian_start: sigma must be >= 0, got ", sigma);
  auto v = detail::view3(delta, "gaussian_start", "delta");
  const TokenMask m = TokenMask::from(mask, v.B, v.T, "gaussian_start");
  std::fill_n(v.data, v.size(), T(0));
  detail::for_each_group(m, Granularity::token, [&](std::size_t n, const std::size_t*, std::size_t) {
    Rng rng(seed, n / v.T, n % v.T);
    T* r = v.data + n * v.D;
    rng.fill_normal(r, v.D);
    simd::scale(v.D, sigma, r);
  });
}

// FreeLB's start: L2: U(-1, 1) * magnitude / sqrt(T_valid * D) per element of sequence b (T_valid its
// number of tokens); Linf: U(-magnitude, magnitude). Zero at padded positions; magnitude 0 gives zeros.
template <class E, class M, class T>
void freelb_start(E& delta, const M& mask, Norm norm, T magnitude, std::uint64_t seed) {
  if (!(magnitude >= T(0)) || !std::isfinite(magnitude))
    robustxlt::detail::fail("freelb_start: magnitude must be >= 0, got ", magnitude);
  auto v = detail::view3(delta, "freelb_start", "delta");
  const TokenMask m = TokenMask::from(mask, v.B, v.T, "freelb_start");
  std::fill_n(v.data, v.size(), T(0));
  detail::for_each_group(m, Granularity::token, [&](std::size_t n, const std::size_t*, std::size_t) {
    const std::size_t valid = m.tokens(n / v.T).size();
    const T scale = norm == Norm::l2 ? magnitude / std::sqrt(static_cast<T>(valid * v.D)) : magnitude;
    Rng rng(seed, n / v.T, n % v.T);
    T* r = v.data + n * v.D;
    for (std::size_t i = 0; i < v.D; ++i) r[i] = scale * (T(2) * rng.uniform<T>() - T(1));
  });
}

}  // namespace robustxlt::perturb
