// expect: a mask must hold an integral or bool type
// A floating mask (0.5 would have counted as a token) does not compile; an integral one does.
#include <robustxlt/perturb.hpp>
int main() {
  using namespace robustxlt;
  Tensor<float, 3> delta = xt::zeros<float>({1, 2, 3});
#ifdef ROBUSTXLT_CONTROL
  const Tensor<int, 2> mask = {{1, 0}};
#else
  const Tensor<float, 2> mask = {{1.0f, 0.5f}};
#endif
  perturb::project(delta, mask, Ball<float>{});
}
