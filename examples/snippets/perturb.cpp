#include <robustxlt/robustxlt.hpp>
#include <cmath>
#include <cstdio>
using namespace robustxlt;

int main() {
  // Any model plugs in as an objective: loss(x) and dLoss/dx for embeddings x [B, T, D]. Here the linear
  // loss sum <w, x>, whose worst case in a per-token L2 ball of radius eps is delta = eps * w / ||w||.
  const Tensor<float, 3> w = {{{3, 4}, {0, -2}}}, x0 = xt::zeros<float>({1, 2, 2});
  auto linear = [&](const Tensor<float, 3>& x, GradientView<float>& grad) {
    grad = w;
    return static_cast<float>(xt::sum(w * x)());
  };
  perturb::PGDOptions<float> pgd;
  pgd.ball = {perturb::Norm::l2, perturb::Granularity::token, /*epsilon=*/0.5f};
  pgd.step_size = 0.2f;
  pgd.steps = 3;
  const auto attack = perturb::pgd(linear, x0, Tensor<int, 2>{}, pgd);  // empty mask: every position is a token
  const bool reached = std::abs(attack.delta(0, 0, 0) - 0.3f) < 1e-6f && std::abs(attack.delta(0, 0, 1) - 0.4f) < 1e-6f &&
                       std::abs(attack.delta(0, 1, 1) + 0.5f) < 1e-6f;
  std::printf("PGD reached the maximiser: %d\n", reached);
  return reached ? 0 : 1;
}
