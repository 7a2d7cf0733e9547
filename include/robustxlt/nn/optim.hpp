#pragma once
// Optimizers and schedules over a ParameterStore's flat buffers: AdamW (decoupled weight decay), SGD with
// momentum, linear warmup then linear decay, and global-norm gradient clipping (PyTorch semantics).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/nn/parameters.hpp"

namespace robustxlt::nn {

// Global L2 norm of all gradients; when it exceeds max_norm, scales them by max_norm / (norm + 1e-6).
// Returns the norm before clipping. Throws InvalidArgument when max_norm <= 0 and NumericError when the
// norm is NaN or Inf (gradients are left untouched then).
template <class T>
T clip_grad_norm(ParameterStore<T>& params, T max_norm) {
  if (!(max_norm > T(0))) detail::fail("clip_grad_norm: max_norm must be > 0, got ", max_norm);
  auto& g = params.grads();
  // Accumulate in double: the sum of squares of millions of float gradients loses digits in float.
  double ss = 0;
  for (std::size_t i = 0; i < params.count(); ++i) {
    const T* p = params.grad(i);
    ss += static_cast<double>(simd::dot(params.infos()[i].size, p, p));
  }
  const T norm = static_cast<T>(std::sqrt(ss));
  if (!std::isfinite(norm)) detail::fail<NumericError>("clip_grad_norm: gradient norm must be finite, got ", norm);
  if (norm > max_norm) simd::scale(g.size(), static_cast<T>(max_norm / (norm + T(1e-6))), g.data());
  return norm;
}

template <class T>
struct AdamWOptions {
  T lr = T(1e-3);
  T beta1 = T(0.9);
  T beta2 = T(0.999);
  T eps = T(1e-8);
  T weight_decay = T(0.01);
  // Apply weight decay to 1-d parameters (biases, layer-norm scales) too. PyTorch's default is true;
  // BERT recipes usually set false.
  bool decay_1d = true;

  void validate() const {
    if (!(lr >= T(0))) detail::fail("AdamW: lr must be >= 0, got ", lr);
    if (!(beta1 >= T(0) && beta1 < T(1))) detail::fail("AdamW: beta1 must be in [0, 1), got ", beta1);
    if (!(beta2 >= T(0) && beta2 < T(1))) detail::fail("AdamW: beta2 must be in [0, 1), got ", beta2);
    if (!(eps > T(0))) detail::fail("AdamW: eps must be > 0, got ", eps);
    if (!(weight_decay >= T(0))) detail::fail("AdamW: weight_decay must be >= 0, got ", weight_decay);
  }
};

// AdamW (Loshchilov and Hutter), in PyTorch's order: p *= 1 - lr * wd; m, v updated; p -= lr * m_hat /
// (sqrt(v_hat) + eps). The learning rate can change between steps (set_lr) for schedules.
template <class T>
class AdamW {
 public:
  AdamW(ParameterStore<T>& params, const AdamWOptions<T>& opt = {}) : params_(params), opt_(opt) {
    opt_.validate();
    m_.assign(params.values().size(), T(0));
    v_.assign(params.values().size(), T(0));
  }

  void set_lr(T lr) {
    if (!(lr >= T(0))) detail::fail("AdamW::set_lr: lr must be >= 0, got ", lr);
    opt_.lr = lr;
  }
  T lr() const noexcept { return opt_.lr; }
  std::size_t steps() const noexcept { return t_; }

  // One update from the current gradients (which are left as they are).
  void step() {
    if (m_.size() != params_.values().size())
      detail::fail("AdamW::step: the parameter store changed size since construction");
    ++t_;
    const T bc1 = T(1) - static_cast<T>(std::pow(static_cast<double>(opt_.beta1), static_cast<double>(t_)));
    const T bc2 = T(1) - static_cast<T>(std::pow(static_cast<double>(opt_.beta2), static_cast<double>(t_)));
    const T step_size = opt_.lr / bc1;
    const T inv_sqrt_bc2 = T(1) / std::sqrt(bc2);
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    for (std::size_t k = 0; k < params_.count(); ++k) {
      const auto& info = params_.infos()[k];
      const bool decay = opt_.weight_decay > T(0) && (opt_.decay_1d || info.shape.size() > 1);
      const T keep = decay ? T(1) - opt_.lr * opt_.weight_decay : T(1);
      T* p = params_.value(k);
      const T* g = params_.grad(k);
      T* m = m_.data() + info.offset;
      T* v = v_.data() + info.offset;
      const std::size_t n = info.size;
      std::size_t i = 0;
      const B vb1(opt_.beta1), vb1c(T(1) - opt_.beta1), vb2(opt_.beta2), vb2c(T(1) - opt_.beta2), vkeep(keep),
          vstep(step_size), vinv(inv_sqrt_bc2), veps(opt_.eps);
      for (; i + W <= n; i += W) {
        const B gi = B::load_aligned(g + i);
        const B mi = xsimd::fma(vb1, B::load_aligned(m + i), vb1c * gi);
        const B vi = xsimd::fma(vb2, B::load_aligned(v + i), vb2c * gi * gi);
        mi.store_aligned(m + i);
        vi.store_aligned(v + i);
        const B denom = xsimd::sqrt(vi) * vinv + veps;
        (B::load_aligned(p + i) * vkeep - vstep * mi / denom).store_aligned(p + i);
      }
      for (; i < n; ++i) {
        m[i] = opt_.beta1 * m[i] + (T(1) - opt_.beta1) * g[i];
        v[i] = opt_.beta2 * v[i] + (T(1) - opt_.beta2) * g[i] * g[i];
        p[i] = p[i] * keep - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + opt_.eps);
      }
    }
  }

 private:
  ParameterStore<T>& params_;
  AdamWOptions<T> opt_;
  typename ParameterStore<T>::buffer_type m_, v_;
  std::size_t t_ = 0;
};

template <class T>
struct SGDOptions {
  T lr = T(1e-2);
  T momentum = T(0);
  T weight_decay = T(0);  // L2 penalty added to the gradient, as PyTorch's SGD
  bool nesterov = false;

  void validate() const {
    if (!(lr >= T(0))) detail::fail("SGD: lr must be >= 0, got ", lr);
    if (!(momentum >= T(0))) detail::fail("SGD: momentum must be >= 0, got ", momentum);
    if (!(weight_decay >= T(0))) detail::fail("SGD: weight_decay must be >= 0, got ", weight_decay);
    if (nesterov && !(momentum > T(0))) detail::fail("SGD: nesterov needs momentum > 0, got ", momentum);
  }
};

// SGD with momentum in PyTorch's form (dampening 0): d = g + wd p; buf = mu buf + d (buf = d on the first
// step); d = nesterov ? d + mu buf : buf; p -= lr d.
template <class T>
class SGD {
 public:
  SGD(ParameterStore<T>& params, const SGDOptions<T>& opt = {}) : params_(params), opt_(opt) {
    opt_.validate();
    buf_.assign(params.values().size(), T(0));
  }

  void set_lr(T lr) {
    if (!(lr >= T(0))) detail::fail("SGD::set_lr: lr must be >= 0, got ", lr);
    opt_.lr = lr;
  }
  T lr() const noexcept { return opt_.lr; }

  void step() {
    if (buf_.size() != params_.values().size())
      detail::fail("SGD::step: the parameter store changed size since construction");
    T* p = params_.values().data();
    const T* g = params_.grads().data();
    const std::size_t n = buf_.size();
    const T mu = opt_.momentum;
    for (std::size_t i = 0; i < n; ++i) {
      T d = g[i] + opt_.weight_decay * p[i];
      if (mu > T(0)) {
        buf_[i] = first_ ? d : mu * buf_[i] + d;
        d = opt_.nesterov ? d + mu * buf_[i] : buf_[i];
      }
      p[i] -= opt_.lr * d;
    }
    first_ = false;
  }

 private:
  ParameterStore<T>& params_;
  SGDOptions<T> opt_;
  typename ParameterStore<T>::buffer_type buf_;
  bool first_ = true;
};

// Learning rate that rises linearly from 0 to base_lr over warmup_steps, then falls linearly to 0 at
// total_steps (and stays 0 after). lr(step) for step = 0, 1, ...; step 0 of a warmup gives 0.
class LinearWarmupDecay {
 public:
  LinearWarmupDecay(double base_lr, std::size_t warmup_steps, std::size_t total_steps)
      : base_(base_lr), warmup_(warmup_steps), total_(total_steps) {
    if (!(base_lr >= 0.0)) detail::fail("LinearWarmupDecay: base_lr must be >= 0, got ", base_lr);
    if (total_steps == 0) detail::fail("LinearWarmupDecay: total_steps must be > 0, got 0");
    if (warmup_steps > total_steps)
      detail::fail("LinearWarmupDecay: warmup_steps must be <= total_steps ", total_steps, ", got ", warmup_steps);
  }

  double operator()(std::size_t step) const noexcept {
    if (step < warmup_) return base_ * static_cast<double>(step) / static_cast<double>(warmup_);
    if (step >= total_) return 0.0;
    return base_ * static_cast<double>(total_ - step) / static_cast<double>(total_ - warmup_);
  }

 private:
  double base_;
  std::size_t warmup_, total_;
};

}  // namespace robustxlt::nn
