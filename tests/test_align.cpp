// Tests of align/: Pharaoh reading and writing, corpus scores and extraction modes against hand-computed
// values, the Hungarian matching against brute force over all assignments.
#include "test_support.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <optional>
#include <string>
#include <set>
#include <tuple>
#include <robustxlt/align.hpp>
#include <robustxlt/core.hpp>
#include <robustxlt/core/safetensors.hpp>
#include <vector>

using namespace robustxlt;
using namespace robustxlt::align;

namespace {
std::vector<Link> links(std::initializer_list<std::pair<int, int>> l) {
  std::vector<Link> out;
  for (auto [a, b] : l) out.push_back({std::uint32_t(a), std::uint32_t(b)});
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

TEST_CASE("Pharaoh: sure and possible links, ids, 1-based, reversed, round trip") {
  const auto c = parse_pharaoh("0-0 1p1 2?3\nsent7\t3-1 0-0\n\n", "a.txt");
  REQUIRE(c.size() == 3);
  CHECK(c[0].sure == links({{0, 0}}));
  CHECK(c[0].possible == links({{1, 1}, {2, 3}}));
  CHECK(c[1].id == "sent7");
  CHECK(c[1].sure == links({{0, 0}, {3, 1}}));
  CHECK(c[2].sure.empty());
  CHECK(parse_pharaoh(format_pharaoh(c), "b").at(1).sure == c[1].sure);
  PharaohOptions one;
  one.one_based = true;
  one.reverse = true;
  const auto r = parse_pharaoh("1-2 3p1\n", "c", one);
  CHECK(r[0].sure == links({{1, 0}}));
  CHECK(r[0].possible == links({{0, 2}}));
  CHECK(format_pharaoh(r, one) == "1-2 3p1\n");
  // A link given as sure and possible counts as sure.
  CHECK(parse_pharaoh("1-1 1p1\n", "d")[0].possible.empty());
}

TEST_CASE("Pharaoh: malformed input names the line") {
  CHECK_THROWS_WITH_AS(parse_pharaoh("0-0\n1x2\n", "g.txt"),
                       "pharaoh 'g.txt' line 2: malformed link '1x2', expected i-j, ipj or i?j with non-negative integers",
                       FormatError);
  CHECK_THROWS_WITH_AS(parse_pharaoh("-1-2\n", "g.txt"), "pharaoh 'g.txt' line 1: negative index in link '-1-2'", FormatError);
  CHECK_THROWS_WITH_AS(parse_pharaoh("1--2\n", "g.txt"), "pharaoh 'g.txt' line 1: negative index in link '1--2'", FormatError);
  CHECK_THROWS_WITH_AS(parse_pharaoh("3-\n", "g.txt"), doctest::Contains("line 1: malformed link '3-'"), FormatError);
  PharaohOptions opt;
  opt.lengths = {{2, 2}, {3, 3}};
  CHECK_THROWS_WITH_AS(parse_pharaoh("0-1\n0-3\n", "g.txt", opt),
                       "pharaoh 'g.txt' line 2: link '0-3' is outside the sentence pair of lengths 3 x 3", FormatError);
  CHECK_THROWS_WITH_AS(parse_pharaoh("0-1\n", "g.txt", opt), "pharaoh 'g.txt': 1 lines but 2 sentence lengths", FormatError);
  opt = {};
  opt.one_based = true;
  CHECK_THROWS_WITH_AS(parse_pharaoh("0-1\n", "g.txt", opt), "pharaoh 'g.txt' line 1: index 0 in link '0-1' with 1-based indices",
                       FormatError);
}

TEST_CASE("scores: the hand-computed example, corpus sums and empty cases") {
  // S = {(0,0)}, P = S + {(1,1)}, A = {(0,0),(1,1),(2,2)}: precision 2/3, recall 1, F 0.8, AER 0.25.
  const auto gold = parse_pharaoh("0-0 1p1\n", "gold");
  const auto hyp = parse_pharaoh("0-0 1-1 2-2\n", "hyp");
  const auto s = score(gold, hyp);
  CHECK(s.hypothesis == 3);
  CHECK(s.sure == 1);
  CHECK(s.possible == 2);
  CHECK(s.hypothesis_sure == 1);
  CHECK(s.hypothesis_possible == 2);
  CHECK(s.precision == doctest::Approx(2.0 / 3));
  CHECK(s.recall == doctest::Approx(1.0));
  CHECK(s.f == doctest::Approx(0.8));
  CHECK(s.aer == doctest::Approx(0.25));
  // Summed over the corpus before dividing: sentence 2 adds |A| = 1 wrong link and |S| = 2 missed.
  const auto s2 = score(parse_pharaoh("0-0 1p1\n0-0 1-1\n", "g"), parse_pharaoh("0-0 1-1 2-2\n5-5\n", "h"));
  CHECK(s2.precision == doctest::Approx(2.0 / 4));
  CHECK(s2.recall == doctest::Approx(1.0 / 3));
  CHECK(s2.aer == doctest::Approx(1.0 - (1.0 + 2.0) / (4.0 + 3.0)));
  // alpha weights precision: F = 1 / (alpha / P + (1 - alpha) / R).
  CHECK(score(gold, hyp, 0.2).f == doctest::Approx(1.0 / (0.2 * 1.5 + 0.8)));
  // Empty hypothesis: precision 1, recall 0, F 0, AER 1. Empty corpus: precision and recall 1, AER 0.
  const auto e = score(gold, parse_pharaoh("\n", "h"));
  CHECK(e.precision == 1.0);
  CHECK(e.recall == 0.0);
  CHECK(e.f == 0.0);
  CHECK(e.aer == 1.0);
  const auto none = score({}, {});
  CHECK(none.precision == 1.0);
  CHECK(none.recall == 1.0);
  CHECK(none.aer == 0.0);
  CHECK_THROWS_AS(score(gold, {}), ShapeError);
}

TEST_CASE("extraction: argmax, itermax and match on the hand-computed matrix") {
  const Tensor<double, 2> sim = {{.9, .2, .1, .3}, {.8, .3, .2, .1}, {.1, .7, .6, .2}, {.2, .1, .5, .4}};
  CHECK(argmax_links(sim) == links({{0, 0}, {2, 1}}));
  CHECK(itermax_links(sim) == links({{0, 0}, {1, 0}, {2, 1}, {2, 2}}));
  CHECK(match_links(sim) == links({{0, 3}, {1, 0}, {2, 1}, {3, 2}}));
  // min(m, n) <= 2: itermax returns the argmax links.
  const Tensor<double, 2> two = {{.9, .1, .2}, {.8, .7, .6}};
  CHECK(itermax_links(two) == argmax_links(two));
  const Tensor<double, 2> bad = {{.1, std::nan("")}};
  CHECK_THROWS_AS(argmax_links(bad), NumericError);
}

TEST_CASE("match: the Hungarian algorithm finds the best total against brute force") {
  Rng rng(3);
  for (int trial = 0; trial < 60; ++trial) {
    const std::size_t m = 1 + rng.below(6), n = 1 + rng.below(6);
    Tensor<double, 2> sim = Tensor<double, 2>::from_shape({m, n});
    for (auto& v : sim) v = rng.uniform<double>();
    const auto got = match_links(sim);
    CHECK(got.size() == std::min(m, n));
    double total = 0;
    std::vector<int> rows, cols;
    for (const auto& l : got) {
      total += sim(l.source, l.target);
      rows.push_back(int(l.source));
      cols.push_back(int(l.target));
    }
    std::sort(rows.begin(), rows.end());
    std::sort(cols.begin(), cols.end());
    CHECK(std::adjacent_find(rows.begin(), rows.end()) == rows.end());
    CHECK(std::adjacent_find(cols.begin(), cols.end()) == cols.end());
    // Brute force: every injective map from the smaller side into the larger.
    const std::size_t small = std::min(m, n), large = std::max(m, n);
    std::vector<int> perm(large);
    std::iota(perm.begin(), perm.end(), 0);
    double best = -1;
    do {
      double t = 0;
      for (std::size_t k = 0; k < small; ++k) t += m <= n ? sim(k, std::size_t(perm[k])) : sim(std::size_t(perm[k]), k);
      best = std::max(best, t);
    } while (std::next_permutation(perm.begin(), perm.end()));
    CHECK(total == doctest::Approx(best).epsilon(1e-12));
  }
}

TEST_CASE("softmax links, distortion, cosine similarity, subwords") {
  // Row softmax of (0, ln 999) gives (0.001, 0.999): 0.001 is not above the 0.001 threshold.
  const Tensor<double, 2> s = {{0.0, std::log(999.0)}, {std::log(999.0), 0.0}};
  CHECK(softmax_links(s) == links({{0, 1}, {1, 0}}));
  CHECK(softmax_links(s, 0.0005) == links({{0, 0}, {0, 1}, {1, 0}, {1, 1}}));
  const Tensor<double, 2> ones = xt::ones<double>({3, 5});
  const auto d = apply_distortion(ones, 0.5);
  CHECK(d(0, 0) == 1.0);
  CHECK(d(2, 4) == 1.0);
  CHECK(d(0, 4) == doctest::Approx(0.5));
  CHECK(d(1, 1) == doctest::Approx(1 - 0.5 * 0.25 * 0.25));
  const Tensor<float, 2> a = {{1, 0}, {0, 0}, {3, 4}};
  const Tensor<float, 2> b = {{2, 0}, {0, 5}};
  const auto c = cosine_similarity(a, b);
  CHECK(c(0, 0) == doctest::Approx(1.0));
  CHECK(c(0, 1) == doctest::Approx(0.0));
  CHECK(c(1, 0) == 0.0f);  // zero vector
  CHECK(c(2, 0) == doctest::Approx(0.6));
  CHECK(c(2, 1) == doctest::Approx(0.8));
  CHECK_THROWS_AS(cosine_similarity(a, Tensor<float, 2>{{1, 2, 3}}), ShapeError);
  // Subwords: source "un|do it" (words 0 0 1), target "défaire le" (words 0 1).
  CHECK(words_from_subwords(links({{0, 0}, {1, 0}, {2, 1}}), {0, 0, 1}, {0, 1}) == links({{0, 0}, {1, 1}}));
  CHECK_THROWS_AS(words_from_subwords(links({{3, 0}}), {0, 0, 1}, {0, 1}), InvalidArgument);
  const Tensor<float, 2> sub = {{1, 2}, {3, 4}, {5, 6}};
  const auto w = average_subwords(sub, {0, 0, 1}, 2);
  CHECK(w == Tensor<float, 2>{{2, 3}, {5, 6}});
  CHECK_THROWS_WITH_AS(average_subwords(sub, {0, 0, 0}, 2), "average_subwords: word 1 has no subword", InvalidArgument);
  // -1 marks a subword of no word ([CLS] and [SEP] around "un|do it"; word ids as a tokenizer gives them):
  // its links are dropped and its vector is not averaged in.
  CHECK(words_from_subwords(links({{0, 0}, {1, 0}, {2, 0}, {3, 1}, {4, 1}}), {-1, 0, 0, 1, -1}, {0, 1}) ==
        links({{0, 0}, {1, 1}}));
  CHECK_THROWS_WITH_AS(words_from_subwords(links({{0, 0}}), {-2}, {0}),
                       "words_from_subwords: source_word[0] must be a word index >= 0 or -1 (no word), got -2",
                       InvalidArgument);
  CHECK(average_subwords(Tensor<float, 2>{{9, 9}, {1, 2}, {3, 4}, {5, 6}}, {-1, 0, 0, 1}, 2) == w);
  // Links are int64, like every index of the public API: indices past 2^32 survive a Pharaoh round trip
  // of formatting (parsing accepts up to 9 digits per index).
  std::vector<SentenceAlignment> big(1);
  big[0].sure = {Link{std::int64_t(1) << 33, 2}};
  CHECK(format_pharaoh(big) == "8589934592-2\n");
}

// ---------------------------------------------------------------------------------------------------------
// Retrieval, mining and diagnostics against direct computations over the full similarity matrix.

namespace {
Tensor<double, 2> random_matrix(std::size_t n, std::size_t d, std::uint64_t seed) {
  Tensor<double, 2> x = Tensor<double, 2>::from_shape({n, d});
  Rng rng(seed);
  for (auto& v : x) v = rng.normal<double>();
  return x;
}

// Full cosine matrix, computed element by element.
std::vector<std::vector<double>> full_cosine(const Tensor<double, 2>& a, const Tensor<double, 2>& b) {
  std::vector<std::vector<double>> s(a.shape()[0], std::vector<double>(b.shape()[0]));
  for (std::size_t i = 0; i < a.shape()[0]; ++i)
    for (std::size_t j = 0; j < b.shape()[0]; ++j) {
      double ab = 0, aa = 0, bb = 0;
      for (std::size_t k = 0; k < a.shape()[1]; ++k) {
        ab += a(i, k) * b(j, k);
        aa += a(i, k) * a(i, k);
        bb += b(j, k) * b(j, k);
      }
      s[i][j] = ab / std::sqrt(aa * bb);
    }
  return s;
}

double mean_top(std::vector<double> v, std::size_t k) {
  std::sort(v.rbegin(), v.rend());
  return std::accumulate(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), 0.0) / double(k);
}
}  // namespace

TEST_CASE("retrieval: cosine and CSLS neighbours equal a direct computation, for any block size") {
  const auto x = random_matrix(37, 8, 1), y = random_matrix(53, 8, 2);
  const auto s = full_cosine(x, y);
  std::vector<double> rx(37), ry(53);
  for (std::size_t i = 0; i < 37; ++i) rx[i] = mean_top(s[i], 10);
  for (std::size_t j = 0; j < 53; ++j) {
    std::vector<double> col(37);
    for (std::size_t i = 0; i < 37; ++i) col[i] = s[i][j];
    ry[j] = mean_top(col, 10);
  }
  for (std::size_t block : {std::size_t(5), std::size_t(16), std::size_t(2048)}) {
    RetrievalOptions opt;
    opt.k = 5;
    opt.block = block;
    const auto cos = retrieve(x, y, Retrieval::cosine, opt);
    const auto csls = retrieve(x, y, Retrieval::csls, opt);
    for (std::size_t i = 0; i < 37; ++i) {
      std::vector<std::pair<double, std::size_t>> a, c;
      for (std::size_t j = 0; j < 53; ++j) {
        a.push_back({-s[i][j], j});
        c.push_back({-(2 * s[i][j] - rx[i] - ry[j]), j});
      }
      std::sort(a.begin(), a.end());
      std::sort(c.begin(), c.end());
      for (std::size_t k = 0; k < 5; ++k) {
        CHECK(cos.index(i, k) == std::int64_t(a[k].second));
        CHECK(cos.score(i, k) == doctest::Approx(-a[k].first).epsilon(1e-12));
        CHECK(csls.index(i, k) == std::int64_t(c[k].second));
        CHECK(csls.score(i, k) == doctest::Approx(-c[k].first).epsilon(1e-12));
      }
    }
  }
  RetrievalOptions big;
  big.k = 54;
  CHECK_THROWS_WITH_AS(retrieve(x, y, Retrieval::cosine, big), "retrieve: k must be in [1, 53] (the candidate set), got 54",
                       InvalidArgument);
  CHECK_THROWS_AS(retrieve(x, random_matrix(3, 7, 3)), ShapeError);
  Tensor<double, 2> nan = x;
  nan(2, 3) = std::nan("");
  CHECK_THROWS_AS(retrieve(nan, y), NumericError);
  CHECK_THROWS_WITH_AS(retrieve(nan, y), "retrieve: queries must be finite, got NaN or Inf", NumericError);
  // xt::adapt views of the caller's buffers give the same neighbours as containers, with no copy on entry.
  std::vector<double> xbuf(x.begin(), x.end()), ybuf(y.begin(), y.end());
  const auto xv = xt::adapt(xbuf.data(), xbuf.size(), xt::no_ownership(), std::array<std::size_t, 2>{x.shape()[0], x.shape()[1]});
  const auto yv = xt::adapt(ybuf.data(), ybuf.size(), xt::no_ownership(), std::array<std::size_t, 2>{y.shape()[0], y.shape()[1]});
  RetrievalOptions five;
  five.k = 5;
  const auto from_views = retrieve(xv, yv, Retrieval::csls, five), from_tensors = retrieve(x, y, Retrieval::csls, five);
  CHECK(from_views.index == from_tensors.index);
  CHECK(from_views.score == from_tensors.score);
  CHECK(cosine_similarity(xv, yv) == cosine_similarity(x, y));
  CHECK(mine_pairs(xv, yv).size() == mine_pairs(x, y).size());
}

TEST_CASE("argmax links refuse row counts the float column update cannot index exactly") {
  // 2^24 + 1 rows of one column: the float row index of the column maximum would round, so it is an error.
  const Tensor<float, 2> tall = xt::zeros<float>({(std::size_t(1) << 24) + 1, std::size_t(1)});
  CHECK_THROWS_WITH_AS(argmax_links(tall), doctest::Contains("at most 16777216 rows in this scalar type, got 16777217"),
                       InvalidArgument);
  const Tensor<float, 2> fits = xt::zeros<float>({std::size_t(4), std::size_t(1)});
  CHECK(argmax_links(fits).size() == 1);
}

TEST_CASE("precision at k: hand-computed lexicon induction") {
  Neighbours<double> nb;
  nb.index = {{4, 1, 2}, {0, 3, 9}, {5, 6, 7}};
  nb.score = xt::zeros<double>({3, 3});
  // Query 0's gold {2} at rank 3; query 1's gold {0, 8} at rank 1; query 2 has no gold (not evaluated).
  CHECK(precision_at_k(nb, {{2}, {8, 0}, {}}, {1, 2, 3}) == std::vector<double>{0.5, 0.5, 1.0});
  CHECK_THROWS_AS(precision_at_k(nb, {{2}}, {1}), ShapeError);
  CHECK_THROWS_AS(precision_at_k(nb, {{2}, {0}, {}}, {4}), InvalidArgument);
}

TEST_CASE("margin mining: forward/backward candidates accepted one to one; BUCC threshold; Tatoeba") {
  const auto x = random_matrix(20, 6, 5);
  // Targets: noisy copies of the sources, shuffled, plus 5 distractors.
  Tensor<double, 2> y = random_matrix(25, 6, 6);
  Rng rng(7);
  std::vector<std::size_t> perm(20);
  std::iota(perm.begin(), perm.end(), 0);
  for (std::size_t i = 19; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
  std::vector<std::pair<std::int64_t, std::int64_t>> gold;
  for (std::size_t i = 0; i < 20; ++i) {
    for (std::size_t k = 0; k < 6; ++k) y(perm[i], k) = x(i, k) + 0.1 * rng.normal<double>();
    gold.push_back({std::int64_t(i), std::int64_t(perm[i])});
  }
  const auto mined = mine_pairs(x, y, 4, 7);
  // Reference: margins from the full matrix, best forward and backward candidates, greedy acceptance.
  const auto s = full_cosine(x, y);
  std::vector<double> rx(20), ry(25);
  for (std::size_t i = 0; i < 20; ++i) rx[i] = mean_top(s[i], 4);
  for (std::size_t j = 0; j < 25; ++j) {
    std::vector<double> col(20);
    for (std::size_t i = 0; i < 20; ++i) col[i] = s[i][j];
    ry[j] = mean_top(col, 4);
  }
  auto margin = [&](std::size_t i, std::size_t j) { return s[i][j] / ((rx[i] + ry[j]) / 2); };
  std::set<std::pair<std::size_t, std::size_t>> candidates;
  for (std::size_t i = 0; i < 20; ++i) {
    std::size_t b = 0;
    for (std::size_t j = 1; j < 25; ++j)
      if (margin(i, j) > margin(i, b)) b = j;
    candidates.insert({i, b});
  }
  for (std::size_t j = 0; j < 25; ++j) {
    std::size_t b = 0;
    for (std::size_t i = 1; i < 20; ++i)
      if (margin(i, j) > margin(b, j)) b = i;
    candidates.insert({b, j});
  }
  std::vector<std::tuple<double, std::size_t, std::size_t>> sorted;
  for (auto [i, j] : candidates) sorted.push_back({-margin(i, j), i, j});
  std::sort(sorted.begin(), sorted.end());
  std::set<std::size_t> us, ut;
  std::vector<std::pair<std::size_t, std::size_t>> expect;
  for (auto [m, i, j] : sorted)
    if (!us.count(i) && !ut.count(j)) {
      us.insert(i);
      ut.insert(j);
      expect.push_back({i, j});
    }
  REQUIRE(mined.size() == expect.size());
  for (std::size_t k = 0; k < expect.size(); ++k) {
    CHECK(mined[k].source == std::int64_t(expect[k].first));
    CHECK(mined[k].target == std::int64_t(expect[k].second));
  }
  // With low noise every gold pair is mined above the best threshold.
  const auto best = best_threshold(mined, gold);
  CHECK(best.f1 == doctest::Approx(1.0));
  CHECK(best.correct == 20);
  const auto all = mining_scores(mined, gold, -1e9);
  CHECK(all.predicted == mined.size());
  CHECK(all.precision == doctest::Approx(20.0 / mined.size()));
  // Tatoeba: targets in source order.
  Tensor<double, 2> aligned = Tensor<double, 2>::from_shape({20, 6});
  for (std::size_t i = 0; i < 20; ++i)
    for (std::size_t k = 0; k < 6; ++k) aligned(i, k) = y(perm[i], k);
  CHECK(tatoeba_accuracy(x, aligned) == 1.0);
  CHECK(tatoeba_accuracy(x, random_matrix(20, 6, 9)) < 0.5);
  CHECK_THROWS_AS(tatoeba_accuracy(x, y), ShapeError);
}

TEST_CASE("diagnostics: summaries, coverage at the perturbers' norms, linear CKA") {
  const auto s = summarize({4, 1, 3, 2});
  CHECK(s.mean == 2.5);
  CHECK(s.stddev == doctest::Approx(std::sqrt(1.25)));
  CHECK(s.min == 1);
  CHECK(s.median == 2.5);
  CHECK(s.q25 == doctest::Approx(1.75));
  CHECK(s.max == 4);
  const Tensor<double, 2> src = {{1, 0}, {0, 1}, {3, 4}};
  const Tensor<double, 2> tgt = {{1, 0}, {1, 0}, {0, 0}};
  const auto d = pair_diagnostics(src, tgt);
  CHECK(d.cosine.mean == doctest::Approx((1 + 0 + 0) / 3.0));  // a zero vector has cosine 0
  CHECK(d.l2.max == doctest::Approx(5.0));
  CHECK(d.linf.max == doctest::Approx(4.0));
  CHECK(d.l2.min == 0.0);
  // Coverage: per token L2 distances 0, sqrt 2, 5 (third token padded in the masked case).
  const Tensor<double, 3> s3 = {{{1, 0}, {0, 1}, {3, 4}}}, t3 = {{{1, 0}, {1, 0}, {0, 0}}};
  const Tensor<std::int64_t, 2> none, mask = {{1, 1, 0}};
  CHECK(robust_region_coverage(s3, t3, none, Ball<double>{Norm::l2, Granularity::token, 1.5}) == doctest::Approx(2.0 / 3));
  CHECK(robust_region_coverage(s3, t3, mask, Ball<double>{Norm::l2, Granularity::token, 1.5}) == doctest::Approx(1.0));
  CHECK(robust_region_coverage(s3, t3, none, Ball<double>{Norm::linf, Granularity::token, 1.0}) == doctest::Approx(2.0 / 3));
  CHECK(robust_region_coverage(s3, t3, none, Ball<double>{Norm::l2, Granularity::sequence, 5.0}) == 0.0);  // sqrt(27) > 5
  CHECK(robust_region_coverage(s3, t3, none, Ball<double>::unbounded()) == 1.0);
  CHECK(robust_region_coverage(s3, t3, none, Ball<double>{Norm::l2, Granularity::token, 0.0}) == doctest::Approx(1.0 / 3));
  // Views of caller buffers are read in place.
  std::vector<double> sbuf(s3.begin(), s3.end()), tbuf(t3.begin(), t3.end());
  const std::array<std::size_t, 3> shape{1, 3, 2};
  CHECK(robust_region_coverage(xt::adapt(sbuf.data(), sbuf.size(), xt::no_ownership(), shape),
                               xt::adapt(tbuf.data(), tbuf.size(), xt::no_ownership(), shape), mask,
                               Ball<double>{Norm::l2, Granularity::token, 1.5}) == doctest::Approx(1.0));
  CHECK_THROWS_WITH_AS(robust_region_coverage(s3, t3, none, Ball<double>{Norm::l2, Granularity::token, -1.0}),
                       "robust_region_coverage: epsilon must be >= 0 (or +inf, Ball::unbounded), got -1", InvalidArgument);
  // CKA: 1 for a representation against a rotated and scaled copy of itself; hand value for two columns.
  const auto x = random_matrix(30, 4, 11);
  const double c = std::cos(0.7), sn = std::sin(0.7);
  Tensor<double, 2> rot = x;
  for (std::size_t i = 0; i < 30; ++i) {
    rot(i, 0) = 3 * (c * x(i, 0) - sn * x(i, 1));
    rot(i, 1) = 3 * (sn * x(i, 0) + c * x(i, 1));
    rot(i, 2) = 3 * x(i, 2);
    rot(i, 3) = 3 * x(i, 3);
  }
  CHECK(linear_cka(x, rot) == doctest::Approx(1.0));
  // One-column X = (1, 2, 3) and Y = (1, 3, 2): centred (-1, 0, 1) and (-1, 1, 0); CKA = (1)^2 / (2 * 2).
  CHECK(linear_cka(Tensor<double, 2>{{1}, {2}, {3}}, Tensor<double, 2>{{1}, {3}, {2}}) == doctest::Approx(0.25));
  CHECK(linear_cka(Tensor<double, 2>{{1}, {1}}, Tensor<double, 2>{{1}, {2}}) == 0.0);
  CHECK_THROWS_AS(linear_cka(x, random_matrix(29, 4, 1)), ShapeError);
}

TEST_CASE("SciPy reference: matching totals up to 200 x 200, NumPy CSLS neighbours and margin mining") {
  const char* env = std::getenv("ROBUSTXLT_ALIGN_REFERENCE");
  if (!env || !std::filesystem::exists(env)) {
    MESSAGE("align reference not found (set ROBUSTXLT_ALIGN_REFERENCE); skipping");
    robustxlt_test::parity_skipped = true;
    return;
  }
  const SafetensorsReader ref{std::filesystem::path(env)};
  std::size_t matrices = 0;
  double worst = 0;
  for (const auto& [name, rec] : ref.records()) {
    if (name.rfind("match.sim.", 0) != 0) continue;
    const auto sim = ref.tensor<double, 2>(name);
    const double want = ref.tensor<double, 1>("match.total." + name.substr(10))(0);
    double total = 0;
    const auto got = match_links(sim);
    for (const auto& l : got) total += sim(l.source, l.target);
    CHECK(got.size() == std::min(sim.shape()[0], sim.shape()[1]));
    CHECK(total == doctest::Approx(want).epsilon(1e-12));
    worst = std::max(worst, std::abs(total - want));
    ++matrices;
  }
  CHECK(matrices == 6);
  const auto x = ref.tensor<double, 2>("retrieval.x"), y = ref.tensor<double, 2>("retrieval.y");
  RetrievalOptions opt;
  opt.k = std::stoul(ref.metadata().at("k"));
  opt.csls_k = std::stoul(ref.metadata().at("csls_k"));
  opt.block = 16;
  for (const auto& [method, key] : {std::pair{Retrieval::cosine, std::string("cos")}, std::pair{Retrieval::csls, std::string("csls")}}) {
    const auto nb = retrieve(x, y, method, opt);
    CHECK(nb.index == ref.tensor<std::int64_t, 2>(key + ".index"));
    CHECK(robustxlt_test::max_relative(nb.score, ref.tensor<double, 2>(key + ".score")) <= 1e-12);
  }
  const auto mined = mine_pairs(x, y, std::stoul(ref.metadata().at("margin_k")), 16);
  const auto src = ref.tensor<std::int64_t, 1>("margin.source"), tgt = ref.tensor<std::int64_t, 1>("margin.target");
  const auto score = ref.tensor<double, 1>("margin.score");
  REQUIRE(mined.size() == src.size());
  for (std::size_t k = 0; k < mined.size(); ++k) {
    CHECK(mined[k].source == src(k));
    CHECK(mined[k].target == tgt(k));
    CHECK(mined[k].score == doctest::Approx(score(k)).epsilon(1e-12));
  }
  MESSAGE("align: ", matrices, " SciPy assignments matched (largest total difference ", worst, "), CSLS and ", mined.size(),
          " mined pairs match NumPy");
}

TEST_CASE("bad input for retrieval inputs: ragged rows, malformed and mismatched id files") {
  CHECK(matrix_from_rows<float>({{1, 2}, {3, 4}}) == Tensor<float, 2>{{1, 2}, {3, 4}});
  CHECK_THROWS_WITH_AS(matrix_from_rows<float>({{1, 2}, {3, 4}, {5}}),
                       "matrix_from_rows: row 2 has 1 values, expected 2 (ragged rows)", ShapeError);
  const auto pairs = parse_id_pairs("de-1\ten-7\n\nde-2\ten-3\n", "gold.txt");
  CHECK(pairs == std::vector<std::pair<std::string, std::string>>{{"de-1", "en-7"}, {"de-2", "en-3"}});
  CHECK_THROWS_WITH_AS(parse_id_pairs("de-1\ten-7\nde-2 en-3\n", "gold.txt"),
                       "id pairs 'gold.txt' line 2: expected 'source_id<TAB>target_id', got 'de-2 en-3'", FormatError);
  std::vector<MinedPair<double>> mined = {{0, 1, 2.0}, {1, 0, 1.5}, {2, 2, 0.5}};
  CHECK(mined_id_pairs(mined, {"a", "b", "c"}, {"x", "y", "z"}, 1.0) ==
        std::vector<std::pair<std::string, std::string>>{{"a", "y"}, {"b", "x"}});
  CHECK_THROWS_WITH_AS(mined_id_pairs(mined, {"a", "b"}, {"x", "y", "z"}, 0.0),
                       doctest::Contains("(mismatched id files)"), ShapeError);
}

TEST_CASE("embed_pairs: lexicon entries through an embedding function, out-of-vocabulary pairs skipped") {
  auto embed = [](const std::string& w) -> std::optional<std::vector<double>> {
    if (w == "house") return std::vector<double>{1, 0};
    if (w == "Haus") return std::vector<double>{0.8, 0.6};
    if (w == "dog") return std::vector<double>{0, 1};
    return std::nullopt;
  };
  const auto e = embed_pairs<double>({{"house", "Haus"}, {"dog", "Hund"}, {"house", "Haus"}}, embed);
  CHECK(e.skipped == 1);
  CHECK(e.source.shape()[0] == 2);
  const auto d = pair_diagnostics(e.source, e.target);
  CHECK(d.cosine.mean == doctest::Approx(0.8));
  CHECK(d.l2.mean == doctest::Approx(std::sqrt(0.04 + 0.36)));
  auto ragged = [](const std::string& w) -> std::optional<std::vector<double>> {
    return w == "a" ? std::vector<double>{1, 2} : std::vector<double>{1};
  };
  CHECK_THROWS_AS(embed_pairs<double>({{"a", "b"}}, ragged), ShapeError);
}

// ---------------------------------------------------------------------------------------------------------
// Large inputs: retrieval against a 250k-word target vocabulary.

TEST_CASE("retrieval over 250k candidates: cosine and CSLS neighbours equal a direct computation; planted copies found") {
  constexpr std::size_t nq = 8, nc = 250000, d = 16, k = 5;
  const auto x = random_matrix(nq, d, 21);
  auto y = random_matrix(nc, d, 22);
  // Query q's direction, scaled, sits at candidate nc - 1 - 7 q: the top cosine neighbour with score 1.
  for (std::size_t q = 0; q < nq; ++q)
    for (std::size_t c = 0; c < d; ++c) y(nc - 1 - 7 * q, c) = 3.0 * x(q, c);
  const auto s = full_cosine(x, y);
  // r_T(x): mean of x's 4 best candidates; r_S(y): mean of y's 4 best queries.
  RetrievalOptions opt;
  opt.k = k;
  opt.csls_k = 4;
  std::vector<double> rx(nq), ry(nc);
  for (std::size_t i = 0; i < nq; ++i) rx[i] = mean_top(s[i], 4);
  for (std::size_t j = 0; j < nc; ++j) {
    std::vector<double> col(nq);
    for (std::size_t i = 0; i < nq; ++i) col[i] = s[i][j];
    ry[j] = mean_top(col, 4);
  }
  const auto cos = retrieve(x, y, Retrieval::cosine, opt);
  const auto csls = retrieve(x, y, Retrieval::csls, opt);
  for (std::size_t i = 0; i < nq; ++i) {
    CAPTURE(i);
    CHECK(cos.index(i, 0) == std::int64_t(nc - 1 - 7 * i));
    CHECK(cos.score(i, 0) == doctest::Approx(1.0).epsilon(1e-12));
    std::vector<std::pair<double, std::size_t>> a(nc), c(nc);
    for (std::size_t j = 0; j < nc; ++j) {
      a[j] = {-s[i][j], j};
      c[j] = {-(2 * s[i][j] - rx[i] - ry[j]), j};
    }
    std::partial_sort(a.begin(), a.begin() + k, a.end());
    std::partial_sort(c.begin(), c.begin() + k, c.end());
    for (std::size_t r = 0; r < k; ++r) {
      CHECK(cos.index(i, r) == std::int64_t(a[r].second));
      CHECK(cos.score(i, r) == doctest::Approx(-a[r].first).epsilon(1e-12));
      CHECK(csls.index(i, r) == std::int64_t(c[r].second));
      CHECK(csls.score(i, r) == doctest::Approx(-c[r].first).epsilon(1e-12));
    }
  }
}
