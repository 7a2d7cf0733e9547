// PGD adversarial training of a small libtorch model with robustxlt's perturbers. libtorch owns the model,
// its parameters and the optimizer; its autograd supplies the input-embedding gradients the perturber steps
// along. Memory crosses between the two without copies where the protocol allows:
//   - the clean embeddings libtorch computes are handed to the perturber as an xt::adapt view of the
//     tensor's data_ptr<float>();
//   - inside the objective, the perturbation delta (a robustxlt buffer) enters libtorch's graph as
//     torch::from_blob over that buffer;
//   - the gradient autograd returns is read through an xt::adapt view of its data_ptr<float>() and written
//     once into the perturber's gradient tensor, which the protocol owns.
// The task is the word-order task of word_order_task.hpp. The program checks that training lowers the loss,
// that accuracy under a PGD attack rises well above its value before training, and that every token's
// perturbation stays inside the epsilon ball; it exits 1 when a check fails.
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <robustxlt/core.hpp>
#include <robustxlt/perturb.hpp>

#include "word_order_task.hpp"

using namespace robustxlt;

namespace {

constexpr std::int64_t kVocab = 200, kLength = 24, kDim = 16, kHidden = 128, kClasses = 3;

// Token embeddings, then an MLP over the flattened (masked) sequence: positions matter, so it can learn the
// word order.
struct WordOrderNetImpl : torch::nn::Module {
  WordOrderNetImpl()
      : embedding(register_module("embedding", torch::nn::Embedding(kVocab, kDim))),
        hidden(register_module("hidden", torch::nn::Linear(kLength * kDim, kHidden))),
        out(register_module("out", torch::nn::Linear(kHidden, kClasses))) {}

  // x [B, T, D] embeddings (clean + delta), mask [B, T] float -> logits [B, C]
  torch::Tensor forward_embeddings(const torch::Tensor& x, const torch::Tensor& mask) {
    const auto masked = x * mask.unsqueeze(-1);
    return out(torch::relu(hidden(masked.flatten(1))));
  }

  torch::nn::Embedding embedding;
  torch::nn::Linear hidden, out;
};
TORCH_MODULE(WordOrderNet);

// A batch of the word-order task in the tensors both sides use. The libtorch tensors view the robustxlt
// buffers, so a Batch is filled in place and never copied.
struct Batch {
  nn::TokenBatch tokens;            // ids and mask [B, T] (robustxlt buffers)
  Tensor<std::int64_t, 1> labels;   // [B]
  torch::Tensor ids, mask, target;  // libtorch views of the same buffers (mask converted to float)

  Batch() = default;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  void draw(Rng& rng, std::size_t B) {
    word_order_task::draw_batch(rng, B, kLength, kVocab, tokens, labels);
    const auto n = static_cast<std::int64_t>(B);
    ids = torch::from_blob(tokens.ids.data(), {n, kLength}, torch::kInt64);
    mask = torch::from_blob(tokens.mask.data(), {n, kLength}, torch::kInt64).to(torch::kFloat32);
    target = torch::from_blob(labels.data(), {n}, torch::kInt64);
  }
};

// Clean embeddings of a batch, computed by libtorch and viewed by robustxlt without a copy. The tensor must
// outlive the view.
auto clean_view(const torch::Tensor& clean) {
  const std::array<std::size_t, 3> shape{static_cast<std::size_t>(clean.size(0)),
                                         static_cast<std::size_t>(clean.size(1)),
                                         static_cast<std::size_t>(clean.size(2))};
  return xt::adapt(clean.data_ptr<float>(), static_cast<std::size_t>(clean.numel()), xt::no_ownership(), shape);
}

// The objective protocol of core/objective.hpp over one batch: x = clean embeddings + delta.
class TorchObjective {
 public:
  // clean: the batch's clean embeddings [B, T, D] (contiguous float), the x0 given to the perturber.
  TorchObjective(WordOrderNet net, const Batch& batch, torch::Tensor clean)
      : net_(std::move(net)), batch_(batch), clean_(std::move(clean)) {}

  float operator()(const Tensor<float, 3>& x, GradientView<float>& grad_x, const Evaluation<float>& request) {
    // delta = x - clean in our buffer; libtorch reads it in place.
    delta_ = x - clean_view(clean_);
    const auto shape = std::vector<std::int64_t>(x.shape().begin(), x.shape().end());
    auto delta = torch::from_blob(delta_.data(), shape, torch::kFloat32).requires_grad_(true);
    // Recomputing the lookup keeps the embedding table in the graph, so parameter gradients reach it.
    const auto logits = net_->forward_embeddings(net_->embedding(batch_.ids) + delta, batch_.mask);
    const auto loss = torch::nn::functional::cross_entropy(logits, batch_.target);
    const auto scaled = loss * request.scale;
    torch::Tensor g;
    if (request.parameter_gradients) {
      scaled.backward();  // accumulates into the parameters' .grad() and into delta.grad()
      g = delta.grad();
    } else {
      g = torch::autograd::grad({scaled}, {delta})[0];  // input gradient only: parameters untouched
    }
    g = g.contiguous();
    auto view = xt::adapt(g.data_ptr<float>(), static_cast<std::size_t>(g.numel()), xt::no_ownership(), x.shape());
    grad_x = view;
    return loss.item<float>();
  }

 private:
  WordOrderNet net_;
  const Batch& batch_;
  torch::Tensor clean_;
  Tensor<float, 3> delta_;
};

struct Evaluated {
  double clean_accuracy, adversarial_accuracy, worst_norm;
};

double accuracy(const torch::Tensor& logits, const torch::Tensor& target) {
  return logits.argmax(1).eq(target).to(torch::kFloat64).mean().item<double>();
}

Evaluated evaluate(WordOrderNet& net, const Batch& test, const perturb::PGDOptions<float>& attack) {
  torch::Tensor clean;
  {
    torch::NoGradGuard no_grad;
    clean = net->embedding(test.ids).contiguous();
  }
  const auto x0 = clean_view(clean);
  TorchObjective objective(net, test, clean);
  const auto adv = perturb::pgd(objective, x0, test.tokens.mask, attack);
  Evaluated e{};
  torch::NoGradGuard no_grad;
  const auto shape = std::vector<std::int64_t>(adv.delta.shape().begin(), adv.delta.shape().end());
  const auto delta = torch::from_blob(const_cast<float*>(adv.delta.data()), shape, torch::kFloat32);
  e.clean_accuracy = accuracy(net->forward_embeddings(clean, test.mask), test.target);
  e.adversarial_accuracy = accuracy(net->forward_embeddings(clean + delta, test.mask), test.target);
  // Largest per-token L2 norm of delta at real tokens; padded positions must hold exactly zero.
  const auto norms = delta.norm(2, -1);
  e.worst_norm = (norms * test.mask).max().item<double>();
  if ((norms * (1 - test.mask)).max().item<double>() != 0.0) e.worst_norm = INFINITY;
  return e;
}

int failures = 0;
void check(bool ok, const char* what) {
  std::printf("  [%s] %s\n", ok ? "ok" : "FAILED", what);
  failures += !ok;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "PGD adversarial training of a libtorch model with robustxlt's perturbers (zero-copy views between "
      "the two), with self-checks (exit 1 if one fails)."};
  std::size_t steps = 1000, batch_size = 64;
  float epsilon = 0.5f;
  std::uint64_t seed = 1;
  app.add_option("--steps", steps, "training steps")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--batch", batch_size, "sequences per step")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--epsilon", epsilon, "per-token L2 radius of the PGD ball")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--seed", seed, "seed for libtorch's initialisation and the data")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    torch::manual_seed(seed);
    torch::set_num_threads(1);
    WordOrderNet net;
    torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(3e-3));

    perturb::PGDOptions<float> attack;
    attack.ball = {Norm::l2, Granularity::token, epsilon};
    attack.step_size = epsilon / 2;
    attack.steps = 3;
    perturb::PGDOptions<float> eval_attack = attack;
    eval_attack.steps = 10;
    eval_attack.step_size = epsilon / 4;

    Rng data(seed, 1), test_data(seed, 2);
    Batch test, batch;
    test.draw(test_data, 512);
    const Evaluated before = evaluate(net, test, eval_attack);
    std::printf("before training: clean accuracy %.3f, accuracy under PGD-10 %.3f\n", before.clean_accuracy,
                before.adversarial_accuracy);

    double first_loss = 0, last_loss = 0, window_loss = 0;
    for (std::size_t step = 0; step < steps; ++step) {
      batch.draw(data, batch_size);
      torch::Tensor clean;
      {
        torch::NoGradGuard no_grad;
        clean = net->embedding(batch.ids).contiguous();
      }
      const auto x0 = clean_view(clean);
      TorchObjective objective(net, batch, clean);
      optimizer.zero_grad();
      // Clean + adversarial loss; the parameter gradients accumulate in libtorch's .grad() tensors.
      const perturb::AdversarialStepOptions<float> step_options{attack};
      const auto losses = perturb::adversarial_training_step(objective, x0, batch.tokens.mask, step_options,
                                                             {step * batch_size, step});
      optimizer.step();
      window_loss += losses.loss;
      if ((step + 1) % 100 == 0 || step + 1 == steps) {
        const std::size_t window = (step + 1) % 100 ? (step + 1) % 100 : 100;
        const double mean = window_loss / static_cast<double>(window);
        if (step < 100) first_loss = mean;
        last_loss = mean;
        std::printf("step %4zu  clean + adversarial loss %.4f\n", step + 1, mean);
        window_loss = 0;
      }
    }
    const Evaluated after = evaluate(net, test, eval_attack);
    std::printf(
        "after training:  clean accuracy %.3f, accuracy under PGD-10 %.3f; largest per-token ||delta||_2 %.6f "
        "(epsilon %.6f)\n",
        after.clean_accuracy, after.adversarial_accuracy, after.worst_norm, epsilon);
    check(last_loss < first_loss, "the training loss decreased");
    check(after.adversarial_accuracy >= before.adversarial_accuracy + 0.2,
          "accuracy under attack rose by at least 0.2 over training");
    check(before.worst_norm <= epsilon * (1 + 1e-5) && after.worst_norm <= epsilon * (1 + 1e-5),
          "every token's perturbation stays inside the epsilon ball, padding untouched");
    if (failures)
      std::printf("libtorch_pgd: %d check(s) FAILED\n", failures);
    else
      std::puts("libtorch_pgd: all checks passed");
    return failures ? 1 : 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "libtorch_pgd: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "libtorch_pgd: libtorch error: %s\n", e.what_without_backtrace());
    return 1;
  }
}
