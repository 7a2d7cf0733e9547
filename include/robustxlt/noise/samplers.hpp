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
#include <type_traits>
#include <utility>
#include <vector>

#include "robustxlt/core/error.hpp"
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

// k copies of one sentence from any sampler with sample(ids, n, out, seed, example, copy), [k, n].
template <class Sampler>
Tensor<std::int64_t, 2> copies(const Sampler& sampler, const std::vector<std::int64_t>& ids, std::size_t k, std::uint64_t seed,
                               std::uint64_t example) {
  Tensor<std::int64_t, 2> out = Tensor<std::int64_t, 2>::from_shape({k, ids.size()});
  for (std::size_t c = 0; c < k; ++c) sampler.sample(ids.data(), ids.size(), out.data() + c * ids.size(), seed, example, c);
  return out;
}

template <class Id>
std::uint32_t checked_id(Id v, std::size_t i, const char* where) {
  if constexpr (std::is_signed_v<Id>)
    if (v < 0) robustxlt::detail::fail(where, ": ids[", i, "] must be >= 0, got ", v);
  if (static_cast<std::uint64_t>(v) > 0xFFFFFFFEull) robustxlt::detail::fail(where, ": ids[", i, "] must fit in 32 bits, got ", v);
  return static_cast<std::uint32_t>(v);
}

}  // namespace detail

struct SynonymOptions {
  double replace_probability = 1.0;   // chance that a word with neighbours is resampled (1 = RS-DA reference)
  double max_replace_fraction = 1.0;  // at most floor(fraction * length) words changed per copy
  std::vector<std::uint32_t> protected_ids;  // never replaced (e.g. special tokens, entity names)
};

class SynonymSampler {
 public:
  // neighbours: row w lists N(w) as ids of the same vocabulary as the sentences. Throws InvalidArgument on
  // probabilities outside [0, 1].
  explicit SynonymSampler(IdTable neighbours, SynonymOptions options = {})
      : table_(std::move(neighbours)), opt_(std::move(options)) {
    if (!(opt_.replace_probability >= 0.0 && opt_.replace_probability <= 1.0))
      robustxlt::detail::fail("SynonymSampler: replace_probability must be in [0, 1], got ", opt_.replace_probability);
    if (!(opt_.max_replace_fraction >= 0.0 && opt_.max_replace_fraction <= 1.0))
      robustxlt::detail::fail("SynonymSampler: max_replace_fraction must be in [0, 1], got ", opt_.max_replace_fraction);
    protected_.assign(table_.rows(), 0);
    for (auto id : opt_.protected_ids)
      if (id < protected_.size()) protected_[id] = 1;
  }

  const IdTable& neighbours() const noexcept { return table_; }

  // Writes one noisy copy of ids[0..n) into out (may alias ids) from stream (seed, example, copy, part);
  // returns the number of positions whose word changed. Throws InvalidArgument on negative ids.
  template <class Id>
  std::size_t sample(const Id* ids, std::size_t n, Id* out, std::uint64_t seed, std::uint64_t example, std::uint64_t copy,
                     std::uint64_t part = 0) const {
    Rng rng = detail::stream(seed, example, copy, part);
    const double p = opt_.replace_probability;
    if (opt_.max_replace_fraction >= 1.0) {
      std::size_t changed = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const Id v = ids[i];
        const std::uint32_t w = detail::checked_id(v, i, "SynonymSampler::sample");
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
      if (eligible(detail::checked_id(ids[i], i, "SynonymSampler::sample"))) order.push_back(i);
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

  // k noisy copies of one sentence, [k, n]; copy c uses stream (seed, example, c).
  Tensor<std::int64_t, 2> augment(const std::vector<std::int64_t>& ids, std::size_t k, std::uint64_t seed,
                                  std::uint64_t example) const {
    return detail::copies(*this, ids, k, seed, example);
  }

  // k noisy copies of a sentence pair; the two sentences use separate streams of the same copy.
  std::pair<Tensor<std::int64_t, 2>, Tensor<std::int64_t, 2>> augment_pair(const std::vector<std::int64_t>& first,
                                                                           const std::vector<std::int64_t>& second,
                                                                           std::size_t k, std::uint64_t seed,
                                                                           std::uint64_t example) const {
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
  SynonymOptions opt_;
  std::vector<std::uint8_t> protected_;
};

struct CodeSwitchOptions {
  double ratio = 1.0;  // probability that a sentence is code-switched at all
  double cross = 0.5;  // probability that each translatable word of a chosen sentence is replaced
};

class CodeSwitchSampler {
 public:
  // dictionaries[l]: row w lists the translations of source word w into language l, all as ids of one
  // shared (multilingual) vocabulary. Throws InvalidArgument when there is no dictionary or a probability
  // is outside [0, 1].
  explicit CodeSwitchSampler(std::vector<IdTable> dictionaries, CodeSwitchOptions options = {})
      : dicts_(std::move(dictionaries)), opt_(options) {
    if (dicts_.empty()) robustxlt::detail::fail("CodeSwitchSampler: needs at least one dictionary, got 0");
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

  // One copy into out (may alias ids); returns the number of replaced words (0 when the sentence was not
  // chosen). Stream (seed, example, copy, part).
  template <class Id>
  std::size_t sample(const Id* ids, std::size_t n, Id* out, std::uint64_t seed, std::uint64_t example, std::uint64_t copy,
                     std::uint64_t part = 0) const {
    Rng rng = detail::stream(seed, example, copy, part);
    for (std::size_t i = 0; i < n; ++i) detail::checked_id(ids[i], i, "CodeSwitchSampler::sample");
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

  // k copies of one sentence, [k, n]; copy c uses stream (seed, example, c).
  Tensor<std::int64_t, 2> augment(const std::vector<std::int64_t>& ids, std::size_t k, std::uint64_t seed,
                                  std::uint64_t example) const {
    return detail::copies(*this, ids, k, seed, example);
  }

 private:
  std::vector<IdTable> dicts_;
  CodeSwitchOptions opt_;
  std::vector<std::uint64_t> languages_of_;  // [max rows] bit l set when dictionary l translates the word
};

// ---------------------------------------------------------------------------------------------------------
// Embedding noise (RS-RP), added in place to x [B, T, D] at token positions only (mask [B, T], non-zero =
// token; empty = all). Sequence b of the batch is example first_example + b; its draws come from stream
// (seed, first_example + b, copy), filled token by token in order, so sequences can run on any thread.

enum class EmbeddingNoise { gaussian, uniform, l2_ball };

template <class T, class M>
void add_embedding_noise(Tensor<T, 3>& x, const M& mask, EmbeddingNoise kind, T scale, std::uint64_t seed,
                         std::uint64_t first_example, std::uint64_t copy) {
  static_assert(simd::is_supported_scalar<T>, "add_embedding_noise: x must hold float or double");
  if (!(scale >= T(0)) || !std::isfinite(scale))
    robustxlt::detail::fail("add_embedding_noise: scale (sigma, r or radius) must be >= 0 and finite, got ", scale);
  const std::size_t B = x.shape()[0], Tn = x.shape()[1], D = x.shape()[2];
  if (mask.size() != 0 && (mask.dimension() != 2 || mask.shape()[0] != B || mask.shape()[1] != Tn))
    robustxlt::detail::fail<ShapeError>("add_embedding_noise: mask must have shape [", B, ", ", Tn, "], got ",
                                        shape_string(mask.shape()));
  parallel_for(0, static_cast<std::ptrdiff_t>(B), [&](std::ptrdiff_t bi) {
    const auto b = static_cast<std::size_t>(bi);
    Rng rng(seed, first_example + b, copy);
    std::vector<T> buf(D);
    for (std::size_t t = 0; t < Tn; ++t) {
      if (mask.size() != 0 && mask(b, t) == 0) continue;
      T* row = x.data() + (b * Tn + t) * D;
      switch (kind) {
        case EmbeddingNoise::gaussian:
          rng.add_normal(scale, row, D);  // the draws of fill_normal(buf, D), added without the buffer
          break;
        case EmbeddingNoise::uniform:
          for (std::size_t d = 0; d < D; ++d) buf[d] = T(2) * rng.uniform<T>() - T(1);
          simd::axpy(D, scale, buf.data(), row);
          break;
        case EmbeddingNoise::l2_ball: {
          rng.fill_normal(buf.data(), D);
          const T norm = std::sqrt(simd::dot(D, buf.data(), buf.data()));
          const T radius = scale * static_cast<T>(std::pow(rng.uniform<double>(), 1.0 / static_cast<double>(D)));
          if (norm > T(0)) simd::axpy(D, radius / norm, buf.data(), row);
          break;
        }
      }
    }
  });
}

}  // namespace robustxlt::noise
