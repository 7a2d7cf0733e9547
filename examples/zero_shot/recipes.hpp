#pragma once
// The demo's robust-training recipes and the English-only training loop they plug into.
//
// A recipe is one function: it receives the step's English batch and returns the loss after accumulating
// the parameter gradients (the loop has zeroed them before and clips, steps and restores the frozen
// embeddings after). Each is the few lines a user pastes into their own loop; the table `recipes()` names
// them for --recipes and says how many forward/backward passes a step costs, for the progress estimate.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <robustxlt/robustxlt.hpp>
#include <string>
#include <vector>

#include "task.hpp"
#include "world.hpp"

namespace zero_shot {

// The word-substitution samplers of the augmentation recipes, over the whole vocabulary.
struct Augmenters {
  robustxlt::noise::SynonymSampler synonyms;        // English headword -> its English synonyms (RS-DA)
  robustxlt::noise::CodeSwitchSampler code_switch;  // English headword -> its translations, per language
};

// What a recipe sees of one training step.
struct Step {
  robustxlt::nn::TransformerClassifier<float>& model;
  robustxlt::nn::TokenBatch& batch;                  // [B, T] English pairs; augmentation rewrites ids in place
  const robustxlt::Tensor<std::int64_t, 1>& labels;  // [B]
  const std::vector<std::size_t>& example;           // [B] training-set index of each row
  std::size_t step;                                  // optimizer step, from 0
  std::uint64_t copy;                                // which noisy copy of its example each row trains on
  std::uint64_t seed;                                // the run's seed
  float epsilon;                                     // adversarial L2 radius per token at this step
  float sigma;                                       // Gaussian noise per coordinate (RS-RP)
  const Augmenters& augment;
};

namespace recipe {

// Cross-entropy on the clean English pair.
inline float standard(Step& s) { return s.model.loss_and_backward(s.batch, s.labels); }

// Clean + adversarial loss (their sum, halved to read as a mean), PGD-2 in an L2 ball per token.
inline float pgd(Step& s) {
  if (s.epsilon == 0.0f) return standard(s);  // the start of the radius ramp
  robustxlt::nn::ClassifierObjective<float> objective(s.model, s.batch, s.labels);
  robustxlt::perturb::AdversarialStepOptions<float> o;
  o.attack.ball = {robustxlt::perturb::Norm::l2, robustxlt::perturb::Granularity::token, s.epsilon};
  o.attack.step_size = s.epsilon / 2;
  o.attack.steps = 2;
  return robustxlt::perturb::adversarial_training_step(objective, objective.embeddings(), s.batch.mask, o).loss / 2;
}

// FreeLB, 3 ascent steps; the bound is per sequence: epsilon per token over a typical 12 tokens.
inline float freelb(Step& s) {
  if (s.epsilon == 0.0f) return standard(s);
  robustxlt::nn::ClassifierObjective<float> objective(s.model, s.batch, s.labels);
  robustxlt::perturb::FreeLBOptions<float> o;
  o.steps = 3;
  o.ball = {robustxlt::perturb::Norm::l2, robustxlt::perturb::Granularity::sequence, s.epsilon * std::sqrt(12.0f)};
  o.step_size = o.ball.epsilon / 3;
  o.init_magnitude = s.epsilon / 10;
  o.seed = s.seed;
  // Row b of step s is example s * B + b of this run's stream of (shuffled) training examples.
  const std::size_t B = s.batch.ids.shape()[0];
  return robustxlt::perturb::freelb(objective, objective.embeddings(), s.batch.mask, o, {s.step * B, s.step}).loss;
}

// RS-RP: Gaussian noise on the token embeddings (not on padding); row b of step s draws from stream
// (seed, s * B + b).
inline float rs_rp(Step& s) {
  const std::size_t B = s.batch.ids.shape()[0], T = s.batch.ids.shape()[1];
  robustxlt::Tensor<float, 3> delta = xt::zeros<float>({B, T, s.model.config().dim});
  robustxlt::noise::add_embedding_noise(delta, s.batch.mask, robustxlt::noise::EmbeddingNoise::gaussian, s.sigma, s.seed,
                                        s.step * B, 0);
  return s.model.loss_and_backward(s.batch, s.labels, {}, &delta);
}

// RS-DA: each English word with synonyms replaced by a uniform draw from {w} U N(w), keyed by (seed,
// example, copy).
inline float rs_da(Step& s) {
  const std::size_t B = s.batch.ids.shape()[0], T = s.batch.ids.shape()[1];
  for (std::size_t b = 0; b < B; ++b) {
    std::int64_t* row = s.batch.ids.data() + b * T;
    s.augment.synonyms.sample(row, T, row, s.seed, s.example[b], s.copy);
  }
  return standard(s);
}

// Code-switching (CoSDA-ML): English words replaced by translations from the bilingual dictionaries.
inline float code_switch(Step& s) {
  const std::size_t B = s.batch.ids.shape()[0], T = s.batch.ids.shape()[1];
  for (std::size_t b = 0; b < B; ++b) {
    std::int64_t* row = s.batch.ids.data() + b * T;
    s.augment.code_switch.sample(row, T, row, s.seed, s.example[b], s.copy);
  }
  return standard(s);
}

}  // namespace recipe

struct Recipe {
  std::string name;
  float (*step)(Step&);
  double cost;  // forward/backward passes per step, relative to standard (the progress line's estimate)
};

inline const std::vector<Recipe>& recipes() {
  static const std::vector<Recipe> table = {
      {"standard", recipe::standard, 1.0}, {"pgd", recipe::pgd, 3.0},     {"freelb", recipe::freelb, 3.0},
      {"rs-rp", recipe::rs_rp, 1.0},       {"rs-da", recipe::rs_da, 1.0}, {"code-switch", recipe::code_switch, 1.0}};
  return table;
}

inline std::vector<std::string> recipe_names() {
  std::vector<std::string> names;
  for (const auto& r : recipes()) names.push_back(r.name);
  return names;
}

inline const Recipe& find_recipe(const std::string& name) {
  for (const auto& r : recipes())
    if (r.name == name) return r;
  robustxlt::fail("unknown recipe '", name, "'");
}

// ---------------------------------------------------------------------------------------------------------
// The training loop around the recipes.

struct TrainSettings {
  std::size_t steps = 4000, batch = 32, copies = 3;
  double lr = 2e-3;
  double epsilon = 0, sigma = 0;
  std::uint64_t data_seed = 1;
};

// Frozen token table: the "pretrained" embeddings are restored after every optimizer step and their gradient
// is dropped before clipping, so only the transformer above them learns.
class FrozenEmbeddings {
 public:
  FrozenEmbeddings(robustxlt::nn::TransformerClassifier<float>& model, const Tensor<float, 2>& table)
      : model_(model), index_(model.params().index("tok_embeddings.weight")), table_(table) {
    restore();
  }
  void drop_gradient() { std::fill_n(model_.params().grad(index_), table_.size(), 0.0f); }
  void restore() { std::copy_n(table_.data(), table_.size(), model_.params().value(index_)); }

 private:
  robustxlt::nn::TransformerClassifier<float>& model_;
  std::size_t index_;
  const Tensor<float, 2>& table_;
};

inline robustxlt::nn::TransformerConfig model_config(const World& world) {
  robustxlt::nn::TransformerConfig cfg;
  cfg.vocab_size = world.vocab_size();
  cfg.max_positions = kMaxLength;
  cfg.type_vocab_size = 2;
  cfg.dim = world.dim;
  cfg.heads = 4;
  cfg.ff_dim = 2 * world.dim;
  cfg.layers = 2;
  cfg.num_classes = kClasses;
  cfg.pooling = robustxlt::nn::Pooling::first;
  return cfg;
}

// Sampler tables over the whole vocabulary: row id = an English headword's id -> per_concept of its concept.
inline robustxlt::noise::IdTable headword_table(const World& w, const std::vector<std::vector<std::int64_t>>& per_concept) {
  std::vector<std::vector<std::int64_t>> rows(w.vocab_size());
  for (std::size_t id = 0; id < w.vocab_size(); ++id) {
    const std::int64_t c = w.word_concept[id];
    if (c >= 0 && static_cast<std::int64_t>(id) == w.english_id(static_cast<std::size_t>(c)))
      rows[id] = per_concept[static_cast<std::size_t>(c)];
  }
  return robustxlt::noise::IdTable::from_lists(rows, w.vocab_size());
}

inline Augmenters make_augmenters(const World& w) {
  std::vector<robustxlt::noise::IdTable> dictionaries;
  for (std::size_t l = 0; l < w.languages.size(); ++l) dictionaries.push_back(headword_table(w, w.translation_ids[l]));
  return {robustxlt::noise::SynonymSampler(headword_table(w, w.synonym_ids), w.vocab_size()),
          robustxlt::noise::CodeSwitchSampler(std::move(dictionaries), w.vocab_size())};
}

// Trains one model with `recipe` from initialisation seed 1000 + seed; report(step, smoothed loss, epoch) is
// called every 25 steps and at the end. Returns the model in eval mode.
template <class Report>
std::unique_ptr<robustxlt::nn::TransformerClassifier<float>> train(const World& world, const std::vector<Example>& train_set,
                                                                  const Augmenters& augment, const TrainSettings& opt,
                                                                  const Recipe& recipe, std::size_t seed,
                                                                  double& final_loss, Report&& report) {
  using robustxlt::Tensor;
  auto model = std::make_unique<robustxlt::nn::TransformerClassifier<float>>(model_config(world), 1000 + seed);
  FrozenEmbeddings frozen(*model, world.table);
  robustxlt::nn::AdamWOptions<float> ao;
  ao.lr = static_cast<float>(opt.lr);
  robustxlt::nn::AdamW<float> adam(model->params(), ao);
  robustxlt::nn::LinearWarmupDecay schedule(opt.lr, opt.steps / 10, opt.steps);
  const std::size_t B = opt.batch, N = train_set.size();
  const auto eps = static_cast<float>(opt.epsilon);
  std::vector<std::size_t> order(N);
  for (std::size_t i = 0; i < N; ++i) order[i] = i;
  Rng shuffle(seed, 11);
  std::size_t cursor = N;
  double smoothed_loss = 0;
  model->train();
  for (std::size_t step = 0; step < opt.steps; ++step) {
    // The batch: the next B examples of a per-epoch shuffle of the training set, in English.
    auto batch = empty_batch(B, kMaxLength);
    Tensor<std::int64_t, 1> y = Tensor<std::int64_t, 1>::from_shape({B});
    std::vector<std::size_t> index(B);
    for (std::size_t b = 0; b < B; ++b) {
      if (cursor == N) {
        for (std::size_t i = N - 1; i > 0; --i) std::swap(order[i], order[shuffle.below(i + 1)]);
        cursor = 0;
      }
      index[b] = order[cursor++];
      encode(world, train_set[index[b]], -1, -1, opt.data_seed, index[b], batch, b);
      y(b) = train_set[index[b]].label;
    }
    const std::uint64_t epoch = (step * B) / N;
    // Adversarial radius ramped up linearly over the first half of training, as is common when adversarial
    // training starts from an untrained model: with the full radius from step 0 the model often stays at the
    // constant prediction it starts from.
    const float eps_now =
        eps * std::min(1.0f, static_cast<float>(step) / static_cast<float>(std::max<std::size_t>(1, opt.steps / 2)));
    model->params().zero_grad();
    Step s{*model, batch, y, index, step, epoch % opt.copies, seed, eps_now, static_cast<float>(opt.sigma), augment};
    const float loss = recipe.step(s);
    frozen.drop_gradient();
    robustxlt::nn::clip_grad_norm(model->params(), 1.0f);
    adam.set_lr(static_cast<float>(schedule(step)));
    adam.step();
    frozen.restore();
    smoothed_loss = step == 0 ? loss : 0.95 * smoothed_loss + 0.05 * loss;
    if ((step + 1) % 25 == 0 || step + 1 == opt.steps) report(step + 1, smoothed_loss, epoch);
  }
  model->eval();
  final_loss = smoothed_loss;
  return model;
}

}  // namespace zero_shot
