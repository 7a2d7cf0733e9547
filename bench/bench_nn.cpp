// Benchmarks of the transformer's hot paths: a full training step (forward + backward + AdamW) on BERT-mini
// and on a small config where per-op overhead dominates, the GEMM rate that bounds it, and the elementwise
// kernels. bench/compare_torch.py runs the same training steps in PyTorch and prints both side by side.
#include <benchmark/benchmark.h>

#include <robustxlt/nn.hpp>
#include <robustxlt/perturb.hpp>
#include <string>
#include <vector>

using namespace robustxlt;
using namespace robustxlt::nn;

namespace {

struct StepConfig {
  const char* name;
  std::size_t layers, dim, heads, ff, seq, batch;
};

constexpr StepConfig bert_mini{"bert_mini", 4, 256, 4, 1024, 128, 32};
constexpr StepConfig small{"small", 2, 128, 2, 512, 64, 16};

// The benchmark model (vocabulary 8000, 2 segments, 3 classes, dropout 0) and a random full-length batch.
struct Workload {
  explicit Workload(const StepConfig& sc) : model(config(sc), 1) {
    batch.ids = Tensor<std::int64_t, 2>::from_shape({sc.batch, sc.seq});
    batch.mask = xt::ones<std::int64_t>({sc.batch, sc.seq});
    batch.segments = xt::zeros<std::int64_t>({sc.batch, sc.seq});
    labels = Tensor<std::int64_t, 1>::from_shape({sc.batch});
    Rng rng(7);
    for (auto& id : batch.ids) id = static_cast<std::int64_t>(rng.below(model.config().vocab_size));
    for (auto& y : labels) y = static_cast<std::int64_t>(rng.below(3));
  }
  static TransformerConfig config(const StepConfig& sc) {
    TransformerConfig cfg;
    cfg.vocab_size = 8000;
    cfg.max_positions = 512;
    cfg.type_vocab_size = 2;
    cfg.dim = sc.dim;
    cfg.heads = sc.heads;
    cfg.ff_dim = sc.ff;
    cfg.layers = sc.layers;
    cfg.num_classes = 3;
    return cfg;
  }
  TransformerClassifier<float> model;
  TokenBatch batch;
  Tensor<std::int64_t, 1> labels;
};

void train_step(benchmark::State& state, StepConfig sc, int threads) {
  set_num_threads(threads);
  Workload w(sc);
  auto& model = w.model;
  const auto& batch = w.batch;
  const auto& labels = w.labels;
  model.train();
  AdamWOptions<float> ao;
  ao.lr = 1e-4f;
  AdamW<float> opt(model.params(), ao);
  for (auto _ : state) {
    model.params().zero_grad();
    benchmark::DoNotOptimize(model.loss_and_backward(batch, labels));
    opt.step();
  }
  const double flops = 3.0 * model.forward_flops(sc.batch, sc.seq);
  state.counters["FLOPS"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(sc.batch * sc.seq), benchmark::Counter::kIsIterationInvariantRate);
  set_num_threads(1);
}

// The perturber's overhead: one PGD-3 adversarial training step (clean pass, two attack passes, adversarial
// pass; no optimizer) against four plain forward/backward passes of the same model and batch.
void adversarial_step(benchmark::State& state, bool pgd3) {
  set_num_threads(1);
  Workload w(bert_mini);
  auto& model = w.model;
  const auto& batch = w.batch;
  const auto& labels = w.labels;
  perturb::AdversarialStepOptions<float> attack;
  attack.attack.ball = {perturb::Norm::l2, perturb::Granularity::token, 1.0f};
  attack.attack.step_size = 0.3f;
  attack.attack.steps = 3;
  for (auto _ : state) {
    model.params().zero_grad();
    if (pgd3) {
      ClassifierObjective<float> objective(model, batch, labels);
      benchmark::DoNotOptimize(
          perturb::adversarial_training_step(objective, objective.embeddings(), batch.mask, attack).loss);
    } else {
      for (int k = 0; k < 4; ++k) benchmark::DoNotOptimize(model.loss_and_backward(batch, labels));
    }
  }
}

// The single-thread GEMM rate bounds the training step: the feed-forward product of BERT-mini,
// [4096, 256] x [256, 1024].
void gemm(benchmark::State& state, int threads) {
  set_num_threads(threads);
  const Eigen::Index m = 4096, k = 256, n = 1024;
  RowMatrix<float> a = RowMatrix<float>::Random(m, k), b = RowMatrix<float>::Random(n, k), c(m, n);
  for (auto _ : state) {
    c.noalias() = a * b.transpose();
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOPS"] = benchmark::Counter(2.0 * m * k * n, benchmark::Counter::kIsIterationInvariantRate);
  set_num_threads(1);
}

// Memory-bound kernels report bytes/s (read + write), comparable with the machine's bandwidth.
void gelu(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  std::vector<float> x(n), y(n);
  Rng rng(1);
  for (auto& v : x) v = rng.normal<float>();
  for (auto _ : state) {
    gelu_forward(y.data(), x.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 2 * n * sizeof(float)));
}

void layer_norm(benchmark::State& state) {
  const std::size_t rows = 4096, d = static_cast<std::size_t>(state.range(0));
  std::vector<float> x(rows * d), y(rows * d), w(d, 1.0f), b(d, 0.0f), mean(rows), rstd(rows);
  Rng rng(2);
  for (auto& v : x) v = rng.normal<float>();
  for (auto _ : state) {
    layer_norm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows, d, 1e-5f);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 2 * rows * d * sizeof(float)));
}

const int registered = [] {
  for (const StepConfig& sc : {bert_mini, small})
    for (int t : {1, 2}) {
      const std::string name = std::string("train_step/") + sc.name + "/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), train_step, sc, t)->Unit(benchmark::kMillisecond)->UseRealTime();
    }
  benchmark::RegisterBenchmark("adv_step/bert_mini/pgd3", adversarial_step, true)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("adv_step/bert_mini/fwd_bwd_x4", adversarial_step, false)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  for (int t : {1, 2})
    benchmark::RegisterBenchmark(("gemm/eigen_f32/threads:" + std::to_string(t)).c_str(), gemm, t)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  benchmark::RegisterBenchmark("kernel/gelu_forward", gelu)->Arg(1 << 20);
  benchmark::RegisterBenchmark("kernel/layer_norm_forward", layer_norm)->Arg(256);
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
