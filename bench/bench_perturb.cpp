// Benchmarks of the perturbation kernels on [32, 128, 768] float (BERT-base activations), with a STREAM-like
// triad in the same binary as the memory-bandwidth reference. Bytes count what a kernel must move at least:
// a PGD step reads delta and grad and writes delta (3 tensors), FGSM reads grad and writes delta (2), a
// random start writes delta (1). bench/compare_perturb_torch.py runs the same updates in PyTorch.
#include <benchmark/benchmark.h>

#include <robustxlt/core.hpp>
#include <robustxlt/perturb.hpp>
#include <vector>

using namespace robustxlt;
using namespace robustxlt::perturb;

namespace {

constexpr std::size_t B = 32, T = 128, D = 768, N = B * T * D;
constexpr std::int64_t tensor_bytes = static_cast<std::int64_t>(N * sizeof(float));

Tensor<float, 3> filled(std::uint64_t seed, float scale) {
  Tensor<float, 3> x = Tensor<float, 3>::from_shape({B, T, D});
  Rng rng(seed);
  for (auto& v : x) v = scale * (2 * rng.uniform<float>() - 1);
  return x;
}

const Tensor<std::int64_t, 2>& all_tokens() {
  static const Tensor<std::int64_t, 2> m{};
  return m;
}

void report(benchmark::State& state, int tensors_moved) {
  state.SetBytesProcessed(state.iterations() * tensors_moved * tensor_bytes);
}

// a = b + s * c: two reads and one write, the usual bandwidth yardstick.
void triad(benchmark::State& state) {
  std::vector<float> a(N), b(N, 1.0f), c(N, 2.0f);
  const float s = 0.5f;
  for (auto _ : state) {
    float* pa = a.data();
    const float* pb = b.data();
    const float* pc = c.data();
    for (std::size_t i = 0; i < N; ++i) pa[i] = pb[i] + s * pc[i];
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  report(state, 3);
}

void fgsm(benchmark::State& state) {
  const Tensor<float, 3> g = filled(1, 1.0f);
  Tensor<float, 3> delta = Tensor<float, 3>::from_shape({B, T, D});
  const Ball<float> ball{Norm::linf, Granularity::token, 0.01f};
  for (auto _ : state) {
    fgsm_step(g, delta, all_tokens(), ball);
    benchmark::DoNotOptimize(delta.data());
  }
  report(state, 2);
}

void pgd_step(benchmark::State& state, Norm norm, Granularity gran) {
  const Tensor<float, 3> g = filled(2, 1.0f);
  Tensor<float, 3> delta = filled(3, 0.001f);
  const Ball<float> ball{norm, gran, norm == Norm::l2 ? 1.0f : 0.01f};
  for (auto _ : state) {
    step_and_project(delta, g, all_tokens(), ball, 0.003f);
    benchmark::DoNotOptimize(delta.data());
  }
  report(state, 3);
}

void l2_ball_start(benchmark::State& state) {
  Tensor<float, 3> delta = Tensor<float, 3>::from_shape({B, T, D});
  const Ball<float> ball{Norm::l2, Granularity::token, 1.0f};
  std::uint64_t seed = 0;
  for (auto _ : state) {
    uniform_ball_start(delta, all_tokens(), ball, seed++);
    benchmark::DoNotOptimize(delta.data());
  }
  report(state, 1);
}

const int registered = [] {
  benchmark::RegisterBenchmark("perturb/triad", triad)->UseRealTime();
  benchmark::RegisterBenchmark("perturb/fgsm_linf", fgsm)->UseRealTime();
  benchmark::RegisterBenchmark("perturb/pgd_l2_token", pgd_step, Norm::l2, Granularity::token)->UseRealTime();
  benchmark::RegisterBenchmark("perturb/pgd_l2_sequence", pgd_step, Norm::l2, Granularity::sequence)->UseRealTime();
  benchmark::RegisterBenchmark("perturb/pgd_linf_token", pgd_step, Norm::linf, Granularity::token)->UseRealTime();
  benchmark::RegisterBenchmark("perturb/l2_ball_start_token", l2_ball_start)->UseRealTime();
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
