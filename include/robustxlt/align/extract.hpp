#pragma once
// Word-alignment extraction from a similarity matrix sim [m, n] (source words x target words): argmax
// intersection, itermax, maximum-weight matching (shortest augmenting paths, O(min^2 max)), softmax in both directions
// with a threshold, an optional distortion penalty, and subword-to-word mapping. Every function returns
// sorted links without duplicates and throws NumericError on a non-finite similarity.

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "robustxlt/align/pharaoh.hpp"
#include "robustxlt/align/rows.hpp"
#include "robustxlt/core/error.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"

namespace robustxlt::align {

namespace detail {

template <class T>
void check_similarity(const char* where, const Tensor<T, 2>& sim) {
  if (!simd::all_finite(sim.size(), sim.data()))
    robustxlt::detail::fail<NumericError>(where, ": similarities must be finite, got NaN or Inf in a ",
                                          sim.shape()[0], " x ", sim.shape()[1], " matrix");
}

// Index of the largest value among n values with stride (ties to the lowest index).
template <class T>
std::size_t argmax(const T* x, std::size_t n, std::size_t stride) {
  std::size_t best = 0;
  for (std::size_t k = 1; k < n; ++k)
    if (x[k * stride] > x[best * stride]) best = k;
  return best;
}

// Row and column argmax in one row-major pass (columns are never walked with a stride), then their
// intersection, optionally restricted to allowed cells. The column update keeps row indices in the scalar
// type (one SIMD select per batch of columns), so rows are limited to those the type holds exactly: 2^24
// for float, 2^53 for double; more throws InvalidArgument instead of returning wrong links.
// With check_finite, the same pass also verifies that every similarity is finite (NumericError otherwise).
template <class T>
std::vector<Link> argmax_intersection(const Tensor<T, 2>& sim, const std::vector<std::uint8_t>* allowed = nullptr,
                                      bool check_finite = false) {
  const std::size_t m = sim.shape()[0], n = sim.shape()[1];
  constexpr std::size_t exact_rows = std::size_t(1) << std::numeric_limits<T>::digits;
  if (m > exact_rows)
    robustxlt::detail::fail("argmax_links: similarity matrices may have at most ", exact_rows, " rows in this scalar type, got ",
                            m, " (use double for more)");
  std::vector<Link> out;
  if (m == 0 || n == 0) return out;
  std::vector<std::size_t> row_best(m);
  // Column maxima start below every value, so row 0 goes through the same loop as the others.
  std::vector<T> col_max(n, -std::numeric_limits<T>::infinity()), col_row(n, T(0));  // row index held as T (exact below 2^24)
  using B = simd::batch<T>;
  constexpr std::size_t W = simd::width<T>;
  B finite_v(T(0));  // sums x - x: 0 for finite values, NaN once a NaN or Inf appears
  T finite = T(0);
  for (std::size_t i = 0; i < m; ++i) {
    const T* r = sim.data() + i * n;
    const B vi(static_cast<T>(i));
    // One pass per row for the row maximum and the column maxima; the row's argmax is then the first
    // column holding that maximum (lowest index on ties).
    B rmax(-std::numeric_limits<T>::infinity());
    std::size_t j = 0;
    for (; j + W <= n; j += W) {
      const B x = B::load_unaligned(r + j);
      if (check_finite) finite_v += x - x;
      rmax = xsimd::max(rmax, x);
      const B cm = B::load_unaligned(col_max.data() + j);
      const auto better = x > cm;  // ties keep the lower row
      xsimd::max(x, cm).store_unaligned(col_max.data() + j);
      xsimd::select(better, vi, B::load_unaligned(col_row.data() + j)).store_unaligned(col_row.data() + j);
    }
    T top = simd::reduce_max(rmax);
    for (; j < n; ++j) {
      if (check_finite) finite += r[j] - r[j];
      top = std::max(top, r[j]);
      if (r[j] > col_max[j]) {
        col_max[j] = r[j];
        col_row[j] = static_cast<T>(i);
      }
    }
    row_best[i] = simd::find_first(n, r, top);
  }
  if (check_finite && (xsimd::hadd(finite_v) + finite) != T(0)) check_similarity("argmax_links", sim);
  std::vector<std::size_t> col_best(n);
  for (std::size_t j = 0; j < n; ++j) col_best[j] = static_cast<std::size_t>(col_row[j]);
  for (std::size_t i = 0; i < m; ++i) {
    const std::size_t j = row_best[i];
    if (col_best[j] == i && (!allowed || (*allowed)[i * n + j]))
      out.push_back({static_cast<std::int64_t>(i), static_cast<std::int64_t>(j)});
  }
  return out;
}

}  // namespace detail

// Cosine similarity of the rows of a [m, d] and b [n, d] (xtensor containers or xt::adapt views of the
// caller's buffers), computed with one Eigen product; a zero row has similarity 0 with everything. Returns
// [m, n]. Throws ShapeError when d differs, NumericError on non-finite input.
template <class EA, class EB, class T = detail::scalar_of<EA>>
Tensor<T, 2> cosine_similarity(const EA& a, const EB& b) {
  static_assert(std::is_same_v<detail::scalar_of<EA>, detail::scalar_of<EB>>, "cosine_similarity: a and b must hold the same scalar type");
  const auto va = detail::view2(a, "cosine_similarity", "a"), vb = detail::view2(b, "cosine_similarity", "b");
  if (va.cols != vb.cols)
    robustxlt::detail::fail<ShapeError>("cosine_similarity: a [", va.rows, ", ", va.cols, "] and b [", vb.rows, ", ", vb.cols,
                                        "] must have the same width");
  const auto m = static_cast<Eigen::Index>(va.rows), n = static_cast<Eigen::Index>(vb.rows);
  const RowMatrix<T> an = detail::unit_rows(va), bn = detail::unit_rows(vb);
  Tensor<T, 2> out = Tensor<T, 2>::from_shape({va.rows, vb.rows});
  robustxlt::detail::sync_eigen_threads();
  MatrixMap<T>(out.data(), m, n).noalias() = an * bn.transpose();
  return out;
}

// sim * (1 - kappa (i / (m - 1) - j / (n - 1))^2), favouring links near the diagonal; unchanged when
// kappa == 0 or either side has a single word. Throws InvalidArgument when kappa < 0.
template <class T>
Tensor<T, 2> apply_distortion(const Tensor<T, 2>& sim, T kappa) {
  if (!(kappa >= T(0))) robustxlt::detail::fail("apply_distortion: kappa must be >= 0, got ", kappa);
  const std::size_t m = sim.shape()[0], n = sim.shape()[1];
  Tensor<T, 2> out = sim;
  if (kappa == T(0) || m < 2 || n < 2) return out;
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      const T d = static_cast<T>(i) / static_cast<T>(m - 1) - static_cast<T>(j) / static_cast<T>(n - 1);
      out(i, j) *= T(1) - kappa * d * d;
    }
  return out;
}

// Links (i, j) where j is the argmax of row i and i the argmax of column j (ties to the lowest index).
template <class T>
std::vector<Link> argmax_links(const Tensor<T, 2>& sim) {
  return detail::argmax_intersection(sim, nullptr, true);  // checks finiteness in the same pass
}

// Itermax: the argmax links, then up to max_rounds - 1 further rounds of argmax intersection on the
// similarities reweighted by 1 where neither word is aligned yet, by half_aligned_weight where exactly one
// is (SimAlign's alpha, 0.9), and by 0 where both are; stops early when a round adds nothing. Returns the
// argmax links unchanged when min(m, n) <= 2.
template <class T>
std::vector<Link> itermax_links(const Tensor<T, 2>& sim, int max_rounds = 2, T half_aligned_weight = T(0.9)) {
  detail::check_similarity("itermax_links", sim);
  if (max_rounds < 1) robustxlt::detail::fail("itermax_links: max_rounds must be >= 1, got ", max_rounds);
  const std::size_t m = sim.shape()[0], n = sim.shape()[1];
  std::vector<Link> links = detail::argmax_intersection(sim);
  if (std::min(m, n) <= 2) return links;
  for (int round = 1; round < max_rounds; ++round) {
    std::vector<std::uint8_t> row_aligned(m, 0), col_aligned(n, 0);
    for (const auto& l : links) row_aligned[static_cast<std::size_t>(l.source)] = col_aligned[static_cast<std::size_t>(l.target)] = 1;
    const bool rows_left = std::count(row_aligned.begin(), row_aligned.end(), 0) > 0;
    const bool cols_left = std::count(col_aligned.begin(), col_aligned.end(), 0) > 0;
    if (!rows_left || !cols_left) break;
    Tensor<T, 2> weighted = sim;
    std::vector<std::uint8_t> allowed(m * n, 0);
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        const int free = (row_aligned[i] ? 0 : 1) + (col_aligned[j] ? 0 : 1);
        weighted(i, j) *= free == 2 ? T(1) : free == 1 ? half_aligned_weight : T(0);
        allowed[i * n + j] = free > 0;
      }
    const auto extra = detail::argmax_intersection(weighted, &allowed);
    std::size_t added = 0;
    for (const auto& l : extra)
      if (!std::binary_search(links.begin(), links.end(), l)) {
        links.push_back(l);
        ++added;
      }
    std::sort(links.begin(), links.end());
    if (added == 0) break;
  }
  return links;
}

// Maximum-weight bipartite matching: min(m, n) links with the largest total similarity. The assignment
// is solved as a minimum-cost one on negated similarities by successive shortest augmenting paths with
// dual potentials (the Jonker-Volgenant family; O(min^2 max)): each row adds one augmenting path found by a
// Dijkstra search over the columns not yet reached, and potentials are updated once per path.
template <class T>
std::vector<Link> match_links(const Tensor<T, 2>& sim) {
  detail::check_similarity("match_links", sim);
  const std::size_t m = sim.shape()[0], n = sim.shape()[1];
  std::vector<Link> out;
  if (m == 0 || n == 0) return out;
  const bool transpose = m > n;  // rows must not outnumber columns
  const std::size_t R = transpose ? n : m, C = transpose ? m : n;
  std::vector<double> cost(R * C);  // row-major [R, C], negated similarities
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t c = 0; c < C; ++c) cost[r * C + c] = -static_cast<double>(transpose ? sim(c, r) : sim(r, c));
  const double inf = std::numeric_limits<double>::infinity();
  constexpr std::size_t none = static_cast<std::size_t>(-1);
  using Bd = xsimd::batch<double>;
  constexpr std::size_t W = Bd::size;
  std::vector<double> u(R, 0.0), v(C, 0.0), dist(C), blocked(C), via(C);  // via: the row a column is reached from
  std::vector<std::size_t> row_of(C, none), col_of(R, none), reached_cols;
  std::vector<char> row_seen(R);
  for (std::size_t start = 0; start < R; ++start) {
    // Dijkstra from row `start` over reduced costs until a free column is reached. Columns already reached
    // are blocked with +inf, so each step is one contiguous, vectorised sweep over all columns.
    std::fill(dist.begin(), dist.end(), inf);
    std::fill(blocked.begin(), blocked.end(), 0.0);
    std::fill(row_seen.begin(), row_seen.end(), 0);
    reached_cols.clear();
    std::size_t i = start, sink = none;
    double reached = 0.0;
    while (sink == none) {
      row_seen[i] = 1;
      const double* row = cost.data() + i * C;
      const Bd base(reached - u[i]), vi(static_cast<double>(i));
      Bd lowest_v(inf);
      std::size_t j = 0;
      for (; j + W <= C; j += W) {
        const Bd r = base + Bd::load_unaligned(row + j) - Bd::load_unaligned(v.data() + j) + Bd::load_unaligned(blocked.data() + j);
        const Bd d = Bd::load_unaligned(dist.data() + j);
        const auto better = r < d;
        const Bd nd = xsimd::select(better, r, d);
        nd.store_unaligned(dist.data() + j);
        xsimd::select(better, vi, Bd::load_unaligned(via.data() + j)).store_unaligned(via.data() + j);
        lowest_v = xsimd::min(lowest_v, nd + Bd::load_unaligned(blocked.data() + j));
      }
      double lowest = simd::reduce_min(lowest_v);
      for (; j < C; ++j) {
        const double r = reached - u[i] + row[j] - v[j] + blocked[j];
        if (r < dist[j]) {
          dist[j] = r;
          via[j] = static_cast<double>(i);
        }
        lowest = std::min(lowest, dist[j] + blocked[j]);
      }
      // The first free column at the lowest distance ends the path soonest; else the first such column.
      std::size_t pick = none;
      for (std::size_t k = 0; k < C; ++k)
        if (blocked[k] == 0.0 && dist[k] == lowest) {
          if (row_of[k] == none) {
            pick = k;
            break;
          }
          if (pick == none) pick = k;
        }
      reached = lowest;
      blocked[pick] = inf;
      reached_cols.push_back(pick);
      if (row_of[pick] == none) sink = pick;
      else i = row_of[pick];
    }
    // Potentials, once per path.
    u[start] += reached;
    for (std::size_t r = 0; r < R; ++r)
      if (row_seen[r] && r != start) u[r] += reached - dist[col_of[r]];
    for (std::size_t c : reached_cols) v[c] -= reached - dist[c];
    // Augment along the path back to `start`.
    for (std::size_t j = sink;;) {
      const auto r = static_cast<std::size_t>(via[j]);
      row_of[j] = r;
      const std::size_t previous = col_of[r];
      col_of[r] = j;
      j = previous;
      if (r == start) break;
    }
  }
  for (std::size_t r = 0; r < R; ++r) {
    const auto a = static_cast<std::int64_t>(r), b = static_cast<std::int64_t>(col_of[r]);
    out.push_back(transpose ? Link{b, a} : Link{a, b});
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Links whose probability exceeds threshold in both directions: softmax over each row (source to target)
// and over each column (target to source) of sim. Throws InvalidArgument when threshold is outside [0, 1).
template <class T>
std::vector<Link> softmax_links(const Tensor<T, 2>& sim, T threshold = T(1e-3)) {
  detail::check_similarity("softmax_links", sim);
  if (!(threshold >= T(0) && threshold < T(1)))
    robustxlt::detail::fail("softmax_links: threshold must be in [0, 1), got ", threshold);
  const std::size_t m = sim.shape()[0], n = sim.shape()[1];
  std::vector<Link> out;
  if (m == 0 || n == 0) return out;
  Tensor<T, 2> fwd = sim;
  for (std::size_t i = 0; i < m; ++i) simd::softmax_inplace(n, fwd.data() + i * n);
  // Column softmax with row-major passes: column maxima, then column sums of exp(s - max).
  std::vector<T> cmax(sim.data(), sim.data() + n), csum(n, T(0));
  for (std::size_t i = 1; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) cmax[j] = std::max(cmax[j], sim(i, j));
  Tensor<T, 2> bwd = Tensor<T, 2>::from_shape({m, n});
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      bwd(i, j) = std::exp(sim(i, j) - cmax[j]);
      csum[j] += bwd(i, j);
    }
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) bwd(i, j) /= csum[j];
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j)
      if (fwd(i, j) > threshold && bwd(i, j) > threshold)
        out.push_back({static_cast<std::int64_t>(i), static_cast<std::int64_t>(j)});
  return out;
}

// Word links from subword links: a link between subwords s and t links words source_word[s] and
// target_word[t]; a map entry of -1 means the subword belongs to no word (a special token such as [CLS],
// a Hugging Face word id of None), and links touching it are dropped. Throws InvalidArgument when a
// subword index is outside the maps or a map entry is below -1.
inline std::vector<Link> words_from_subwords(const std::vector<Link>& subword_links, const std::vector<std::int64_t>& source_word,
                                             const std::vector<std::int64_t>& target_word) {
  for (const auto* map : {&source_word, &target_word})
    for (std::size_t k = 0; k < map->size(); ++k)
      if ((*map)[k] < -1)
        robustxlt::detail::fail("words_from_subwords: ", map == &source_word ? "source_word[" : "target_word[", k,
                                "] must be a word index >= 0 or -1 (no word), got ", (*map)[k]);
  std::vector<Link> out;
  for (const auto& l : subword_links) {
    if (l.source < 0 || l.target < 0 || static_cast<std::size_t>(l.source) >= source_word.size() ||
        static_cast<std::size_t>(l.target) >= target_word.size())
      robustxlt::detail::fail("words_from_subwords: link (", l.source, ", ", l.target, ") outside the subword maps of ",
                              source_word.size(), " and ", target_word.size(), " subwords");
    const std::int64_t a = source_word[static_cast<std::size_t>(l.source)], b = target_word[static_cast<std::size_t>(l.target)];
    if (a >= 0 && b >= 0) out.push_back({a, b});
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Word vectors as the mean of their subword vectors: vectors [s, d], word_of[s] in [0, words), or -1 for
// a subword of no word (skipped); every word must own at least one subword. Throws InvalidArgument
// otherwise, ShapeError when word_of does not have one entry per subword.
template <class T>
Tensor<T, 2> average_subwords(const Tensor<T, 2>& vectors, const std::vector<std::int64_t>& word_of, std::size_t words) {
  const std::size_t s = vectors.shape()[0], d = vectors.shape()[1];
  if (word_of.size() != s)
    robustxlt::detail::fail<ShapeError>("average_subwords: word_of must have one entry per subword (", s, "), got ", word_of.size());
  Tensor<T, 2> out = xt::zeros<T>({words, d});
  std::vector<std::size_t> count(words, 0);
  for (std::size_t k = 0; k < s; ++k) {
    if (word_of[k] == -1) continue;
    if (word_of[k] < 0 || static_cast<std::size_t>(word_of[k]) >= words)
      robustxlt::detail::fail("average_subwords: word_of[", k, "] must be in [0, ", words, ") or -1 (no word), got ", word_of[k]);
    const auto w = static_cast<std::size_t>(word_of[k]);
    simd::add_inplace(d, vectors.data() + k * d, out.data() + w * d);
    ++count[w];
  }
  for (std::size_t w = 0; w < words; ++w) {
    if (count[w] == 0) robustxlt::detail::fail("average_subwords: word ", w, " has no subword");
    simd::scale(d, T(1) / static_cast<T>(count[w]), out.data() + w * d);
  }
  return out;
}

}  // namespace robustxlt::align
