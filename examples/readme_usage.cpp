#include <robustxlt/robustxlt.hpp>
#include <cstdio>
using namespace robustxlt;

int main() {
  nn::TransformerConfig cfg;  // BERT-style post-LN encoder; every field has a default
  cfg.vocab_size = 1000, cfg.dim = 64, cfg.heads = 4, cfg.ff_dim = 128, cfg.layers = 2, cfg.num_classes = 3;
  nn::TransformerClassifier<float> model(cfg, /*seed=*/42);
  nn::AdamW<float> optimizer(model.params(), {});

  nn::TokenBatch batch;  // ids [B, T]; mask: 1 = token, 0 = padding
  batch.ids = {{5, 17, 256, 9}, {5, 88, 3, 0}};
  batch.mask = {{1, 1, 1, 1}, {1, 1, 1, 0}};
  nn::ClassifierObjective<float> objective(model, batch, /*labels=*/{2, 0});

  // One robust training step: the clean loss plus the loss at the worst perturbation of the token embeddings
  // that PGD-3 finds in a per-token L2 ball of radius 0.05. Random starts (none here) would be keyed by the
  // batch's first example and the training step.
  perturb::AdversarialStepOptions<float> step;
  step.attack.ball = {Norm::l2, Granularity::token, /*epsilon=*/0.05f};
  step.attack.step_size = 0.02f;
  step.attack.steps = 3;
  model.params().zero_grad();
  const auto r = perturb::adversarial_training_step(objective, objective.embeddings(), batch.mask, step,
                                                    BatchIndex{/*first_example=*/0, /*step=*/0});
  optimizer.step();  // on the gradients of both losses
  std::printf("loss %.4f: clean %.4f, adversarial %.4f\n", r.loss, r.clean, r.adversarial);
  return r.adversarial > r.clean ? 0 : 1;
}
