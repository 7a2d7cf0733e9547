#pragma once
// Perturbation methods over an objective (see core/objective.hpp): FGSM, PGD, FreeLB, SMART, and the
// min-max training step. Inputs: clean embeddings x0 [B, T, D] and a padding mask [B, T] (empty = all
// tokens). Every method returns delta with zeros at padded positions.

#include <cmath>
#include <cstdint>
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
  uniform_ball,  // exactly uniform in the epsilon ball (uniform_ball_start)
};

template <class T>
struct PGDOptions {
  Ball<T> ball{};               // norm, granularity and epsilon (> 0)
  T alpha = T(0);               // step size (> 0)
  int steps = 1;                // K >= 1
  Start start = Start::zero;
  std::uint64_t seed = 0;       // for the random start
  bool record_losses = false;   // also evaluate the loss after the last step
  NonFinitePolicy on_non_finite = NonFinitePolicy::throw_error;
};

template <class T>
struct AttackResult {
  Tensor<T, 3> delta;     // [B, T, D]
  std::vector<T> losses;  // loss at the start and after each step (K + 1 values) when record_losses;
                          // otherwise the K losses at the points where gradients were taken
};

namespace detail {

template <class T>
void check_steps(const char* where, int steps, T alpha) {
  if (steps < 1) robustxlt::detail::fail(where, ": steps must be >= 1, got ", steps);
  if (!(alpha > T(0)) || !std::isfinite(alpha)) robustxlt::detail::fail(where, ": alpha must be > 0, got ", alpha);
}

// x = x0 + delta
template <class T>
void add_into(Tensor<T, 3>& x, const T* x0, const Tensor<T, 3>& delta) {
  if (x.shape() != delta.shape()) x = Tensor<T, 3>::from_shape(delta.shape());
  simd::add(delta.size(), x0, delta.data(), x.data());
}

// Validates the gradient an objective returned: shape, and finiteness under the policy.
template <class T>
void check_gradient(const char* where, Tensor<T, 3>& grad, const Tensor<T, 3>& like, NonFinitePolicy policy) {
  if (grad.shape() != like.shape())
    robustxlt::detail::fail<ShapeError>(where, ": objective returned a gradient of shape ", shape_string(grad.shape()),
                                        ", expected ", shape_string(like.shape()));
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

}  // namespace detail

namespace detail {

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

}  // namespace detail

// Projected gradient ascent (Madry et al.): K steps of delta <- Proj(delta + alpha * dir(grad)), each at a
// gradient of the objective at x0 + delta, never asking for parameter gradients. start_delta, when given,
// replaces opt.start (it is projected onto the ball first).
// Throws InvalidArgument (epsilon, alpha, steps), ShapeError (x0, mask, returned gradient), NumericError.
template <class T, class F, class E, class M>
AttackResult<T> pgd(F&& objective, const E& x0, const M& mask, const PGDOptions<T>& opt,
                    const Tensor<T, 3>* start_delta = nullptr) {
  detail::check_steps("pgd", opt.steps, opt.alpha);
  detail::check_ball("pgd", opt.ball, false);
  const auto v = detail::view3(x0, "pgd", "embeddings");
  TokenMask::from(mask, v.B, v.T, "pgd");  // rejects a wrongly shaped mask before any model call
  AttackResult<T> r;
  r.delta = detail::initial_delta("pgd", v.B, v.T, v.D, start_delta);
  if (start_delta) project(r.delta, mask, opt.ball);
  else if (opt.start == Start::uniform_ball) uniform_ball_start(r.delta, mask, opt.ball, opt.seed);
  Tensor<T, 3> x, grad;
  for (int k = 0; k < opt.steps; ++k) {
    detail::add_into(x, v.data, r.delta);
    const T loss = robustxlt::detail::evaluate(objective, x, grad, Evaluation<T>{false, T(1)});
    detail::check_gradient("pgd", grad, r.delta, opt.on_non_finite);
    r.losses.push_back(loss);
    step_and_project(r.delta, grad, mask, opt.ball, opt.alpha);
  }
  if (opt.record_losses) {
    detail::add_into(x, v.data, r.delta);
    r.losses.push_back(robustxlt::detail::evaluate(objective, x, grad, Evaluation<T>{false, T(1)}));
  }
  return r;
}

// Fast gradient (sign) method: one step of size epsilon from zero, delta = eps * dir(grad(x0)).
template <class T, class F, class E, class M>
AttackResult<T> fgsm(F&& objective, const E& x0, const M& mask, const Ball<T>& ball, bool record_losses = false) {
  PGDOptions<T> opt;
  opt.ball = ball;
  opt.alpha = ball.epsilon;
  opt.steps = 1;
  opt.record_losses = record_losses;
  detail::check_ball("fgsm", ball, false);
  return pgd(objective, x0, mask, opt);
}

template <class T>
struct FreeLBOptions {
  Norm norm = Norm::l2;          // the norm is per sequence, as FreeLB
  int steps = 3;                 // K ascent steps, each a full forward/backward
  T adv_lr = T(1e-1);            // ascent step size (> 0)
  T max_norm = T(0);             // projection radius; 0 = unbounded (no projection)
  T init_magnitude = T(1e-1);    // eps0 of freelb_start; 0 = start at zero
  std::uint64_t seed = 0;
  NonFinitePolicy on_non_finite = NonFinitePolicy::throw_error;
};

template <class T>
struct FreeLBResult {
  Tensor<T, 3> delta;     // after the last ascent update ([B, T, D])
  std::vector<T> losses;  // loss at each of the K evaluations
  T mean_loss = T(0);     // (1/K) sum of the losses: the training loss FreeLB reports
};

// FreeLB (Zhu et al. 2020): K evaluations at x0 + delta_k, each accumulating parameter gradients of
// loss / K, with a normalised ascent step (g / ||g|| per sequence) and projection between them; the caller
// then applies its optimizer to the accumulated gradients. start_delta, when given, replaces freelb_start.
// Throws as pgd.
template <class T, class F, class E, class M>
FreeLBResult<T> freelb(F&& objective, const E& x0, const M& mask, const FreeLBOptions<T>& opt,
                       const Tensor<T, 3>* start_delta = nullptr) {
  detail::check_steps("freelb", opt.steps, opt.adv_lr);
  if (!(opt.max_norm >= T(0)) || !std::isfinite(opt.max_norm))
    robustxlt::detail::fail("freelb: max_norm must be >= 0 (0 = unbounded), got ", opt.max_norm);
  const auto v = detail::view3(x0, "freelb", "embeddings");
  const TokenMask m = TokenMask::from(mask, v.B, v.T, "freelb");
  FreeLBResult<T> r;
  r.delta = detail::initial_delta("freelb", v.B, v.T, v.D, start_delta);
  if (!start_delta) freelb_start(r.delta, mask, opt.norm, opt.init_magnitude, opt.seed);
  else detail::zero_padding(r.delta.data(), m, v.D);
  const bool bounded = opt.max_norm > T(0);
  if (bounded) project(r.delta, mask, Ball<T>{opt.norm, Granularity::sequence, opt.max_norm});
  const T scale = T(1) / static_cast<T>(opt.steps);
  Tensor<T, 3> x, grad;
  for (int k = 0; k < opt.steps; ++k) {
    detail::add_into(x, v.data, r.delta);
    const T loss = robustxlt::detail::evaluate(objective, x, grad, Evaluation<T>{true, scale});
    detail::check_gradient("freelb", grad, r.delta, opt.on_non_finite);
    r.losses.push_back(loss);
    r.mean_loss += loss * scale;
    if (k + 1 == opt.steps) break;
    step_and_project(r.delta, grad, mask, Ball<T>{opt.norm, Granularity::sequence, opt.max_norm}, opt.adv_lr,
                     Direction::normalized, bounded);
  }
  return r;
}

template <class T>
struct SMARTOptions {
  T sigma = T(1e-5);       // std of the Gaussian start
  T step_size = T(1e-3);   // ascent step on the symmetric KL
  int steps = 1;           // K ascent steps
  T epsilon = T(1);        // delta is scaled to per-token max-abs epsilon after each step (1 = SMART's rule)
  T norm_tiny = T(1e-6);   // added to the per-token max before dividing
  std::uint64_t seed = 0;
  NonFinitePolicy on_non_finite = NonFinitePolicy::throw_error;
};

// SMART's virtual adversarial perturbation (Jiang et al. 2020): delta ~ N(0, sigma^2), then K steps
// delta <- epsilon * normalize_per_token_max(delta + step_size * grad), where the objective is a divergence
// between the clean and the perturbed predictions (e.g. symmetric KL with the clean logits held fixed).
// Never asks for parameter gradients.
template <class T, class F, class E, class M>
AttackResult<T> smart_perturbation(F&& divergence, const E& x0, const M& mask, const SMARTOptions<T>& opt) {
  detail::check_steps("smart_perturbation", opt.steps, opt.step_size);
  if (!(opt.epsilon > T(0))) robustxlt::detail::fail("smart_perturbation: epsilon must be > 0, got ", opt.epsilon);
  const auto v = detail::view3(x0, "smart_perturbation", "embeddings");
  TokenMask::from(mask, v.B, v.T, "smart_perturbation");  // rejects a wrongly shaped mask before any model call
  AttackResult<T> r;
  r.delta = xt::zeros<T>({v.B, v.T, v.D});
  gaussian_start(r.delta, mask, opt.sigma, opt.seed);
  Tensor<T, 3> x, grad;
  for (int k = 0; k < opt.steps; ++k) {
    detail::add_into(x, v.data, r.delta);
    r.losses.push_back(robustxlt::detail::evaluate(divergence, x, grad, Evaluation<T>{false, T(1)}));
    detail::check_gradient("smart_perturbation", grad, r.delta, opt.on_non_finite);
    simd::axpy(grad.size(), opt.step_size, grad.data(), r.delta.data());
    normalize_per_token_max(r.delta, mask, opt.norm_tiny);
    if (opt.epsilon != T(1)) simd::scale(r.delta.size(), opt.epsilon, r.delta.data());
  }
  return r;
}

template <class T>
struct StepLosses {
  T clean = T(0);        // loss at x0
  T adversarial = T(0);  // loss (or divergence) at x0 + delta
  T total = T(0);        // clean_weight * clean + adversarial_weight * adversarial
  Tensor<T, 3> delta;    // the perturbation used
};

// One "min over parameters of max over delta" step, leaving the optimizer step to the caller:
//   1. clean evaluation at x0 with parameter gradients (weight clean_weight);
//   2. PGD on the same objective, without parameter gradients (with a zero start the clean gradient serves
//      as the first step's gradient, so PGD-K costs K - 1 extra attack evaluations);
//   3. adversarial evaluation at x0 + delta with parameter gradients (weight adversarial_weight).
// Parameter gradients accumulate clean_weight * clean + adversarial_weight * adversarial.
template <class T, class F, class E, class M>
StepLosses<T> adversarial_training_step(F&& objective, const E& x0, const M& mask, const PGDOptions<T>& attack,
                                        T adversarial_weight = T(1), T clean_weight = T(1)) {
  detail::check_steps("adversarial_training_step", attack.steps, attack.alpha);
  detail::check_ball("adversarial_training_step", attack.ball, false);
  if (!(adversarial_weight >= T(0)) || !(clean_weight >= T(0)))
    robustxlt::detail::fail("adversarial_training_step: weights must be >= 0, got clean ", clean_weight,
                            " and adversarial ", adversarial_weight);
  const auto v = detail::view3(x0, "adversarial_training_step", "embeddings");
  TokenMask::from(mask, v.B, v.T, "adversarial_training_step");  // rejects a wrongly shaped mask before any model call
  StepLosses<T> out;
  out.delta = xt::zeros<T>({v.B, v.T, v.D});
  Tensor<T, 3> x, grad;
  detail::add_into(x, v.data, out.delta);
  out.clean = robustxlt::detail::evaluate(objective, x, grad, Evaluation<T>{clean_weight > T(0), clean_weight});
  int k = 0;
  if (attack.start == Start::zero && clean_weight > T(0)) {
    // grad holds clean_weight * dLoss/dx at delta = 0: a positive multiple, the same direction.
    detail::check_gradient("adversarial_training_step", grad, out.delta, attack.on_non_finite);
    step_and_project(out.delta, grad, mask, attack.ball, attack.alpha);
    k = 1;
  } else if (attack.start == Start::uniform_ball) {
    uniform_ball_start(out.delta, mask, attack.ball, attack.seed);
  }
  for (; k < attack.steps; ++k) {
    detail::add_into(x, v.data, out.delta);
    robustxlt::detail::evaluate(objective, x, grad, Evaluation<T>{false, T(1)});
    detail::check_gradient("adversarial_training_step", grad, out.delta, attack.on_non_finite);
    step_and_project(out.delta, grad, mask, attack.ball, attack.alpha);
  }
  detail::add_into(x, v.data, out.delta);
  out.adversarial =
      robustxlt::detail::evaluate(objective, x, grad, Evaluation<T>{adversarial_weight > T(0), adversarial_weight});
  out.total = clean_weight * out.clean + adversarial_weight * out.adversarial;
  return out;
}

// SMART's regulariser term: finds the virtual adversarial delta with smart_perturbation, then evaluates the
// divergence at x0 + delta with parameter gradients weighted by alpha (the caller has already taken the
// task loss's gradients). Returns the divergence at the final delta and the delta.
template <class T, class F, class E, class M>
StepLosses<T> smart_regularizer(F&& divergence, const E& x0, const M& mask, const SMARTOptions<T>& opt, T alpha) {
  if (!(alpha >= T(0)) || !std::isfinite(alpha)) robustxlt::detail::fail("smart_regularizer: alpha must be >= 0, got ", alpha);
  const auto v = detail::view3(x0, "smart_regularizer", "embeddings");
  AttackResult<T> a = smart_perturbation(divergence, x0, mask, opt);
  StepLosses<T> out;
  Tensor<T, 3> x, grad;
  detail::add_into(x, v.data, a.delta);
  out.adversarial = robustxlt::detail::evaluate(divergence, x, grad, Evaluation<T>{alpha > T(0), alpha});
  out.total = alpha * out.adversarial;
  out.delta = std::move(a.delta);
  return out;
}

}  // namespace robustxlt::perturb
