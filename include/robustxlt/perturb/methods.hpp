#pragma once
// Perturbation methods over an objective (see core/objective.hpp): FGSM, PGD, FreeLB, SMART, and the
// min-max training steps. Every method is called the same way:
//
//   Result<T> method(objective, x0, mask, options, BatchIndex{first_example, step})
//
// x0 [B, T, D] are the clean embeddings (an xtensor container or an xt::adapt view of the caller's buffer),
// mask [B, T] the padding mask (1 = token, 0 = padding, any integral or bool tensor; empty = all tokens),
// options one struct per method whose radius is a Ball (core/norms.hpp: epsilon 0 = no perturbation,
// Ball::unbounded = no projection) and whose ascent step is `step_size`. The BatchIndex keys the random
// starts: sequence b draws from (options.seed, first_example + b, step), as the noise samplers do, so a
// training loop passes its step and its batch's first example index. Every method returns delta with zeros
// at padded positions, and throws, before calling the objective:
//   InvalidArgument (an option out of range), ShapeError (x0 not rank 3 and contiguous, a mask of another
//   shape), NumericError (NaN or Inf in x0);
// and, after an objective call, ShapeError (a gradient of another shape) or NumericError (a non-finite
// gradient, unless on_non_finite = skip_example).

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/objective.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"
#include "robustxlt/perturb/kernels.hpp"

namespace robustxlt::perturb {

// What to do when the objective returns a non-finite gradient.
enum class NonFinitePolicy {
  throw_error,   // throw NumericError naming the sequence (default)
  skip_example,  // treat that sequence's gradient as zero for this step: its delta does not move
};

enum class Start {
  zero,          // delta = 0
  uniform_ball,  // exactly uniform in the ball (uniform_ball_start)
};

template <class T>
struct FGSMOptions {
  Ball<T> ball{};              // the step is epsilon * direction(grad); bounded, epsilon >= 0
  bool record_losses = false;  // also evaluate the loss at x0 + delta
  NonFinitePolicy on_non_finite = NonFinitePolicy::throw_error;
};

template <class T>
struct PGDOptions {
  Ball<T> ball{};               // norm, granularity and epsilon (>= 0; 0 = no perturbation)
  T step_size = T(0);           // ascent step (> 0)
  int steps = 1;                // K >= 1
  Start start = Start::zero;
  std::uint64_t seed = 0;       // for the random start, with the call's BatchIndex
  bool record_losses = false;   // also evaluate the loss after the last step
  NonFinitePolicy on_non_finite = NonFinitePolicy::throw_error;
};

template <class T>
struct FreeLBOptions {
  // The projection ball; FreeLB's reference bound is per sequence, and unbounded by default.
  Ball<T> ball = Ball<T>::unbounded(Norm::l2, Granularity::sequence);
  int steps = 3;                 // K ascent steps, each a full forward/backward
  T step_size = T(1e-1);         // ascent step (> 0)
  T init_magnitude = T(1e-1);    // eps0 of freelb_start; 0 = start at zero
  std::uint64_t seed = 0;
  NonFinitePolicy on_non_finite = NonFinitePolicy::throw_error;
};

template <class T>
struct SMARTOptions {
  // After each step delta is scaled onto this ball's sphere (normalize_to_ball); SMART's rule is a
  // per-token Linf ball of radius 1.
  Ball<T> ball{Norm::linf, Granularity::token, T(1)};
  T sigma = T(1e-5);       // std of the Gaussian start
  T step_size = T(1e-3);   // ascent step on the divergence (> 0)
  int steps = 1;           // K ascent steps
  T norm_tiny = T(1e-6);   // added to each group's norm before dividing
  std::uint64_t seed = 0;
  NonFinitePolicy on_non_finite = NonFinitePolicy::throw_error;
};

template <class T>
struct AdversarialStepOptions {
  PGDOptions<T> attack{};       // the inner maximisation
  T clean_weight = T(1);        // weight of the clean loss in the parameter gradients (>= 0)
  T adversarial_weight = T(1);  // weight of the adversarial loss (>= 0)
};

// What every method returns.
template <class T>
struct Result {
  Tensor<T, 3> delta;      // [B, T, D] the perturbation found (zero at padding)
  std::vector<T> losses;   // the loss (or divergence) at each evaluation the method made, in order
  T loss = T(0);           // the training loss the method stands for: the last entry of losses for the
                           // attacks, FreeLB's mean over its K evaluations, the weighted total of a
                           // training step
  T clean = T(0);          // training steps: the loss at x0
  T adversarial = T(0);    // training steps: the loss at x0 + delta
};

namespace detail {

// Checks the options' scalar type against the embeddings' at compile time, the embeddings at run time, and
// parses the mask once: what every method does at entry.
template <class T, class E, class M>
auto enter(const char* where, const E& x0, const M& mask) {
  using X = std::remove_const_t<typename std::decay_t<E>::value_type>;
  static_assert(std::is_same_v<X, T>,
                "robustxlt::perturb: the options' scalar type must be the embeddings' (float options with float "
                "embeddings, double with double), e.g. PGDOptions<double> for a Tensor<double, 3>");
  const auto v = view3(x0, where, "embeddings");
  check_finite(where, "embeddings", v);
  struct Entry {
    decltype(v) x0;
    TokenMask mask;
  };
  return Entry{v, TokenMask::from(mask, v.B, v.T, where)};
}

template <class T>
void check_steps(const char* where, int steps, T step_size) {
  if (steps < 1) robustxlt::detail::fail(where, ": steps must be >= 1, got ", steps);
  check_step_size(where, step_size);
}

// x = x0 + delta
template <class T>
void add_into(Tensor<T, 3>& x, const T* x0, const Tensor<T, 3>& delta) {
  if (x.shape() != delta.shape()) x = Tensor<T, 3>::from_shape(delta.shape());
  simd::add(delta.size(), x0, delta.data(), x.data());
}

// Validates the finiteness of the gradient an objective returned, under the policy (its shape is x's by
// construction: the objective writes into a view it cannot resize, core/objective.hpp).
template <class T>
void check_gradient(const char* where, Tensor<T, 3>& grad, const Tensor<T, 3>& like, NonFinitePolicy policy) {
  if (simd::all_finite(grad.size(), grad.data())) return;
  const std::size_t B = like.shape()[0], Tn = like.shape()[1], D = like.shape()[2];
  for (std::size_t b = 0; b < B; ++b) {
    T* row = grad.data() + b * Tn * D;
    if (simd::all_finite(Tn * D, row)) continue;
    if (policy == NonFinitePolicy::throw_error)
      robustxlt::detail::fail<NumericError>(where, ": objective returned a non-finite gradient for sequence ", b,
                                            " (set on_non_finite = skip_example to leave its delta unchanged)");
    std::fill_n(row, Tn * D, T(0));
  }
}

// One evaluation of the objective at x0 + delta; checks the gradient it returns.
template <class T, class F, class V>
T evaluate_at(const char* where, F& objective, const V& x0, const Tensor<T, 3>& delta, Tensor<T, 3>& x, Tensor<T, 3>& grad,
              const Evaluation<T>& request, NonFinitePolicy policy) {
  add_into(x, x0.data, delta);
  const T loss = robustxlt::detail::evaluate(where, objective, x, grad, request);
  check_gradient(where, grad, delta, policy);
  return loss;
}

// delta = start projected onto the ball (padding zeroed), or zeros when start is null.
template <class T>
Tensor<T, 3> initial_delta(const char* where, std::size_t B, std::size_t Tn, std::size_t D, const Tensor<T, 3>* start) {
  Tensor<T, 3> delta = xt::zeros<T>({B, Tn, D});
  if (start) {
    if (start->shape() != delta.shape())
      robustxlt::detail::fail<ShapeError>(where, ": start_delta must have shape ", shape_string(delta.shape()), ", got ",
                                          shape_string(start->shape()));
    if (!simd::all_finite(start->size(), start->data()))
      robustxlt::detail::fail<NumericError>(where, ": start_delta must be finite");
    delta = *start;
  }
  return delta;
}

template <class T>
void check_pgd(const char* where, const PGDOptions<T>& opt) {
  check_steps(where, opt.steps, opt.step_size);
  check_ball(where, opt.ball, opt.start != Start::uniform_ball);
}

}  // namespace detail

// Projected gradient ascent (Madry et al.): K steps of delta <- Proj(delta + step_size * dir(grad)), each at
// a gradient of the objective at x0 + delta, never asking for parameter gradients. start_delta, when given,
// replaces opt.start (it is projected onto the ball first). losses: the K losses at the points where
// gradients were taken, plus the loss at the final delta when record_losses.
template <class T, class F, class E, class M>
Result<T> pgd(F&& objective, const E& x0, const M& mask, const PGDOptions<T>& opt, BatchIndex at = {},
              const Tensor<T, 3>* start_delta = nullptr) {
  detail::check_pgd("pgd", opt);
  const auto in = detail::enter<T>("pgd", x0, mask);
  const auto& v = in.x0;
  Result<T> r;
  r.delta = detail::initial_delta("pgd", v.B, v.T, v.D, start_delta);
  if (start_delta) project(r.delta, in.mask, opt.ball);
  else if (opt.start == Start::uniform_ball) uniform_ball_start(r.delta, in.mask, opt.ball, opt.seed, at);
  Tensor<T, 3> x, grad;
  for (int k = 0; k < opt.steps; ++k) {
    r.losses.push_back(detail::evaluate_at("pgd", objective, v, r.delta, x, grad, Evaluation<T>{false, T(1)}, opt.on_non_finite));
    step_and_project(r.delta, grad, in.mask, opt.ball, opt.step_size);
  }
  if (opt.record_losses)
    r.losses.push_back(detail::evaluate_at("pgd", objective, v, r.delta, x, grad, Evaluation<T>{false, T(1)}, opt.on_non_finite));
  r.loss = r.losses.back();
  return r;
}

// Fast gradient (sign) method: one step of size epsilon from zero, delta = eps * dir(grad(x0)) per group
// (fgsm_step). losses: the loss at x0, and at x0 + delta when record_losses.
template <class T, class F, class E, class M>
Result<T> fgsm(F&& objective, const E& x0, const M& mask, const FGSMOptions<T>& opt, BatchIndex = {}) {
  detail::check_ball("fgsm", opt.ball, false);
  const auto in = detail::enter<T>("fgsm", x0, mask);
  const auto& v = in.x0;
  Result<T> r;
  r.delta = xt::zeros<T>({v.B, v.T, v.D});
  Tensor<T, 3> x, grad;
  r.losses.push_back(detail::evaluate_at("fgsm", objective, v, r.delta, x, grad, Evaluation<T>{false, T(1)}, opt.on_non_finite));
  fgsm_step(r.delta, grad, in.mask, opt.ball);
  if (opt.record_losses)
    r.losses.push_back(detail::evaluate_at("fgsm", objective, v, r.delta, x, grad, Evaluation<T>{false, T(1)}, opt.on_non_finite));
  r.loss = r.losses.back();
  return r;
}

// FreeLB (Zhu et al. 2020): K evaluations at x0 + delta_k, each accumulating parameter gradients of
// loss / K, with a normalised ascent step (g / ||g|| per group) and projection between them; the caller
// then applies its optimizer to the accumulated gradients. start_delta, when given, replaces freelb_start.
// losses: the K losses; loss: their mean, the training loss FreeLB reports; delta: after the last update.
template <class T, class F, class E, class M>
Result<T> freelb(F&& objective, const E& x0, const M& mask, const FreeLBOptions<T>& opt, BatchIndex at = {},
                 const Tensor<T, 3>* start_delta = nullptr) {
  detail::check_steps("freelb", opt.steps, opt.step_size);
  detail::check_ball("freelb", opt.ball);
  const auto in = detail::enter<T>("freelb", x0, mask);
  const auto& v = in.x0;
  Result<T> r;
  r.delta = detail::initial_delta("freelb", v.B, v.T, v.D, start_delta);
  if (!start_delta) freelb_start(r.delta, in.mask, opt.ball.norm, opt.init_magnitude, opt.seed, at);
  project(r.delta, in.mask, opt.ball);
  const T scale = T(1) / static_cast<T>(opt.steps);
  Tensor<T, 3> x, grad;
  for (int k = 0; k < opt.steps; ++k) {
    const T loss = detail::evaluate_at("freelb", objective, v, r.delta, x, grad, Evaluation<T>{true, scale}, opt.on_non_finite);
    r.losses.push_back(loss);
    r.loss += loss * scale;
    if (k + 1 == opt.steps) break;
    step_and_project(r.delta, grad, in.mask, opt.ball, opt.step_size, Direction::normalized);
  }
  return r;
}

// SMART's virtual adversarial perturbation (Jiang et al. 2020): delta ~ N(0, sigma^2), then K steps
// delta <- normalize_to_ball(delta + step_size * grad), where the objective is a divergence between the clean
// and the perturbed predictions (e.g. symmetric KL with the clean logits held fixed). Never asks for
// parameter gradients. losses: the K divergences at the points where gradients were taken.
template <class T, class F, class E, class M>
Result<T> smart_perturbation(F&& divergence, const E& x0, const M& mask, const SMARTOptions<T>& opt, BatchIndex at = {}) {
  detail::check_steps("smart_perturbation", opt.steps, opt.step_size);
  detail::check_ball("smart_perturbation", opt.ball, false);
  if (!(opt.norm_tiny >= T(0)) || !std::isfinite(opt.norm_tiny))
    robustxlt::detail::fail("smart_perturbation: norm_tiny must be >= 0, got ", opt.norm_tiny);
  const auto in = detail::enter<T>("smart_perturbation", x0, mask);
  const auto& v = in.x0;
  Result<T> r;
  r.delta = xt::zeros<T>({v.B, v.T, v.D});
  gaussian_start(r.delta, in.mask, opt.sigma, opt.seed, at);
  Tensor<T, 3> x, grad;
  for (int k = 0; k < opt.steps; ++k) {
    r.losses.push_back(
        detail::evaluate_at("smart_perturbation", divergence, v, r.delta, x, grad, Evaluation<T>{false, T(1)}, opt.on_non_finite));
    simd::axpy(grad.size(), opt.step_size, grad.data(), r.delta.data());
    normalize_to_ball(r.delta, in.mask, opt.ball, opt.norm_tiny);
  }
  r.loss = r.losses.back();
  return r;
}

// One "min over parameters of max over delta" step, leaving the optimizer step to the caller:
//   1. clean evaluation at x0 with parameter gradients (weight clean_weight);
//   2. PGD on the same objective, without parameter gradients (with a zero start the clean gradient serves
//      as the first step's gradient, so PGD-K costs K - 1 extra attack evaluations);
//   3. adversarial evaluation at x0 + delta with parameter gradients (weight adversarial_weight).
// Parameter gradients accumulate clean_weight * clean + adversarial_weight * adversarial; loss is that
// total. losses: the clean loss, the attack's further evaluations, the adversarial loss.
template <class T, class F, class E, class M>
Result<T> adversarial_training_step(F&& objective, const E& x0, const M& mask, const AdversarialStepOptions<T>& opt,
                                    BatchIndex at = {}) {
  const PGDOptions<T>& attack = opt.attack;
  detail::check_pgd("adversarial_training_step", attack);
  if (!(opt.adversarial_weight >= T(0)) || !(opt.clean_weight >= T(0)) || !std::isfinite(opt.adversarial_weight) ||
      !std::isfinite(opt.clean_weight))
    robustxlt::detail::fail("adversarial_training_step: weights must be >= 0 and finite, got clean ", opt.clean_weight,
                            " and adversarial ", opt.adversarial_weight);
  const char* where = "adversarial_training_step";
  const auto in = detail::enter<T>(where, x0, mask);
  const auto& v = in.x0;
  Result<T> out;
  out.delta = xt::zeros<T>({v.B, v.T, v.D});
  Tensor<T, 3> x, grad;
  const bool clean_grads = opt.clean_weight > T(0);
  detail::add_into(x, v.data, out.delta);
  out.clean = robustxlt::detail::evaluate(where, objective, x, grad, Evaluation<T>{clean_grads, opt.clean_weight});
  out.losses.push_back(out.clean);
  int k = 0;
  if (attack.start == Start::zero && clean_grads) {
    // grad holds clean_weight * dLoss/dx at delta = 0: a positive multiple, the same direction.
    detail::check_gradient(where, grad, out.delta, attack.on_non_finite);
    step_and_project(out.delta, grad, in.mask, attack.ball, attack.step_size);
    k = 1;
  } else if (attack.start == Start::uniform_ball) {
    uniform_ball_start(out.delta, in.mask, attack.ball, attack.seed, at);
  }
  for (; k < attack.steps; ++k) {
    out.losses.push_back(detail::evaluate_at(where, objective, v, out.delta, x, grad, Evaluation<T>{false, T(1)}, attack.on_non_finite));
    step_and_project(out.delta, grad, in.mask, attack.ball, attack.step_size);
  }
  detail::add_into(x, v.data, out.delta);
  out.adversarial = robustxlt::detail::evaluate(where, objective, x, grad,
                                                Evaluation<T>{opt.adversarial_weight > T(0), opt.adversarial_weight});
  out.losses.push_back(out.adversarial);
  out.loss = opt.clean_weight * out.clean + opt.adversarial_weight * out.adversarial;
  return out;
}

// SMART's regulariser term: finds the virtual adversarial delta with smart_perturbation, then evaluates the
// divergence at x0 + delta with parameter gradients weighted by `weight` (lambda_s in the paper; the caller
// has already taken the task loss's gradients). adversarial and loss: the divergence at the final delta, and
// weight times it; losses: the perturbation's divergences, then that one.
template <class T, class F, class E, class M>
Result<T> smart_regularizer(F&& divergence, const E& x0, const M& mask, const SMARTOptions<T>& opt, T weight,
                            BatchIndex at = {}) {
  if (!(weight >= T(0)) || !std::isfinite(weight))
    robustxlt::detail::fail("smart_regularizer: weight must be >= 0 and finite, got ", weight);
  Result<T> out = smart_perturbation(divergence, x0, mask, opt, at);
  const auto v = detail::view3(x0, "smart_regularizer", "embeddings");
  Tensor<T, 3> x, grad;
  detail::add_into(x, v.data, out.delta);
  out.adversarial = robustxlt::detail::evaluate("smart_regularizer", divergence, x, grad, Evaluation<T>{weight > T(0), weight});
  out.losses.push_back(out.adversarial);
  out.loss = weight * out.adversarial;
  return out;
}

}  // namespace robustxlt::perturb
