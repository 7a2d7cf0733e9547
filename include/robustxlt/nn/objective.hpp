#pragma once
// Adapts a TransformerClassifier and one batch to the perturbers' objective protocol (core/objective.hpp):
//   T operator()(const Tensor<T, 3>& x, GradientView<T>& grad_x, const Evaluation<T>& request)
// x = token embeddings + delta. The model runs forward(batch, &delta) with delta = x - embeddings(), so
// parameter gradients, when requested, reach the token table too, and backward_into writes dLoss/dx into
// grad_x (the model's input_grad() is left alone).

#include <cstdint>
#include <utility>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/objective.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"
#include "robustxlt/nn/loss.hpp"
#include "robustxlt/nn/transformer.hpp"

namespace robustxlt::nn {

template <class T>
class ClassifierObjective {
 public:
  // Cross-entropy against labels [B]. The model and batch must outlive the objective.
  ClassifierObjective(TransformerClassifier<T>& model, const TokenBatch& batch, Tensor<std::int64_t, 1> labels,
                      CrossEntropyOptions<T> options = {})
      : model_(model), batch_(batch), labels_(std::move(labels)), ce_options_(std::move(options)),
        embeddings_(model.embed(batch.ids)) {}

  // Symmetric KL between fixed reference logits [B, C] (e.g. the clean pass, held constant as SMART does)
  // and the logits at x.
  static ClassifierObjective symmetric_kl(TransformerClassifier<T>& model, const TokenBatch& batch,
                                          Tensor<T, 2> reference_logits) {
    ClassifierObjective o(model, batch, Tensor<std::int64_t, 1>{}, {});
    o.reference_ = std::move(reference_logits);
    o.kl_ = true;
    return o;
  }

  // Clean token embeddings [B, T, D]: the x0 to hand to a perturber.
  const Tensor<T, 3>& embeddings() const noexcept { return embeddings_; }

  T operator()(const Tensor<T, 3>& x, GradientView<T>& grad_x, const Evaluation<T>& request = {}) {
    if (x.shape() != embeddings_.shape())
      detail::fail<ShapeError>("ClassifierObjective: x must have shape ", shape_string(embeddings_.shape()), ", got ",
                               shape_string(x.shape()));
    if (delta_.shape() != x.shape()) delta_ = Tensor<T, 3>::from_shape(x.shape());
    // delta = x - embeddings
    const T* e = embeddings_.data();
    const T* xs = x.data();
    T* d = delta_.data();
    for (std::size_t i = 0; i < delta_.size(); ++i) d[i] = xs[i] - e[i];
    const auto& logits = model_.forward(batch_, &delta_);
    T loss;
    if (kl_) {
      loss = nn::symmetric_kl(reference_, logits, static_cast<Tensor<T, 2>*>(nullptr), &dlogits_);
    } else {
      CrossEntropy<T> ce;
      loss = ce.forward(logits, labels_, ce_options_);
      ce.backward(dlogits_);
    }
    if (request.scale != T(1)) simd::scale(dlogits_.size(), request.scale, dlogits_.data());
    model_.backward_into(dlogits_, grad_x, request.parameter_gradients);  // straight into the perturber's buffer
    return loss;
  }

 private:
  TransformerClassifier<T>& model_;
  const TokenBatch& batch_;
  Tensor<std::int64_t, 1> labels_;
  CrossEntropyOptions<T> ce_options_;
  Tensor<T, 3> embeddings_;
  Tensor<T, 2> reference_, dlogits_;
  Tensor<T, 3> delta_;
  bool kl_ = false;
};

}  // namespace robustxlt::nn
