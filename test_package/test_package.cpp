// Uses the packaged headers as a consumer would: one perturber, one sampler, the aggregator and one metric,
// each checked against a value computed by hand. Exits nonzero on any wrong answer.
#include <robustxlt/robustxlt.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

using namespace robustxlt;

int main() {
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    std::printf("%-58s %s\n", what, ok ? "ok" : "FAILED");
    failures += ok ? 0 : 1;
  };

  // Perturber: for the linear loss sum <w, x>, PGD in a per-token L2 ball of radius 0.5 reaches
  // delta = 0.5 * w / ||w|| per token: (0.3, 0.4) for w = (3, 4), (0, -0.5) for w = (0, -2).
  const Tensor<float, 3> w = {{{3, 4}, {0, -2}}}, x0 = xt::zeros<float>({1, 2, 2});
  auto linear = [&](const Tensor<float, 3>& x, GradientView<float>& grad) {
    grad = w;
    return static_cast<float>(xt::sum(w * x)());
  };
  perturb::PGDOptions<float> pgd;
  pgd.ball = {Norm::l2, Granularity::token, 0.5f};
  pgd.step_size = 0.2f;
  pgd.steps = 3;
  const auto attack = perturb::pgd(linear, x0, Tensor<int, 2>{}, pgd);
  check(std::abs(attack.delta(0, 0, 0) - 0.3f) < 1e-6f && std::abs(attack.delta(0, 0, 1) - 0.4f) < 1e-6f &&
            std::abs(attack.delta(0, 1, 1) + 0.5f) < 1e-6f,
        "perturb::pgd reaches the maximiser of a linear loss");

  // Sampler: word 1 has neighbours {2, 3}, word 4 has none; every copy keeps words 0 and 4 and draws word 1
  // from {1, 2, 3}, and over 200 copies each of the three appears.
  const std::vector<std::vector<std::int64_t>> neighbours = {{}, {2, 3}, {}, {}, {}};
  const noise::SynonymSampler synonyms(noise::IdTable::from_lists(neighbours, 5), 5);
  const std::vector<std::int64_t> sentence = {0, 1, 4};
  const auto copies = synonyms.augment(sentence, 200, /*seed=*/42, /*example=*/0);
  bool kept = true;
  std::vector<int> seen(5, 0);
  for (std::size_t c = 0; c < copies.shape()[0]; ++c) {
    kept = kept && copies(c, 0) == 0 && copies(c, 2) == 4 && copies(c, 1) >= 1 && copies(c, 1) <= 3;
    if (copies(c, 1) >= 0 && copies(c, 1) < 5) seen[static_cast<std::size_t>(copies(c, 1))] = 1;
  }
  check(kept && seen[1] && seen[2] && seen[3], "noise::SynonymSampler draws from {w} and its neighbours");

  // Aggregator: a classifier that says class 2 for copies whose index is not divisible by 4 gets 75 of 100
  // votes for class 2 and 25 for class 0.
  auto classify = [](std::size_t first, std::size_t count, std::vector<std::int64_t>& labels) {
    for (std::size_t i = first; i < first + count; ++i) labels.push_back(i % 4 == 0 ? 0 : 2);
  };
  const auto votes = smooth::aggregate<float>(classify, /*num_classes=*/3, /*n=*/100, /*batch_size=*/16);
  check(votes.top == 2 && votes.runner_up == 0 && votes.votes[2] == 75 && votes.votes[0] == 25,
        "smooth::aggregate counts the votes");
  // Cohen et al.'s CERTIFY for 99000 of 100000 votes at alpha 0.001, sigma 0.25: published radius 0.5725.
  const auto cert = smooth::certify(0, 99000, 100000, 0.001, 0.25);
  check(cert.label == 0 && std::abs(cert.radius - 0.5725) < 1e-4, "smooth::certify gives the published radius");

  // Metric: hypothesis {0-0, 1-1, 2-2} against sure {0-0, 1-1} and possible {2-2, 1-2}: precision 1,
  // recall 1, AER = 1 - (|A n S| + |A n P|) / (|A| + |S|) = 1 - (2 + 3) / (3 + 2) = 0.
  // With hypothesis {0-0, 0-1}: |A n S| = 1, |A n P| = 1, AER = 1 - 2 / 4 = 0.5.
  const auto gold = align::parse_pharaoh("0-0 1-1 2p2 1p2\n", "gold");
  const auto perfect = align::parse_pharaoh("0-0 1-1 2-2\n", "hypothesis");
  const auto half = align::parse_pharaoh("0-0 0-1\n", "hypothesis");
  const auto s_perfect = align::score(gold, perfect), s_half = align::score(gold, half);
  check(s_perfect.aer == 0.0 && s_perfect.precision == 1.0 && s_perfect.recall == 1.0 &&
            std::abs(s_half.aer - 0.5) < 1e-12,
        "align::score computes precision, recall and AER");

  std::printf("robustxlt %s from the Conan package: %s\n", version_string, failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}
