// Zero-shot cross-lingual transfer with robust training: a model fine-tuned on English only, evaluated on
// German, French, Spanish, Hindi and Swahili, with and without robust-training recipes.
//
// The multilingual embedding space is simulated (examples/zero_shot/world.hpp): translations sit near, not
// on, their English words, further away for the low-resource languages. The task (examples/zero_shot/task.hpp)
// is a three-class sentence-pair task whose label depends on the meaning of every word of both sentences.
// Each recipe trains the library's transformer on English pairs with the embedding table frozen, then every
// language is evaluated plainly, in the "generalized" setting (the two sentences in different languages) and
// with Gaussian randomized smoothing (PREDICT, CERTIFY). Tables go to stdout, results to CSV and an SVG chart.
// Run with --help for the options.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <robustxlt/robustxlt.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "zero_shot/task.hpp"
#include "zero_shot/world.hpp"

using namespace robustxlt;
using namespace zero_shot;

namespace {

const std::vector<std::string> kAllRecipes = {"standard", "pgd", "freelb", "rs-rp", "rs-da", "code-switch"};

struct Options {
  std::vector<std::string> languages = {"de", "fr", "es", "hi", "sw"};
  std::vector<std::string> recipes = kAllRecipes;
  std::size_t seeds = 3;
  std::uint64_t data_seed = 1;
  double epsilon = 0;  // 0: the 5th percentile of English words' distance to their field border
  double lr = 2e-3;
  double sigma = 0;  // 0: epsilon / sqrt(dim)
  std::size_t steps = 4000;
  std::size_t batch = 32;
  std::size_t copies = 3;
  std::size_t threads = 2;
  std::size_t dim = 32;
  std::size_t train_size = 4000;
  std::size_t test_size = 600;
  std::size_t smooth_examples = 100;
  std::size_t smooth_n0 = 10;
  std::size_t smooth_n = 100;
  double alpha = 0.001;
  std::size_t max_concepts = 1000;
  std::string lexicons;
  std::string out_dir = ".";
  bool quick = false;
  bool quiet = false;
};

// What one (recipe, seed) run measured. Language index 0 is English, then the target languages.
struct RunResult {
  std::string recipe;
  std::size_t seed = 0;
  double final_loss = 0;
  std::vector<double> accuracy;     // [L] both sentences in the language
  std::vector<double> generalized;  // [L] mean over pairs with exactly one sentence in the language
  std::vector<double> smoothed;     // [L] PREDICT accuracy (abstentions count as wrong)
  std::vector<double> abstained;    // [L] PREDICT abstention rate
  std::vector<std::vector<double>> certified;  // [R][L] CERTIFY: correct with radius >= r
};

// Progress shared between the workers and the line printer.
struct Progress {
  std::mutex mutex;
  std::vector<std::string> lines;  // one per worker
  double total_work = 0, done_work = 0;
  std::size_t runs_done = 0, runs_total = 0;
};

double recipe_cost(const std::string& r) {  // forward/backward passes per step, relative to standard
  if (r == "pgd") return 3.0;
  if (r == "freelb") return 3.0;
  return 1.0;
}

// Frozen token table: the "pretrained" embeddings are restored after every optimizer step and their gradient
// is dropped before clipping, so only the transformer above them learns.
class FrozenEmbeddings {
 public:
  FrozenEmbeddings(nn::TransformerClassifier<float>& model, const Tensor<float, 2>& table)
      : model_(model), index_(model.params().index("tok_embeddings.weight")), table_(table) {
    restore();
  }
  void drop_gradient() {
    auto& p = model_.params();
    std::fill_n(p.grad(index_), table_.size(), 0.0f);
  }
  void restore() { std::copy_n(table_.data(), table_.size(), model_.params().value(index_)); }

 private:
  nn::TransformerClassifier<float>& model_;
  std::size_t index_;
  const Tensor<float, 2>& table_;
};

nn::TransformerConfig model_config(const World& world) {
  nn::TransformerConfig cfg;
  cfg.vocab_size = world.vocab_size();
  cfg.max_positions = kMaxLength;
  cfg.type_vocab_size = 2;
  cfg.dim = world.dim;
  cfg.heads = 4;
  cfg.ff_dim = 2 * world.dim;
  cfg.layers = 2;
  cfg.num_classes = kClasses;
  cfg.pooling = nn::Pooling::first;
  return cfg;
}

std::int64_t argmax_row(const Tensor<float, 2>& z, std::size_t b) {
  std::size_t best = 0;
  for (std::size_t c = 1; c < z.shape()[1]; ++c)
    if (z(b, c) > z(b, best)) best = c;
  return static_cast<std::int64_t>(best);
}

// Sampler tables over the whole vocabulary: English headword -> its synonyms, and per language English
// headword -> its translations.
noise::IdTable id_table(std::size_t vocab_size, const std::vector<std::vector<std::int64_t>>& per_concept, const World& w) {
  std::vector<std::vector<std::int64_t>> rows(vocab_size);
  for (std::size_t id = 0; id < vocab_size; ++id) {
    const std::int64_t c = w.word_concept[id];
    if (c >= 0 && static_cast<std::int64_t>(id) == w.english_id(static_cast<std::size_t>(c)))
      rows[id] = per_concept[static_cast<std::size_t>(c)];
  }
  return noise::IdTable::from_lists(rows, vocab_size);
}

struct Trainer {
  const World& world;
  const std::vector<Example>& train;
  const Options& opt;
  noise::SynonymSampler synonyms;
  noise::CodeSwitchSampler code_switch;

  static std::vector<noise::IdTable> dictionaries(const World& w) {
    std::vector<noise::IdTable> d;
    for (std::size_t l = 0; l < w.languages.size(); ++l) d.push_back(id_table(w.vocab_size(), w.translation_ids[l], w));
    return d;
  }

  Trainer(const World& w, const std::vector<Example>& t, const Options& o)
      : world(w),
        train(t),
        opt(o),
        synonyms(id_table(w.vocab_size(), w.synonym_ids, w), w.vocab_size()),
        code_switch(dictionaries(w), w.vocab_size()) {}

  // Trains one model; report(step, loss) is called every few steps.
  template <class Report>
  std::unique_ptr<nn::TransformerClassifier<float>> run(const std::string& recipe, std::size_t seed, double& final_loss,
                                                        Report&& report) const {
    auto model = std::make_unique<nn::TransformerClassifier<float>>(model_config(world), 1000 + seed);
    FrozenEmbeddings frozen(*model, world.table);
    nn::AdamWOptions<float> ao;
    ao.lr = static_cast<float>(opt.lr);
    nn::AdamW<float> adam(model->params(), ao);
    nn::LinearWarmupDecay schedule(opt.lr, opt.steps / 10, opt.steps);
    const std::size_t B = opt.batch, N = train.size();
    const auto eps = static_cast<float>(opt.epsilon);
    const float sigma = static_cast<float>(opt.sigma);
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
        encode(world, train[index[b]], -1, -1, opt.data_seed, index[b], batch, b);
        y(b) = train[index[b]].label;
      }
      const std::uint64_t epoch = (step * B) / N;
      // Augmentation recipes swap words in place; each example cycles through `copies` noisy versions.
      if (recipe == "rs-da" || recipe == "code-switch") {
        for (std::size_t b = 0; b < B; ++b) {
          std::int64_t* row = batch.ids.data() + b * kMaxLength;
          const std::uint64_t copy = epoch % opt.copies;
          if (recipe == "rs-da") synonyms.sample(row, kMaxLength, row, seed, index[b], copy);
          else code_switch.sample(row, kMaxLength, row, seed, index[b], copy);
        }
      }
      model->params().zero_grad();
      float loss = 0;
      // Adversarial radius ramped up linearly over the first half of training, as is common when
      // adversarial training starts from an untrained model: with the full radius from step 0 the model
      // often stays at the constant prediction it starts from.
      const float eps_now = eps * std::min(1.0f, static_cast<float>(step) / static_cast<float>(std::max<std::size_t>(1, opt.steps / 2)));
      if (recipe == "standard" || recipe == "rs-da" || recipe == "code-switch") {
        loss = model->loss_and_backward(batch, y);
      } else if (recipe == "rs-rp") {
        // Gaussian noise on the token embeddings (not on padding); row b of step s draws from stream
        // (seed, s * B + b).
        Tensor<float, 3> delta = xt::zeros<float>({B, kMaxLength, world.dim});
        noise::add_embedding_noise(delta, batch.mask, noise::EmbeddingNoise::gaussian, sigma, seed, step * B, 0);
        loss = model->loss_and_backward(batch, y, {}, &delta);
      } else if (eps_now == 0.0f) {
        loss = model->loss_and_backward(batch, y);  // pgd or freelb at step 0 of the ramp
      } else if (recipe == "pgd") {
        nn::ClassifierObjective<float> objective(*model, batch, y);
        perturb::AdversarialStepOptions<float> step_options;
        step_options.attack.ball = {perturb::Norm::l2, perturb::Granularity::token, eps_now};
        step_options.attack.step_size = eps_now / 2;
        step_options.attack.steps = 2;
        loss = perturb::adversarial_training_step(objective, objective.embeddings(), batch.mask, step_options).loss / 2;
      } else if (recipe == "freelb") {
        nn::ClassifierObjective<float> objective(*model, batch, y);
        perturb::FreeLBOptions<float> fo;
        fo.steps = 3;
        // Per sequence: epsilon per token over a typical 12 tokens.
        fo.ball = {perturb::Norm::l2, perturb::Granularity::sequence, eps_now * std::sqrt(12.0f)};
        fo.step_size = fo.ball.epsilon / 3;
        fo.init_magnitude = eps_now / 10;
        fo.seed = seed;
        // Row b of step s is example s * B + b of this run's stream of (shuffled) training examples.
        loss = perturb::freelb(objective, objective.embeddings(), batch.mask, fo, {step * B, step}).loss;
      } else {
        robustxlt::fail("unknown recipe '", recipe, "'");
      }
      frozen.drop_gradient();
      nn::clip_grad_norm(model->params(), 1.0f);
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
};

// Accuracy with the first sentence in l1 and the second in l2.
double accuracy(nn::TransformerClassifier<float>& model, const World& world, const std::vector<Example>& test, int l1,
                int l2, std::uint64_t seed) {
  std::size_t correct = 0;
  const std::size_t chunk = 200;
  for (std::size_t start = 0; start < test.size(); start += chunk) {
    const std::size_t n = std::min(chunk, test.size() - start);
    auto batch = empty_batch(n, kMaxLength);
    for (std::size_t b = 0; b < n; ++b)
      encode(world, test[start + b], l1, l2, seed, (start + b) * 64 + static_cast<std::uint64_t>((l1 + 1) * 8 + l2 + 1), batch, b);
    const auto& z = model.forward(batch);
    for (std::size_t b = 0; b < n; ++b) correct += argmax_row(z, b) == test[start + b].label;
  }
  return static_cast<double>(correct) / static_cast<double>(test.size());
}

// Gaussian randomized smoothing of the model over its input embeddings: PREDICT and CERTIFY on the first
// opt.smooth_examples test examples in language lang.
void smoothed_metrics(nn::TransformerClassifier<float>& model, const World& world, const std::vector<Example>& test, int lang,
                      const Options& opt, const std::vector<double>& radii, double& accuracy_out, double& abstain_out,
                      std::vector<double>& certified_out) {
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
      noise::add_embedding_noise(delta, batch.mask, noise::EmbeddingNoise::gaussian, static_cast<float>(opt.sigma),
                                 noise_seed, (static_cast<std::uint64_t>(i) << 20) + first, 0);
      const auto& z = model.forward(batch, &delta);
      out.resize(count);
      for (std::size_t b = 0; b < count; ++b) out[b] = argmax_row(z, b);
    };
    auto g = smooth::make_smoothed_classifier<float>(classify, kClasses, opt.sigma, 128);
    const auto p = g.predict(opt.smooth_n, opt.alpha);
    abstained += p.label == smooth::abstain;
    correct += p.label == test[i].label;
    certs.push_back(g.certify(opt.smooth_n0, opt.smooth_n, opt.alpha));
    gold.push_back(test[i].label);
  }
  accuracy_out = static_cast<double>(correct) / static_cast<double>(n);
  abstain_out = static_cast<double>(abstained) / static_cast<double>(n);
  certified_out = smooth::certified_accuracy(certs, gold, radii);
}

std::string mean_std(const std::vector<double>& v, double scale = 100.0) {
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  for (double x : v) s += (x - m) * (x - m);
  s = v.size() > 1 ? std::sqrt(s / static_cast<double>(v.size() - 1)) : 0.0;
  char buf[64];
  if (v.size() > 1) std::snprintf(buf, sizeof buf, "%.1f±%.1f", scale * m, scale * s);
  else std::snprintf(buf, sizeof buf, "%.1f", scale * m);
  return buf;
}

double mean(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x;
  return v.empty() ? 0.0 : m / static_cast<double>(v.size());
}

std::string fmt_duration(double s) {
  char buf[32];
  const long t = std::lround(std::max(0.0, s));
  if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

// One table: rows = recipes, columns = languages + average, cells = mean±std over seeds (in %).
void print_table(const char* title, const std::vector<std::string>& recipes, const std::vector<std::string>& columns,
                 const std::vector<RunResult>& runs, const std::function<std::vector<double>(const RunResult&)>& pick) {
  std::printf("\n%s\n", title);
  std::printf("%-12s", "recipe");
  for (const auto& c : columns) std::printf(" %11s", c.c_str());
  std::printf(" %11s\n", "avg");
  for (const auto& r : recipes) {
    std::printf("%-12s", r.c_str());
    std::vector<std::vector<double>> per_column(columns.size());
    std::vector<double> avg;
    for (const auto& run : runs) {
      if (run.recipe != r) continue;
      const auto v = pick(run);
      for (std::size_t c = 0; c < columns.size(); ++c) per_column[c].push_back(v[c]);
      avg.push_back(mean(v));
    }
    for (const auto& col : per_column) std::printf(" %11s", mean_std(col).c_str());
    std::printf(" %11s\n", mean_std(avg).c_str());
  }
}

std::string svg_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

// Grouped bar chart of zero-shot accuracy per language per recipe (mean over seeds, whiskers = min..max).
std::string accuracy_svg(const std::vector<std::string>& recipes, const std::vector<std::string>& columns,
                         const std::vector<RunResult>& runs) {
  const char* colours[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"};
  const double W = 900, H = 420, left = 60, right = 160, top = 40, bottom = 50;
  const double plot_w = W - left - right, plot_h = H - top - bottom;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << left << "\" y=\"22\" font-size=\"15\">Zero-shot accuracy (%) after English-only training, per recipe</text>\n";
  for (int g = 0; g <= 100; g += 20) {
    const double y = top + plot_h * (1.0 - g / 100.0);
    s << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << y << "\" y2=\"" << y
      << "\" stroke=\"#ddd\"/><text x=\"" << left - 8 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">" << g << "</text>\n";
  }
  const double group_w = plot_w / static_cast<double>(columns.size());
  const double bar_w = group_w * 0.8 / static_cast<double>(recipes.size());
  for (std::size_t c = 0; c < columns.size(); ++c) {
    const double gx = left + group_w * static_cast<double>(c) + group_w * 0.1;
    s << "<text x=\"" << gx + group_w * 0.4 << "\" y=\"" << top + plot_h + 18 << "\" text-anchor=\"middle\">"
      << svg_escape(columns[c]) << "</text>\n";
    for (std::size_t r = 0; r < recipes.size(); ++r) {
      std::vector<double> v;
      for (const auto& run : runs)
        if (run.recipe == recipes[r]) v.push_back(run.accuracy[c]);
      if (v.empty()) continue;
      const double m = mean(v), lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
      const double x = gx + bar_w * static_cast<double>(r), y = top + plot_h * (1.0 - m);
      s << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << bar_w * 0.92 << "\" height=\"" << top + plot_h - y
        << "\" fill=\"" << colours[r % 8] << "\"><title>" << svg_escape(recipes[r]) << " " << svg_escape(columns[c]) << ": "
        << 100 * m << "%</title></rect>\n";
      const double xm = x + bar_w * 0.46;
      s << "<line x1=\"" << xm << "\" x2=\"" << xm << "\" y1=\"" << top + plot_h * (1.0 - lo) << "\" y2=\""
        << top + plot_h * (1.0 - hi) << "\" stroke=\"black\"/>\n";
    }
  }
  s << "<line x1=\"" << left << "\" x2=\"" << left << "\" y1=\"" << top << "\" y2=\"" << top + plot_h << "\" stroke=\"black\"/>\n";
  s << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << top + plot_h << "\" y2=\"" << top + plot_h
    << "\" stroke=\"black\"/>\n";
  const double chance_y = top + plot_h * (1.0 - 1.0 / 3.0);
  s << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << chance_y << "\" y2=\"" << chance_y
    << "\" stroke=\"#888\" stroke-dasharray=\"4 3\"/><text x=\"" << left + plot_w + 4 << "\" y=\"" << chance_y + 4
    << "\" fill=\"#666\">chance</text>\n";
  for (std::size_t r = 0; r < recipes.size(); ++r) {
    const double y = top + 10 + 20.0 * static_cast<double>(r);
    s << "<rect x=\"" << W - right + 50 << "\" y=\"" << y - 10 << "\" width=\"12\" height=\"12\" fill=\"" << colours[r % 8]
      << "\"/><text x=\"" << W - right + 68 << "\" y=\"" << y << "\">" << svg_escape(recipes[r]) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  std::string languages_arg, recipes_arg;
  CLI::App app{
      "Zero-shot cross-lingual transfer demo: fine-tune on English only, evaluate other languages, compare\n"
      "robust-training recipes. The multilingual embedding space is simulated (see examples/README.md)."};
  app.add_option("--languages", opt.languages, "target languages (two-letter or FreeDict codes)")->delimiter(',')->capture_default_str();
  app.add_option("--recipes", opt.recipes, "recipes: standard, pgd, freelb, rs-rp, rs-da, code-switch")
      ->delimiter(',')->check(CLI::IsMember(kAllRecipes))->capture_default_str();
  app.add_option("--seeds", opt.seeds, "training seeds per recipe (mean and std over them)")->check(CLI::Range(1, 100))->capture_default_str();
  app.add_option("--data-seed", opt.data_seed, "seed of the embedding space and the datasets")->capture_default_str();
  app.add_option("--epsilon", opt.epsilon,
                 "L2 radius per token for PGD and FreeLB, and for robust-region coverage (default: the radius that "
                 "leaves 95% of English words in their semantic field)")
      ->check(CLI::PositiveNumber);
  app.add_option("--sigma", opt.sigma, "Gaussian noise per coordinate for RS-RP and smoothing (default epsilon/sqrt(dim))")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--steps", opt.steps, "optimizer steps per training run")->check(CLI::Range(1, 10000000))->capture_default_str();
  app.add_option("--lr", opt.lr, "peak AdamW learning rate (linear warmup over 10% of the steps, then linear decay)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--batch", opt.batch, "training pairs per step")->check(CLI::Range(1, 4096))->capture_default_str();
  app.add_option("--copies", opt.copies, "noisy copies per example for rs-da and code-switch")->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--threads", opt.threads, "training runs in parallel (each single-threaded; results do not depend on it)")
      ->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--dim", opt.dim, "embedding and model width (multiple of 4)")->check(CLI::Range(8, 1024))->capture_default_str();
  app.add_option("--train-size", opt.train_size, "English training pairs")->check(CLI::Range(10, 10000000))->capture_default_str();
  app.add_option("--test-size", opt.test_size, "test pairs per language")->check(CLI::Range(10, 10000000))->capture_default_str();
  app.add_option("--smooth-examples", opt.smooth_examples, "test pairs per language for smoothed prediction")
      ->check(CLI::Range(1, 10000000))->capture_default_str();
  app.add_option("--smooth-n", opt.smooth_n, "noisy copies for PREDICT and for CERTIFY's estimate")->check(CLI::Range(1, 10000000))->capture_default_str();
  app.add_option("--smooth-n0", opt.smooth_n0, "noisy copies for CERTIFY's class selection")->check(CLI::Range(1, 10000000))->capture_default_str();
  app.add_option("--alpha", opt.alpha, "failure probability of PREDICT and CERTIFY")->check(CLI::Range(1e-12, 0.5))->capture_default_str();
  app.add_option("--max-concepts", opt.max_concepts, "English words taken from the FreeDict dictionaries")->check(CLI::Range(10, 10000000))->capture_default_str();
  app.add_option("--lexicons", opt.lexicons, "directory written by examples/convert_lexicons.py; built-in lexicon when absent");
  app.add_option("--out", opt.out_dir, "directory for zero_shot_results.csv and zero_shot_accuracy.svg")->capture_default_str();
  app.add_flag("--quick", opt.quick, "a small run for smoke tests: 1 seed, 1000 steps, smaller test sets (under 30 s)");
  app.add_flag("--quiet", opt.quiet, "no progress line");
  CLI11_PARSE(app, argc, argv);

  try {
    if (opt.dim % 4 != 0) robustxlt::fail("--dim must be a multiple of 4 (4 attention heads), got ", opt.dim);
    if (opt.quick) {
      opt.seeds = 1;
      opt.steps = std::min<std::size_t>(opt.steps, 1000);
      opt.test_size = std::min<std::size_t>(opt.test_size, 300);
      opt.smooth_examples = std::min<std::size_t>(opt.smooth_examples, 30);
      opt.smooth_n = std::min<std::size_t>(opt.smooth_n, 50);
    }
    robustxlt::set_num_threads(1);  // parallelism is across runs

    std::vector<std::string> codes;
    for (const auto& l : opt.languages) codes.push_back(language_info(l).code);
    const auto start = std::chrono::steady_clock::now();
    Lexicon lexicon = has_lexicon_files(opt.lexicons, codes) ? file_lexicon(opt.lexicons, codes, opt.max_concepts)
                                                              : builtin_lexicon(codes);
    if (!opt.lexicons.empty() && !has_lexicon_files(opt.lexicons, codes))
      std::fprintf(stderr, "zero_shot_transfer: %s lacks en_synonyms.tsv or an en-XXX.txt dictionary; using the built-in lexicon\n",
                   opt.lexicons.c_str());
    const World world = build_world(std::move(lexicon), opt.dim, opt.data_seed);
    if (opt.epsilon == 0) {
      // A radius inside which the task's meaning is safe: 95% of English words cannot leave their field.
      std::vector<double> m = world.field_margin;
      std::sort(m.begin(), m.end());
      opt.epsilon = m[m.size() / 20];
    }
    if (opt.sigma == 0) opt.sigma = opt.epsilon / std::sqrt(static_cast<double>(opt.dim));
    const auto train = make_dataset(world, opt.train_size, opt.data_seed, 100);
    const auto test = make_dataset(world, opt.test_size, opt.data_seed, 200);
    const std::size_t L = world.languages.size() + 1;
    std::vector<std::string> columns{"en"};
    for (const auto& l : world.languages) columns.push_back(l.short_code);
    const std::vector<double> radii = {0.0, opt.sigma / 2, opt.sigma};

    // The setting.
    std::size_t synonyms = 0;
    for (const auto& s : world.synonym_ids) synonyms += s.size();
    std::printf("Zero-shot cross-lingual transfer: train on English only, test on %zu other languages\n", L - 1);
    std::printf("lexicon: %s\n", world.lexicon.source.c_str());
    std::printf("vocabulary: %zu English words (+%zu WordNet-style synonyms)", world.lexicon.concepts.size(), synonyms);
    for (std::size_t l = 0; l + 1 < L; ++l) {
      std::size_t n = 0;
      for (const auto& t : world.translation_ids[l]) n += t.size();
      std::printf(", %zu %s", n, columns[l + 1].c_str());
    }
    std::printf("\nsimulated embedding space: dim %zu; a translation = English vector turned by angle theta in every\n"
                "plane of a random basis, plus noise; fields of the 3-class pair task from 3 random directions\n",
                opt.dim);
    std::printf("task: [CLS] s1 [SEP] s2 [SEP], label = (topic(s2) - topic(s1)) mod 3; %zu English training pairs, %zu test pairs\n",
                train.size(), test.size());
    std::printf("training: %zu steps of %zu pairs, AdamW, embeddings frozen; epsilon %.3g (L2 per token), sigma %.3g\n",
                opt.steps, opt.batch, opt.epsilon, opt.sigma);
    if (std::find(opt.recipes.begin(), opt.recipes.end(), "code-switch") != opt.recipes.end())
      std::printf("note: code-switch reads the bilingual dictionaries of the test languages at training time; the other\n"
                  "recipes see English only (rs-da uses English synonyms)\n");

    // Misalignment diagnostics per language, from align/: translation pairs (every translation of every concept).
    std::printf("\nMisalignment per language (translation pairs vs. English headwords)\n");
    std::printf("%-6s %8s %8s %8s %8s %14s\n", "lang", "theta", "noise", "cosine", "L2 dist", "coverage@eps");
    std::vector<double> diag_cos(L, 1.0), diag_cov(L, 1.0), diag_l2(L, 0.0);
    for (std::size_t l = 0; l + 1 < L; ++l) {
      std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
      for (std::size_t c = 0; c < world.lexicon.concepts.size(); ++c)
        for (auto t : world.translation_ids[l][c]) pairs.emplace_back(world.english_id(c), t);
      Tensor<float, 2> src = Tensor<float, 2>::from_shape({pairs.size(), opt.dim}), tgt = src;
      for (std::size_t i = 0; i < pairs.size(); ++i)
        for (std::size_t k = 0; k < opt.dim; ++k)
          src(i, k) = world.table(static_cast<std::size_t>(pairs[i].first), k),
                 tgt(i, k) = world.table(static_cast<std::size_t>(pairs[i].second), k);
      const auto d = align::pair_diagnostics(src, tgt);
      Tensor<float, 3> s3 = xt::reshape_view(src, {pairs.size(), std::size_t{1}, opt.dim});
      Tensor<float, 3> t3 = xt::reshape_view(tgt, {pairs.size(), std::size_t{1}, opt.dim});
      const double cov = align::robust_region_coverage(
          s3, t3, Tensor<std::int64_t, 2>{}, Ball<float>{Norm::l2, Granularity::token, static_cast<float>(opt.epsilon)});
      diag_cos[l + 1] = d.cosine.mean, diag_l2[l + 1] = d.l2.mean, diag_cov[l + 1] = cov;
      std::printf("%-6s %8.2f %8.2f %8.3f %8.3f %13.1f%%\n", columns[l + 1].c_str(), world.languages[l].misalignment.angle,
                  world.languages[l].misalignment.noise, d.cosine.mean, d.l2.mean, 100 * cov);
    }
    std::fflush(stdout);

    // Training runs, spread over worker threads; each run is single-threaded and seeded, so results do not
    // depend on --threads.
    struct Job {
      std::string recipe;
      std::size_t seed;
    };
    std::vector<Job> jobs;
    for (const auto& r : opt.recipes)
      for (std::size_t s = 1; s <= opt.seeds; ++s) jobs.push_back({r, s});
    std::vector<RunResult> results(jobs.size());
    Progress progress;
    progress.runs_total = jobs.size();
    for (const auto& j : jobs) progress.total_work += recipe_cost(j.recipe) * static_cast<double>(opt.steps);
    const std::size_t workers = std::min(opt.threads, jobs.size());
    progress.lines.assign(workers, "");
    const Trainer trainer(world, train, opt);
    std::atomic<std::size_t> next{0};
    std::mutex error_mutex;
    std::string first_error;
    auto worker = [&](std::size_t w) {
      for (std::size_t j; (j = next.fetch_add(1)) < jobs.size();) {
        try {
          const Job& job = jobs[j];
          RunResult& res = results[j];
          res.recipe = job.recipe;
          res.seed = job.seed;
          const auto t0 = std::chrono::steady_clock::now();
          std::size_t last_step = 0;
          auto model = trainer.run(job.recipe, job.seed, res.final_loss, [&](std::size_t step, double loss, std::uint64_t epoch) {
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            char line[160];
            std::snprintf(line, sizeof line, "%s seed %zu: epoch %llu, step %zu/%zu, loss %.3f, %.0f ex/s", job.recipe.c_str(),
                          job.seed, static_cast<unsigned long long>(epoch + 1), step, opt.steps, loss,
                          static_cast<double>(step * opt.batch) / std::max(secs, 1e-9));
            std::lock_guard<std::mutex> lock(progress.mutex);
            progress.lines[w] = line;
            progress.done_work += recipe_cost(job.recipe) * static_cast<double>(step - last_step);
            last_step = step;
          });
          {
            std::lock_guard<std::mutex> lock(progress.mutex);
            progress.lines[w] = job.recipe + " seed " + std::to_string(job.seed) + ": evaluating";
          }
          res.accuracy.assign(L, 0);
          res.generalized.assign(L, 0);
          res.smoothed.assign(L, 0);
          res.abstained.assign(L, 0);
          res.certified.assign(radii.size(), std::vector<double>(L, 0));
          std::vector<std::vector<double>> pair_acc(L, std::vector<double>(L, 0));
          for (std::size_t a = 0; a < L; ++a)
            for (std::size_t b = 0; b < L; ++b)
              pair_acc[a][b] = accuracy(*model, world, test, static_cast<int>(a) - 1, static_cast<int>(b) - 1, opt.data_seed);
          for (std::size_t a = 0; a < L; ++a) {
            res.accuracy[a] = pair_acc[a][a];
            double g = 0;
            for (std::size_t b = 0; b < L; ++b)
              if (b != a) g += pair_acc[a][b] + pair_acc[b][a];
            res.generalized[a] = L > 1 ? g / (2.0 * static_cast<double>(L - 1)) : pair_acc[a][a];
            std::vector<double> cert;
            smoothed_metrics(*model, world, test, static_cast<int>(a) - 1, opt, radii, res.smoothed[a], res.abstained[a], cert);
            for (std::size_t r = 0; r < radii.size(); ++r) res.certified[r][a] = cert[r];
          }
          std::lock_guard<std::mutex> lock(progress.mutex);
          ++progress.runs_done;
          progress.lines[w] = "";
          if (!opt.quiet && !isatty(STDERR_FILENO))
            std::fprintf(stderr, "[%zu/%zu] %s seed %zu done in %s (final training loss %.3f, English accuracy %.1f%%)\n", progress.runs_done,
                         progress.runs_total, job.recipe.c_str(), job.seed,
                         fmt_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()).c_str(),
                         res.final_loss, 100 * res.accuracy[0]);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (first_error.empty()) first_error = e.what();
          next = jobs.size();
        }
      }
    };
    std::vector<std::thread> pool;
    for (std::size_t w = 0; w < workers; ++w) pool.emplace_back(worker, w);
    const bool live = !opt.quiet && isatty(STDERR_FILENO);
    std::size_t last_len = 0;
    while (live) {
      {
        std::lock_guard<std::mutex> lock(progress.mutex);
        if (progress.runs_done == progress.runs_total || !first_error.empty()) break;
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double f = progress.done_work / progress.total_work;
        std::string line = "[" + std::to_string(progress.runs_done) + "/" + std::to_string(progress.runs_total) + " runs";
        line += f > 0.02 ? ", " + fmt_duration(elapsed * (1 - f) / f) + " left] " : "] ";
        for (const auto& l : progress.lines)
          if (!l.empty()) line += l + "  ";
        if (line.size() > 150) line.resize(150);
        std::fprintf(stderr, "\r%s%*s", line.c_str(), static_cast<int>(last_len > line.size() ? last_len - line.size() : 0), "");
        last_len = line.size();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    for (auto& t : pool) t.join();
    if (live) std::fprintf(stderr, "\r%*s\r", static_cast<int>(last_len), "");
    if (!first_error.empty()) robustxlt::fail(first_error);

    // Tables.
    char title[256];
    std::snprintf(title, sizeof title, "Zero-shot accuracy (%%), both sentences in the test language; mean±std over %zu seed%s",
                  opt.seeds, opt.seeds > 1 ? "s" : "");
    print_table(title, opt.recipes, columns, results, [](const RunResult& r) { return r.accuracy; });
    print_table("Generalized accuracy (%), the two sentences in different languages (column = either side)", opt.recipes,
                columns, results, [](const RunResult& r) { return r.generalized; });
    std::snprintf(title, sizeof title,
                  "Smoothed prediction (%%): Gaussian noise sigma %.3g on the input embeddings, PREDICT with n = %zu, alpha = %g, "
                  "%zu pairs per language", opt.sigma, opt.smooth_n, opt.alpha, std::min(opt.smooth_examples, test.size()));
    print_table(title, opt.recipes, columns, results, [](const RunResult& r) { return r.smoothed; });
    print_table("Abstention rate of smoothed prediction (%)", opt.recipes, columns, results,
                [](const RunResult& r) { return r.abstained; });
    for (std::size_t ri = 0; ri < radii.size(); ++ri) {
      std::snprintf(title, sizeof title, "Certified accuracy (%%) at L2 radius %.3g (CERTIFY, n0 = %zu, n = %zu)", radii[ri],
                    opt.smooth_n0, opt.smooth_n);
      print_table(title, opt.recipes, columns, results, [ri](const RunResult& r) { return r.certified[ri]; });
    }

    // CSV and chart.
    std::ostringstream csv;
    csv << "recipe,seed,language,setting,metric,value\n";
    for (const auto& r : results)
      for (std::size_t l = 0; l < L; ++l) {
        auto row = [&](const char* setting, const std::string& metric, double v) {
          char buf[64];
          std::snprintf(buf, sizeof buf, "%.6f", v);
          csv << r.recipe << ',' << r.seed << ',' << columns[l] << ',' << setting << ',' << metric << ',' << buf << '\n';
        };
        row("zero-shot", "accuracy", r.accuracy[l]);
        row("generalized", "accuracy", r.generalized[l]);
        row("smoothed", "accuracy", r.smoothed[l]);
        row("smoothed", "abstention", r.abstained[l]);
        for (std::size_t ri = 0; ri < radii.size(); ++ri) {
          char m[48];
          std::snprintf(m, sizeof m, "certified@%.4g", radii[ri]);
          row("smoothed", m, r.certified[ri][l]);
        }
        if (l > 0) {
          row("diagnostics", "translation_cosine", diag_cos[l]);
          row("diagnostics", "translation_l2", diag_l2[l]);
          row("diagnostics", "coverage@epsilon", diag_cov[l]);
        }
      }
    std::filesystem::create_directories(opt.out_dir);
    const auto csv_path = std::filesystem::path(opt.out_dir) / "zero_shot_results.csv";
    const auto svg_path = std::filesystem::path(opt.out_dir) / "zero_shot_accuracy.svg";
    robustxlt::write_file_atomic(csv_path, csv.str());
    robustxlt::write_file_atomic(svg_path, accuracy_svg(opt.recipes, columns, results));
    std::printf("\nwrote %s and %s\n", csv_path.string().c_str(), svg_path.string().c_str());
    if (!opt.quiet)
      std::fprintf(stderr, "zero_shot_transfer: %zu runs in %s\n", jobs.size(),
                   fmt_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zero_shot_transfer: %s\n", e.what());
    return 1;
  }
}
