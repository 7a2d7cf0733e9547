// Compiled as C++20 to keep every public header valid in both standards; running it checks the version.
#include <robustxlt/robustxlt.hpp>

#include <cstdio>
#include <cstring>

int main() {
  static_assert(__cplusplus >= 202002L, "this translation unit must be compiled as C++20");
  robustxlt::nn::TransformerConfig cfg;
  cfg.vocab_size = 10;
  cfg.max_positions = 4;
  cfg.dim = 8;
  cfg.heads = 2;
  cfg.ff_dim = 8;
  cfg.layers = 1;
  cfg.num_classes = 2;
  robustxlt::nn::TransformerClassifier<float> model(cfg, 1);
  robustxlt::nn::TokenBatch batch;
  batch.ids = {{1, 2, 3}};
  const auto& logits = model.forward(batch);
  if (logits.shape()[1] != 2 || std::strcmp(robustxlt::version_string, ROBUSTXLT_VERSION_STRING) != 0) return 1;
  std::puts("C++20 build OK");
  return 0;
}
