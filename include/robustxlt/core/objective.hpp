#pragma once
// The protocol between perturbers and models. A perturber never sees a model, only an objective:
//
//   T objective(const Tensor<T, 3>& x, GradientView<T>& grad_x, const Evaluation<T>& request)
//
// x [B, T, D] are input embeddings (clean embeddings + delta). The objective returns the loss at x (unscaled)
// and writes dLoss/dx, multiplied by request.scale, into grad_x: a writable view, of x's shape, of a buffer
// the perturber owns (zeroed before each call), so a model can write its input gradient there without a
// copy. grad_x cannot be resized: assigning an expression of another shape throws ShapeError (declared as
// a reference, as above, the view is the perturber's own, which also catches an assignment that reshapes
// it to another shape of the same size). When request.parameter_gradients is true the objective also
// accumulates (+=) the gradients of request.scale * loss into the model's parameters; when false it must
// leave them untouched (an attack step), and may skip computing them. An objective callable with only
// (x, grad_x) is accepted for pure attacks: it is never asked for parameter gradients.

#include <algorithm>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <xtensor/xadapt.hpp>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/tensor.hpp"

namespace robustxlt {

// A writable [B, T, D] view of a buffer someone else owns: an xtensor adaptor, so element access, data(),
// assignment from xtensor expressions and xt:: functions work on it, but it never allocates.
template <class T>
using GradientView =
    xt::xtensor_adaptor<xt::xbuffer_adaptor<T*, xt::no_ownership, std::allocator<T>>, 3, xt::layout_type::row_major>;

// A GradientView of a contiguous tensor's buffer.
template <class T>
GradientView<T> gradient_view(Tensor<T, 3>& t) {
  return xt::adapt<xt::layout_type::row_major>(t.data(), t.size(), xt::no_ownership(), t.shape());
}

template <class T>
struct Evaluation {
  bool parameter_gradients = false;  // accumulate parameter gradients of scale * loss
  T scale = T(1);                    // weight of this evaluation's loss in the training objective
};

namespace detail {

template <class F, class T>
inline constexpr bool is_full_objective =
    std::is_invocable_r_v<T, F&, const Tensor<T, 3>&, GradientView<T>&, const Evaluation<T>&>;
template <class F, class T>
inline constexpr bool is_attack_objective = std::is_invocable_r_v<T, F&, const Tensor<T, 3>&, GradientView<T>&>;

// The declared type of the gradient parameter of an objective whose call operator is not a template (a
// lambda with explicit parameter types, a function pointer, a functor with one operator()); void for
// generic lambdas and overloaded functors, whose parameter types are only known per call.
template <class M>
struct gradient_parameter_of_member {
  using type = void;
};
template <class R, class C, class X, class G, class... Rest>
struct gradient_parameter_of_member<R (C::*)(X, G, Rest...)> {
  using type = G;
};
template <class R, class C, class X, class G, class... Rest>
struct gradient_parameter_of_member<R (C::*)(X, G, Rest...) const> {
  using type = G;
};
template <class R, class C, class X, class G, class... Rest>
struct gradient_parameter_of_member<R (C::*)(X, G, Rest...) noexcept> {
  using type = G;
};
template <class R, class C, class X, class G, class... Rest>
struct gradient_parameter_of_member<R (C::*)(X, G, Rest...) const noexcept> {
  using type = G;
};
template <class F, class = void>
struct gradient_parameter {
  using type = void;
};
template <class F>
struct gradient_parameter<F, std::void_t<decltype(&F::operator())>> : gradient_parameter_of_member<decltype(&F::operator())> {};
template <class R, class X, class G, class... Rest>
struct gradient_parameter<R (*)(X, G, Rest...), void> {
  using type = G;
};

// Calls either form of objective with a view of grad, which it first sizes like x and zeroes.
template <class T, class F>
T evaluate(const char* where, F& f, const Tensor<T, 3>& x, Tensor<T, 3>& grad, const Evaluation<T>& request) {
  constexpr bool full = is_full_objective<F, T>, attack = is_attack_objective<F, T>;
  // A const or by-value Tensor gradient parameter would accept the view through a converting copy and
  // leave the perturber's buffer empty; a Tensor<T, 3>& one is the 0.1 protocol. Both are read from the
  // declared parameter type, so a generic objective (auto& grad_x) is never compiled against a Tensor.
  using G = typename gradient_parameter<std::decay_t<F>>::type;
  constexpr bool tensor_parameter = std::is_same_v<std::decay_t<G>, Tensor<T, 3>>;
  constexpr bool owning_tensor =
      tensor_parameter && std::is_lvalue_reference_v<G> && !std::is_const_v<std::remove_reference_t<G>>;
  constexpr bool const_tensor = tensor_parameter && !owning_tensor;
  static_assert(!const_tensor,
                "objective: take grad_x as GradientView<T>& grad_x (the objective writes dLoss/dx into it); a const "
                "or by-value Tensor gradient parameter would leave the perturber's gradient empty");
  static_assert(const_tensor || !owning_tensor || full || attack,
                "objective: since robustxlt 0.2 grad_x is a view of the perturber's buffer: declare it as "
                "GradientView<T>& grad_x instead of Tensor<T, 3>& grad_x (the body can stay as it is)");
  static_assert(const_tensor || owning_tensor || full || attack,
                "objective must be callable as T(const Tensor<T,3>& x, GradientView<T>& grad_x[, const "
                "Evaluation<T>&])");
  if constexpr (full || attack) {
    if (grad.shape() != x.shape()) grad = Tensor<T, 3>::from_shape(x.shape());
    std::fill_n(grad.data(), grad.size(), T(0));
    GradientView<T> view = gradient_view(grad);
    if constexpr (!full) {
      if (request.parameter_gradients)
        fail(where, " needs parameter gradients, so the objective must accept an Evaluation<T> argument; got a "
             "callable taking (x, grad_x) only");
    }
    T loss;
    try {
      if constexpr (full)
        loss = static_cast<T>(f(x, view, request));
      else
        loss = static_cast<T>(f(x, view));
    } catch (const std::runtime_error& e) {
      // Assigning an expression of another size makes the view try to resize its buffer, which it cannot
      // do; the view (when the objective took it by reference) then has the shape it asked for.
      if (view.shape() != x.shape())
        fail<ShapeError>(where, ": the objective assigned an expression of shape ", shape_string(view.shape()),
                         " to grad_x, a view of shape ", shape_string(x.shape()), " (the shape of x)");
      if (dynamic_cast<const Error*>(&e) == nullptr && std::string(e.what()).find("not resizable") != std::string::npos)
        fail<ShapeError>(where, ": the objective assigned an expression of another shape to grad_x, a view of shape ",
                         shape_string(x.shape()), " (the shape of x) that cannot be resized");
      throw;
    }
    if (view.shape() != x.shape())
      fail<ShapeError>(where, ": the objective reshaped grad_x to ", shape_string(view.shape()), "; it must keep the shape of x ",
                       shape_string(x.shape()));
    return loss;
  } else {
    (void)where, (void)f, (void)x, (void)grad, (void)request;
    return T(0);
  }
}

}  // namespace detail
}  // namespace robustxlt
