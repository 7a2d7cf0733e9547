#pragma once
// Classification losses over logits [B, C] as forward/backward pairs, plus one-call helpers that return
// the loss and its gradient. Losses are means over the batch.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"

namespace robustxlt::nn {

namespace detail_loss {

template <class T>
void check_logits(const char* where, const char* name, const Tensor<T, 2>& logits) {
  if (logits.shape()[0] == 0 || logits.shape()[1] == 0)
    detail::fail<ShapeError>(where, ": ", name, " must have shape [B >= 1, C >= 1], got ", shape_string(logits.shape()));
  if (!simd::all_finite(logits.size(), logits.data()))
    detail::fail<NumericError>(where, ": ", name, " must be finite, got NaN or Inf");
}

// Row-wise log-softmax: out[b, c] = (x[b, c] - max_b) - log sum_c exp(x[b, c] - max_b). The shift is
// subtracted before the log-sum: forming max_b + log(sum) first would round it at the magnitude of the
// logits (an error of 5e-4 in float for logits near 1e4) and pass that error to every output.
template <class T>
void log_softmax_rows(const T* x, T* out, std::size_t B, std::size_t C) {
  for (std::size_t b = 0; b < B; ++b) {
    const T* r = x + b * C;
    const T m = simd::max(C, r);
    T s = 0;
    for (std::size_t c = 0; c < C; ++c) s += std::exp(r[c] - m);
    const T log_s = std::log(s);
    for (std::size_t c = 0; c < C; ++c) out[b * C + c] = (r[c] - m) - log_s;
  }
}

}  // namespace detail_loss

template <class T>
struct CrossEntropyOptions {
  T label_smoothing = T(0);  // in [0, 1): target = (1 - s) one_hot + s / C, as PyTorch
  Tensor<T, 1> weights{};    // [B] per-example weights >= 0 with a positive sum; empty = all 1
};

// Cross-entropy with optional label smoothing and per-example weights:
//   loss = sum_b w_b l_b / sum_b w_b,  l_b = -sum_c target_bc log softmax(logits_b)_c.
// forward caches log-probabilities; backward writes dLoss/dlogits = w_b (softmax - target) / sum w.
template <class T>
class CrossEntropy {
 public:
  // logits [B, C]; labels [B] in [0, C). Throws ShapeError, InvalidArgument or NumericError.
  T forward(const Tensor<T, 2>& logits, const Tensor<std::int64_t, 1>& labels, const CrossEntropyOptions<T>& opt = {}) {
    static_assert(simd::is_supported_scalar<T>);
    detail_loss::check_logits("cross_entropy", "logits", logits);
    const std::size_t B = logits.shape()[0], C = logits.shape()[1];
    detail::check_shape("cross_entropy", "labels", labels.shape(), std::array<std::size_t, 1>{B});
    if (!(opt.label_smoothing >= T(0) && opt.label_smoothing < T(1)))
      detail::fail("cross_entropy: label_smoothing must be in [0, 1), got ", opt.label_smoothing);
    weight_sum_ = static_cast<T>(B);
    weights_ = opt.weights;
    if (weights_.size() != 0) {
      detail::check_shape("cross_entropy", "weights", weights_.shape(), std::array<std::size_t, 1>{B});
      weight_sum_ = 0;
      for (std::size_t b = 0; b < B; ++b) {
        if (!(weights_(b) >= T(0)) || !std::isfinite(weights_(b)))
          detail::fail("cross_entropy: weights[", b, "] must be finite and >= 0, got ", weights_(b));
        weight_sum_ += weights_(b);
      }
      if (!(weight_sum_ > T(0))) detail::fail("cross_entropy: weights must have a positive sum, got ", weight_sum_);
    }
    for (std::size_t b = 0; b < B; ++b)
      if (labels(b) < 0 || static_cast<std::size_t>(labels(b)) >= C)
        detail::fail("cross_entropy: labels[", b, "] must be in [0, ", C, "), got ", labels(b));
    labels_ = labels;
    smoothing_ = opt.label_smoothing;
    logp_ = Tensor<T, 2>::from_shape({B, C});
    detail_loss::log_softmax_rows(logits.data(), logp_.data(), B, C);
    T total = 0;
    for (std::size_t b = 0; b < B; ++b) {
      const T* lp = logp_.data() + b * C;
      T l = -(T(1) - smoothing_) * lp[labels(b)];
      if (smoothing_ > T(0)) l -= smoothing_ / static_cast<T>(C) * simd::sum(C, lp);
      total += (weights_.size() ? weights_(b) : T(1)) * l;
    }
    return total / weight_sum_;
  }

  // dlogits [B, C] (overwritten) for the last forward.
  void backward(Tensor<T, 2>& dlogits) const {
    const std::size_t B = logp_.shape()[0], C = logp_.shape()[1];
    if (dlogits.shape() != logp_.shape()) dlogits = Tensor<T, 2>::from_shape({B, C});
    for (std::size_t b = 0; b < B; ++b) {
      const T w = (weights_.size() ? weights_(b) : T(1)) / weight_sum_;
      for (std::size_t c = 0; c < C; ++c) {
        T target = smoothing_ / static_cast<T>(C);
        if (static_cast<std::int64_t>(c) == labels_(b)) target += T(1) - smoothing_;
        dlogits(b, c) = w * (std::exp(logp_(b, c)) - target);
      }
    }
  }

  // Per-class log-probabilities of the last forward, [B, C].
  const Tensor<T, 2>& log_probs() const noexcept { return logp_; }

 private:
  Tensor<T, 2> logp_;
  Tensor<std::int64_t, 1> labels_;
  Tensor<T, 1> weights_;
  T weight_sum_ = T(1);
  T smoothing_ = T(0);
};

// One call: returns the loss and, when dlogits is non-null, writes dLoss/dlogits [B, C].
// The predicted class of each row of logits [B, C]: the index of the largest logit, ties to the lowest
// class. Throws ShapeError on an empty batch or no classes, NumericError on a NaN or Inf logit.
template <class T>
std::vector<std::int64_t> predictions(const Tensor<T, 2>& logits) {
  detail_loss::check_logits("predictions", "logits", logits);
  const std::size_t B = logits.shape()[0], C = logits.shape()[1];
  std::vector<std::int64_t> out(B);
  for (std::size_t b = 0; b < B; ++b) {
    const T* row = logits.data() + b * C;
    std::size_t best = 0;
    for (std::size_t c = 1; c < C; ++c)
      if (row[c] > row[best]) best = c;
    out[b] = static_cast<std::int64_t>(best);
  }
  return out;
}

template <class T>
T cross_entropy(const Tensor<T, 2>& logits, const Tensor<std::int64_t, 1>& labels, Tensor<T, 2>* dlogits = nullptr,
                const CrossEntropyOptions<T>& opt = {}) {
  CrossEntropy<T> ce;
  const T loss = ce.forward(logits, labels, opt);
  if (dlogits) ce.backward(*dlogits);
  return loss;
}

// KL(P || Q) with P = softmax(p_logits), Q = softmax(q_logits), averaged over the batch:
//   KL = (1/B) sum_b sum_c P_bc (log P_bc - log Q_bc).
// Gradients (overwritten when non-null): dq = (Q - P) / B, dp = P (log P - log Q - KL_b) / B.
// Throws ShapeError when shapes differ, NumericError on non-finite logits.
template <class T>
T kl_divergence(const Tensor<T, 2>& p_logits, const Tensor<T, 2>& q_logits, Tensor<T, 2>* dp = nullptr,
                Tensor<T, 2>* dq = nullptr) {
  detail_loss::check_logits("kl_divergence", "p_logits", p_logits);
  detail_loss::check_logits("kl_divergence", "q_logits", q_logits);
  if (p_logits.shape() != q_logits.shape())
    detail::fail<ShapeError>("kl_divergence: q_logits must have the shape of p_logits ", shape_string(p_logits.shape()),
                             ", got ", shape_string(q_logits.shape()));
  const std::size_t B = p_logits.shape()[0], C = p_logits.shape()[1];
  Tensor<T, 2> lp = Tensor<T, 2>::from_shape({B, C}), lq = Tensor<T, 2>::from_shape({B, C});
  detail_loss::log_softmax_rows(p_logits.data(), lp.data(), B, C);
  detail_loss::log_softmax_rows(q_logits.data(), lq.data(), B, C);
  if (dp && dp->shape() != lp.shape()) *dp = Tensor<T, 2>::from_shape({B, C});
  if (dq && dq->shape() != lp.shape()) *dq = Tensor<T, 2>::from_shape({B, C});
  const T inv_b = T(1) / static_cast<T>(B);
  T total = 0;
  for (std::size_t b = 0; b < B; ++b) {
    T kl = 0;
    for (std::size_t c = 0; c < C; ++c) kl += std::exp(lp(b, c)) * (lp(b, c) - lq(b, c));
    total += kl;
    for (std::size_t c = 0; c < C; ++c) {
      const T P = std::exp(lp(b, c)), Q = std::exp(lq(b, c));
      if (dq) (*dq)(b, c) = (Q - P) * inv_b;
      if (dp) (*dp)(b, c) = P * (lp(b, c) - lq(b, c) - kl) * inv_b;
    }
  }
  return total * inv_b;
}

// Symmetric KL, KL(P || Q) + KL(Q || P), the virtual-adversarial / SMART regulariser. Gradients as above.
template <class T>
T symmetric_kl(const Tensor<T, 2>& p_logits, const Tensor<T, 2>& q_logits, Tensor<T, 2>* dp = nullptr,
               Tensor<T, 2>* dq = nullptr) {
  Tensor<T, 2> dp1, dq1, dp2, dq2;
  const T a = kl_divergence(p_logits, q_logits, dp ? &dp1 : nullptr, dq ? &dq1 : nullptr);
  const T b = kl_divergence(q_logits, p_logits, dq ? &dq2 : nullptr, dp ? &dp2 : nullptr);
  if (dp) *dp = dp1 + dp2;
  if (dq) *dq = dq1 + dq2;
  return a + b;
}

}  // namespace robustxlt::nn
