#include <robustxlt/robustxlt.hpp>
#include <cmath>
#include <cstdio>
using namespace robustxlt;

int main() {
  // Base classifier f(x) = [x_0 > 0] on embeddings [D]. Smoothed with Gaussian noise of std sigma, its
  // certified L2 radius at x can never exceed x_0, the true distance to f's decision boundary.
  const float x0 = 0.5f, sigma = 0.5f;
  const std::size_t D = 4;
  auto noisy_copies = [&](std::size_t first, std::size_t count) {  // copies [first, first + count): [count, 1, D]
    Tensor<float, 3> x = xt::zeros<float>({count, std::size_t(1), D});
    for (std::size_t c = 0; c < count; ++c) x(c, 0, 0) = x0;
    // RS-RP noise; copy i draws from stream (seed, first + i), so results do not depend on batch size.
    noise::add_embedding_noise(x, Tensor<int, 2>{}, noise::EmbeddingNoise::gaussian, sigma, /*seed=*/9, first, 0);
    return x;
  };
  auto base_classifier = [](const Tensor<float, 3>& x, std::vector<std::int64_t>& labels) {
    for (std::size_t c = 0; c < x.shape()[0]; ++c) labels.push_back(x(c, 0, 0) > 0 ? 1 : 0);
  };
  auto g = smooth::make_smoothed_classifier<float>(smooth::combine(noisy_copies, base_classifier), /*num_classes=*/2,
                                                    sigma, /*batch_size=*/256);
  const smooth::Prediction p = g.predict(/*n=*/1000, /*alpha=*/0.001);
  const smooth::Certificate c = g.certify(/*n0=*/100, /*n=*/10000, /*alpha=*/0.001);
  std::printf("predict %lld (p = %.2g); certify %lld, p_lower %.4f, radius %.4f (boundary at %.1f)\n",
              static_cast<long long>(p.label), p.p_value, static_cast<long long>(c.label), c.p_lower, c.radius, x0);
  // P(f = 1) = Phi(x0 / sigma) = 0.841: the radius is close to, and below, the distance 0.5.
  bool ok = p.label == 1 && c.label == 1 && c.radius > 0.4 && c.radius < x0;

  // Many inputs at once: input i sits at distance xs[i] from the boundary, and its copies draw from the
  // streams (seed, input i, copy): independent across inputs by construction.
  const std::vector<float> xs = {0.5f, 1.0f, -0.75f};
  auto classify = [&](std::size_t input, std::size_t first, std::size_t count, std::vector<std::int64_t>& labels) {
    for (std::size_t k = 0; k < count; ++k) {
      Tensor<float, 3> x = xt::zeros<float>({std::size_t(1), std::size_t(1), D});
      x(0, 0, 0) = xs[input];
      noise::add_embedding_noise(x, Tensor<int, 2>{}, noise::EmbeddingNoise::gaussian, sigma, /*seed=*/9,
                                 /*first_example=*/input, /*copy=*/first + k);
      labels.push_back(x(0, 0, 0) > 0 ? 1 : 0);
    }
  };
  auto batch = smooth::make_smoothed_batch<float>(classify, xs.size(), /*num_classes=*/2, sigma, /*batch_size=*/256);
  const std::vector<smooth::Certificate> certs = batch.certify(/*n0=*/100, /*n=*/10000, /*alpha=*/0.001);
  for (std::size_t i = 0; i < xs.size(); ++i)
    ok = ok && certs[i].label == (xs[i] > 0 ? 1 : 0) && certs[i].radius < std::abs(xs[i]) && certs[i].radius > 0.0;
  return ok ? 0 : 1;
}
