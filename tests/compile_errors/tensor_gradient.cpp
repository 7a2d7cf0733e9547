// expect: since robustxlt 0.2 grad_x is a view of the perturber's buffer
// An objective written for 0.1, whose gradient parameter is an owning Tensor<T, 3>&, gets one message saying
// what to declare instead.
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
  auto objective = [](const Tensor<float, 3>& x, Tensor<float, 3>& grad) {
    grad = x;
    return 0.0f;
  };
#endif
  perturb::PGDOptions<float> options;
  options.step_size = 0.1f;
  perturb::pgd(objective, x0, Tensor<int, 2>{}, options);
}
