// expect: the options' scalar type must be the embeddings'
// Float options with double embeddings stop at one static_assert that says so.
#include <robustxlt/perturb.hpp>
int main() {
  using namespace robustxlt;
  const Tensor<double, 3> x0 = xt::zeros<double>({1, 2, 3});
  auto objective = [](const Tensor<double, 3>& x, GradientView<double>& grad) {
    grad = x;
    return 0.0;
  };
#ifdef ROBUSTXLT_CONTROL
  perturb::PGDOptions<double> options;
  options.step_size = 0.1;
#else
  perturb::PGDOptions<float> options;
  options.step_size = 0.1f;
#endif
  perturb::pgd(objective, x0, Tensor<int, 2>{}, options);
}
