#pragma once
// Aggregating a classifier over noisy copies of one input, and the smoothed classifier built on it.
//
// A copy classifier is a callable invoked as classify(first_copy, count, out) that classifies the noisy
// copies with indices [first_copy, first_copy + count) of the current input, writing either
//   Tensor<T, 2>& out  [count, C] class probabilities, or
//   std::vector<std::int64_t>& out  [count] labels.
// Copy indices let the caller key its noise streams by (seed, example, copy), so results do not depend on
// batch size or threads. `combine(sampler, model)` builds one from a sampler(first, count) -> batch and a
// model(batch, out).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"
#include "robustxlt/smooth/certify.hpp"

namespace robustxlt::smooth {

template <class T>
struct Aggregate {
  std::vector<std::size_t> votes;  // [C] argmax counts (ties to the lowest class)
  std::vector<T> mean_probs;       // [C] mean probabilities; empty when the classifier returns labels
  std::size_t samples = 0;
  std::int64_t top = abstain;        // class with the most votes
  std::int64_t runner_up = abstain;  // second most votes (abstain when C == 1)
  T margin = T(0);  // top-2 margin of mean probabilities, or of vote fractions for label classifiers
};

namespace detail {

template <class F, class T>
inline constexpr bool returns_probabilities = std::is_invocable_v<F&, std::size_t, std::size_t, Tensor<T, 2>&>;
template <class F>
inline constexpr bool returns_labels = std::is_invocable_v<F&, std::size_t, std::size_t, std::vector<std::int64_t>&>;

}  // namespace detail

// Classifies n noisy copies [first_copy, first_copy + n) in calls of at most batch_size copies and
// aggregates them. Throws InvalidArgument when num_classes, n or batch_size is 0, or the classifier returns
// a label outside [0, C); ShapeError on a wrongly shaped output; NumericError on non-finite probabilities.
template <class T, class F>
Aggregate<T> aggregate(F&& classify, std::size_t num_classes, std::size_t n, std::size_t batch_size = 64,
                       std::size_t first_copy = 0) {
  static_assert(detail::returns_probabilities<F, T> || detail::returns_labels<F>,
                "aggregate: classify must be callable as (first, count, Tensor<T,2>&) or (first, count, "
                "std::vector<std::int64_t>&)");
  if (num_classes == 0) robustxlt::detail::fail("aggregate: num_classes must be > 0, got 0");
  if (n == 0) robustxlt::detail::fail("aggregate: n must be > 0, got 0");
  if (batch_size == 0) robustxlt::detail::fail("aggregate: batch_size must be > 0, got 0");
  Aggregate<T> a;
  a.votes.assign(num_classes, 0);
  std::vector<double> prob_sum;
  if constexpr (detail::returns_probabilities<F, T>) prob_sum.assign(num_classes, 0.0);
  Tensor<T, 2> probs;
  std::vector<std::int64_t> labels;
  for (std::size_t done = 0; done < n;) {
    const std::size_t count = std::min(batch_size, n - done);
    const std::size_t first = first_copy + done;
    if constexpr (detail::returns_probabilities<F, T>) {
      classify(first, count, probs);
      if (probs.shape()[0] != count || probs.shape()[1] != num_classes)
        robustxlt::detail::fail<ShapeError>("aggregate: classifier must return probabilities of shape [", count, ", ",
                                            num_classes, "], got ", shape_string(probs.shape()));
      if (!simd::all_finite(probs.size(), probs.data()))
        robustxlt::detail::fail<NumericError>("aggregate: classifier returned non-finite probabilities for copies ", first,
                                              "..", first + count - 1);
      for (std::size_t i = 0; i < count; ++i) {
        std::size_t best = 0;
        for (std::size_t c = 0; c < num_classes; ++c) {
          prob_sum[c] += static_cast<double>(probs(i, c));
          if (probs(i, c) > probs(i, best)) best = c;
        }
        ++a.votes[best];
      }
    } else {
      labels.clear();
      classify(first, count, labels);
      if (labels.size() != count)
        robustxlt::detail::fail<ShapeError>("aggregate: classifier must return ", count, " labels, got ", labels.size());
      for (std::size_t i = 0; i < count; ++i) {
        if (labels[i] < 0 || static_cast<std::size_t>(labels[i]) >= num_classes)
          robustxlt::detail::fail("aggregate: classifier returned label ", labels[i], " for copy ", first + i,
                                  ", expected a class in [0, ", num_classes, ")");
        ++a.votes[static_cast<std::size_t>(labels[i])];
      }
    }
    done += count;
  }
  a.samples = n;
  std::tie(a.top, a.runner_up) = detail::top_two(a.votes);
  if (!prob_sum.empty()) {
    for (double s : prob_sum) a.mean_probs.push_back(static_cast<T>(s / static_cast<double>(n)));
    a.margin = a.runner_up == abstain ? a.mean_probs[0]
                                      : a.mean_probs[static_cast<std::size_t>(a.top)] - a.mean_probs[static_cast<std::size_t>(a.runner_up)];
  } else {
    const double top = static_cast<double>(a.votes[static_cast<std::size_t>(a.top)]);
    const double second = a.runner_up == abstain ? 0.0 : static_cast<double>(a.votes[static_cast<std::size_t>(a.runner_up)]);
    a.margin = static_cast<T>((top - second) / static_cast<double>(n));
  }
  return a;
}

// A copy classifier made of a sampler (first, count) -> batch of noisy copies and a model (batch, out). Its
// call operator exists only for the output types the model accepts, so aggregate() picks the right form.
template <class Sampler, class Model>
struct Combined {
  Sampler sampler;
  Model model;
  template <class Out>
  auto operator()(std::size_t first, std::size_t count, Out& out)
      -> decltype(std::declval<Model&>()(std::declval<Sampler&>()(first, count), out), void()) {
    auto batch = sampler(first, count);
    model(batch, out);
  }
};

template <class Sampler, class Model>
Combined<Sampler, Model> combine(Sampler sampler, Model model) {
  return {std::move(sampler), std::move(model)};
}

// The smoothed classifier g(x) = argmax_c P(f(x + noise) = c) for one input, with Cohen et al.'s PREDICT and
// CERTIFY. Selection copies are [0, n0), estimation copies [n0, n0 + n) and prediction copies [0, n), so
// certification uses fresh samples as the procedure requires.
template <class T, class F>
class SmoothedClassifier {
 public:
  // sigma: the noise level used for the certified L2 radius (> 0).
  SmoothedClassifier(F classify, std::size_t num_classes, double sigma, std::size_t batch_size = 64)
      : classify_(std::move(classify)), num_classes_(num_classes), sigma_(sigma), batch_size_(batch_size) {
    if (num_classes == 0) robustxlt::detail::fail("SmoothedClassifier: num_classes must be > 0, got 0");
    if (!(sigma > 0.0) || !std::isfinite(sigma)) robustxlt::detail::fail("SmoothedClassifier: sigma must be > 0, got ", sigma);
    if (batch_size == 0) robustxlt::detail::fail("SmoothedClassifier: batch_size must be > 0, got 0");
  }

  // PREDICT with n copies at level alpha. Throws on n == 0 or alpha outside (0, 1).
  Prediction predict(std::size_t n, double alpha) {
    if (n == 0) robustxlt::detail::fail("predict: n must be > 0, got 0");
    return smooth::predict(aggregate<T>(classify_, num_classes_, n, batch_size_, 0).votes, alpha);
  }

  // CERTIFY with n0 selection and n estimation copies at level alpha. Throws on n0 or n == 0, alpha outside (0, 1).
  Certificate certify(std::size_t n0, std::size_t n, double alpha) {
    if (n0 == 0) robustxlt::detail::fail("certify: n0 must be > 0, got 0");
    if (n == 0) robustxlt::detail::fail("certify: n must be > 0, got 0");
    detail::check_alpha("certify", alpha);
    const auto selection = aggregate<T>(classify_, num_classes_, n0, batch_size_, 0);
    const auto estimation = aggregate<T>(classify_, num_classes_, n, batch_size_, n0);
    return smooth::certify(selection.top, estimation.votes[static_cast<std::size_t>(selection.top)], n, alpha, sigma_);
  }

  double sigma() const noexcept { return sigma_; }

 private:
  F classify_;
  std::size_t num_classes_;
  double sigma_;
  std::size_t batch_size_;
};

template <class T, class F>
SmoothedClassifier<T, std::decay_t<F>> make_smoothed_classifier(F&& classify, std::size_t num_classes, double sigma,
                                                                 std::size_t batch_size = 64) {
  return SmoothedClassifier<T, std::decay_t<F>>(std::forward<F>(classify), num_classes, sigma, batch_size);
}

// ---------------------------------------------------------------------------------------------------------
// Smoothing over many inputs. A batch copy classifier is called as classify(input, first_copy, count, out):
// the copies [first_copy, first_copy + count) of input `input` in [0, inputs), out as for a copy
// classifier. A classifier that keys its noise by (seed, first_example + input, copy) makes the copies of
// different inputs independent by construction, and every input's decision exactly the one a
// SmoothedClassifier over that input alone gives with the same keys.
template <class T, class F>
class SmoothedBatch {
 public:
  // sigma: the noise level used for the certified L2 radii (> 0). Throws InvalidArgument when inputs,
  // num_classes or batch_size is 0 or sigma <= 0.
  SmoothedBatch(F classify, std::size_t inputs, std::size_t num_classes, double sigma, std::size_t batch_size = 64)
      : classify_(std::move(classify)), inputs_(inputs), num_classes_(num_classes), sigma_(sigma), batch_size_(batch_size) {
    if (inputs == 0) robustxlt::detail::fail("SmoothedBatch: inputs must be > 0, got 0");
    if (num_classes == 0) robustxlt::detail::fail("SmoothedBatch: num_classes must be > 0, got 0");
    if (!(sigma > 0.0) || !std::isfinite(sigma)) robustxlt::detail::fail("SmoothedBatch: sigma must be > 0, got ", sigma);
    if (batch_size == 0) robustxlt::detail::fail("SmoothedBatch: batch_size must be > 0, got 0");
  }

  // PREDICT for every input with n copies at level alpha: [inputs] predictions. Throws as
  // SmoothedClassifier::predict.
  std::vector<Prediction> predict(std::size_t n, double alpha) {
    std::vector<Prediction> out;
    for (std::size_t i = 0; i < inputs_; ++i) out.push_back(one(i).predict(n, alpha));
    return out;
  }

  // CERTIFY for every input with n0 selection and n estimation copies at level alpha: [inputs]
  // certificates. Throws as SmoothedClassifier::certify.
  std::vector<Certificate> certify(std::size_t n0, std::size_t n, double alpha) {
    std::vector<Certificate> out;
    for (std::size_t i = 0; i < inputs_; ++i) out.push_back(one(i).certify(n0, n, alpha));
    return out;
  }

  std::size_t inputs() const noexcept { return inputs_; }

 private:
  // Input i's copy classifier: its call operator exists for the output types classify accepts.
  struct Bound {
    F* classify;
    std::size_t input;
    template <class Out>
    auto operator()(std::size_t first, std::size_t count, Out& out) -> decltype((*classify)(input, first, count, out)) {
      return (*classify)(input, first, count, out);
    }
  };
  SmoothedClassifier<T, Bound> one(std::size_t i) {
    return SmoothedClassifier<T, Bound>(Bound{&classify_, i}, num_classes_, sigma_, batch_size_);
  }

  F classify_;
  std::size_t inputs_, num_classes_;
  double sigma_;
  std::size_t batch_size_;
};

// Checks classify's form at compile time, then builds the batch.
template <class T, class F>
SmoothedBatch<T, std::decay_t<F>> make_smoothed_batch(F&& classify, std::size_t inputs, std::size_t num_classes, double sigma,
                                                      std::size_t batch_size = 64) {
  using G = std::decay_t<F>;
  static_assert(std::is_invocable_v<G&, std::size_t, std::size_t, std::size_t, Tensor<T, 2>&> ||
                    std::is_invocable_v<G&, std::size_t, std::size_t, std::size_t, std::vector<std::int64_t>&>,
                "make_smoothed_batch: classify must be callable as (input, first, count, Tensor<T,2>&) or (input, "
                "first, count, std::vector<std::int64_t>&)");
  return SmoothedBatch<T, G>(std::forward<F>(classify), inputs, num_classes, sigma, batch_size);
}

}  // namespace robustxlt::smooth
