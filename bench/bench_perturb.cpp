// Benchmarks of the perturbation and noise kernels on [32, 128, 768] float (BERT-base activations), with a
// STREAM-like triad in the same binary as the memory-bandwidth reference, and the word samplers on id
// sequences (tokens/s). Bytes count what a kernel must move at least:
// a PGD step reads delta and grad and writes delta (3 tensors), FGSM reads grad and writes delta (2), a
// random start writes delta (1). bench/compare_perturb_torch.py runs the same updates in PyTorch.
#include <benchmark/benchmark.h>

#include <robustxlt/core.hpp>
#include <robustxlt/noise.hpp>
#include <robustxlt/perturb.hpp>
#include <xsimd/xsimd.hpp>
#include <utility>
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

// a = b + s * c: two reads and one write, the usual bandwidth yardstick; with threads > 1 the loop is split
// statically over that many OpenMP threads (all cores: the machine's bandwidth rather than one core's).
// Written with 256-bit vectors wherever the build has AVX2, AVX-512 builds included: on the machine the
// figures of bench/README.md come from, 512-bit loads and stores stream 10-25% slower than 256-bit ones
// (perturb/triad_widest_vectors below), and the yardstick should be the fastest plain loop, not the one
// the build happens to vectorise.
#if XSIMD_WITH_AVX2
using triad_batch = xsimd::batch<float, xsimd::avx2>;
#else
using triad_batch = xsimd::batch<float>;
#endif

template <class Batch>
void triad(benchmark::State& state, int threads) {
  static_assert(N % Batch::size == 0, "triad: N must be a multiple of the vector width");
  std::vector<float> a(N), b(N, 1.0f), c(N, 2.0f);
  const Batch s(0.5f);
  constexpr auto W = static_cast<std::ptrdiff_t>(Batch::size);
  for (auto _ : state) {
    float* pa = a.data();
    const float* pb = b.data();
    const float* pc = c.data();
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
    for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(N); i += W)
      xsimd::fma(s, Batch::load_unaligned(pc + i), Batch::load_unaligned(pb + i)).store_unaligned(pa + i);
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  (void)threads;
  report(state, 3);
}

void fgsm(benchmark::State& state) {
  const Tensor<float, 3> g = filled(1, 1.0f);
  Tensor<float, 3> delta = Tensor<float, 3>::from_shape({B, T, D});
  const Ball<float> ball{Norm::linf, Granularity::token, 0.01f};
  for (auto _ : state) {
    fgsm_step(delta, g, all_tokens(), ball);
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

// RS-RP: Gaussian noise added to every token (reads x and writes it back: 2 tensors), with the library's
// thread setting at `threads` (sequences split over them).
void gaussian_noise(benchmark::State& state, int threads) {
  Tensor<float, 3> x = filled(4, 1.0f);
  const Tensor<std::int64_t, 2> none;
  std::uint64_t copy = 0;
  set_num_threads(threads);
  for (auto _ : state) {
    noise::add_embedding_noise(x, none, noise::EmbeddingNoise::gaussian, 0.01f, 1, 0, copy++);
    benchmark::DoNotOptimize(x.data());
  }
  set_num_threads(1);
  report(state, 2);
  state.counters["values/s"] = benchmark::Counter(static_cast<double>(N), benchmark::Counter::kIsIterationInvariantRate);
}

// The normal generator alone: Rng::fill_normal writing [32, 128, 768] floats (one tensor written).
void fill_normal(benchmark::State& state) {
  Tensor<float, 3> x = Tensor<float, 3>::from_shape({B, T, D});
  std::uint64_t stream = 0;
  for (auto _ : state) {
    Rng(5, stream++).fill_normal(x.data(), x.size());
    benchmark::DoNotOptimize(x.data());
  }
  report(state, 1);
  state.counters["values/s"] = benchmark::Counter(static_cast<double>(N), benchmark::Counter::kIsIterationInvariantRate);
}

// A synthetic vocabulary of 50k ids where every other id has 1..8 neighbours (WordNet-like density), and a
// code-switch setting with 5 languages each translating 60% of the words with 1..3 translations.
noise::IdTable synthetic_table(std::uint32_t vocab, std::uint32_t every, std::uint32_t max_items, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::uint32_t> offsets{0}, items;
  for (std::uint32_t w = 0; w < vocab; ++w) {
    if (rng.below(every) == 0) {
      const auto k = 1 + rng.below(max_items);
      for (std::uint64_t j = 0; j < k; ++j) items.push_back(static_cast<std::uint32_t>(rng.below(vocab)));
    }
    offsets.push_back(static_cast<std::uint32_t>(items.size()));
  }
  return noise::IdTable(offsets, items);
}

std::vector<std::int64_t> token_stream(std::size_t n, std::uint32_t vocab) {
  std::vector<std::int64_t> ids(n);
  Rng rng(9);
  for (auto& v : ids) v = static_cast<std::int64_t>(rng.below(vocab));
  return ids;
}

// Runs a sampler over 2^20 tokens cut into 128-token sentences, each its own example; reports tokens/s.
template <class Sampler>
void run_sampler(benchmark::State& state, const Sampler& sampler) {
  const auto ids = token_stream(1 << 20, 50000);
  std::vector<std::int64_t> out(ids.size());
  std::uint64_t copy = 0;
  for (auto _ : state) {
    for (std::size_t s = 0; s < ids.size(); s += 128) sampler.sample(ids.data() + s, 128, out.data() + s, 7, s, copy);
    ++copy;
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(ids.size()), benchmark::Counter::kIsIterationInvariantRate);
}

void synonym_sampler(benchmark::State& state) {
  run_sampler(state, noise::SynonymSampler(synthetic_table(50000, 2, 8, 1), 50000));
}

void code_switch_sampler(benchmark::State& state) {
  std::vector<noise::IdTable> dicts;
  for (std::uint64_t l = 0; l < 5; ++l) dicts.push_back(synthetic_table(50000, 1, 3, 10 + l));
  run_sampler(state, noise::CodeSwitchSampler(std::move(dicts), 50000, noise::CodeSwitchOptions{1.0, 0.5}));
}

template <class... Args>
void add(const char* name, Args&&... args) {
  benchmark::RegisterBenchmark(name, std::forward<Args>(args)...)->UseRealTime();
}

const int registered = [] {
  add("perturb/triad", triad<triad_batch>, 1);
  add("perturb/triad_2_threads", triad<triad_batch>, 2);
  // The build's widest vectors, where wider than the yardstick's (512-bit on AVX-512 builds): the evidence
  // for the yardstick's width.
  if (xsimd::batch<float>::size > triad_batch::size) add("perturb/triad_widest_vectors", triad<xsimd::batch<float>>, 1);
  add("perturb/fgsm_linf", fgsm);
  add("perturb/pgd_l2_token", pgd_step, Norm::l2, Granularity::token);
  add("perturb/pgd_l2_sequence", pgd_step, Norm::l2, Granularity::sequence);
  add("perturb/pgd_linf_token", pgd_step, Norm::linf, Granularity::token);
  add("perturb/l2_ball_start_token", l2_ball_start);
  add("noise/gaussian_embedding_noise", gaussian_noise, 1);
  add("noise/gaussian_embedding_noise_2_threads", gaussian_noise, 2);
  add("noise/fill_normal", fill_normal);
  add("noise/synonym_sampler", synonym_sampler);
  add("noise/code_switch_sampler", code_switch_sampler);
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
