#include <robustxlt/robustxlt.hpp>
#include <cstdio>
using namespace robustxlt;

int main() {
  nn::TransformerConfig cfg;  // BERT-style post-LN encoder; every field has a default
  cfg.vocab_size = 1000, cfg.dim = 64, cfg.heads = 4, cfg.ff_dim = 128, cfg.layers = 2, cfg.num_classes = 3;
  nn::TransformerClassifier<float> model(cfg, /*seed=*/42);
  nn::AdamW<float> opt(model.params(), {});

  nn::TokenBatch batch;                          // ids [B, T]; mask: 1 = token, 0 = padding
  batch.ids = {{5, 17, 256, 9}, {5, 88, 3, 0}};
  batch.mask = {{1, 1, 1, 1}, {1, 1, 1, 0}};
  Tensor<std::int64_t, 1> labels = {2, 0};

  Tensor<float, 3> delta = xt::zeros<float>({2, 4, 64});  // a perturbation of the token embeddings
  model.params().zero_grad();
  float loss = model.loss_and_backward(batch, labels, {}, &delta);
  const Tensor<float, 3>& g = model.input_grad();  // dLoss/dEmbeddings [B, T, D]: what perturbers step along
  opt.step();
  std::printf("loss %.4f, |g[0,0,0]| %.2e\n", loss, std::abs(g(0, 0, 0)));
}
