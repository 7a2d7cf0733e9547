#pragma once
// Randomized-smoothing statistics: Cohen et al. (2019) PREDICT and CERTIFY for Gaussian noise, and SAFER-style
// certificates for word substitution (Ye et al. 2020). The distributions (the beta quantile for
// Clopper-Pearson, the binomial tail for the two-sided test, the normal quantile) are in
// smooth/statistics.hpp.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/smooth/statistics.hpp"

namespace robustxlt::smooth {

namespace detail {

// alpha is the significance level (failure probability) of a test or bound: smoothing's one use of the name.
inline void check_alpha(const char* where, double alpha) {
  if (!(alpha > 0.0 && alpha < 1.0)) robustxlt::detail::fail(where, ": alpha must be in (0, 1), got ", alpha);
}

// The classes with the most and the second most votes, ties to the lowest index; the runner-up is -1
// (abstain) when there is one class.
inline std::pair<std::int64_t, std::int64_t> top_two(const std::vector<std::size_t>& votes) {
  std::size_t a = 0;
  for (std::size_t c = 1; c < votes.size(); ++c)
    if (votes[c] > votes[a]) a = c;
  if (votes.size() == 1) return {0, -1};
  std::size_t b = a == 0 ? 1 : 0;
  for (std::size_t c = 0; c < votes.size(); ++c)
    if (c != a && votes[c] > votes[b]) b = c;
  return {static_cast<std::int64_t>(a), static_cast<std::int64_t>(b)};
}

}  // namespace detail

// Two-sided exact binomial test of k successes in n trials against p = 1/2: the probability, under
// Bin(n, 1/2), of an outcome at least as far from n/2 as k, i.e. min(1, 2 min(P(X <= k), P(X >= k))).
// Throws InvalidArgument when n == 0 or k > n.
inline double binomial_test_two_sided(std::size_t k, std::size_t n) {
  if (n == 0) robustxlt::detail::fail("binomial_test_two_sided: n must be > 0, got 0");
  if (k > n) robustxlt::detail::fail("binomial_test_two_sided: k must be <= n ", n, ", got ", k);
  const double nd = static_cast<double>(n), kd = static_cast<double>(k);
  const double lower = k == n ? 1.0 : detail::incomplete_beta(nd - kd, kd + 1.0, 0.5);  // P(X <= k)
  const double upper = k == 0 ? 1.0 : detail::incomplete_beta(kd, nd - kd + 1.0, 0.5);  // P(X >= k)
  return std::min(1.0, 2.0 * std::min(lower, upper));
}

// One-sided (1 - alpha) Clopper-Pearson lower confidence bound of a binomial proportion from k successes in
// n trials: the alpha quantile of Beta(k, n - k + 1); 0 when k == 0.
inline double clopper_pearson_lower(std::size_t k, std::size_t n, double alpha) {
  detail::check_alpha("clopper_pearson_lower", alpha);
  if (n == 0) robustxlt::detail::fail("clopper_pearson_lower: n must be > 0, got 0");
  if (k > n) robustxlt::detail::fail("clopper_pearson_lower: k must be <= n ", n, ", got ", k);
  if (k == 0) return 0.0;
  return detail::beta_quantile(static_cast<double>(k), static_cast<double>(n - k + 1), alpha);
}

// Standard normal quantile Phi^-1(p), p in (0, 1).
inline double normal_quantile(double p) {
  if (!(p > 0.0 && p < 1.0)) robustxlt::detail::fail("normal_quantile: p must be in (0, 1), got ", p);
  return detail::standard_normal_quantile(p);
}

inline constexpr std::int64_t abstain = -1;

struct Prediction {
  std::int64_t label = abstain;  // the top class, or abstain
  double p_value = 1.0;          // two-sided binomial test of the top count against the runner-up
};

// Cohen et al.'s PREDICT from vote counts over n noisy copies: the top two counts nA >= nB; abstain when
// the two-sided binomial test of nA out of nA + nB against 1/2 has p-value above alpha. Ties between classes
// go to the lowest index. Throws when counts is empty, sums to zero, or alpha is outside (0, 1).
inline Prediction predict(const std::vector<std::size_t>& counts, double alpha) {
  detail::check_alpha("predict", alpha);
  if (counts.empty()) robustxlt::detail::fail("predict: counts must name at least one class, got none");
  const auto [a, b] = detail::top_two(counts);
  const std::size_t na = counts[static_cast<std::size_t>(a)], nb = b < 0 ? 0 : counts[static_cast<std::size_t>(b)];
  if (na + nb == 0) robustxlt::detail::fail("predict: counts must contain at least one vote, got all zeros");
  Prediction p;
  p.p_value = binomial_test_two_sided(na, na + nb);
  if (p.p_value <= alpha) p.label = a;
  return p;
}

struct Certificate {
  std::int64_t label = abstain;  // the certified class, or abstain
  double p_lower = 0.0;          // Clopper-Pearson lower bound of P(class = label) under noise
  double radius = 0.0;           // certified L2 radius sigma * Phi^-1(p_lower); 0 when abstaining
};

// Cohen et al.'s CERTIFY given the class picked with n0 selection samples (candidate) and the count of that
// class among n fresh estimation samples: p_lower = Clopper-Pearson lower bound at level alpha; abstain when
// p_lower < 1/2, else radius = sigma * Phi^-1(p_lower). Throws on n == 0, count > n, alpha outside (0, 1),
// sigma <= 0.
inline Certificate certify(std::int64_t candidate, std::size_t count, std::size_t n, double alpha, double sigma) {
  detail::check_alpha("certify", alpha);
  if (n == 0) robustxlt::detail::fail("certify: n must be > 0, got 0");
  if (!(sigma > 0.0) || !std::isfinite(sigma)) robustxlt::detail::fail("certify: sigma must be > 0, got ", sigma);
  if (candidate < 0) robustxlt::detail::fail("certify: candidate must be a class index >= 0, got ", candidate);
  Certificate c;
  c.p_lower = clopper_pearson_lower(count, n, alpha);
  if (c.p_lower < 0.5) return c;
  c.label = candidate;
  // p_lower can round to 1 only for astronomically large n; keep the radius finite.
  c.radius = sigma * normal_quantile(std::min(c.p_lower, 1.0 - 1e-16));
  return c;
}

// Fraction of examples certified correct at each radius: label == gold and radius >= r (abstentions never
// count). gold: any range of integer labels, one per certificate. Throws ShapeError when the lists differ
// in length.
template <class Labels>
std::vector<double> certified_accuracy(const std::vector<Certificate>& certs, const Labels& gold_labels,
                                       const std::vector<double>& radii) {
  using V = std::decay_t<decltype(*std::begin(gold_labels))>;
  static_assert(std::is_integral_v<V> && !std::is_same_v<V, bool>, "certified_accuracy: gold must be a range of integer labels");
  std::vector<std::int64_t> gold;
  for (const auto& g : gold_labels) gold.push_back(static_cast<std::int64_t>(g));
  if (certs.size() != gold.size())
    robustxlt::detail::fail<ShapeError>("certified_accuracy: gold must have one label per certificate (", certs.size(),
                                        "), got ", gold.size());
  std::vector<double> out;
  for (double r : radii) {
    std::size_t ok = 0;
    for (std::size_t i = 0; i < certs.size(); ++i)
      ok += certs[i].label != abstain && certs[i].label == gold[i] && certs[i].radius >= r;
    out.push_back(certs.empty() ? 0.0 : static_cast<double>(ok) / static_cast<double>(certs.size()));
  }
  return out;
}

inline std::vector<double> certified_accuracy(const std::vector<Certificate>& certs, std::initializer_list<std::int64_t> gold,
                                              const std::vector<double>& radii) {
  return certified_accuracy(certs, std::vector<std::int64_t>(gold), radii);
}

// ---------------------------------------------------------------------------------------------------------
// Word-substitution certificates.

// Overlap q_w = min over neighbours w' of |P_w n P_w'| / |P_w|, with P_w = {w} U N(w): the least probability
// mass the smoothing distribution of w keeps when w is swapped for one of its neighbours. 1 when w has no
// neighbours (nothing can be substituted). neighbours[i] lists the ids of N(i); ids must be < size().
inline double substitution_overlap(const std::vector<std::vector<std::uint32_t>>& neighbours, std::uint32_t w) {
  if (w >= neighbours.size())
    robustxlt::detail::fail("substitution_overlap: word id must be < ", neighbours.size(), ", got ", w);
  auto perturbation_set = [&](std::uint32_t v) {
    std::vector<std::uint32_t> p = neighbours[v];
    p.push_back(v);
    std::sort(p.begin(), p.end());
    p.erase(std::unique(p.begin(), p.end()), p.end());
    return p;
  };
  const auto pw = perturbation_set(w);
  double q = 1.0;
  for (std::uint32_t v : neighbours[w]) {
    if (v >= neighbours.size())
      robustxlt::detail::fail("substitution_overlap: neighbour id of ", w, " must be < ", neighbours.size(), ", got ", v);
    const auto pv = perturbation_set(v);
    std::vector<std::uint32_t> both;
    std::set_intersection(pw.begin(), pw.end(), pv.begin(), pv.end(), std::back_inserter(both));
    q = std::min(q, static_cast<double>(both.size()) / static_cast<double>(pw.size()));
  }
  return q;
}

struct SubstitutionCertificate {
  double p_hat = 0.0;   // count / n: Monte-Carlo estimate of P(top class) under substitution noise
  double error = 0.0;   // Monte-Carlo error sqrt(log(1 / alpha) / (2 n)) (Hoeffding, holds with 1 - alpha)
  double delta = 0.0;   // 1 - prod of the smallest `budget` overlaps q_w: the most an attack can move p_A
  double margin = 0.0;  // p_hat - delta - 1/2 - error; certified when >= 0
  bool certified = false;
};

// SAFER's condition: the top class stays on top under any substitution of at most `budget` words of the
// sentence (all of them when budget >= overlaps.size()) when p_hat - (1 - prod q) >= 1/2 + error.
// overlaps: q_w of each word of the sentence. Throws on n == 0, count > n, alpha outside (0, 1), q outside [0, 1].
inline SubstitutionCertificate substitution_certificate(std::size_t count, std::size_t n, std::vector<double> overlaps,
                                                        std::size_t budget, double alpha) {
  detail::check_alpha("substitution_certificate", alpha);
  if (n == 0) robustxlt::detail::fail("substitution_certificate: n must be > 0, got 0");
  if (count > n) robustxlt::detail::fail("substitution_certificate: count must be <= n ", n, ", got ", count);
  for (double q : overlaps)
    if (!(q >= 0.0 && q <= 1.0)) robustxlt::detail::fail("substitution_certificate: overlaps must be in [0, 1], got ", q);
  std::sort(overlaps.begin(), overlaps.end());
  double prod = 1.0;
  for (std::size_t i = 0; i < std::min(budget, overlaps.size()); ++i) prod *= overlaps[i];
  SubstitutionCertificate c;
  c.p_hat = static_cast<double>(count) / static_cast<double>(n);
  c.error = std::sqrt(std::log(1.0 / alpha) / (2.0 * static_cast<double>(n)));
  c.delta = 1.0 - prod;
  c.margin = c.p_hat - c.delta - 0.5 - c.error;
  c.certified = c.margin >= 0.0;
  return c;
}

}  // namespace robustxlt::smooth
