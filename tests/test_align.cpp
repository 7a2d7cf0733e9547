// Tests of align/: Pharaoh reading and writing, corpus scores and extraction modes against hand-computed
// values, the Hungarian matching against brute force over all assignments.
#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <robustxlt/align.hpp>
#include <robustxlt/core.hpp>
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
}
