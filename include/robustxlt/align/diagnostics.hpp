#pragma once
// Embedding diagnostics for translation pairs: distributions of cosine similarity and of L2 / Linf
// distance, robust-region coverage (the share of pairs whose distance lies within the epsilon ball the
// perturbers defend, at the same norm and granularity), and linear CKA between two representations.

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/norms.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"
#include "robustxlt/align/rows.hpp"

namespace robustxlt::align {

struct Summary {
  std::size_t count = 0;
  double mean = 0, stddev = 0;                        // population standard deviation
  double min = 0, q25 = 0, median = 0, q75 = 0, max = 0;  // linear-interpolation quantiles
};

// Summary statistics of values (all zero when empty).
inline Summary summarize(std::vector<double> v) {
  Summary s;
  s.count = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / double(v.size());
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.stddev = std::sqrt(ss / double(v.size()));
  auto q = [&](double p) {
    const double pos = p * double(v.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const std::size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
  };
  s.min = v.front();
  s.q25 = q(0.25);
  s.median = q(0.5);
  s.q75 = q(0.75);
  s.max = v.back();
  return s;
}

struct PairDiagnostics {
  Summary cosine;  // cos(source_i, target_i)
  Summary l2;      // ||target_i - source_i||_2
  Summary linf;    // ||target_i - source_i||_inf
};

// Row i of source [n, d] and target [n, d] (xtensor containers or xt::adapt views) embed the two sides of
// translation pair i. Throws ShapeError on different shapes, NumericError on non-finite values.
template <class ES, class ET>
PairDiagnostics pair_diagnostics(const ES& source, const ET& target) {
  using T = detail::scalar_of<ES>;
  static_assert(std::is_same_v<T, detail::scalar_of<ET>>, "pair_diagnostics: source and target must hold the same scalar type");
  const auto vs = detail::view2(source, "pair_diagnostics", "source"), vt = detail::view2(target, "pair_diagnostics", "target");
  if (vs.rows != vt.rows || vs.cols != vt.cols)
    robustxlt::detail::fail<ShapeError>("pair_diagnostics: target must have the shape of source [", vs.rows, ", ", vs.cols,
                                        "], got [", vt.rows, ", ", vt.cols, "]");
  const std::size_t n = vs.rows, d = vs.cols;
  std::vector<double> cs, l2, li;
  for (std::size_t i = 0; i < n; ++i) {
    const T* a = vs.row(i);
    const T* b = vt.row(i);
    const double na = std::sqrt(double(simd::dot(d, a, a))), nb = std::sqrt(double(simd::dot(d, b, b)));
    cs.push_back(na > 0 && nb > 0 ? double(simd::dot(d, a, b)) / (na * nb) : 0.0);
    double ss = 0, mx = 0;
    for (std::size_t k = 0; k < d; ++k) {
      const double diff = double(b[k]) - double(a[k]);
      ss += diff * diff;
      mx = std::max(mx, std::abs(diff));
    }
    l2.push_back(std::sqrt(ss));
    li.push_back(mx);
  }
  return {summarize(cs), summarize(l2), summarize(li)};
}

template <class T>
struct EmbeddedPairs {
  Tensor<T, 2> source;       // [n, d] row i embeds the source side of pair i
  Tensor<T, 2> target;       // [n, d]
  std::size_t skipped = 0;   // pairs with a side the embedding function does not cover
};

// Embeds translation pairs (e.g. a MUSE lexicon's entries) with embed(word) -> std::optional<std::vector<T>>
// (std::nullopt when the word is out of vocabulary), keeping the pairs whose two sides are both covered.
// Throws ShapeError when vectors differ in length.
template <class T, class Embed>
EmbeddedPairs<T> embed_pairs(const std::vector<std::pair<std::string, std::string>>& pairs, Embed&& embed) {
  std::vector<std::vector<T>> src, tgt;
  EmbeddedPairs<T> out;
  for (const auto& [a, b] : pairs) {
    std::optional<std::vector<T>> ea = embed(a), eb = embed(b);
    if (!ea || !eb) {
      ++out.skipped;
      continue;
    }
    src.push_back(std::move(*ea));
    tgt.push_back(std::move(*eb));
  }
  out.source = matrix_from_rows(src, "embed_pairs (source side)");
  out.target = matrix_from_rows(tgt, "embed_pairs (target side)");
  if (out.source.shape()[1] != out.target.shape()[1])
    robustxlt::detail::fail<ShapeError>("embed_pairs: source embeddings have ", out.source.shape()[1], " values, target ones ",
                                        out.target.shape()[1]);
  return out;
}

// Robust-region coverage: the fraction of groups (tokens, sequences or the batch, as the perturbers group
// them) whose distance ||target - source|| at the ball's norm is at most its epsilon: the share of
// translation pairs a perturber with that Ball defends. source and target [B, T, D] (for single words,
// T = 1), xtensor containers or xt::adapt views; mask [B, T] (1 = token) or empty. Groups without tokens
// do not count; 0 when there is none. Throws ShapeError (shapes), InvalidArgument (epsilon < 0),
// NumericError (NaN or Inf in either input).
template <class E1, class E2, class M, class T>
double robust_region_coverage(const E1& source, const E2& target, const M& mask, const Ball<T>& ball) {
  const char* where = "robust_region_coverage";
  const auto s = robustxlt::detail::view3(source, where, "source");
  const auto t = robustxlt::detail::view3(target, where, "target");
  static_assert(std::is_same_v<std::remove_const_t<std::remove_pointer_t<decltype(s.data)>>, T>,
                "robust_region_coverage: the ball's scalar type must be the embeddings'");
  robustxlt::detail::check_same_shape(where, "source", s, "target", t);
  robustxlt::detail::check_ball(where, ball);
  robustxlt::detail::check_finite(where, "source", s);
  robustxlt::detail::check_finite(where, "target", t);
  const TokenMask& m = TokenMask::from(mask, s.B, s.T, where);
  Tensor<T, 3> diff = Tensor<T, 3>::from_shape({s.B, s.T, s.D});
  for (std::size_t i = 0; i < s.size(); ++i) diff.data()[i] = t.data[i] - s.data[i];
  const auto n = norms(diff, m, ball.norm, ball.granularity);
  std::size_t groups = 0, inside = 0;
  for (std::size_t g = 0; g < n.size(); ++g) {
    if (ball.granularity == Granularity::token && !m.valid(g)) continue;
    if (ball.granularity == Granularity::sequence && m.tokens(g).empty()) continue;
    if (ball.granularity == Granularity::batch && m.all_tokens().empty()) continue;
    ++groups;
    inside += n(g) <= ball.epsilon;
  }
  return groups ? double(inside) / double(groups) : 0.0;
}

// Linear CKA between representations X [n, d1] and Y [n, d2] of the same n inputs:
// ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc. In [0, 1]; invariant to
// orthogonal transforms and isotropic scaling. 0 when either side is constant. Throws ShapeError when n differs.
template <class EX, class EY>
double linear_cka(const EX& x, const EY& y) {
  const auto vx = detail::view2(x, "linear_cka", "X", false), vy = detail::view2(y, "linear_cka", "Y", false);
  if (vx.rows != vy.rows)
    robustxlt::detail::fail<ShapeError>("linear_cka: X and Y must have the same number of rows, got ", vx.rows, " and ", vy.rows);
  using Mat = Eigen::MatrixXd;
  const Eigen::Index n = static_cast<Eigen::Index>(vx.rows);
  Mat a = ConstMatrixMap<detail::scalar_of<EX>>(vx.data, n, static_cast<Eigen::Index>(vx.cols)).template cast<double>();
  Mat b = ConstMatrixMap<detail::scalar_of<EY>>(vy.data, n, static_cast<Eigen::Index>(vy.cols)).template cast<double>();
  if (!a.allFinite() || !b.allFinite()) robustxlt::detail::fail<NumericError>("linear_cka: representations must be finite");
  a.rowwise() -= a.colwise().mean();
  b.rowwise() -= b.colwise().mean();
  const double cross = (b.transpose() * a).squaredNorm();
  const double den = (a.transpose() * a).norm() * (b.transpose() * b).norm();
  return den > 0 ? cross / den : 0.0;
}

}  // namespace robustxlt::align
