#include <robustxlt/robustxlt.hpp>
#include <cmath>
#include <cstdio>
using namespace robustxlt;

int main() {
  // Base classifier f(x) = [x_0 > 0] on embeddings [1, 1, D]. Smoothed with Gaussian noise of std sigma, its
  // certified L2 radius at x can never exceed |x_0|, the true distance to f's decision boundary. Input i sits
  // at x_0 = xs[i]; its copies draw from the streams (seed, input i, copy): independent across inputs by
  // construction, and the same for any batch size.
  const std::vector<float> xs = {0.5f, 1.0f, -0.75f};
  const float sigma = 0.5f;
  auto classify = [&](std::size_t input, std::size_t first, std::size_t count, std::vector<std::int64_t>& labels) {
    for (std::size_t k = 0; k < count; ++k) {
      Tensor<float, 3> x = xt::zeros<float>({std::size_t(1), std::size_t(1), std::size_t(4)});
      x(0, 0, 0) = xs[input];
      noise::add_embedding_noise(x, Tensor<int, 2>{}, noise::EmbeddingNoise::gaussian, sigma, /*seed=*/9,
                                 /*first_example=*/input, /*copy=*/first + k);
      labels.push_back(x(0, 0, 0) > 0 ? 1 : 0);
    }
  };
  auto g = smooth::make_smoothed_batch<float>(classify, xs.size(), /*num_classes=*/2, sigma, /*batch_size=*/256);
  const std::vector<smooth::Prediction> p = g.predict(/*n=*/1000, /*alpha=*/0.001);
  const std::vector<smooth::Certificate> c = g.certify(/*n0=*/100, /*n=*/10000, /*alpha=*/0.001);
  bool ok = true;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    std::printf("x_0 = %+.2f: predict %lld (p = %.2g), certify %lld with radius %.4f\n", xs[i],
                static_cast<long long>(p[i].label), p[i].p_value, static_cast<long long>(c[i].label), c[i].radius);
    // P(f = 1) = Phi(x_0 / sigma) (0.841 at x_0 = 0.5): the radius is close to, and below, |x_0|.
    const std::int64_t truth = xs[i] > 0 ? 1 : 0;
    ok = ok && p[i].label == truth && c[i].label == truth && c[i].radius > 0.8 * std::abs(xs[i]) &&
         c[i].radius < std::abs(xs[i]);
  }
  return ok ? 0 : 1;
}
