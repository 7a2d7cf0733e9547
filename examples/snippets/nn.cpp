#include <robustxlt/robustxlt.hpp>
#include <cstdio>
#include <filesystem>
using namespace robustxlt;

// Fits two labelled sentences with AdamW, saves a checkpoint and reloads it: same logits.
int main() {
  nn::TransformerConfig cfg;  // post-LN encoder, first-token pooling, no dropout by default
  cfg.vocab_size = 100, cfg.max_positions = 16, cfg.dim = 32, cfg.heads = 4, cfg.ff_dim = 64, cfg.layers = 2;
  cfg.num_classes = 2;
  nn::TransformerClassifier<float> model(cfg, /*seed=*/1);
  nn::AdamW<float> opt(model.params(), {});  // lr 1e-3, betas 0.9 / 0.999, weight decay 0.01

  nn::TokenBatch batch;
  batch.ids = {{7, 21, 3, 40}, {7, 40, 3, 0}};
  batch.mask = {{1, 1, 1, 1}, {1, 1, 1, 0}};
  const Tensor<std::int64_t, 1> labels = {1, 0};
  float first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    model.params().zero_grad();
    last = model.loss_and_backward(batch, labels);  // forward, cross-entropy, backward
    if (step == 0) first = last;
    opt.step();
  }
  const auto path = std::filesystem::temp_directory_path() / "robustxlt_snippet_nn.safetensors";
  nn::save_checkpoint(model, path);  // atomic write; config in the safetensors metadata
  auto reloaded = nn::load_model<float>(path);
  std::filesystem::remove(path);
  const Tensor<float, 2> a = model.forward(batch), b = reloaded.forward(batch);
  std::printf("loss %.4f -> %.4f, reloaded logits equal: %d\n", first, last, a == b);
  return last < 0.5f * first && a == b ? 0 : 1;
}
