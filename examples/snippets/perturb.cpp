#include <robustxlt/robustxlt.hpp>
#include <cmath>
#include <cstdio>
using namespace robustxlt;

int main() {
  // Any model plugs in as an objective: loss(x) and dLoss/dx for embeddings x [B, T, D]. Here the linear
  // loss sum <w, x>, whose worst case in a per-token L2 ball of radius eps is delta = eps * w / ||w||.
  const Tensor<float, 3> w = {{{3, 4}, {0, -2}}}, x0 = xt::zeros<float>({1, 2, 2});
  auto linear = [&](const Tensor<float, 3>& x, GradientView<float>& grad) {
    grad = w;
    return static_cast<float>(xt::sum(w * x)());
  };
  perturb::PGDOptions<float> pgd;
  pgd.ball = {perturb::Norm::l2, perturb::Granularity::token, /*epsilon=*/0.5f};
  pgd.step_size = 0.2f;
  pgd.steps = 3;
  const auto attack = perturb::pgd(linear, x0, Tensor<int, 2>{}, pgd);  // empty mask: every position is a token
  const bool reached = std::abs(attack.delta(0, 0, 0) - 0.3f) < 1e-6f && std::abs(attack.delta(0, 0, 1) - 0.4f) < 1e-6f &&
                       std::abs(attack.delta(0, 1, 1) + 0.5f) < 1e-6f;

  // A min-max training step on the library's transformer: clean loss + loss under a PGD-3 perturbation.
  nn::TransformerConfig cfg;
  cfg.vocab_size = 50, cfg.dim = 16, cfg.heads = 2, cfg.ff_dim = 32, cfg.layers = 1, cfg.num_classes = 2;
  nn::TransformerClassifier<float> model(cfg, /*seed=*/7);
  nn::AdamW<float> optimizer(model.params(), {});
  nn::TokenBatch batch;
  batch.ids = {{4, 8, 15, 16}, {23, 42, 0, 0}};
  batch.mask = {{1, 1, 1, 1}, {1, 1, 0, 0}};
  nn::ClassifierObjective<float> objective(model, batch, {1, 0});
  perturb::AdversarialStepOptions<float> step;
  step.attack.ball = {perturb::Norm::l2, perturb::Granularity::token, /*epsilon=*/0.05f};
  step.attack.step_size = 0.02f;
  step.attack.steps = 3;
  model.params().zero_grad();
  // Batch index {first example, training step} keys any random start: here the first batch of step 0.
  const auto losses =
      perturb::adversarial_training_step(objective, objective.embeddings(), batch.mask, step, BatchIndex{0, 0});
  optimizer.step();  // on the gradients of clean + adversarial loss
  std::printf("PGD reached the maximiser: %d; clean loss %.4f, adversarial loss %.4f\n", reached, losses.clean,
              losses.adversarial);
  return reached && losses.adversarial > losses.clean ? 0 : 1;
}
