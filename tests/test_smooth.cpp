// Tests of smooth/: PREDICT / CERTIFY against published test vectors and SciPy, aggregation of copy
// classifiers, substitution certificates against hand-computed values, bad input.
#include "test_support.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <robustxlt/core/detail/json.hpp>
#include <robustxlt/core.hpp>
#include <robustxlt/smooth.hpp>
#include <vector>

namespace fs = std::filesystem;
using namespace robustxlt;
using namespace robustxlt::smooth;

TEST_CASE("Cohen et al. test vectors: Clopper-Pearson bound, radius, binomial test") {
  // nA = 99000 of 100000 at alpha = 0.001: pA = 0.98898934, radius 0.5725 for sigma 0.25.
  const auto c = certify(3, 99000, 100000, 0.001, 0.25);
  CHECK(c.label == 3);
  CHECK(c.p_lower == doctest::Approx(0.98898934).epsilon(1e-8));
  CHECK(c.radius == doctest::Approx(0.5725).epsilon(1e-4));
  // All 100000 votes: pA = alpha^(1/n) and radius 3.8115 sigma.
  const auto all = certify(0, 100000, 100000, 0.001, 1.0);
  CHECK(all.p_lower == doctest::Approx(std::pow(0.001, 1e-5)).epsilon(1e-12));
  CHECK(all.radius == doctest::Approx(3.8115).epsilon(1e-4));
  // Two-sided binomial test of 60 of 100 against 1/2.
  CHECK(binomial_test_two_sided(60, 100) == doctest::Approx(0.0568879).epsilon(1e-6));
  CHECK(binomial_test_two_sided(50, 100) == doctest::Approx(1.0));
  CHECK(binomial_test_two_sided(0, 10) == doctest::Approx(2.0 / 1024));
  CHECK(normal_quantile(0.5) == doctest::Approx(0.0));
}

TEST_CASE("PREDICT and CERTIFY decisions") {
  CHECK(predict({10, 60, 40}, 0.05).label == abstain);  // 60 vs 40: p = 0.057
  const auto p = predict({5, 70, 30}, 0.05);
  CHECK(p.label == 1);
  CHECK(p.p_value == doctest::Approx(binomial_test_two_sided(70, 100)));
  CHECK(predict({0, 0, 9}, 0.01).label == 2);  // 9 of 9: p = 2^-8
  // pA below 1/2: abstain with radius 0.
  const auto c = certify(1, 50, 100, 0.001, 0.5);
  CHECK(c.label == abstain);
  CHECK(c.radius == 0.0);
  CHECK(certified_accuracy({certify(0, 990, 1000, 0.001, 0.5), certify(1, 990, 1000, 0.001, 0.5), c}, {0, 0, 1},
                           {0.0, 0.5, 1.0}) == std::vector<double>{1.0 / 3, 1.0 / 3, 0.0});
}

TEST_CASE("aggregate: votes, mean probabilities, margin, batching and labels") {
  // Copy i votes for class i % 3 with probability 0.6 on it.
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  auto probs = [&](std::size_t first, std::size_t count, Tensor<double, 2>& out) {
    calls.emplace_back(first, count);
    out = xt::zeros<double>({count, std::size_t(3)});
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t c = (first + i) % 3 == 0 ? 0 : 1;
      for (std::size_t k = 0; k < 3; ++k) out(i, k) = k == c ? 0.6 : 0.2;
    }
  };
  const auto a = aggregate<double>(probs, 3, 10, 4);
  CHECK(calls == std::vector<std::pair<std::size_t, std::size_t>>{{0, 4}, {4, 4}, {8, 2}});
  CHECK(a.votes == std::vector<std::size_t>{4, 6, 0});  // copies 0, 3, 6, 9 vote 0
  CHECK(a.top == 1);
  CHECK(a.runner_up == 0);
  CHECK(a.mean_probs[0] == doctest::Approx((4 * 0.6 + 6 * 0.2) / 10));
  CHECK(a.margin == doctest::Approx((6 * 0.6 + 4 * 0.2) / 10 - (4 * 0.6 + 6 * 0.2) / 10));
  auto labels = [](std::size_t first, std::size_t count, std::vector<std::int64_t>& out) {
    for (std::size_t i = 0; i < count; ++i) out.push_back(static_cast<std::int64_t>((first + i) % 2));
  };
  const auto b = aggregate<float>(labels, 2, 7, 3, 100);
  CHECK(b.votes == std::vector<std::size_t>{4, 3});
  CHECK(b.mean_probs.empty());
  CHECK(b.margin == doctest::Approx(1.0 / 7));
  auto bad = [](std::size_t, std::size_t count, std::vector<std::int64_t>& out) { out.assign(count, 5); };
  CHECK_THROWS_WITH_AS(aggregate<float>(bad, 3, 4, 2), "aggregate: classifier returned label 5 for copy 0, expected a class in [0, 3)",
                       InvalidArgument);
  CHECK_THROWS_WITH_AS(aggregate<float>(labels, 2, 0, 2), "aggregate: n must be > 0, got 0", InvalidArgument);
}

TEST_CASE("SmoothedClassifier: a sampler and a model combined; fresh estimation copies") {
  // Input x = 0.3 on a line, model f(z) = [z > 0], Gaussian noise with sigma 1 keyed by copy index.
  const double x = 0.3, sigma = 1.0;
  std::size_t max_copy = 0;
  auto sampler = [&](std::size_t first, std::size_t count) {
    std::vector<double> z(count);
    for (std::size_t i = 0; i < count; ++i) {
      Rng rng(42, 0, first + i);
      z[i] = x + sigma * rng.normal<double>();
      max_copy = std::max(max_copy, first + i);
    }
    return z;
  };
  auto model = [](const std::vector<double>& z, std::vector<std::int64_t>& out) {
    for (double v : z) out.push_back(v > 0 ? 1 : 0);
  };
  auto g = make_smoothed_classifier<double>(combine(sampler, model), 2, sigma, 500);
  const auto c = g.certify(100, 20000, 0.001);
  CHECK(max_copy == 20099);  // selection [0, 100), estimation [100, 20100)
  CHECK(c.label == 1);
  // P(f = 1) = Phi(0.3) = 0.6179; the certified radius approaches sigma * 0.3 from below.
  CHECK(c.radius > 0.25);
  CHECK(c.radius < 0.3);
  CHECK(g.predict(1000, 0.001).label == 1);
  CHECK_THROWS_WITH_AS(g.certify(0, 10, 0.01), "certify: n0 must be > 0, got 0", InvalidArgument);
  CHECK_THROWS_WITH_AS(g.certify(10, 10, 1.5), "certify: alpha must be in (0, 1), got 1.5", InvalidArgument);
  CHECK_THROWS_WITH_AS(make_smoothed_classifier<double>(combine(sampler, model), 2, 0.0), "SmoothedClassifier: sigma must be > 0, got 0",
                       InvalidArgument);
}

TEST_CASE("SmoothedBatch: many inputs, noise keyed by input index, each equal to its single-input classifier") {
  // Inputs x_i on a line, model f(z) = [z > 0], Gaussian noise with sigma 1 keyed by (seed, input, copy).
  const std::vector<double> xs = {0.3, -0.8, 1.5, 0.3, 0.0};
  const double sigma = 1.0;
  auto classify = [&](std::size_t input, std::size_t first, std::size_t count, std::vector<std::int64_t>& out) {
    for (std::size_t i = 0; i < count; ++i) {
      Rng rng(42, input, first + i);
      out.push_back(xs[input] + sigma * rng.normal<double>() > 0 ? 1 : 0);
    }
  };
  auto batch = make_smoothed_batch<double>(classify, xs.size(), 2, sigma, 500);
  const auto certs = batch.certify(100, 20000, 0.001);
  const auto preds = batch.predict(2000, 0.001);
  REQUIRE(certs.size() == xs.size());
  REQUIRE(preds.size() == xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) {
    CAPTURE(i);
    // The same decision, bound and radius as a SmoothedClassifier over input i alone.
    auto single = make_smoothed_classifier<double>(
        [&](std::size_t first, std::size_t count, std::vector<std::int64_t>& out) { classify(i, first, count, out); }, 2, sigma,
        500);
    const auto c = single.certify(100, 20000, 0.001);
    CHECK(certs[i].label == c.label);
    CHECK(certs[i].p_lower == c.p_lower);
    CHECK(certs[i].radius == c.radius);
    CHECK(preds[i].label == single.predict(2000, 0.001).label);
    // Against the truth: P(f = 1) = Phi(x_i / sigma), so a certified radius stays below |x_i| (the distance
    // to f's boundary) and the label is the side x_i is on.
    if (certs[i].label != abstain) {
      CHECK(certs[i].label == (xs[i] > 0 ? 1 : 0));
      CHECK(certs[i].radius < std::abs(xs[i]));
    }
  }
  CHECK(certs[2].radius > 1.3);               // Phi(1.5) = 0.933 with n = 20000: the bound is tight
  CHECK(certs[4].label == abstain);           // on the boundary: P = 1/2
  CHECK(certs[0].p_lower != certs[3].p_lower);  // the same x at two input indices: independent noise
  CHECK_THROWS_WITH_AS(make_smoothed_batch<double>(classify, 0, 2, sigma), "SmoothedBatch: inputs must be > 0, got 0",
                       InvalidArgument);
}

TEST_CASE("statistics without a library: closed forms of the incomplete beta, its quantile and log Gamma") {
  // ln Gamma(n) = ln (n - 1)!, and Gamma(1/2) = sqrt(pi).
  double factorial = 1;
  for (int n = 1; n <= 25; ++n) {
    CHECK(smooth::detail::log_gamma(n) == doctest::Approx(std::log(factorial)).epsilon(1e-14).scale(1e-15));
    factorial *= n;
  }
  CHECK(smooth::detail::log_gamma(0.5) == doctest::Approx(0.5 * std::log(3.14159265358979323846)).epsilon(1e-14));
  // I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b, on both sides of the mean (direct and complement paths).
  // The log-Beta prefactor loses digits as the arguments grow (ln Gamma(20000) is about 2e5): 1e-10 relative.
  for (double x : {1e-9, 0.01, 0.3, 0.5, 0.7, 0.999})
    for (double k : {1.0, 2.0, 7.0, 150.0, 20000.0}) {
      CAPTURE(x);
      CAPTURE(k);
      CHECK(smooth::detail::incomplete_beta(k, 1.0, x) == doctest::Approx(std::pow(x, k)).epsilon(1e-10).scale(1e-300));
      CHECK(smooth::detail::incomplete_beta(1.0, k, x) == doctest::Approx(-std::expm1(k * std::log1p(-x))).epsilon(1e-10));
      // The quantile inverts it: Beta(k, 1) has quantile p^(1/k).
      CHECK(smooth::detail::beta_quantile(k, 1.0, x) == doctest::Approx(std::pow(x, 1.0 / k)).epsilon(1e-13));
    }
  // Symmetry I_x(a, b) = 1 - I_{1-x}(b, a), and the normal quantile's Phi^-1(1 - p) = -Phi^-1(p).
  CHECK(smooth::detail::incomplete_beta(30.0, 12.0, 0.6) == doctest::Approx(1.0 - smooth::detail::incomplete_beta(12.0, 30.0, 0.4)).epsilon(1e-14));
  for (double p : {std::ldexp(1.0, -40), std::ldexp(1.0, -14), 0.0078125, 0.25, 0.375})  // 1 - p exact in double
    CHECK(smooth::detail::standard_normal_quantile(1 - p) == doctest::Approx(-smooth::detail::standard_normal_quantile(p)).epsilon(1e-9));
  CHECK(0.5 * std::erfc(-smooth::detail::standard_normal_quantile(0.025) / std::sqrt(2.0)) == doctest::Approx(0.025).epsilon(1e-14));
}

TEST_CASE("substitution certificates: overlaps and the certified condition") {
  // 0: {1, 2}; 1: {0}; 2: {0, 1}; 3: none.  P_0 = {0,1,2}, P_1 = {0,1}, P_2 = {0,1,2}.
  const std::vector<std::vector<std::uint32_t>> nb = {{1, 2}, {0}, {0, 1}, {}};
  CHECK(substitution_overlap(nb, 0) == doctest::Approx(2.0 / 3));  // min(|P0 n P1|, |P0 n P2|) / |P0| = 2/3
  CHECK(substitution_overlap(nb, 1) == doctest::Approx(1.0));      // P1 n P0 = P1
  CHECK(substitution_overlap(nb, 3) == 1.0);
  CHECK_THROWS_AS(substitution_overlap(nb, 4), InvalidArgument);
  // p_hat = 0.95, error sqrt(ln(1000) / 2000), delta = 1 - (2/3)(0.9) with budget 2 of {0.9, 2/3, 1}.
  const auto c = substitution_certificate(950, 1000, {0.9, 2.0 / 3, 1.0}, 2, 0.001);
  CHECK(c.error == doctest::Approx(std::sqrt(std::log(1000.0) / 2000)));
  CHECK(c.delta == doctest::Approx(1 - 0.6));
  CHECK(c.margin == doctest::Approx(0.95 - 0.4 - 0.5 - c.error));
  CHECK_FALSE(c.certified);
  const auto d = substitution_certificate(990, 1000, {0.95, 0.99}, 1, 0.001);
  CHECK(d.delta == doctest::Approx(0.05));
  CHECK(d.certified);
  CHECK_THROWS_WITH_AS(substitution_certificate(1, 0, {}, 1, 0.1), "substitution_certificate: n must be > 0, got 0", InvalidArgument);
  CHECK_THROWS_AS(substitution_certificate(1, 2, {1.5}, 1, 0.1), InvalidArgument);
}

TEST_CASE("bad input") {
  CHECK_THROWS_WITH_AS(certify(0, 5, 0, 0.01, 1.0), "certify: n must be > 0, got 0", InvalidArgument);
  CHECK_THROWS_WITH_AS(certify(0, 5, 10, 0.0, 1.0), "certify: alpha must be in (0, 1), got 0", InvalidArgument);
  CHECK_THROWS_WITH_AS(certify(0, 5, 10, 0.01, -1.0), "certify: sigma must be > 0, got -1", InvalidArgument);
  CHECK_THROWS_WITH_AS(clopper_pearson_lower(11, 10, 0.01), "clopper_pearson_lower: k must be <= n 10, got 11", InvalidArgument);
  CHECK_THROWS_WITH_AS(predict({}, 0.01), "predict: counts must name at least one class, got none", InvalidArgument);
  CHECK_THROWS_WITH_AS(predict({0, 0}, 0.01), "predict: counts must contain at least one vote, got all zeros", InvalidArgument);
  CHECK_THROWS_WITH_AS(predict({1, 2}, 1.0), "predict: alpha must be in (0, 1), got 1", InvalidArgument);
}

TEST_CASE("SciPy reference: Clopper-Pearson bounds, binomial tests and normal quantiles") {
  const char* env = std::getenv("ROBUSTXLT_SMOOTH_REFERENCE");
  if (!env || !fs::exists(env)) {
    MESSAGE("SciPy reference not found (set ROBUSTXLT_SMOOTH_REFERENCE); skipping");
    robustxlt_test::parity_skipped = true;
    return;
  }
  const auto ref = robustxlt::detail::json::Parser(read_file(env)).parse();
  auto list = [&](const char* name) -> const std::vector<robustxlt::detail::json::Value>& {
    const auto* v = ref.find(name);
    REQUIRE(v);
    return v->items;
  };
  auto number = [](const robustxlt::detail::json::Value& e, const char* field) {
    const auto* v = e.find(field);
    REQUIRE(v);
    return std::stod(v->text);
  };
  auto count = [](const robustxlt::detail::json::Value& e, const char* field) {
    std::size_t n = 0;
    const auto* v = e.find(field);
    REQUIRE((v && v->as_size(n)));
    return n;
  };
  double worst = 0;
  for (const auto& e : list("clopper_pearson")) {
    const double got = clopper_pearson_lower(count(e, "k"), count(e, "n"), number(e, "alpha"));
    const double want = number(e, "lower");
    CHECK(got == doctest::Approx(want).epsilon(1e-9).scale(1e-12));
    worst = std::max(worst, std::abs(got - want));
  }
  for (const auto& e : list("binomial_two_sided")) {
    const double got = binomial_test_two_sided(count(e, "k"), count(e, "n"));
    CHECK(got == doctest::Approx(number(e, "p")).epsilon(1e-9).scale(1e-12));
    worst = std::max(worst, std::abs(got - number(e, "p")));
  }
  for (const auto& e : list("normal_quantile")) {
    const double got = normal_quantile(number(e, "p"));
    CHECK(got == doctest::Approx(number(e, "z")).epsilon(1e-9));
    worst = std::max(worst, std::abs(got - number(e, "z")));
  }
  MESSAGE("smooth: ", list("clopper_pearson").size() + list("binomial_two_sided").size() + list("normal_quantile").size(),
          " SciPy values matched, largest absolute difference ", worst);
}
