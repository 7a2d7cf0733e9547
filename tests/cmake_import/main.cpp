// Builds against the installed package and runs one training step of the transformer.
#include <robustxlt/robustxlt.hpp>

#include <cmath>
#include <cstdio>

int main() {
  robustxlt::nn::TransformerConfig cfg;
  cfg.vocab_size = 50;
  cfg.max_positions = 8;
  cfg.dim = 16;
  cfg.heads = 2;
  cfg.ff_dim = 32;
  cfg.layers = 1;
  cfg.num_classes = 2;
  robustxlt::nn::TransformerClassifier<float> model(cfg, 3);
  robustxlt::nn::TokenBatch batch;
  batch.ids = {{1, 2, 3, 4}};
  robustxlt::Tensor<std::int64_t, 1> labels = {1};
  const float loss = model.loss_and_backward(batch, labels);
  if (!std::isfinite(loss)) return 1;
  std::printf("installed robustxlt %s: loss %.4f\n", robustxlt::version_string, loss);
  return 0;
}
