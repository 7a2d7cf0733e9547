// Drives the perturbers and the smoothed classifier with a model the library does not own: a
// bag-of-embeddings linear classifier written with plain std::vector buffers and its own analytic gradient,
// as a user's existing code base might have. The library sees it only through
//   - xt::adapt views of the caller's buffers (embeddings [B, T, D], padding mask [B, T]): no copies, and
//   - a callable objective(x, grad_x, request) -> loss (core/objective.hpp) and a copy classifier
//     (first, count, probabilities) (smooth/aggregate.hpp).
// The program checks what a user porting their own model should check, and exits 1 if any check fails:
//   1. the callable's input and parameter gradients match central finite differences (in double);
//   2. min-max training with perturb::adversarial_training_step on the caller's buffers learns the task;
//   3. a PGD attack raises the loss and keeps every token's perturbation inside the epsilon ball (and zero
//      at padding);
//   4. the smoothed classifier (Gaussian noise on the embeddings) predicts and certifies the clean class on
//      easy inputs, those whose clean logit margin is at least 4 standard deviations of the noise it sees.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <robustxlt/core.hpp>
#include <robustxlt/noise.hpp>
#include <robustxlt/perturb.hpp>
#include <robustxlt/smooth.hpp>
#include <vector>

using namespace robustxlt;

namespace {

// The user's model: logits = W mean_t(x[t]) + b over the unpadded tokens of each sequence; the token
// embeddings (a frozen, "pretrained" table) are looked up by the caller. Buffers are row-major.
template <class T>
struct BagOfEmbeddings {
  std::size_t dim = 0, classes = 0;
  std::vector<T> weight;  // [C, D]
  std::vector<T> bias;    // [C]
  std::vector<T> grad_weight, grad_bias;

  BagOfEmbeddings(std::size_t d, std::size_t c)
      : dim(d), classes(c), weight(c * d, T(0)), bias(c, T(0)), grad_weight(c * d, T(0)), grad_bias(c, T(0)) {}

  // logits [B, C] of embeddings x [B, Tn, D] under mask [B, Tn] (non-zero = token).
  void logits(const T* x, const std::int32_t* mask, std::size_t B, std::size_t Tn, T* out) const {
    std::vector<T> pooled(dim);
    for (std::size_t b = 0; b < B; ++b) {
      pool(x + b * Tn * dim, mask + b * Tn, Tn, pooled.data());
      for (std::size_t c = 0; c < classes; ++c) {
        T z = bias[c];
        for (std::size_t d = 0; d < dim; ++d) z += weight[c * dim + d] * pooled[d];
        out[b * classes + c] = z;
      }
    }
  }

  // Mean cross-entropy over the batch. Writes scale * dLoss/dx into grad_x [B, Tn, D] (zero at padding) and,
  // when parameter_gradients, accumulates scale * dLoss/d(W, b) into grad_weight and grad_bias.
  T loss_and_gradient(const T* x, const std::int32_t* mask, const std::int64_t* labels, std::size_t B, std::size_t Tn,
                      T* grad_x, T scale, bool parameter_gradients) {
    std::vector<T> z(B * classes), pooled(dim), dz(classes);
    logits(x, mask, B, Tn, z.data());
    T loss = 0;
    for (std::size_t b = 0; b < B; ++b) {
      // softmax - onehot, the gradient of the cross-entropy w.r.t. the logits
      const T* zb = z.data() + b * classes;
      const T m = *std::max_element(zb, zb + classes);
      T sum = 0;
      for (std::size_t c = 0; c < classes; ++c) sum += std::exp(zb[c] - m);
      loss += std::log(sum) + m - zb[labels[b]];
      for (std::size_t c = 0; c < classes; ++c)
        dz[c] = scale * (std::exp(zb[c] - m) / sum - T(c == static_cast<std::size_t>(labels[b]))) / T(B);
      const std::size_t n = pool(x + b * Tn * dim, mask + b * Tn, Tn, pooled.data());
      if (parameter_gradients)
        for (std::size_t c = 0; c < classes; ++c) {
          grad_bias[c] += dz[c];
          for (std::size_t d = 0; d < dim; ++d) grad_weight[c * dim + d] += dz[c] * pooled[d];
        }
      // d pooled = W^T dz, spread evenly over the n tokens.
      for (std::size_t t = 0; t < Tn; ++t) {
        T* g = grad_x + (b * Tn + t) * dim;
        for (std::size_t d = 0; d < dim; ++d) {
          T v = 0;
          if (mask[b * Tn + t])
            for (std::size_t c = 0; c < classes; ++c) v += weight[c * dim + d] * dz[c];
          g[d] = v / T(n);
        }
      }
    }
    return loss / T(B);
  }

  std::size_t pool(const T* x, const std::int32_t* mask, std::size_t Tn, T* pooled) const {
    std::fill(pooled, pooled + dim, T(0));
    std::size_t n = 0;
    for (std::size_t t = 0; t < Tn; ++t)
      if (mask[t]) {
        ++n;
        for (std::size_t d = 0; d < dim; ++d) pooled[d] += x[t * dim + d];
      }
    for (std::size_t d = 0; d < dim; ++d) pooled[d] /= T(n);
    return n;
  }
};

// Wraps the model as the perturbers' objective for the batch whose padding mask and labels the two
// pointers name (the caller moves them from batch to batch).
template <class T>
auto make_objective(BagOfEmbeddings<T>& model, const std::int32_t*& mask, const std::int64_t*& labels) {
  return [&model, &mask, &labels](const Tensor<T, 3>& x, GradientView<T>& grad_x, const Evaluation<T>& request) {
    return model.loss_and_gradient(x.data(), mask, labels, x.shape()[0], x.shape()[1], grad_x.data(), request.scale,
                                   request.parameter_gradients);
  };
}

// A synthetic task over a frozen embedding table: sequences of 6 to 12 random word ids padded to 12, labelled
// by a hidden linear "teacher" on their mean embedding. The caller owns every buffer.
struct Dataset {
  std::size_t size = 0, length = 12;
  std::vector<std::int64_t> ids;     // [N, T]
  std::vector<std::int32_t> mask;    // [N, T]
  std::vector<std::int64_t> labels;  // [N]
  std::vector<float> embeddings;     // [N, T, D]: table rows looked up by the caller, zero at padding
};

Dataset make_dataset(Rng& rng, std::size_t n, const std::vector<float>& table, const BagOfEmbeddings<float>& teacher) {
  const std::size_t D = teacher.dim, vocab = table.size() / D;
  Dataset ds;
  ds.size = n;
  const std::size_t Tn = ds.length;
  ds.ids.assign(n * Tn, 0);
  ds.mask.assign(n * Tn, 0);
  ds.embeddings.assign(n * Tn * D, 0.0f);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t len = Tn / 2 + rng.below(Tn / 2 + 1);
    for (std::size_t t = 0; t < len; ++t) {
      const std::size_t w = rng.below(vocab);
      ds.ids[i * Tn + t] = static_cast<std::int64_t>(w);
      ds.mask[i * Tn + t] = 1;
      std::copy_n(table.data() + w * D, D, ds.embeddings.data() + (i * Tn + t) * D);
    }
  }
  std::vector<float> z(n * teacher.classes);
  teacher.logits(ds.embeddings.data(), ds.mask.data(), n, Tn, z.data());
  for (std::size_t i = 0; i < n; ++i) {
    const float* zi = z.data() + i * teacher.classes;
    ds.labels.push_back(std::max_element(zi, zi + teacher.classes) - zi);
  }
  return ds;
}

std::size_t argmax(const float* z, std::size_t C) { return static_cast<std::size_t>(std::max_element(z, z + C) - z); }

int failures = 0;
void check(bool ok, const char* what) {
  std::printf("  [%s] %s\n", ok ? "ok" : "FAILED", what);
  failures += !ok;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Adversarial training, PGD and randomized smoothing of a user-owned bag-of-embeddings model, with "
      "self-checks (exit 1 if one fails)."};
  std::uint64_t seed = 3;
  std::size_t epochs = 30, samples = 200;
  float epsilon = 0.25f, sigma = 0.25f;
  app.add_option("--seed", seed, "seed for the embedding table, data and noise")->capture_default_str();
  app.add_option("--epochs", epochs, "training epochs over 512 sequences")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--epsilon", epsilon, "per-token L2 radius of the PGD ball (token embeddings have norm about 4)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--sigma", sigma, "std of the Gaussian noise of the smoothed classifier")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--samples", samples, "noisy copies per PREDICT and CERTIFY")
      ->check(CLI::Range(20, 100000))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    constexpr std::size_t V = 100, D = 16, C = 3, batch = 64;
    Rng rng(seed, 0);
    std::vector<float> table(V * D);
    rng.fill_normal(table.data(), table.size());
    BagOfEmbeddings<float> teacher(D, C);
    rng.fill_normal(teacher.weight.data(), teacher.weight.size());
    Dataset train = make_dataset(rng, 512, table, teacher), test = make_dataset(rng, 256, table, teacher);
    const std::size_t Tn = train.length;

    BagOfEmbeddings<float> model(D, C);  // starts at zero: the loss is log 3

    // The objective the perturbers call (core/objective.hpp) for the batch whose mask and labels the two
    // pointers name: x [B, T, D] -> loss, scale * dLoss/dx, and scale * dLoss/d(W, b) when requested.
    const std::int32_t* batch_mask = nullptr;
    const std::int64_t* batch_labels = nullptr;
    auto objective = make_objective(model, batch_mask, batch_labels);

    // ---- 1. The same objective in double against central finite differences at a random point.
    std::puts("1. gradient check of the objective (double, central differences, step 1e-6)");
    {
      const std::size_t B = 4;
      BagOfEmbeddings<double> m(D, C);
      Rng r(seed, 1);
      r.fill_normal(m.weight.data(), m.weight.size());
      r.fill_normal(m.bias.data(), m.bias.size());
      const std::int32_t* mask = train.mask.data();
      const std::int64_t* labels = train.labels.data();
      auto f = make_objective(m, mask, labels);
      Tensor<double, 3> x = Tensor<double, 3>::from_shape({B, Tn, D});
      for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = train.embeddings[i] + 0.1 * r.normal<double>();
      // The objective writes into views of buffers its caller owns, as a perturber's would be.
      Tensor<double, 3> gx_buffer = Tensor<double, 3>::from_shape(x.shape()), scratch_buffer = gx_buffer;
      GradientView<double> gx = gradient_view(gx_buffer), scratch = gradient_view(scratch_buffer);
      f(x, gx, Evaluation<double>{true, 1.0});
      const double h = 1e-6;
      double worst_x = 0, scale_x = 0;
      for (std::size_t i = 0; i < x.size(); ++i) {
        Tensor<double, 3> xp = x, xm = x;
        xp.data()[i] += h;
        xm.data()[i] -= h;
        const double fd = (f(xp, scratch, {}) - f(xm, scratch, {})) / (2 * h);
        worst_x = std::max(worst_x, std::abs(fd - gx.data()[i]));
        scale_x = std::max(scale_x, std::abs(gx.data()[i]));
      }
      double worst_w = 0, scale_w = 0;
      for (std::size_t i = 0; i < m.weight.size(); ++i) {
        const double w = m.weight[i];
        m.weight[i] = w + h;
        const double up = f(x, scratch, {});
        m.weight[i] = w - h;
        const double down = f(x, scratch, {});
        m.weight[i] = w;
        worst_w = std::max(worst_w, std::abs((up - down) / (2 * h) - m.grad_weight[i]));
        scale_w = std::max(scale_w, std::abs(m.grad_weight[i]));
      }
      std::printf("  dLoss/dx: %zu coordinates, largest difference %.2e (largest gradient %.2e)\n", x.size(), worst_x,
                  scale_x);
      std::printf("  dLoss/dW: %zu coordinates, largest difference %.2e (largest gradient %.2e)\n", m.weight.size(),
                  worst_w, scale_w);
      check(scale_x > 0 && worst_x <= 1e-7 * std::max(1.0, scale_x), "input gradient matches finite differences");
      check(scale_w > 0 && worst_w <= 1e-7 * std::max(1.0, scale_w), "weight gradient matches finite differences");
    }

    auto batch_view = [&](Dataset& ds, std::size_t first, std::size_t B) {
      batch_mask = ds.mask.data() + first * Tn;
      batch_labels = ds.labels.data() + first;
      // Views of the caller's buffers: nothing is copied.
      auto x0 = xt::adapt(ds.embeddings.data() + first * Tn * D, B * Tn * D, xt::no_ownership(),
                          std::array<std::size_t, 3>{B, Tn, D});
      auto mask = xt::adapt(ds.mask.data() + first * Tn, B * Tn, xt::no_ownership(), std::array<std::size_t, 2>{B, Tn});
      return std::make_pair(x0, mask);
    };
    auto accuracy = [&](const Dataset& ds) {
      std::vector<float> z(ds.size * C);
      model.logits(ds.embeddings.data(), ds.mask.data(), ds.size, Tn, z.data());
      std::size_t ok = 0;
      for (std::size_t i = 0; i < ds.size; ++i)
        ok += argmax(z.data() + i * C, C) == static_cast<std::size_t>(ds.labels[i]);
      return static_cast<double>(ok) / static_cast<double>(ds.size);
    };

    // ---- 2. Min-max training on the caller's buffers, plain SGD.
    perturb::AdversarialStepOptions<float> step_options;
    perturb::PGDOptions<float>& attack = step_options.attack;
    attack.ball = {Norm::l2, Granularity::token, epsilon};
    attack.step_size = epsilon / 2;
    attack.steps = 3;
    std::printf("2. adversarial training: %zu epochs, PGD-%d, L2 per token, epsilon %.3g\n", epochs, attack.steps,
                epsilon);
    const float lr = 0.5f;
    double first_loss = 0, last_loss = 0;
    for (std::size_t epoch = 0; epoch < epochs; ++epoch) {
      double sum = 0;
      for (std::size_t first = 0; first < train.size; first += batch) {
        auto [x0, mask] = batch_view(train, first, batch);
        std::fill(model.grad_weight.begin(), model.grad_weight.end(), 0.0f);
        std::fill(model.grad_bias.begin(), model.grad_bias.end(), 0.0f);
        const auto step = perturb::adversarial_training_step(objective, x0, mask, step_options, {first, epoch});
        sum += step.loss;
        for (std::size_t i = 0; i < model.weight.size(); ++i) model.weight[i] -= lr * model.grad_weight[i];
        for (std::size_t c = 0; c < C; ++c) model.bias[c] -= lr * model.grad_bias[c];
      }
      const double mean = sum / static_cast<double>(train.size / batch);
      if (epoch == 0) first_loss = mean;
      last_loss = mean;
      if (epoch == 0 || (epoch + 1) % 5 == 0 || epoch + 1 == epochs)
        std::printf("  epoch %2zu  clean + adversarial loss %.4f\n", epoch + 1, mean);
    }
    const double train_acc = accuracy(train), test_acc = accuracy(test);
    std::printf("  accuracy: train %.3f, test %.3f\n", train_acc, test_acc);
    check(last_loss < first_loss, "the training loss decreased");
    check(test_acc >= 0.85, "test accuracy >= 0.85 (the teacher is linear in the mean embedding)");

    // ---- 3. PGD against the trained model on the test set.
    std::puts("3. PGD-10 attack on the test set");
    {
      auto [x0, mask] = batch_view(test, 0, test.size);
      perturb::PGDOptions<float> pgd = attack;
      pgd.steps = 10;
      pgd.step_size = epsilon / 4;
      pgd.record_losses = true;
      const auto result = perturb::pgd(objective, x0, mask, pgd);
      Tensor<float, 3> grad = Tensor<float, 3>::from_shape(x0.shape());
      GradientView<float> grad_view = gradient_view(grad);
      const float clean = objective(Tensor<float, 3>(x0), grad_view, {});
      const float adversarial = result.losses.back();
      float worst_norm = 0, padding = 0;
      for (std::size_t b = 0; b < test.size; ++b)
        for (std::size_t t = 0; t < Tn; ++t) {
          float sq = 0;
          for (std::size_t d = 0; d < D; ++d) sq += result.delta(b, t, d) * result.delta(b, t, d);
          if (mask(b, t))
            worst_norm = std::max(worst_norm, std::sqrt(sq));
          else
            padding = std::max(padding, sq);
        }
      std::vector<float> z(test.size * C);
      Tensor<float, 3> x = Tensor<float, 3>(x0) + result.delta;
      model.logits(x.data(), test.mask.data(), test.size, Tn, z.data());
      std::size_t robust = 0;
      for (std::size_t i = 0; i < test.size; ++i)
        robust += argmax(z.data() + i * C, C) == static_cast<std::size_t>(test.labels[i]);
      std::printf("  loss: clean %.4f, adversarial %.4f; accuracy under attack %.3f\n", clean, adversarial,
                  static_cast<double>(robust) / static_cast<double>(test.size));
      std::printf("  largest per-token ||delta||_2 %.6f (epsilon %.6f), largest squared delta at padding %g\n",
                  worst_norm, epsilon, padding);
      check(std::abs(result.losses.front() - clean) <= 1e-5f * std::max(1.0f, clean),
            "PGD's first loss is the clean loss");
      check(adversarial >= clean, "adversarial loss >= clean loss");
      check(worst_norm <= epsilon * (1 + 1e-5f), "every token's perturbation is inside the epsilon ball");
      check(padding == 0.0f, "padding positions are not perturbed");
    }

    // ---- 4. Randomized smoothing with Gaussian noise on the embeddings.
    std::printf("4. smoothed classifier, sigma %.3g, %zu samples, alpha 0.001\n", sigma, samples);
    {
      std::vector<float> z(test.size * C);
      model.logits(test.embeddings.data(), test.mask.data(), test.size, Tn, z.data());
      std::size_t easy = 0, predicted = 0, certified = 0;
      double radius_sum = 0;
      for (std::size_t i = 0; i < test.size; ++i) {
        // Noise N(0, sigma^2) on each of the n token embeddings moves the logit difference of classes a and c by
        // N(0, sigma^2 ||W_a - W_c||^2 / n): "easy" means every margin is at least 4 of those deviations.
        const float* zi = z.data() + i * C;
        const std::size_t a = argmax(zi, C);
        std::size_t n = 0;
        for (std::size_t t = 0; t < Tn; ++t) n += test.mask[i * Tn + t] != 0;
        bool is_easy = true;
        for (std::size_t c = 0; c < C; ++c) {
          if (c == a) continue;
          float sq = 0;
          for (std::size_t d = 0; d < D; ++d) sq += std::pow(model.weight[a * D + d] - model.weight[c * D + d], 2.0f);
          is_easy = is_easy && zi[a] - zi[c] >= 4 * sigma * std::sqrt(sq / static_cast<float>(n));
        }
        if (!is_easy) continue;
        ++easy;
        // Copy classifier: copies [first, first + count) of example i. The clean embeddings are viewed in place,
        // the noisy copies are built in a buffer the callable keeps.
        auto clean = xt::adapt(test.embeddings.data() + i * Tn * D, Tn * D, xt::no_ownership(),
                               std::array<std::size_t, 3>{1, Tn, D});
        Tensor<float, 3> copies;
        std::vector<std::int32_t> copy_mask;
        auto classify = [&, i](std::size_t first, std::size_t count, Tensor<float, 2>& probs) {
          copies = xt::broadcast(clean, {count, Tn, D});
          copy_mask.resize(count * Tn);
          for (std::size_t k = 0; k < count; ++k) std::copy_n(test.mask.data() + i * Tn, Tn, copy_mask.data() + k * Tn);
          auto m = xt::adapt(copy_mask.data(), count * Tn, xt::no_ownership(), std::array<std::size_t, 2>{count, Tn});
          // Stream (seed, copy index, example): every copy of every example draws its own noise, whatever the
          // batch size.
          noise::add_embedding_noise(copies, m, noise::EmbeddingNoise::gaussian, sigma, seed, first, i);
          probs = Tensor<float, 2>::from_shape({count, C});
          model.logits(copies.data(), copy_mask.data(), count, Tn, probs.data());
          for (std::size_t k = 0; k < count; ++k) {  // softmax
            float* p = probs.data() + k * C;
            const float mx = *std::max_element(p, p + C);
            float s = 0;
            for (std::size_t c = 0; c < C; ++c) s += (p[c] = std::exp(p[c] - mx));
            for (std::size_t c = 0; c < C; ++c) p[c] /= s;
          }
        };
        auto smoothed = smooth::make_smoothed_classifier<float>(classify, C, sigma, 64);
        const auto p = smoothed.predict(samples, 0.001);
        const auto cert = smoothed.certify(20, samples, 0.001);
        predicted += p.label == static_cast<std::int64_t>(a);
        if (cert.label == static_cast<std::int64_t>(a)) {
          ++certified;
          radius_sum += cert.radius;
        }
      }
      std::printf(
          "  %zu easy test inputs: smoothed prediction = clean prediction for %zu, certified for %zu "
          "(mean L2 radius %.3f)\n",
          easy, predicted, certified, certified ? radius_sum / certified : 0.0);
      check(easy >= 20, "at least 20 easy inputs to check");
      check(predicted == easy, "the smoothed prediction agrees with the clean one on every easy input");
      check(certified == easy, "every easy input is certified with the clean class");
    }
    if (failures)
      std::printf("custom_model: %d check(s) FAILED\n", failures);
    else
      std::puts("custom_model: all checks passed");
    return failures ? 1 : 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "custom_model: %s\n", e.what());
    return 1;
  }
}
