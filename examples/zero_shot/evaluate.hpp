#pragma once
// What the demo measures of one trained model: accuracy per language and language pair, and Gaussian
// randomized smoothing (PREDICT, CERTIFY) on the input embeddings.
#include <algorithm>
#include <cstdint>
#include <robustxlt/robustxlt.hpp>
#include <string>
#include <vector>

#include "../example_support.hpp"
#include "task.hpp"
#include "world.hpp"

namespace zero_shot {

struct EvalSettings {
  std::uint64_t data_seed = 1;
  double sigma = 0;  // Gaussian noise per coordinate of smoothing
  std::size_t smooth_examples = 100, smooth_n0 = 10, smooth_n = 100;
  double alpha = 0.001;
  std::vector<double> radii;  // L2 radii of certified accuracy
};

// What one (recipe, seed) run measured. Language index 0 is English, then the target languages.
struct RunResult {
  std::string recipe;
  std::size_t seed = 0;
  double final_loss = 0;
  std::vector<double> accuracy;                // [L] both sentences in the language
  std::vector<double> generalized;             // [L] mean over pairs with exactly one sentence in the language
  std::vector<double> smoothed;                // [L] PREDICT accuracy (abstentions count as wrong)
  std::vector<double> abstained;               // [L] PREDICT abstention rate
  std::vector<std::vector<double>> certified;  // [R][L] CERTIFY: correct with radius >= r
  double train_seconds = 0, accuracy_seconds = 0, smoothing_seconds = 0;  // where the run's time went
};

// Accuracy with the first sentence in l1 and the second in l2 (-1 = English).
inline double accuracy(robustxlt::nn::TransformerClassifier<float>& model, const World& world, const std::vector<Example>& test,
                       int l1, int l2, std::uint64_t seed) {
  std::size_t correct = 0;
  const std::size_t chunk = 200;
  for (std::size_t start = 0; start < test.size(); start += chunk) {
    const std::size_t n = std::min(chunk, test.size() - start);
    auto batch = empty_batch(n, kMaxLength);
    for (std::size_t b = 0; b < n; ++b)
      encode(world, test[start + b], l1, l2, seed, (start + b) * 64 + static_cast<std::uint64_t>((l1 + 1) * 8 + l2 + 1), batch, b);
    const std::vector<std::int64_t> predicted = robustxlt::nn::predictions(model.forward(batch));
    for (std::size_t b = 0; b < n; ++b) correct += predicted[b] == test[start + b].label;
  }
  return static_cast<double>(correct) / static_cast<double>(test.size());
}

struct SmoothedMetrics {
  double accuracy = 0, abstained = 0;
  std::vector<double> certified;  // [R]
};

// Gaussian randomized smoothing of the model over its input embeddings: PREDICT and CERTIFY on the first
// opt.smooth_examples test examples in language lang.
inline SmoothedMetrics smoothed_metrics(robustxlt::nn::TransformerClassifier<float>& model, const World& world,
                                        const std::vector<Example>& test, int lang, const EvalSettings& opt) {
  using robustxlt::Tensor;
  namespace smooth = robustxlt::smooth;
  const std::size_t n = std::min(opt.smooth_examples, test.size());
  std::vector<smooth::Certificate> certs;
  std::vector<std::int64_t> gold;
  std::size_t correct = 0, abstained = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t T = encoded_length(test[i]);
    auto one = empty_batch(1, T);
    const std::uint64_t key = i * 64 + static_cast<std::uint64_t>((lang + 1) * 9);
    encode(world, test[i], lang, lang, opt.data_seed, key, one, 0);
    const std::uint64_t noise_seed = opt.data_seed * 7919 + static_cast<std::uint64_t>(lang + 1);
    auto classify = [&](std::size_t first, std::size_t count, std::vector<std::int64_t>& out) {
      auto batch = empty_batch(count, T);
      for (std::size_t b = 0; b < count; ++b)
        for (std::size_t t = 0; t < T; ++t)
          batch.ids(b, t) = one.ids(0, t), batch.mask(b, t) = one.mask(0, t), batch.segments(b, t) = one.segments(0, t);
      Tensor<float, 3> delta = xt::zeros<float>({count, T, world.dim});
      // Copy c of example i draws from stream (noise_seed, i * 2^20 + c): independent of the batching.
      robustxlt::noise::add_embedding_noise(delta, batch.mask, robustxlt::noise::EmbeddingNoise::gaussian,
                                            static_cast<float>(opt.sigma), noise_seed,
                                            (static_cast<std::uint64_t>(i) << 20) + first, 0);
      out = robustxlt::nn::predictions(model.forward(batch, &delta));
    };
    auto g = smooth::make_smoothed_classifier<float>(classify, kClasses, opt.sigma, 128);
    const auto p = g.predict(opt.smooth_n, opt.alpha);
    abstained += p.label == smooth::abstain;
    correct += p.label == test[i].label;
    certs.push_back(g.certify(opt.smooth_n0, opt.smooth_n, opt.alpha));
    gold.push_back(test[i].label);
  }
  SmoothedMetrics m;
  m.accuracy = static_cast<double>(correct) / static_cast<double>(n);
  m.abstained = static_cast<double>(abstained) / static_cast<double>(n);
  m.certified = smooth::certified_accuracy(certs, gold, opt.radii);
  return m;
}

// Every metric of RunResult for one trained model, over English (index 0) and the world's languages.
inline void evaluate(robustxlt::nn::TransformerClassifier<float>& model, const World& world, const std::vector<Example>& test,
                     const EvalSettings& opt, RunResult& res) {
  const std::size_t L = world.languages.size() + 1;
  const examples::Stopwatch clock;
  res.accuracy.assign(L, 0);
  res.generalized.assign(L, 0);
  res.smoothed.assign(L, 0);
  res.abstained.assign(L, 0);
  res.certified.assign(opt.radii.size(), std::vector<double>(L, 0));
  std::vector<std::vector<double>> pair_acc(L, std::vector<double>(L, 0));
  for (std::size_t a = 0; a < L; ++a)
    for (std::size_t b = 0; b < L; ++b)
      pair_acc[a][b] = accuracy(model, world, test, static_cast<int>(a) - 1, static_cast<int>(b) - 1, opt.data_seed);
  for (std::size_t a = 0; a < L; ++a) {
    res.accuracy[a] = pair_acc[a][a];
    double g = 0;
    for (std::size_t b = 0; b < L; ++b)
      if (b != a) g += pair_acc[a][b] + pair_acc[b][a];
    res.generalized[a] = L > 1 ? g / (2.0 * static_cast<double>(L - 1)) : pair_acc[a][a];
  }
  res.accuracy_seconds = clock.seconds();
  for (std::size_t a = 0; a < L; ++a) {
    const auto m = smoothed_metrics(model, world, test, static_cast<int>(a) - 1, opt);
    res.smoothed[a] = m.accuracy;
    res.abstained[a] = m.abstained;
    for (std::size_t r = 0; r < opt.radii.size(); ++r) res.certified[r][a] = m.certified[r];
  }
  res.smoothing_seconds = clock.seconds() - res.accuracy_seconds;
}

// How far each language's translations sit from their English headwords (align/ diagnostics over every
// translation of every concept). Index 0 (English) holds cosine 1, L2 0 and coverage 1.
struct AlignmentDiagnostics {
  std::vector<double> cosine, l2, coverage;  // [L]
};

inline AlignmentDiagnostics alignment_diagnostics(const World& world, double epsilon) {
  using robustxlt::Tensor;
  const std::size_t L = world.languages.size() + 1, D = world.dim;
  AlignmentDiagnostics out{std::vector<double>(L, 1.0), std::vector<double>(L, 0.0), std::vector<double>(L, 1.0)};
  for (std::size_t l = 0; l + 1 < L; ++l) {
    std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
    for (std::size_t c = 0; c < world.lexicon.concepts.size(); ++c)
      for (auto t : world.translation_ids[l][c]) pairs.emplace_back(world.english_id(c), t);
    Tensor<float, 2> src = Tensor<float, 2>::from_shape({pairs.size(), D}), tgt = src;
    for (std::size_t i = 0; i < pairs.size(); ++i)
      for (std::size_t k = 0; k < D; ++k)
        src(i, k) = world.table(static_cast<std::size_t>(pairs[i].first), k),
               tgt(i, k) = world.table(static_cast<std::size_t>(pairs[i].second), k);
    const auto d = robustxlt::align::pair_diagnostics(src, tgt);
    Tensor<float, 3> s3 = xt::reshape_view(src, {pairs.size(), std::size_t{1}, D});
    Tensor<float, 3> t3 = xt::reshape_view(tgt, {pairs.size(), std::size_t{1}, D});
    out.coverage[l + 1] = robustxlt::align::robust_region_coverage(
        s3, t3, Tensor<std::int64_t, 2>{},
        robustxlt::Ball<float>{robustxlt::Norm::l2, robustxlt::Granularity::token, static_cast<float>(epsilon)});
    out.cosine[l + 1] = d.cosine.mean, out.l2[l + 1] = d.l2.mean;
  }
  return out;
}

}  // namespace zero_shot
