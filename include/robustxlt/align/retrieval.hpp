#pragma once
// Cross-lingual retrieval over row embeddings (queries X [nq, d], candidates Y [nc, d]): cosine nearest
// neighbours, CSLS, precision at k against gold lexicons (bilingual lexicon induction), ratio-margin scores
// and one-to-one mining of sentence pairs with F1 against gold pairs (BUCC), Tatoeba-style accuracy.
// Similarities are computed block by block with Eigen products, keeping only per-row top-k lists, so
// memory stays O(block^2 + (nq + nc) k) and a 100k x 100k search never holds the full matrix.

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/io.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"
#include "robustxlt/align/rows.hpp"

namespace robustxlt::align {

enum class Retrieval { cosine, csls };

struct RetrievalOptions {
  std::size_t k = 10;       // neighbours returned per query
  std::size_t csls_k = 10;  // neighbourhood size of CSLS's mean similarities r_T(x) and r_S(y)
  std::size_t block = 2048; // rows of X and of Y per block product
};

template <class T>
struct Neighbours {
  Tensor<std::int64_t, 2> index;  // [nq, k] candidate indices, best first (ties to the lower index)
  Tensor<T, 2> score;             // [nq, k] their scores (cosine or CSLS)
};

namespace detail {

// Per-row list of the k best (value, index) pairs, best first; ties keep the lower index first.
template <class T>
class TopK {
 public:
  TopK(std::size_t rows, std::size_t k)
      : k_(k), vals_(rows * k, -std::numeric_limits<T>::infinity()), idx_(rows * k, -1),
        floor_(rows, -std::numeric_limits<T>::infinity()) {}
  // The value a candidate must exceed to enter each row's list, contiguous so callers can test many
  // candidates at once with SIMD and call offer() only for the few that pass.
  const T* floors() const noexcept { return floor_.data(); }
  void offer(std::size_t row, T v, std::int64_t j) {
    T* vs = vals_.data() + row * k_;
    std::int64_t* is = idx_.data() + row * k_;
    if (!(v > vs[k_ - 1])) return;  // equal values keep the earlier (lower) index
    std::size_t p = k_ - 1;
    while (p > 0 && v > vs[p - 1]) {
      vs[p] = vs[p - 1];
      is[p] = is[p - 1];
      --p;
    }
    vs[p] = v;
    is[p] = j;
    floor_[row] = vs[k_ - 1];
  }
  const T* values(std::size_t row) const { return vals_.data() + row * k_; }
  const std::int64_t* indices(std::size_t row) const { return idx_.data() + row * k_; }
  T mean(std::size_t row) const {
    double s = 0;
    for (std::size_t i = 0; i < k_; ++i) s += values(row)[i];
    return static_cast<T>(s / static_cast<double>(k_));
  }

 private:
  std::size_t k_;
  std::vector<T> vals_;
  std::vector<std::int64_t> idx_;
  std::vector<T> floor_;
};

// Offers row `row` of the score block (values v[0..n), candidate indices first + c) to a TopK row, testing
// W values at a time against the row's floor.
template <class T>
void offer_row(TopK<T>& top, std::size_t row, const T* v, std::size_t n, std::int64_t first) {
  using B = simd::batch<T>;
  constexpr std::size_t W = simd::width<T>;
  std::size_t c = 0;
  for (; c + W <= n; c += W)
    if (xsimd::any(B::load_unaligned(v + c) > B(top.floors()[row])))
      for (std::size_t l = c; l < c + W; ++l) top.offer(row, v[l], first + static_cast<std::int64_t>(l));
  for (; c < n; ++c) top.offer(row, v[c], first + static_cast<std::int64_t>(c));
}

// Offers one row of a score block to the column lists: value v[c] to list first_col + c, as candidate `index`.
template <class T>
void offer_columns(TopK<T>& top, std::size_t first_col, const T* v, std::size_t n, std::int64_t index) {
  using B = simd::batch<T>;
  constexpr std::size_t W = simd::width<T>;
  std::size_t c = 0;
  for (; c + W <= n; c += W)
    if (xsimd::any(B::load_unaligned(v + c) > B::load_unaligned(top.floors() + first_col + c)))
      for (std::size_t l = c; l < c + W; ++l) top.offer(first_col + l, v[l], index);
  for (; c < n; ++c) top.offer(first_col + c, v[c], index);
}

// Calls fn(block, row0, col0) for every block of X Y^T (block is [rows, cols], row-major).
template <class T, class Fn>
void for_each_block(const RowMatrix<T>& x, const RowMatrix<T>& y, std::size_t block, Fn&& fn) {
  robustxlt::detail::sync_eigen_threads();
  RowMatrix<T> s;
  const auto b = static_cast<Eigen::Index>(block);
  for (Eigen::Index r0 = 0; r0 < x.rows(); r0 += b) {
    const Eigen::Index rn = std::min(b, x.rows() - r0);
    for (Eigen::Index c0 = 0; c0 < y.rows(); c0 += b) {
      const Eigen::Index cn = std::min(b, y.rows() - c0);
      s.resize(rn, cn);
      s.noalias() = x.middleRows(r0, rn) * y.middleRows(c0, cn).transpose();
      fn(s, static_cast<std::size_t>(r0), static_cast<std::size_t>(c0));
    }
  }
}

// Mean of each row's k largest similarities to the other side, in both directions: (r over Y for each x,
// r over X for each y).
template <class T>
std::pair<std::vector<T>, std::vector<T>> neighbourhood_means(const RowMatrix<T>& x, const RowMatrix<T>& y, std::size_t k,
                                                              std::size_t block) {
  TopK<T> rx(static_cast<std::size_t>(x.rows()), k), ry(static_cast<std::size_t>(y.rows()), k);
  for_each_block(x, y, block, [&](const RowMatrix<T>& s, std::size_t r0, std::size_t c0) {
    const auto n = static_cast<std::size_t>(s.cols());
    for (Eigen::Index i = 0; i < s.rows(); ++i) {
      const T* row = s.data() + i * s.cols();
      offer_row(rx, r0 + static_cast<std::size_t>(i), row, n, static_cast<std::int64_t>(c0));
      offer_columns(ry, c0, row, n, static_cast<std::int64_t>(r0) + i);
    }
  });
  std::pair<std::vector<T>, std::vector<T>> out;
  for (Eigen::Index i = 0; i < x.rows(); ++i) out.first.push_back(rx.mean(static_cast<std::size_t>(i)));
  for (Eigen::Index j = 0; j < y.rows(); ++j) out.second.push_back(ry.mean(static_cast<std::size_t>(j)));
  return out;
}

// The two row sets of a retrieval, checked: finite, rank 2, contiguous, of one width and one scalar type.
template <class EX, class EY>
auto check_pair(const char* where, const EX& x, const EY& y, const char* x_name = "queries", const char* y_name = "candidates") {
  static_assert(std::is_same_v<scalar_of<EX>, scalar_of<EY>>, "align: both embedding sets must hold the same scalar type");
  const auto vx = view2(x, where, x_name), vy = view2(y, where, y_name);
  if (vx.cols != vy.cols)
    robustxlt::detail::fail<ShapeError>(where, ": ", x_name, " [", vx.rows, ", ", vx.cols, "] and ", y_name, " [", vy.rows, ", ",
                                        vy.cols, "] must have the same width");
  return std::make_pair(vx, vy);
}

inline void check_k(const char* where, const char* name, std::size_t k, std::size_t available) {
  if (k == 0 || k > available)
    robustxlt::detail::fail(where, ": ", name, " must be in [1, ", available, "] (the candidate set), got ", k);
}

}  // namespace detail

// The k best candidates of each query by cosine or by CSLS = 2 cos(x, y) - r_T(x) - r_S(y), where r_T(x) is
// the mean cosine of x's csls_k nearest candidates and r_S(y) that of y's csls_k nearest queries.
// Throws ShapeError on different widths, NumericError on non-finite input, InvalidArgument when k or csls_k
// is 0 or larger than the set it selects from, or block is 0.
// queries and candidates: xtensor containers or xt::adapt views of the caller's buffers.
template <class EQ, class EC, class T = detail::scalar_of<EQ>>
Neighbours<T> retrieve(const EQ& queries, const EC& candidates, Retrieval method = Retrieval::cosine,
                       const RetrievalOptions& opt = {}) {
  const auto [vq, vc] = detail::check_pair("retrieve", queries, candidates);
  const std::size_t nq = vq.rows, nc = vc.rows;
  detail::check_k("retrieve", "k", opt.k, nc);
  if (opt.block == 0) robustxlt::detail::fail("retrieve: block must be > 0, got 0");
  const RowMatrix<T> x = detail::unit_rows(vq), y = detail::unit_rows(vc);
  std::vector<T> rx(nq, T(0)), ry(nc, T(0));
  if (method == Retrieval::csls) {
    detail::check_k("retrieve", "csls_k", opt.csls_k, nc);
    detail::check_k("retrieve", "csls_k", opt.csls_k, nq);
    std::tie(rx, ry) = detail::neighbourhood_means(x, y, opt.csls_k, opt.block);
  }
  detail::TopK<T> best(nq, opt.k);
  const bool csls = method == Retrieval::csls;
  std::vector<T> scores;
  detail::for_each_block(x, y, opt.block, [&](const RowMatrix<T>& s, std::size_t r0, std::size_t c0) {
    const auto n = static_cast<std::size_t>(s.cols());
    scores.resize(n);
    for (Eigen::Index i = 0; i < s.rows(); ++i) {
      const std::size_t q = r0 + static_cast<std::size_t>(i);
      const T* row = s.data() + i * s.cols();
      if (csls) {
        // 2 cos - r_T(x) - r_S(y) for the block's candidates.
        for (std::size_t j = 0; j < n; ++j) scores[j] = T(2) * row[j] - rx[q] - ry[c0 + j];
        row = scores.data();
      }
      detail::offer_row(best, q, row, n, static_cast<std::int64_t>(c0));
    }
  });
  Neighbours<T> out;
  out.index = Tensor<std::int64_t, 2>::from_shape({nq, opt.k});
  out.score = Tensor<T, 2>::from_shape({nq, opt.k});
  for (std::size_t q = 0; q < nq; ++q)
    for (std::size_t i = 0; i < opt.k; ++i) {
      out.index(q, i) = best.indices(q)[i];
      out.score(q, i) = best.values(q)[i];
    }
  return out;
}

// Precision at each k in ks: the fraction of queries with at least one gold target among their first k
// neighbours. Queries whose gold list is empty are not evaluated (lexicons cover part of a vocabulary).
// Throws ShapeError when gold has not one list per query, InvalidArgument when a k exceeds the neighbours.
template <class T>
std::vector<double> precision_at_k(const Neighbours<T>& nb, const std::vector<std::vector<std::int64_t>>& gold,
                                   const std::vector<std::size_t>& ks = {1, 5, 10}) {
  const std::size_t nq = nb.index.shape()[0], have = nb.index.shape()[1];
  if (gold.size() != nq)
    robustxlt::detail::fail<ShapeError>("precision_at_k: gold must have one list per query (", nq, "), got ", gold.size());
  std::vector<double> out;
  for (std::size_t k : ks) {
    if (k == 0 || k > have) robustxlt::detail::fail("precision_at_k: k must be in [1, ", have, "], got ", k);
    std::size_t hit = 0, evaluated = 0;
    for (std::size_t q = 0; q < nq; ++q) {
      if (gold[q].empty()) continue;
      ++evaluated;
      for (std::size_t i = 0; i < k; ++i)
        if (std::find(gold[q].begin(), gold[q].end(), nb.index(q, i)) != gold[q].end()) {
          ++hit;
          break;
        }
    }
    out.push_back(evaluated ? double(hit) / double(evaluated) : 0.0);
  }
  return out;
}

template <class T>
struct MinedPair {
  std::int64_t source = 0;
  std::int64_t target = 0;
  T score = T(0);  // ratio margin
};

// Ratio-margin mining: margin(x, y) = cos(x, y) / (r_k(x) / 2 + r_k(y) / 2), r_k the mean cosine of the k
// nearest neighbours on the other side. Candidates are each x's best y and each y's best x (forward and
// backward); sorted by margin, they are accepted greedily when neither side is taken yet. Returns the
// accepted pairs, best first. Throws as retrieve.
template <class ES, class ET, class T = detail::scalar_of<ES>>
std::vector<MinedPair<T>> mine_pairs(const ES& source, const ET& target, std::size_t k = 4, std::size_t block = 2048) {
  const auto [vs, vt] = detail::check_pair("mine_pairs", source, target, "source", "target");
  const std::size_t ns = vs.rows, nt = vt.rows;
  detail::check_k("mine_pairs", "k", k, std::min(ns, nt));
  if (block == 0) robustxlt::detail::fail("mine_pairs: block must be > 0, got 0");
  const RowMatrix<T> x = detail::unit_rows(vs), y = detail::unit_rows(vt);
  const auto [rx, ry] = detail::neighbourhood_means(x, y, k, block);
  detail::TopK<T> fwd(ns, 1), bwd(nt, 1);
  detail::for_each_block(x, y, block, [&, &rx = rx, &ry = ry](const RowMatrix<T>& s, std::size_t r0, std::size_t c0) {
    for (Eigen::Index i = 0; i < s.rows(); ++i)
      for (Eigen::Index j = 0; j < s.cols(); ++j) {
        const std::size_t a = r0 + static_cast<std::size_t>(i), b = c0 + static_cast<std::size_t>(j);
        const T den = (rx[a] + ry[b]) / T(2);
        const T m = den > T(0) ? s(i, j) / den : s(i, j);
        fwd.offer(a, m, static_cast<std::int64_t>(b));
        bwd.offer(b, m, static_cast<std::int64_t>(a));
      }
  });
  std::vector<MinedPair<T>> cand;
  for (std::size_t a = 0; a < ns; ++a) cand.push_back({static_cast<std::int64_t>(a), fwd.indices(a)[0], fwd.values(a)[0]});
  for (std::size_t b = 0; b < nt; ++b) cand.push_back({bwd.indices(b)[0], static_cast<std::int64_t>(b), bwd.values(b)[0]});
  std::stable_sort(cand.begin(), cand.end(), [](const MinedPair<T>& p, const MinedPair<T>& q) {
    if (p.score != q.score) return p.score > q.score;
    return p.source != q.source ? p.source < q.source : p.target < q.target;
  });
  std::vector<char> used_s(ns, 0), used_t(nt, 0);
  std::vector<MinedPair<T>> out;
  for (const auto& p : cand) {
    if (used_s[static_cast<std::size_t>(p.source)] || used_t[static_cast<std::size_t>(p.target)]) continue;
    used_s[static_cast<std::size_t>(p.source)] = used_t[static_cast<std::size_t>(p.target)] = 1;
    out.push_back(p);
  }
  return out;
}

struct MiningScores {
  double threshold = 0;
  std::size_t predicted = 0, gold = 0, correct = 0;
  double precision = 0, recall = 0, f1 = 0;  // precision 1 with no prediction, recall 1 with no gold
};

// Scores mined pairs with margin >= threshold against gold (source, target) pairs.
template <class T>
MiningScores mining_scores(const std::vector<MinedPair<T>>& mined, const std::vector<std::pair<std::int64_t, std::int64_t>>& gold,
                           double threshold) {
  std::vector<std::pair<std::int64_t, std::int64_t>> g = gold;
  std::sort(g.begin(), g.end());
  g.erase(std::unique(g.begin(), g.end()), g.end());
  MiningScores s;
  s.threshold = threshold;
  s.gold = g.size();
  for (const auto& p : mined) {
    if (static_cast<double>(p.score) < threshold) continue;
    ++s.predicted;
    s.correct += std::binary_search(g.begin(), g.end(), std::make_pair(p.source, p.target));
  }
  s.precision = s.predicted ? double(s.correct) / double(s.predicted) : 1.0;
  s.recall = s.gold ? double(s.correct) / double(s.gold) : 1.0;
  s.f1 = (s.precision + s.recall) > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
  return s;
}

// The threshold among the mined margins that maximises F1 on a development set (ties to the higher
// threshold), as BUCC evaluation does before scoring the test set with it.
template <class T>
MiningScores best_threshold(const std::vector<MinedPair<T>>& dev_mined, const std::vector<std::pair<std::int64_t, std::int64_t>>& dev_gold) {
  MiningScores best;
  best.f1 = -1;
  for (const auto& p : dev_mined) {
    const MiningScores s = mining_scores(dev_mined, dev_gold, static_cast<double>(p.score));
    if (s.f1 > best.f1 || (s.f1 == best.f1 && s.threshold > best.threshold)) best = s;
  }
  if (best.f1 < 0) best = mining_scores(dev_mined, dev_gold, 0.0);
  return best;
}

// Tatoeba-style accuracy: sentence i of source and of target translate each other; the fraction of i whose
// cosine nearest target is i. Throws ShapeError when the sets differ in size.
template <class ES, class ET>
double tatoeba_accuracy(const ES& source, const ET& target, std::size_t block = 2048) {
  const std::size_t ns = detail::view2(source, "tatoeba_accuracy", "source", false).rows;
  const std::size_t nt = detail::view2(target, "tatoeba_accuracy", "target", false).rows;
  if (ns != nt)
    robustxlt::detail::fail<ShapeError>("tatoeba_accuracy: source and target must have the same number of sentences, got ",
                                        ns, " and ", nt);
  if (ns == 0) return 0.0;
  RetrievalOptions opt;
  opt.k = 1;
  opt.block = block;
  const auto nb = retrieve(source, target, Retrieval::cosine, opt);
  std::size_t ok = 0;
  for (std::size_t i = 0; i < ns; ++i) ok += nb.index(i, 0) == static_cast<std::int64_t>(i);
  return double(ok) / double(ns);
}

// Gold sentence pairs in the BUCC format: one "source_id<TAB>target_id" per line (blank lines skipped).
// Throws FormatError naming the line when a line does not have exactly two tab-separated ids.
inline std::vector<std::pair<std::string, std::string>> parse_id_pairs(std::string_view text, const std::string& source) {
  std::vector<std::pair<std::string, std::string>> out;
  for_each_line(text, [&](std::size_t line, std::string_view l) {
    if (l.empty()) return;
    const std::size_t tab = l.find('\t');
    if (tab == std::string_view::npos || tab == 0 || tab + 1 == l.size() || l.find('\t', tab + 1) != std::string_view::npos)
      robustxlt::detail::fail<FormatError>("id pairs '", source, "' line ", line, ": expected 'source_id<TAB>target_id', got '", l,
                                           "'");
    out.emplace_back(std::string(l.substr(0, tab)), std::string(l.substr(tab + 1)));
  });
  return out;
}

inline std::vector<std::pair<std::string, std::string>> load_id_pairs(const std::filesystem::path& path) {
  return parse_id_pairs(read_file(path), path.string());
}

// Mined row pairs as sentence-id pairs: source_ids[r] names row r of the source embeddings, target_ids
// likewise. Throws ShapeError when an id list is shorter than the rows mined from (mismatched id files).
template <class T>
std::vector<std::pair<std::string, std::string>> mined_id_pairs(const std::vector<MinedPair<T>>& mined,
                                                                const std::vector<std::string>& source_ids,
                                                                const std::vector<std::string>& target_ids,
                                                                double threshold) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& p : mined) {
    if (static_cast<double>(p.score) < threshold) continue;
    if (static_cast<std::size_t>(p.source) >= source_ids.size() || static_cast<std::size_t>(p.target) >= target_ids.size())
      robustxlt::detail::fail<ShapeError>("mined_id_pairs: pair (", p.source, ", ", p.target, ") needs ", p.source + 1,
                                          " source ids and ", p.target + 1, " target ids, got ", source_ids.size(), " and ",
                                          target_ids.size(), " (mismatched id files)");
    out.emplace_back(source_ids[static_cast<std::size_t>(p.source)], target_ids[static_cast<std::size_t>(p.target)]);
  }
  return out;
}

}  // namespace robustxlt::align
