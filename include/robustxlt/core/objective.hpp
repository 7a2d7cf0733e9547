#pragma once
// The protocol between perturbers and models. A perturber never sees a model, only an objective:
//
//   T objective(const Tensor<T, 3>& x, Tensor<T, 3>& grad_x, const Evaluation<T>& request)
//
// x [B, T, D] are input embeddings (clean embeddings + delta). The objective returns the loss at x (unscaled)
// and writes dLoss/dx, multiplied by request.scale, into grad_x (resized by the objective if needed). When
// request.parameter_gradients is true it also accumulates (+=) the gradients of request.scale * loss into the
// model's parameters; when false it must leave them untouched (an attack step), and may skip computing them.
// An objective callable with only (x, grad_x) is accepted for pure attacks: it is never asked for
// parameter gradients.

#include <type_traits>

#include "robustxlt/core/tensor.hpp"

namespace robustxlt {

template <class T>
struct Evaluation {
  bool parameter_gradients = false;  // accumulate parameter gradients of scale * loss
  T scale = T(1);                    // weight of this evaluation's loss in the training objective
};

namespace detail {

template <class F, class T>
inline constexpr bool is_full_objective =
    std::is_invocable_r_v<T, F&, const Tensor<T, 3>&, Tensor<T, 3>&, const Evaluation<T>&>;
template <class F, class T>
inline constexpr bool is_attack_objective = std::is_invocable_r_v<T, F&, const Tensor<T, 3>&, Tensor<T, 3>&>;

// Calls either form of objective.
template <class T, class F>
T evaluate(F& f, const Tensor<T, 3>& x, Tensor<T, 3>& grad, const Evaluation<T>& request) {
  static_assert(!std::is_invocable_v<F&, const Tensor<T, 3>&, const Tensor<T, 3>&, const Evaluation<T>&> &&
                    !std::is_invocable_v<F&, const Tensor<T, 3>&, const Tensor<T, 3>&>,
                "objective: grad_x must be taken as a non-const reference, Tensor<T, 3>& grad_x (the objective writes "
                "dLoss/dx into it); a const or by-value gradient parameter would leave the perturber's gradient empty");
  if constexpr (is_full_objective<F, T>) {
    return static_cast<T>(f(x, grad, request));
  } else {
    static_assert(is_attack_objective<F, T>,
                  "objective must be callable as T(const Tensor<T,3>&, Tensor<T,3>&[, const Evaluation<T>&])");
    if (request.parameter_gradients)
      fail("objective: this method needs parameter gradients, so the objective must accept an Evaluation<T> "
           "argument; got a callable taking (x, grad_x) only");
    return static_cast<T>(f(x, grad));
  }
}

}  // namespace detail
}  // namespace robustxlt
