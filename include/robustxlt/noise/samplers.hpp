#pragma once
// Noise samplers for randomized smoothing and augmentation:
//   SynonymSampler (RS-DA): each word w with neighbours N(w) becomes a uniform draw from {w} U N(w);
//   CodeSwitchSampler (CoSDA-ML): a sentence is chosen with probability ratio, then each word with a
//     translation is replaced with probability cross by a uniform translation from a uniformly chosen
//     target language among those that translate it;
//   embedding noise (RS-RP): Gaussian, uniform in [-r, r], or uniform in the per-token L2 ball.
// Every draw comes from a stream keyed by (seed, example index, copy index), so results depend neither on
// the thread count nor on the order in which examples or copies are processed.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/norms.hpp"
#include "robustxlt/core/parallel.hpp"
#include "robustxlt/core/random.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"
#include "robustxlt/noise/lexicon.hpp"

namespace robustxlt::noise {

namespace detail {

// The stream of one (seed, example, copy), with `part` separating the two sentences of a pair.
inline Rng stream(std::uint64_t seed, std::uint64_t example, std::uint64_t copy, std::uint64_t part) {
  return Rng(seed ^ (part * 0x9e3779b97f4a7c15ULL), example, copy);
}

inline bool bernoulli(Rng& rng, double p) { return p >= 1.0 || (p > 0.0 && rng.uniform<double>() < p); }

// The ids of any integral range as int64 (what augment takes: vectors, spans, xtensor rows of any
// integer type).
template <class Range>
std::vector<std::int64_t> to_ids(const Range& ids) {
  using V = std::decay_t<decltype(*std::begin(ids))>;
  static_assert(std::is_integral_v<V> && !std::is_same_v<V, bool>, "augment: ids must be a range of integers");
  std::vector<std::int64_t> out;
  for (const auto& v : ids) {
    if constexpr (std::is_unsigned_v<V>)
      if (static_cast<std::uint64_t>(v) > static_cast<std::uint64_t>(INT64_MAX))
        robustxlt::detail::fail("augment: ids[", out.size(), "] must fit in int64, got ", v);
    out.push_back(static_cast<std::int64_t>(v));
  }
  return out;
}

// k copies of one sentence from any sampler with sample(ids, n, out, seed, example, copy), [k, n].
template <class Sampler>
Tensor<std::int64_t, 2> copies(const Sampler& sampler, const std::vector<std::int64_t>& ids, std::size_t k, std::uint64_t seed,
                               std::uint64_t example) {
  Tensor<std::int64_t, 2> out = Tensor<std::int64_t, 2>::from_shape({k, ids.size()});
  for (std::size_t c = 0; c < k; ++c) sampler.sample(ids.data(), ids.size(), out.data() + c * ids.size(), seed, example, c);
  return out;
}

// Checks ids[0..n) against the model's vocabulary [0, vocab_size) before anything is drawn.
template <class Id>
void check_ids(const Id* ids, std::size_t n, std::size_t vocab_size, const char* where) {
  static_assert(std::is_integral_v<Id> && !std::is_same_v<Id, bool>, "sample: ids must be integers");
  for (std::size_t i = 0; i < n; ++i) {
    bool negative = false;
    if constexpr (std::is_signed_v<Id>) negative = ids[i] < 0;
    if (negative || static_cast<std::uint64_t>(ids[i]) >= vocab_size)
      robustxlt::detail::fail(where, ": ids[", i, "] must be in [0, ", vocab_size, ") (the vocabulary size), got ", ids[i]);
  }
}

// Checks a table against the vocabulary it is used with: no more rows than ids, no entry outside it.
inline void check_table(const IdTable& table, std::size_t vocab_size, const char* where, const char* what) {
  if (vocab_size == 0 || vocab_size > 0xFFFFFFFFull)
    robustxlt::detail::fail(where, ": vocab_size must be in [1, 4294967295], got ", vocab_size);
  if (table.rows() > vocab_size)
    robustxlt::detail::fail(where, ": ", what, " has ", table.rows(), " rows, more than vocab_size ", vocab_size);
  if (table.id_bound() > vocab_size)
    robustxlt::detail::fail(where, ": ", what, " lists id ", table.id_bound() - 1, ", outside the vocabulary [0, ",
                            vocab_size, ")");
}

}  // namespace detail

struct SynonymOptions {
  double replace_probability = 1.0;   // chance that a word with neighbours is resampled (1 = RS-DA reference)
  double max_replace_fraction = 1.0;  // at most floor(fraction * length) words changed per copy
  std::vector<std::int64_t> protected_ids;  // never replaced (e.g. special tokens, entity names)
};

class SynonymSampler {
 public:
  // neighbours: row w lists N(w) as ids of the model's vocabulary [0, vocab_size), the vocabulary of the
  // sentences. Throws InvalidArgument when the table does not fit the vocabulary (more rows than
  // vocab_size, or an entry >= vocab_size), on a protected id outside it, or on probabilities outside [0, 1].
  SynonymSampler(IdTable neighbours, std::size_t vocab_size, SynonymOptions options = {})
      : table_(std::move(neighbours)), vocab_size_(vocab_size), opt_(std::move(options)) {
    detail::check_table(table_, vocab_size_, "SynonymSampler", "neighbours");
    if (!(opt_.replace_probability >= 0.0 && opt_.replace_probability <= 1.0))
      robustxlt::detail::fail("SynonymSampler: replace_probability must be in [0, 1], got ", opt_.replace_probability);
    if (!(opt_.max_replace_fraction >= 0.0 && opt_.max_replace_fraction <= 1.0))
      robustxlt::detail::fail("SynonymSampler: max_replace_fraction must be in [0, 1], got ", opt_.max_replace_fraction);
    protected_.assign(table_.rows(), 0);
    detail::check_ids(opt_.protected_ids.data(), opt_.protected_ids.size(), vocab_size_, "SynonymSampler: protected_ids");
    for (auto id : opt_.protected_ids)
      if (static_cast<std::size_t>(id) < protected_.size()) protected_[static_cast<std::size_t>(id)] = 1;
  }

  const IdTable& neighbours() const noexcept { return table_; }
  std::size_t vocab_size() const noexcept { return vocab_size_; }

  // Writes one noisy copy of ids[0..n) (any integer type) into out (may alias ids) from stream (seed,
  // example, copy, part); returns the number of positions whose word changed. Throws InvalidArgument,
  // before drawing anything, when an id is outside [0, vocab_size).
  template <class Id>
  std::size_t sample(const Id* ids, std::size_t n, Id* out, std::uint64_t seed, std::uint64_t example, std::uint64_t copy,
                     std::uint64_t part = 0) const {
    detail::check_ids(ids, n, vocab_size_, "SynonymSampler::sample");
    Rng rng = detail::stream(seed, example, copy, part);
    const double p = opt_.replace_probability;
    if (opt_.max_replace_fraction >= 1.0) {
      std::size_t changed = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const Id v = ids[i];
        const auto w = static_cast<std::uint32_t>(v);
        const std::size_t k = eligible(w);
        Id r = v;
        if (k && detail::bernoulli(rng, p)) {
          const std::uint64_t j = rng.below(k + 1);  // 0 keeps w: the draw is uniform over {w} U N(w)
          if (j) r = static_cast<Id>(table_.row(w)[j - 1]);
        }
        changed += r != v;
        out[i] = r;
      }
      return changed;
    }
    // With a cap, positions are visited in a random order until the cap is reached.
    const std::size_t cap = static_cast<std::size_t>(std::floor(opt_.max_replace_fraction * static_cast<double>(n)));
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < n; ++i) {
      out[i] = ids[i];
      if (eligible(static_cast<std::uint32_t>(ids[i]))) order.push_back(i);
    }
    std::size_t changed = 0;
    for (std::size_t m = 0; m < order.size() && changed < cap; ++m) {
      std::swap(order[m], order[m + rng.below(order.size() - m)]);
      const std::size_t i = order[m];
      const std::uint32_t w = static_cast<std::uint32_t>(ids[i]);
      if (!detail::bernoulli(rng, p)) continue;
      const std::uint64_t j = rng.below(eligible(w) + 1);
      if (j) {
        out[i] = static_cast<Id>(table_.row(w)[j - 1]);
        changed += out[i] != ids[i];
      }
    }
    return changed;
  }

  // k noisy copies of one sentence (any range of integers), [k, n]; copy c uses stream (seed, example, c).
  template <class Range>
  Tensor<std::int64_t, 2> augment(const Range& ids, std::size_t k, std::uint64_t seed, std::uint64_t example) const {
    return detail::copies(*this, detail::to_ids(ids), k, seed, example);
  }
  Tensor<std::int64_t, 2> augment(std::initializer_list<std::int64_t> ids, std::size_t k, std::uint64_t seed,
                                  std::uint64_t example) const {
    return detail::copies(*this, std::vector<std::int64_t>(ids), k, seed, example);
  }

  // k noisy copies of a sentence pair ([k, n1] and [k, n2]); the two sentences use separate streams of the
  // same copy.
  template <class Range1, class Range2>
  std::pair<Tensor<std::int64_t, 2>, Tensor<std::int64_t, 2>> augment_pair(const Range1& first_ids, const Range2& second_ids,
                                                                           std::size_t k, std::uint64_t seed,
                                                                           std::uint64_t example) const {
    const std::vector<std::int64_t> first = detail::to_ids(first_ids), second = detail::to_ids(second_ids);
    Tensor<std::int64_t, 2> a = Tensor<std::int64_t, 2>::from_shape({k, first.size()});
    Tensor<std::int64_t, 2> b = Tensor<std::int64_t, 2>::from_shape({k, second.size()});
    for (std::size_t c = 0; c < k; ++c) {
      sample(first.data(), first.size(), a.data() + c * first.size(), seed, example, c, 0);
      sample(second.data(), second.size(), b.data() + c * second.size(), seed, example, c, 1);
    }
    return {std::move(a), std::move(b)};
  }

 private:
  std::size_t eligible(std::uint32_t w) const noexcept {
    return w < protected_.size() && !protected_[w] ? table_.count(w) : 0;
  }

  IdTable table_;
  std::size_t vocab_size_;
  SynonymOptions opt_;
  std::vector<std::uint8_t> protected_;
};

struct CodeSwitchOptions {
  double ratio = 1.0;  // probability that a sentence is code-switched at all
  double cross = 0.5;  // probability that each translatable word of a chosen sentence is replaced
};

class CodeSwitchSampler {
 public:
  // dictionaries[l]: row w lists the translations of source word w into language l, all as ids of the
  // model's shared (multilingual) vocabulary [0, vocab_size). Throws InvalidArgument when there is no
  // dictionary, a dictionary does not fit the vocabulary, or a probability is outside [0, 1].
  CodeSwitchSampler(std::vector<IdTable> dictionaries, std::size_t vocab_size, CodeSwitchOptions options = {})
      : dicts_(std::move(dictionaries)), vocab_size_(vocab_size), opt_(options) {
    if (dicts_.empty()) robustxlt::detail::fail("CodeSwitchSampler: needs at least one dictionary, got 0");
    for (std::size_t l = 0; l < dicts_.size(); ++l) {
      const std::string what = "dictionaries[" + std::to_string(l) + "]";
      detail::check_table(dicts_[l], vocab_size_, "CodeSwitchSampler", what.c_str());
    }
    if (!(opt_.ratio >= 0.0 && opt_.ratio <= 1.0))
      robustxlt::detail::fail("CodeSwitchSampler: ratio must be in [0, 1], got ", opt_.ratio);
    if (!(opt_.cross >= 0.0 && opt_.cross <= 1.0))
      robustxlt::detail::fail("CodeSwitchSampler: cross must be in [0, 1], got ", opt_.cross);
    if (dicts_.size() > 64) robustxlt::detail::fail("CodeSwitchSampler: at most 64 dictionaries, got ", dicts_.size());
    // Which languages translate each word, in one array: a sample then reads one entry per word instead of
    // the row counts of every dictionary.
    std::size_t rows = 0;
    for (const auto& d : dicts_) rows = std::max(rows, d.rows());
    languages_of_.assign(rows, 0);
    for (std::size_t l = 0; l < dicts_.size(); ++l)
      for (std::size_t w = 0; w < dicts_[l].rows(); ++w)
        if (dicts_[l].count(static_cast<std::uint32_t>(w))) languages_of_[w] |= std::uint64_t(1) << l;
  }

  std::size_t languages() const noexcept { return dicts_.size(); }
  std::size_t vocab_size() const noexcept { return vocab_size_; }

  // One copy of ids[0..n) (any integer type) into out (may alias ids); returns the number of replaced words
  // (0 when the sentence was not chosen). Stream (seed, example, copy, part). Throws InvalidArgument,
  // before drawing anything, when an id is outside [0, vocab_size).
  template <class Id>
  std::size_t sample(const Id* ids, std::size_t n, Id* out, std::uint64_t seed, std::uint64_t example, std::uint64_t copy,
                     std::uint64_t part = 0) const {
    detail::check_ids(ids, n, vocab_size_, "CodeSwitchSampler::sample");
    Rng rng = detail::stream(seed, example, copy, part);
    if (!detail::bernoulli(rng, opt_.ratio)) {
      std::copy_n(ids, n, out);
      return 0;
    }
    std::size_t changed = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const Id v = ids[i];
      const auto w = static_cast<std::uint32_t>(v);
      const std::uint64_t has = w < languages_of_.size() ? languages_of_[w] : 0;  // bit l: language l translates w
      std::size_t k = 0;
      for (std::uint64_t m = has; m; m &= m - 1) ++k;
      Id r = v;
      if (k && detail::bernoulli(rng, opt_.cross)) {
        std::uint64_t pick = rng.below(k);  // uniform among the languages that translate w
        std::size_t l = 0;
        for (;; ++l)
          if ((has >> l) & 1u) {
            if (pick == 0) break;
            --pick;
          }
        r = static_cast<Id>(dicts_[l].row(w)[rng.below(dicts_[l].count(w))]);
        ++changed;
      }
      out[i] = r;
    }
    return changed;
  }

  // k copies of one sentence (any range of integers), [k, n]; copy c uses stream (seed, example, c).
  template <class Range>
  Tensor<std::int64_t, 2> augment(const Range& ids, std::size_t k, std::uint64_t seed, std::uint64_t example) const {
    return detail::copies(*this, detail::to_ids(ids), k, seed, example);
  }
  Tensor<std::int64_t, 2> augment(std::initializer_list<std::int64_t> ids, std::size_t k, std::uint64_t seed,
                                  std::uint64_t example) const {
    return detail::copies(*this, std::vector<std::int64_t>(ids), k, seed, example);
  }

 private:
  std::vector<IdTable> dicts_;
  std::size_t vocab_size_;
  CodeSwitchOptions opt_;
  std::vector<std::uint64_t> languages_of_;  // [max rows] bit l set when dictionary l translates the word
};

// ---------------------------------------------------------------------------------------------------------
// Embedding noise (RS-RP), added in place to x [B, T, D] at token positions only (mask [B, T], 1 = token,
// any integral or bool tensor; empty = all). Sequence b of the batch is example first_example + b; its draws
// come from stream (seed, first_example + b, copy), filled token by token in order, so sequences can run on
// any thread.

enum class EmbeddingNoise { gaussian, uniform, l2_ball };

// x: an xtensor container or an xt::adapt view of the caller's buffer (contiguous, row-major), float or
// double like scale. scale is sigma (gaussian), r (uniform in [-r, r]) or the radius (l2_ball).
// Throws InvalidArgument (scale < 0 or not finite), ShapeError (x not rank 3 and contiguous, a mask of
// another shape), NumericError naming the first NaN or Inf of x.
template <class E, class M, class T>
void add_embedding_noise(E&& x, const M& mask, EmbeddingNoise kind, T scale, std::uint64_t seed,
                         std::uint64_t first_example, std::uint64_t copy) {
  using X = std::remove_const_t<typename std::decay_t<E>::value_type>;
  static_assert(std::is_same_v<X, T>,
                "add_embedding_noise: scale must have the embeddings' type (a float scale for float embeddings)");
  if (!(scale >= T(0)) || !std::isfinite(scale))
    robustxlt::detail::fail("add_embedding_noise: scale (sigma, r or radius) must be >= 0 and finite, got ", scale);
  const auto v = robustxlt::detail::view3(x, "add_embedding_noise", "x");
  robustxlt::detail::check_finite("add_embedding_noise", "x", v);
  const TokenMask& m = TokenMask::from(mask, v.B, v.T, "add_embedding_noise");
  const std::size_t Tn = v.T, D = v.D;
  parallel_for(0, static_cast<std::ptrdiff_t>(v.B), [&](std::ptrdiff_t bi) {
    const auto b = static_cast<std::size_t>(bi);
    Rng rng(seed, first_example + b, copy);
    std::vector<T> buf(D);
    for (std::size_t t = 0; t < Tn; ++t) {
      if (!m.valid(b * Tn + t)) continue;
      T* row = v.data + (b * Tn + t) * D;
      switch (kind) {
        case EmbeddingNoise::gaussian:
          rng.add_normal(scale, row, D);  // the draws of fill_normal(buf, D), added without the buffer
          break;
        case EmbeddingNoise::uniform:
          rng.fill_symmetric_uniform(buf.data(), D);
          simd::axpy(D, scale, buf.data(), row);
          break;
        case EmbeddingNoise::l2_ball: {
          rng.fill_normal(buf.data(), D);
          const T norm = std::sqrt(simd::dot(D, buf.data(), buf.data()));
          const T radius = static_cast<T>(rng.ball_radius(static_cast<double>(scale), D));
          if (norm > T(0)) simd::axpy(D, radius / norm, buf.data(), row);
          break;
        }
      }
    }
  });
}

}  // namespace robustxlt::noise
