#pragma once
// The synthetic task the examples train on: each sequence holds random filler words and, in two thirds of
// the cases, a marker word A (id 1) and a marker word B (id 2). The label says whether A comes before B (0),
// after B (1), or whether one marker is missing (2). Bag-of-words models cannot beat 2/3; a transformer has
// to use positions. Sequences have random lengths in [T/2, T] and are padded to T.
#include <robustxlt/core.hpp>
#include <robustxlt/nn.hpp>


namespace word_order_task {

// The model the word-order examples train (train_classifier, adversarial_training, certify): vocabulary
// 200, positions 32, width 64, 4 heads, 2 layers, mean pooling, 3 classes. One definition, so that
// train_classifier's checkpoints load into certify.
inline robustxlt::nn::TransformerConfig model_config() {
  robustxlt::nn::TransformerConfig cfg;
  cfg.vocab_size = 200;
  cfg.max_positions = 32;
  cfg.dim = 64;
  cfg.heads = 4;
  cfg.ff_dim = 128;
  cfg.layers = 2;
  cfg.num_classes = 3;
  cfg.pooling = robustxlt::nn::Pooling::mean;
  return cfg;
}

inline void draw_batch(robustxlt::Rng& rng, std::size_t B, std::size_t T, std::size_t vocab, robustxlt::nn::TokenBatch& batch,
                       robustxlt::Tensor<std::int64_t, 1>& y) {
  batch.ids = xt::zeros<std::int64_t>({B, T});
  batch.mask = xt::zeros<std::int64_t>({B, T});
  y = robustxlt::Tensor<std::int64_t, 1>::from_shape({B});
  for (std::size_t b = 0; b < B; ++b) {
    const std::size_t len = T / 2 + rng.below(T / 2 + 1);
    for (std::size_t t = 0; t < len; ++t) {
      batch.ids(b, t) = 3 + static_cast<std::int64_t>(rng.below(vocab - 3));
      batch.mask(b, t) = 1;
    }
    const std::size_t i = rng.below(len), j = (i + 1 + rng.below(len - 1)) % len;
    if (rng.below(3) < 2) {
      batch.ids(b, i) = 1;
      batch.ids(b, j) = 2;
      y(b) = i < j ? 0 : 1;
    } else {
      batch.ids(b, i) = 1 + static_cast<std::int64_t>(rng.below(2));
      y(b) = 2;
    }
  }
}

// Fraction of rows whose largest logit is the label.
inline double accuracy(const robustxlt::Tensor<float, 2>& logits, const robustxlt::Tensor<std::int64_t, 1>& y) {
  const std::vector<std::int64_t> predicted = robustxlt::nn::predictions(logits);
  std::size_t correct = 0;
  for (std::size_t b = 0; b < y.size(); ++b) correct += predicted[b] == y(b);
  return static_cast<double>(correct) / static_cast<double>(y.size());
}

}  // namespace word_order_task
