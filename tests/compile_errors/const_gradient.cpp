// expect: take grad_x as GradientView<T>& grad_x
// An objective whose gradient parameter is const could not write dLoss/dx: a compile error, not an empty
// gradient at run time.
#include <robustxlt/perturb.hpp>
int main() {
  using namespace robustxlt;
  const Tensor<float, 3> x0 = xt::zeros<float>({1, 2, 3});
#ifdef ROBUSTXLT_CONTROL
  auto objective = [](const Tensor<float, 3>& x, GradientView<float>& grad) {
    grad = x;
    return 0.0f;
  };
#else
  auto objective = [](const Tensor<float, 3>&, const Tensor<float, 3>&) { return 0.0f; };
#endif
  perturb::PGDOptions<float> options;
  options.step_size = 0.1f;
  perturb::pgd(objective, x0, Tensor<int, 2>{}, options);
}
