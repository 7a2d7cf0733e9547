#pragma once
// The demo's sentence-pair task ("topic relation"), defined on concepts so that one example can be written
// in any language or pair of languages.
//
// A sentence holds 4 to 7 words. Its topic is one of the three semantic fields: all its words but one come
// from that field, and one word, at a random position, from one of the other two. The label of a pair
// (first, second) is (topic(second) - topic(first)) mod 3: 0 = same topic, 1 = the next topic, 2 = the one
// after. A model must read the meaning (field) of the words of both sentences, discount the off-topic one,
// and compare the two sentences: no single word or sentence decides the label.
// (A harder variant with len/2 + 1 on-topic words did not train to above chance within the demo's budget.)
//
// Encoding: [CLS] first [SEP] second [SEP], segment 0 up to the first [SEP], segment 1 after, padded to T.
#include <algorithm>
#include <robustxlt/robustxlt.hpp>
#include <vector>

#include "world.hpp"

namespace zero_shot {

inline constexpr std::size_t kMinWords = 4, kMaxWords = 7;
inline constexpr std::size_t kMaxLength = 2 * kMaxWords + 3;
inline constexpr std::size_t kClasses = 3;

struct Example {
  std::vector<std::uint32_t> first, second;  // concept ids
  std::int64_t label = 0;
};

inline std::vector<std::uint32_t> draw_sentence(const World& w, int topic, Rng& rng) {
  const std::size_t n = kMinWords + rng.below(kMaxWords - kMinWords + 1);
  std::vector<std::uint32_t> s;
  for (std::size_t i = 0; i < n; ++i) {
    const int f = i + 1 < n ? topic : (topic + 1 + static_cast<int>(rng.below(2))) % 3;
    const auto& pool = w.field_concepts[static_cast<std::size_t>(f)];
    s.push_back(static_cast<std::uint32_t>(pool[rng.below(pool.size())]));
  }
  for (std::size_t i = n - 1; i > 0; --i) std::swap(s[i], s[rng.below(i + 1)]);
  return s;
}

// n examples from stream (seed, stream): a fixed dataset.
inline std::vector<Example> make_dataset(const World& w, std::size_t n, std::uint64_t seed, std::uint64_t stream) {
  std::vector<Example> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    Rng rng(seed, stream, i);
    const int t1 = static_cast<int>(rng.below(3)), t2 = static_cast<int>(rng.below(3));
    out[i].first = draw_sentence(w, t1, rng);
    out[i].second = draw_sentence(w, t2, rng);
    out[i].label = (t2 - t1 + 3) % 3;
  }
  return out;
}

// The id of concept c in language lang (-1 = English headword); languages with several translations pick
// one from rng.
inline std::int64_t word_id(const World& w, int lang, std::uint32_t c, Rng& rng) {
  if (lang < 0) return w.english_id(c);
  const auto& options = w.translation_ids[static_cast<std::size_t>(lang)][c];
  return options[options.size() == 1 ? 0 : rng.below(options.size())];
}

inline std::size_t encoded_length(const Example& e) { return e.first.size() + e.second.size() + 3; }

// Writes example e, first sentence in language l1 and second in l2, into row b of batch (T columns).
// Translation choices come from stream (seed, 7, key).
inline void encode(const World& w, const Example& e, int l1, int l2, std::uint64_t seed, std::uint64_t key,
                   robustxlt::nn::TokenBatch& batch, std::size_t b) {
  const std::size_t T = batch.ids.shape()[1];
  Rng rng(seed, 7, key);
  std::size_t t = 0;
  auto put = [&](std::int64_t id, std::int64_t segment) {
    batch.ids(b, t) = id;
    batch.mask(b, t) = 1;
    batch.segments(b, t) = segment;
    ++t;
  };
  put(kCls, 0);
  for (auto c : e.first) put(word_id(w, l1, c, rng), 0);
  put(kSep, 0);
  for (auto c : e.second) put(word_id(w, l2, c, rng), 1);
  put(kSep, 1);
  for (; t < T; ++t) batch.ids(b, t) = kPad, batch.mask(b, t) = 0, batch.segments(b, t) = 0;
}

inline robustxlt::nn::TokenBatch empty_batch(std::size_t B, std::size_t T) {
  robustxlt::nn::TokenBatch batch;
  batch.ids = xt::zeros<std::int64_t>({B, T});
  batch.mask = xt::zeros<std::int64_t>({B, T});
  batch.segments = xt::zeros<std::int64_t>({B, T});
  return batch;
}

}  // namespace zero_shot
