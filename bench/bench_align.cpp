// Benchmarks of align/: alignment extraction on 128 x 128 and 512 x 512 similarity matrices, and CSLS
// retrieval of 20k x 20k at d = 300 next to the block products it needs (two passes of X Y^T), so the
// ratio shows how close retrieval runs to its GEMM time. bench/compare_align_python.py times SciPy's
// linear_sum_assignment and the NumPy formulations of argmax and itermax on the same sizes.
#include <benchmark/benchmark.h>

#include <robustxlt/align.hpp>
#include <robustxlt/core.hpp>

using namespace robustxlt;
using namespace robustxlt::align;

namespace {

template <class T>
Tensor<T, 2> random_matrix(std::size_t m, std::size_t n, std::uint64_t seed, bool normal) {
  Tensor<T, 2> x = Tensor<T, 2>::from_shape({m, n});
  Rng rng(seed);
  for (auto& v : x) v = normal ? rng.normal<T>() : rng.uniform<T>();
  return x;
}

template <class Fn>
void extraction(benchmark::State& state, Fn fn) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto sim = random_matrix<double>(n, n, 1, false);
  for (auto _ : state) benchmark::DoNotOptimize(fn(sim).size());
}

constexpr std::size_t retrieval_n = 20000, retrieval_d = 300;

void csls_retrieval(benchmark::State& state) {
  const auto x = random_matrix<float>(retrieval_n, retrieval_d, 2, true), y = random_matrix<float>(retrieval_n, retrieval_d, 3, true);
  RetrievalOptions opt;
  opt.k = 10;
  for (auto _ : state) benchmark::DoNotOptimize(retrieve(x, y, Retrieval::csls, opt).index.data());
  state.counters["FLOPS"] = benchmark::Counter(2.0 * 2.0 * retrieval_n * retrieval_n * retrieval_d,
                                               benchmark::Counter::kIsIterationInvariantRate);
}

// The products CSLS retrieval cannot avoid: two passes of X Y^T in the same blocks, with nothing else.
void csls_gemm_only(benchmark::State& state) {
  const auto x = random_matrix<float>(retrieval_n, retrieval_d, 2, true), y = random_matrix<float>(retrieval_n, retrieval_d, 3, true);
  const RowMatrix<float> a = ConstMatrixMap<float>(x.data(), retrieval_n, retrieval_d);
  const RowMatrix<float> b = ConstMatrixMap<float>(y.data(), retrieval_n, retrieval_d);
  for (auto _ : state) {
    float sink = 0;
    for (int pass = 0; pass < 2; ++pass)
      align::detail::for_each_block(a, b, 2048, [&](const RowMatrix<float>& s, std::size_t, std::size_t) { sink += s(0, 0); });
    benchmark::DoNotOptimize(sink);
  }
  state.counters["FLOPS"] = benchmark::Counter(2.0 * 2.0 * retrieval_n * retrieval_n * retrieval_d,
                                               benchmark::Counter::kIsIterationInvariantRate);
}

const int registered = [] {
  for (long n : {128L, 512L}) {
    benchmark::RegisterBenchmark("align/argmax", [](benchmark::State& s) { extraction(s, [](const auto& m) { return argmax_links(m); }); })->Arg(n);
    benchmark::RegisterBenchmark("align/itermax", [](benchmark::State& s) { extraction(s, [](const auto& m) { return itermax_links(m); }); })->Arg(n);
    benchmark::RegisterBenchmark("align/match", [](benchmark::State& s) { extraction(s, [](const auto& m) { return match_links(m); }); })->Arg(n);
    benchmark::RegisterBenchmark("align/softmax", [](benchmark::State& s) { extraction(s, [](const auto& m) { return softmax_links(m); }); })->Arg(n);
  }
  benchmark::RegisterBenchmark("align/csls_retrieval_20k", csls_retrieval)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
  benchmark::RegisterBenchmark("align/csls_gemm_only_20k", csls_gemm_only)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
