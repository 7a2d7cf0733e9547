// Adversarial training of the transformer with the perturbers: standard training, PGD min-max training,
// FreeLB and SMART on the same word-order task as train_classifier, then clean accuracy and accuracy under
// a PGD attack on the embeddings for each. Shows how few lines each recipe takes in a user's own loop.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <robustxlt/robustxlt.hpp>
#include <string>

#include "word_order_task.hpp"

using namespace robustxlt;

using word_order_task::accuracy;
using word_order_task::draw_batch;

int main(int argc, char** argv) {
  std::size_t steps = 400;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) steps = 120;
    else if (!std::strcmp(argv[i], "--help")) {
      std::puts("usage: adversarial_training [--quick]   (--quick: 120 steps per recipe instead of 400)");
      return 0;
    } else {
      std::fprintf(stderr, "adversarial_training: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  const nn::TransformerConfig cfg = word_order_task::model_config();
  const std::size_t T = 24, B = 32;

  // The attack used for training (PGD) and for evaluation: L2 per token with radius 0.05, about a third of a
  // token embedding's norm at initialisation (std 0.02 per coordinate, 64 coordinates).
  perturb::PGDOptions<float> attack;
  attack.ball = {perturb::Norm::l2, perturb::Granularity::token, 0.05f};
  attack.step_size = 0.02f;
  attack.steps = 3;

  std::printf("%-10s %10s %12s %16s\n", "recipe", "final loss", "clean acc", "acc under PGD-5");
  for (const std::string recipe : {"standard", "pgd", "freelb", "smart"}) {
    nn::TransformerClassifier<float> model(cfg, 7);
    nn::AdamWOptions<float> ao;
    ao.lr = 2e-3f;
    nn::AdamW<float> opt(model.params(), ao);
    Rng data(7, 1);
    nn::TokenBatch batch;
    Tensor<std::int64_t, 1> y;
    float loss = 0;
    for (std::size_t step = 0; step < steps; ++step) {
      draw_batch(data, B, T, cfg.vocab_size, batch, y);
      model.params().zero_grad();
      nn::ClassifierObjective<float> objective(model, batch, y);
      if (recipe == "standard") {
        loss = model.loss_and_backward(batch, y);
      } else if (recipe == "pgd") {
        // min over parameters of (clean loss + adversarial loss), delta from PGD-3.
        const perturb::AdversarialStepOptions<float> step_options{attack};
        loss = perturb::adversarial_training_step(objective, objective.embeddings(), batch.mask, step_options, {step * B, step}).loss;
      } else if (recipe == "freelb") {
        perturb::FreeLBOptions<float> fo;
        fo.step_size = 0.02f;
        fo.ball.epsilon = 0.2f;  // per sequence: about 0.05 per token over ~18 tokens
        loss = perturb::freelb(objective, objective.embeddings(), batch.mask, fo, {step * B, step}).loss;
      } else {  // SMART: task loss + weight * symmetric KL to the clean prediction at a virtual adversarial delta
        loss = model.loss_and_backward(batch, y);
        auto divergence = nn::ClassifierObjective<float>::symmetric_kl(model, batch, model.logits());
        perturb::SMARTOptions<float> so;
        so.ball.epsilon = 0.05f;
        loss += perturb::smart_regularizer(divergence, objective.embeddings(), batch.mask, so, 1.0f, {step * B, step}).loss;
      }
      nn::clip_grad_norm(model.params(), 1.0f);
      opt.step();
    }
    Rng test(7, 2);
    draw_batch(test, 512, T, cfg.vocab_size, batch, y);
    const double clean = accuracy(model.forward(batch), y);
    nn::ClassifierObjective<float> objective(model, batch, y);
    perturb::PGDOptions<float> eval_attack = attack;
    eval_attack.steps = 5;
    const auto adv = perturb::pgd(objective, objective.embeddings(), batch.mask, eval_attack);
    const double robust = accuracy(model.forward(batch, &adv.delta), y);
    std::printf("%-10s %10.4f %12.3f %16.3f\n", recipe.c_str(), loss, clean, robust);
  }
  std::puts("adversarial training done");
  return 0;
}
