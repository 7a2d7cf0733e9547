#pragma once
// Norms of [B, T, D] tensors with a padding mask, grouped per token (the D values of one position), per
// sequence (the Frobenius norm over the unmasked T x D block) or per batch. Shared by the perturbers (their
// epsilon balls) and the alignment diagnostics (robust-region coverage), so both measure the same way.
// Tensors are xtensor containers or xt::adapt views (contiguous, row-major); masks are [B, T] with non-zero
// for a token, empty for "all tokens".

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/parallel.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"

namespace robustxlt {

enum class Norm { l2, linf };
enum class Granularity { token, sequence, batch };

inline const char* norm_name(Norm n) noexcept { return n == Norm::l2 ? "l2" : "linf"; }

// A norm ball: which norm, which elements share it (one token's D values, one sequence's unmasked T x D
// block, or the whole batch), and its radius. epsilon == 0 means "no perturbation" (every projection gives
// zero), so a radius ramp may start at 0; an unbounded ball is said explicitly with Ball::unbounded
// (epsilon = +infinity: projections do nothing). Perturbers, noise and the alignment diagnostics all take a
// radius as a Ball.
template <class T>
struct Ball {
  Norm norm = Norm::l2;
  Granularity granularity = Granularity::token;
  T epsilon = T(1);  // >= 0, or +infinity for unbounded

  static Ball unbounded(Norm norm = Norm::l2, Granularity granularity = Granularity::sequence) noexcept {
    return Ball{norm, granularity, std::numeric_limits<T>::infinity()};
  }
  bool bounded() const noexcept { return epsilon != std::numeric_limits<T>::infinity(); }
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

// Throws InvalidArgument unless epsilon is >= 0 (+infinity allowed only when allow_unbounded).
template <class T>
void check_ball(const char* where, const Ball<T>& ball, bool allow_unbounded = true) {
  if (!(ball.epsilon >= T(0)) || (!allow_unbounded && !ball.bounded()))
    robustxlt::detail::fail(where, allow_unbounded ? ": epsilon must be >= 0 (or +inf, Ball::unbounded), got "
                                                   : ": epsilon must be >= 0 and finite (a bounded ball), got ",
                            ball.epsilon);
}

// Throws NumericError naming the first NaN or Inf element [b, t, d] of a [B, T, D] input.
template <class V>
void check_finite(const char* where, const char* name, const V& v) {
  if (simd::all_finite(v.size(), v.data)) return;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v.data[i]))
      robustxlt::detail::fail<NumericError>(where, ": ", name, " must be finite, got ", v.data[i], " at [",
                                            i / (v.T * v.D), ", ", (i / v.D) % v.T, ", ", i % v.D, "]");
}

template <class A, class B>
void check_same_shape(const char* where, const char* name_a, const A& a, const char* name_b, const B& b) {
  if (a.B != b.B || a.T != b.T || a.D != b.D)
    robustxlt::detail::fail<ShapeError>(where, ": ", name_b, " must have the shape of ", name_a, " [", a.B, ", ", a.T,
                                        ", ", a.D, "], got [", b.B, ", ", b.T, ", ", b.D, "]");
}

}  // namespace detail

// Which positions are tokens, with the token lists each granularity groups by: a mask parsed and checked
// once. Every function that takes a mask also takes a TokenMask, so a method checks its caller's mask at
// entry and hands the parsed form to the kernels it calls.
class TokenMask {
 public:
  // All B x T positions are tokens.
  TokenMask(std::size_t B, std::size_t T) : B_(B), T_(T), valid_(B * T, 1) { index(); }

  // From a [B, T] mask: any integral or bool xtensor container or view (xt::adapt of a caller's buffer
  // included), 1 = token, 0 = padding; an empty mask means all tokens. A floating mask does not compile.
  // Throws ShapeError when the shape differs from [B, T], InvalidArgument naming the first position whose
  // value is neither 0 nor 1. `where` names the calling function in messages.
  template <class M>
  static TokenMask from(const M& mask, std::size_t B, std::size_t T, const char* where) {
    using V = std::decay_t<typename M::value_type>;
    static_assert(std::is_integral_v<V>,
                  "robustxlt: a mask must hold an integral or bool type (1 = token, 0 = padding); got a floating or "
                  "other non-integral tensor, convert it first (e.g. xt::cast<std::uint8_t>(mask))");
    TokenMask m(B, T);
    if (mask.size() == 0) return m;
    if (mask.dimension() != 2 || mask.shape()[0] != B || mask.shape()[1] != T)
      robustxlt::detail::fail<ShapeError>(where, ": mask must have shape [", B, ", ", T, "], got ", shape_string(mask.shape()));
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t t = 0; t < T; ++t) {
        const V v = mask(b, t);
        if constexpr (std::is_same_v<V, bool>) {
          m.valid_[b * T + t] = v ? 1 : 0;
        } else {
          if (v != V(0) && v != V(1))
            robustxlt::detail::fail(where, ": mask[", b, ", ", t, "] must be 0 or 1, got ", +v);
          m.valid_[b * T + t] = static_cast<std::uint8_t>(v);
        }
      }
    m.index();
    return m;
  }

  // The parsed mask itself, for kernels called with a TokenMask a method already built: only its shape is
  // checked (ShapeError), nothing is copied.
  static const TokenMask& from(const TokenMask& mask, std::size_t B, std::size_t T, const char* where) {
    if (mask.B_ != B || mask.T_ != T)
      robustxlt::detail::fail<ShapeError>(where, ": mask must have shape [", B, ", ", T, "], got [", mask.B_, ", ", mask.T_, "]");
    return mask;
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

}  // namespace detail

// Norm of x per group: [B * T] for token granularity (0 at padded positions), [B] per sequence, [1] per batch.
template <class E, class M>
auto norms(const E& x, const M& mask, Norm norm, Granularity granularity) {
  auto v = detail::view3(x, "norms", "x");
  using T = std::remove_const_t<std::remove_pointer_t<decltype(v.data)>>;
  const TokenMask& m = TokenMask::from(mask, v.B, v.T, "norms");
  Tensor<T, 1> out = xt::zeros<T>({detail::group_count(m, granularity)});
  detail::for_each_group(m, granularity, [&](std::size_t g, const std::size_t* toks, std::size_t count) {
    out(g) = detail::group_norm(v.data, toks, count, v.D, norm);
  });
  return out;
}

}  // namespace robustxlt
