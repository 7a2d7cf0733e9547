// The program every packaging test builds against robustxlt, however the consumer obtained it
// (find_package on an install tree, add_subdirectory, FetchContent, pkg-config). It uses one piece of each
// layer a user reaches for first and checks each result against a value computed independently here, so a
// package that compiles but misbehaves still fails: the exit status is the number of failed checks.
#include <robustxlt/robustxlt.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

namespace {

using robustxlt::GradientView;
using robustxlt::Tensor;

int failures = 0;

// Messages are formatted with printf, not std::string concatenation: GCC 12 reports a false -Wrestrict in
// its own operator+ at -O3 in C++20, which -Werror would turn into a failed build.
void check(bool ok, const char* what, long index = -1) {
  if (ok) return;
  if (index >= 0) std::fprintf(stderr, "FAILED: %s [%ld]\n", what, index);
  else std::fprintf(stderr, "FAILED: %s\n", what);
  ++failures;
}

void check_near(double actual, double expected, double tol, const char* what, long index = -1) {
  check(std::fabs(actual - expected) <= tol, what, index);
  if (!(std::fabs(actual - expected) <= tol)) std::fprintf(stderr, "  expected %.17g, got %.17g\n", expected, actual);
}

// Within `sigmas` standard errors of a Bernoulli(p) rate over n draws.
void check_rate(std::size_t hits, std::size_t n, double p, const char* what, long index = -1, double sigmas = 5.0) {
  const double se = std::sqrt(p * (1.0 - p) / static_cast<double>(n));
  check_near(static_cast<double>(hits) / static_cast<double>(n), p, sigmas * se, what, index);
}

// perturb/: on L(x) = 1/2 ||x||^2 the worst case of every token in an L2 ball of radius eps is
// delta = eps * x0 / ||x0||, which PGD reaches once its steps add up to eps; FGSM under Linf gives
// eps * sign(x0). Padded positions never move.
void check_perturbers() {
  namespace perturb = robustxlt::perturb;
  const std::size_t B = 2, T = 3, D = 4;
  Tensor<double, 3> x0 = Tensor<double, 3>::from_shape({B, T, D});
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t d = 0; d < D; ++d)
        x0(b, t, d) = 0.1 * static_cast<double>(1 + b + 2 * t + d * d) * (d % 2 ? -1.0 : 1.0);
  const Tensor<std::int64_t, 2> mask = {{1, 1, 1}, {1, 1, 0}};
  auto half_square = [](const Tensor<double, 3>& x, GradientView<double>& grad) {
    grad = x;
    double loss = 0.0;
    for (double v : x) loss += 0.5 * v * v;
    return loss;
  };

  perturb::PGDOptions<double> opt;
  opt.ball = {perturb::Norm::l2, perturb::Granularity::token, /*epsilon=*/0.5};
  opt.step_size = 0.2;
  opt.steps = 4;
  opt.record_losses = true;
  const auto pgd = perturb::pgd(half_square, x0, mask, opt);
  const auto fgsm = perturb::fgsm(half_square, x0, mask,
                                  perturb::FGSMOptions<double>{robustxlt::Ball<double>{robustxlt::Norm::linf, robustxlt::Granularity::token, 0.1}});
  double expected_loss = 0.0;
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < T; ++t) {
      double norm = 0.0;
      for (std::size_t d = 0; d < D; ++d) norm += x0(b, t, d) * x0(b, t, d);
      norm = std::sqrt(norm);
      const bool token = mask(b, t) != 0;
      expected_loss += 0.5 * (token ? (norm + 0.5) * (norm + 0.5) : norm * norm);
      for (std::size_t d = 0; d < D; ++d) {
        const long at = static_cast<long>((b * T + t) * D + d);  // flat index into [B, T, D]
        check_near(pgd.delta(b, t, d), token ? 0.5 * x0(b, t, d) / norm : 0.0, 1e-12, "pgd delta", at);
        check_near(fgsm.delta(b, t, d), token ? (x0(b, t, d) > 0 ? 0.1 : -0.1) : 0.0, 1e-15, "fgsm delta", at);
      }
    }
  check(pgd.losses.size() == 5, "pgd records K + 1 = 5 losses");
  check_near(pgd.losses.back(), expected_loss, 1e-12, "pgd loss at the maximiser");
}

// noise/: RS-DA replaces a word with neighbours N(w) by a uniform draw from {w} U N(w); CoSDA-ML with
// ratio = cross = 1 replaces every translatable word by a translation from a uniformly chosen language.
void check_samplers() {
  namespace noise = robustxlt::noise;
  // Vocabulary of 6 ids: N(0) = {1, 2, 3}, N(4) = {5}, no other word has neighbours.
  const noise::SynonymSampler synonyms(noise::IdTable({0, 3, 3, 3, 3, 4, 4}, {1, 2, 3, 5}), /*vocab_size=*/6);
  const std::size_t k = 4000;
  const auto copies = synonyms.augment({0, 4, 1}, k, /*seed=*/7, /*example=*/0);
  std::size_t first[4] = {0, 0, 0, 0}, second_changed = 0, bad = 0;
  for (std::size_t c = 0; c < k; ++c) {
    if (copies(c, 0) >= 0 && copies(c, 0) <= 3) ++first[copies(c, 0)];
    else ++bad;
    if (copies(c, 1) == 5) ++second_changed;
    else if (copies(c, 1) != 4) ++bad;
    if (copies(c, 2) != 1) ++bad;
  }
  check(bad == 0, "synonym copies stay inside {w} U N(w)");
  for (std::size_t w = 0; w < 4; ++w) check_rate(first[w], k, 0.25, "RS-DA draw for word 0: rate of word", static_cast<long>(w));
  check_rate(second_changed, k, 0.5, "RS-DA replaces word 4 by its one neighbour");

  // Two languages over one shared vocabulary: language A translates 0 -> 10, language B 0 -> 20 and 1 -> 21.
  std::vector<noise::IdTable> dictionaries;
  dictionaries.emplace_back(std::vector<std::uint32_t>{0, 1}, std::vector<std::uint32_t>{10});
  dictionaries.emplace_back(std::vector<std::uint32_t>{0, 1, 2}, std::vector<std::uint32_t>{20, 21});
  const noise::CodeSwitchSampler code_switch(std::move(dictionaries), /*vocab_size=*/22, noise::CodeSwitchOptions{1.0, 1.0});
  const auto switched = code_switch.augment({0, 1, 2}, k, /*seed=*/11, /*example=*/3);
  std::size_t to_a = 0;
  bad = 0;
  for (std::size_t c = 0; c < k; ++c) {
    if (switched(c, 0) == 10) ++to_a;
    else if (switched(c, 0) != 20) ++bad;
    if (switched(c, 1) != 21 || switched(c, 2) != 2) ++bad;
  }
  check(bad == 0, "code-switched copies use the dictionaries' translations");
  check_rate(to_a, k, 0.5, "CoSDA-ML picks either language for word 0");
}

// smooth/: aggregate() over the synonym sampler's copies must count exactly what a direct loop counts;
// predict() must then name the majority class; certify() must give Cohen et al.'s published values.
void check_smoothing() {
  namespace noise = robustxlt::noise;
  namespace smooth = robustxlt::smooth;
  const noise::SynonymSampler synonyms(noise::IdTable({0, 3, 3, 3, 3}, {1, 2, 3}), /*vocab_size=*/4);
  const std::vector<std::int64_t> sentence = {0, 2};
  // Copy classifier: class 1 when the first word was substituted (probability 3/4), else 0.
  auto classify = [&](std::size_t first_copy, std::size_t count, std::vector<std::int64_t>& labels) {
    std::vector<std::int64_t> copy(sentence.size());
    for (std::size_t i = 0; i < count; ++i) {
      synonyms.sample(sentence.data(), sentence.size(), copy.data(), /*seed=*/5, /*example=*/0, first_copy + i);
      labels.push_back(copy[0] != sentence[0] ? 1 : 0);
    }
  };
  const std::size_t n = 1000;
  const auto agg = smooth::aggregate<double>(classify, /*num_classes=*/2, n, /*batch_size=*/64);
  std::size_t substituted = 0;
  std::vector<std::int64_t> copy(sentence.size());
  for (std::size_t c = 0; c < n; ++c) {
    synonyms.sample(sentence.data(), sentence.size(), copy.data(), 5, 0, c);
    substituted += copy[0] != sentence[0];
  }
  check(agg.votes.size() == 2 && agg.votes[1] == substituted && agg.votes[0] == n - substituted,
        "aggregate counts the same votes as a direct loop");
  check_rate(substituted, n, 0.75, "substitution rate of a word with three neighbours");
  check(agg.top == 1 && agg.runner_up == 0, "aggregate ranks class 1 first");
  check(smooth::predict(agg.votes, 0.001).label == 1, "predict returns the majority class");
  check(smooth::predict({50, 50}, 0.001).label == smooth::abstain, "predict abstains on a tie");
  const auto cert = smooth::certify(/*candidate=*/0, /*count=*/99000, /*n=*/100000, /*alpha=*/0.001, /*sigma=*/0.25);
  check(cert.label == 0, "certify keeps the candidate");
  check_near(cert.p_lower, 0.98898934, 1e-8, "certify p_lower for 99000 of 100000");
  check_near(cert.radius, 0.5725, 1e-4, "certify radius at sigma 0.25");
}

// align/: corpus scores of a hypothesis against sure and possible gold links, worked out by hand:
// |A| = 4, |S| = 3, |A n S| = 2, |A n P| = 3.
void check_alignment_scores() {
  namespace align = robustxlt::align;
  const auto gold = align::parse_pharaoh("0-0 1p1 2-2\n0-1\n", "gold");
  const auto hypothesis = align::parse_pharaoh("0-0 1-1 2-1\n0-1\n", "hypothesis");
  const auto s = align::score(gold, hypothesis);
  check(s.hypothesis == 4 && s.sure == 3 && s.hypothesis_sure == 2 && s.hypothesis_possible == 3, "alignment counts");
  check_near(s.precision, 3.0 / 4.0, 1e-15, "precision");
  check_near(s.recall, 2.0 / 3.0, 1e-15, "recall");
  check_near(s.f, 12.0 / 17.0, 1e-15, "F");
  check_near(s.aer, 2.0 / 7.0, 1e-15, "AER");
}

// nn/: one forward/backward pass of a tiny transformer gives a finite loss and an input gradient per token.
void check_transformer() {
  robustxlt::nn::TransformerConfig cfg;
  cfg.vocab_size = 50, cfg.max_positions = 8, cfg.dim = 16, cfg.heads = 2, cfg.ff_dim = 32, cfg.layers = 1;
  cfg.num_classes = 2;
  robustxlt::nn::TransformerClassifier<float> model(cfg, /*seed=*/3);
  robustxlt::nn::TokenBatch batch;
  batch.ids = {{1, 2, 3, 4}};
  const Tensor<std::int64_t, 1> labels = {1};
  const float loss = model.loss_and_backward(batch, labels);
  check(std::isfinite(loss) && loss > 0.0f, "transformer loss is finite and positive");
  const auto& g = model.input_grad();
  check(g.dimension() == 3 && g.shape()[0] == 1 && g.shape()[1] == 4 && g.shape()[2] == 16, "input gradient shape [1, 4, 16]");
}

}  // namespace

int main() {
  try {
    check_perturbers();
    check_samplers();
    check_smoothing();
    check_alignment_scores();
    check_transformer();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAILED: unexpected exception: %s\n", e.what());
    return 1;
  }
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("robustxlt %s consumer (C++%ld): all checks passed\n", robustxlt::version_string, __cplusplus / 100 % 100);
  return 0;
}
