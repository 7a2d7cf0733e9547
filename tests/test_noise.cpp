// Tests of noise/: loaders on hand-written fixtures and on real Debian resources converted by
// examples/convert_lexicons.py, sampler statistics against their definitions, reproducibility.
#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <robustxlt/core.hpp>
#include <robustxlt/noise.hpp>
#include <robustxlt/noise/lexicon_json.hpp>
#include <set>
#include <vector>
#include <xtensor/xview.hpp>

namespace fs = std::filesystem;
using namespace robustxlt;
using namespace robustxlt::noise;

TEST_CASE("UTF-8 validation and case folding") {
  CHECK(valid_utf8("plain ascii"));
  CHECK(valid_utf8("Straße मकान nyumba"));
  CHECK_FALSE(valid_utf8("\xC3"));              // truncated
  CHECK_FALSE(valid_utf8("\xC0\xAF"));          // overlong '/'
  CHECK_FALSE(valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK(fold_case("HÄUSER Straße मकान") == "häuser straße मकान");
}

TEST_CASE("MUSE dictionaries: repeated sources, errors naming file and line") {
  const auto d = parse_muse("house Haus\nhouse Gebäude\n\ncar Auto\nhouse Haus\n", "de.txt");
  CHECK(d.size() == 2);
  CHECK(d.pairs() == 3);
  CHECK(d.lookup("house") == std::vector<std::string>{"Haus", "Gebäude"});
  CHECK(d.lookup("House").empty());  // case folding is off by default
  CHECK(parse_muse("House Haus\n", "x", true).lookup("HOUSE") == std::vector<std::string>{"haus"});
  CHECK_THROWS_WITH_AS(parse_muse("house Haus\ncar\n", "de.txt"),
                       "muse 'de.txt' line 2: expected 'source target', got 'car' without a target", FormatError);
  CHECK_THROWS_WITH_AS(parse_muse("a b c\n", "de.txt"), "muse 'de.txt' line 1: expected 2 whitespace-separated fields, got 3",
                       FormatError);
  CHECK_THROWS_WITH_AS(parse_muse("ok fine\nbad \xFF\n", "de.txt"), "muse 'de.txt' line 2: invalid UTF-8", FormatError);
  CHECK_THROWS_WITH_AS(parse_muse("", "empty.txt"), "muse 'empty.txt': no entries (empty file)", FormatError);
  CHECK_THROWS_AS(load_muse("/nonexistent/robustxlt.txt"), IoError);
}

TEST_CASE("JSON neighbour tables: empty and asymmetric lists, errors with lines") {
  const auto t = parse_neighbours_json("{\n \"good\": [\"fine\", \"nice\"],\n \"fine\": [],\n \"odd\": [\"strange\"]\n}", "nb.json");
  CHECK(t.size() == 3);
  CHECK(t.lookup("good") == std::vector<std::string>{"fine", "nice"});
  CHECK(t.contains("fine"));
  CHECK(t.lookup("fine").empty());
  CHECK(t.lookup("strange").empty());  // not symmetric
  CHECK_THROWS_WITH_AS(parse_neighbours_json("\n\n[1, 2]", "nb.json"),
                       doctest::Contains("json 'nb.json' line 3: expected an object"), FormatError);
  CHECK_THROWS_WITH_AS(parse_neighbours_json("{\n\"a\": [\"b\",\n}", "nb.json"), doctest::Contains("json 'nb.json' line 3:"),
                       FormatError);
  CHECK_THROWS_WITH_AS(parse_neighbours_json("{\n\"a\": [],\n\"b\": \"c\"\n}", "nb.json"),
                       "json 'nb.json' line 3: value of 'b' must be an array of strings, got string", FormatError);
  CHECK_THROWS_WITH_AS(parse_neighbours_json("{\"a\": [1]}", "nb.json"),
                       "json 'nb.json' line 1: neighbours of 'a' must be strings, got number", FormatError);
  CHECK_THROWS_WITH_AS(parse_neighbours_json("{\"a\": [\"\xFF\"]}", "nb.json"), doctest::Contains("line 1"), FormatError);
  CHECK_THROWS_WITH_AS(parse_neighbours_json("{}", "nb.json"), "json 'nb.json': no entries (empty object)", FormatError);
}

TEST_CASE("JSON neighbour tables regression: a number beyond double's range is a FormatError") {
  // Found while writing fuzz_neighbours_json (its corpus keeps the input as regression_number_overflow): a
  // number out of double's range once escaped the loader as another exception type.
  CHECK_THROWS_WITH_AS(parse_neighbours_json("{\"a\": [1e400]}", "nb.json"),
                       "json 'nb.json' line 1: neighbours of 'a' must be strings, got number", FormatError);
  CHECK_THROWS_AS(parse_neighbours_json("[-1e999]", "nb.json"), FormatError);
  // A word listed twice is a syntax error with its line, not a silent overwrite.
  CHECK_THROWS_WITH_AS(parse_neighbours_json("{\"a\": [],\n\"a\": [\"b\"]}", "nb.json"),
                       doctest::Contains("json 'nb.json' line 2: at byte 13: duplicate key 'a'"), FormatError);
}

TEST_CASE("TSV neighbour tables") {
  const auto t = parse_neighbours_tsv("# comment\ngood\tfine\tnice\n\nlonely\n", "nb.tsv");
  CHECK(t.size() == 2);
  CHECK(t.lookup("good") == std::vector<std::string>{"fine", "nice"});
  CHECK(t.contains("lonely"));
  CHECK_THROWS_WITH_AS(parse_neighbours_tsv("good\t\tnice\n", "nb.tsv"),
                       "tsv 'nb.tsv' line 1: field 2 must be a non-empty word without spaces, got ''", FormatError);
  CHECK_THROWS_WITH_AS(parse_neighbours_tsv("a\tb\nbad\tx y\n", "nb.tsv"),
                       "tsv 'nb.tsv' line 2: field 2 must be a non-empty word without spaces, got 'x y'", FormatError);
  CHECK_THROWS_WITH_AS(parse_neighbours_tsv("# only a comment\n", "nb.tsv"), "tsv 'nb.tsv': no entries (empty file)", FormatError);
}

TEST_CASE("IdTable: deterministic ids and rows") {
  Vocabulary v;
  const auto t = IdTable::build_adding(parse_neighbours_tsv("b\tc\na\tb\tc\n", "x"), v, v);
  CHECK(v.word(0) == "a");  // keys in sorted order
  CHECK(v.find("b") == 1);
  CHECK(v.find("c") == 2);
  CHECK(t.rows() == 3);
  CHECK(t.count(0) == 2);
  CHECK(t.row(0)[0] == 1);
  CHECK(t.count(2) == 0);
  CHECK(t.count(99) == 0);
  CHECK(v.find("zzz") == Vocabulary::npos);
  CHECK(v.id("c") == 2);
  CHECK_THROWS_WITH_AS(v.id("zzz"), "Vocabulary::id: 'zzz' is not in the vocabulary of 3 words", LookupError);
  CHECK_THROWS_WITH_AS(v.word(7), "Vocabulary::word: id must be in [0, 3), got 7", InvalidArgument);
  CHECK_THROWS_AS(v.word(-1), InvalidArgument);
}

TEST_CASE("IdTable::build against a fixed vocabulary: ids are the vocabulary's, unknown words are an error") {
  // A model's vocabulary in its own id order (as read from a vocab.txt): not sorted, and without "huge".
  Vocabulary model;
  for (const char* w : {"[PAD]", "the", "film", "good", "movie", "fine", "big", "nice"}) model.add(w);
  const auto lists = parse_neighbours_tsv("good\tfine\tnice\nfilm\tmovie\nbig\thuge\tlarge\n", "nb.tsv");
  CHECK_THROWS_WITH_AS(IdTable::build(lists, model, model),
                       "IdTable::build: 'huge' (listed for 'big') is not in the target vocabulary (pass UnknownWords::drop to "
                       "leave it out)",
                       LookupError);
  const auto t = IdTable::build(lists, model, model, UnknownWords::drop);
  CHECK(model.size() == 8);  // the vocabulary never grows
  CHECK(t.rows() == 8);      // one row per model id, nothing beyond it
  REQUIRE(t.count(model.id("good")) == 2);
  CHECK(t.row(model.id("good"))[0] == model.id("fine"));
  CHECK(t.row(model.id("good"))[1] == model.id("nice"));
  CHECK(t.count(model.id("film")) == 1);
  CHECK(t.row(model.id("film"))[0] == model.id("movie"));
  CHECK(t.count(model.id("big")) == 0);  // huge and large dropped
  CHECK(t.count(model.id("the")) == 0);
  // An unknown key is named too.
  CHECK_THROWS_WITH_AS(IdTable::build(parse_neighbours_tsv("cinema\tfilm\n", "x"), model, model),
                       "IdTable::build: word 'cinema' is not in the source vocabulary (pass UnknownWords::drop to leave it out)",
                       LookupError);
  // The sampler built on it knows the model's size and rejects ids beyond it.
  const SynonymSampler s(t, model.size());
  std::vector<std::int64_t> ids = {1, 3, 8}, out(3);
  CHECK_THROWS_WITH_AS(s.sample(ids.data(), 3, out.data(), 0, 0, 0),
                       "SynonymSampler::sample: ids[2] must be in [0, 8) (the vocabulary size), got 8", InvalidArgument);
  // A table made for a larger vocabulary does not fit this model: refused at construction.
  Vocabulary grown = model;
  const auto bigger = IdTable::build_adding(lists, grown, grown);
  CHECK(grown.size() == 10);
  CHECK_THROWS_WITH_AS(SynonymSampler(bigger, model.size()),
                       "SynonymSampler: neighbours has 10 rows, more than vocab_size 8", InvalidArgument);
  CHECK_THROWS_WITH_AS(SynonymSampler(IdTable({0, 1}, {9}), model.size()),
                       "SynonymSampler: neighbours lists id 9, outside the vocabulary [0, 8)", InvalidArgument);
}

TEST_CASE("IdTable::from_lists: integer neighbour lists checked against the vocabulary size") {
  const std::vector<std::vector<std::int64_t>> rows = {{2, 1, 2}, {}, {0}};
  const auto t = IdTable::from_lists(rows, 5);
  CHECK(t.rows() == 5);
  CHECK(t.count(0) == 2);  // the repeated 2 is kept once
  CHECK(t.row(0)[0] == 2);
  CHECK(t.row(0)[1] == 1);
  CHECK(t.count(2) == 1);
  CHECK(t.count(4) == 0);
  CHECK_THROWS_WITH_AS(IdTable::from_lists(std::vector<std::vector<int>>{{1}, {0, 5}}, 5),
                       "IdTable::from_lists: rows[1][1] must be in [0, 5), got 5", InvalidArgument);
  CHECK_THROWS_WITH_AS(IdTable::from_lists(std::vector<std::vector<int>>{{-1}}, 5),
                       "IdTable::from_lists: rows[0][0] must be in [0, 5), got -1", InvalidArgument);
  CHECK_THROWS_WITH_AS(IdTable::from_lists(std::vector<std::vector<int>>(6), 5),
                       "IdTable::from_lists: rows must number at most vocab_size 5, got 6", InvalidArgument);
}

TEST_CASE("augment takes any integral range") {
  const SynonymSampler s(IdTable::from_lists(std::vector<std::vector<int>>{{1, 2}}, 3), 3);
  const std::vector<std::int64_t> ids64 = {0, 1, 0};
  const std::vector<int> ids32 = {0, 1, 0};
  const std::vector<std::uint16_t> ids16 = {0, 1, 0};
  const Tensor<std::int32_t, 1> tensor = {0, 1, 0};
  const auto a = s.augment(ids64, 5, 7, 2);
  CHECK(s.augment(ids32, 5, 7, 2) == a);
  CHECK(s.augment(ids16, 5, 7, 2) == a);
  CHECK(s.augment(tensor, 5, 7, 2) == a);
  CHECK(s.augment({0, 1, 0}, 5, 7, 2) == a);
}

namespace {
// Word w (0..7) has w neighbours: ids 100 + 10 w + j.
IdTable ladder() {
  std::vector<std::uint32_t> offsets{0}, items;
  for (std::uint32_t w = 0; w < 8; ++w) {
    for (std::uint32_t j = 0; j < w; ++j) items.push_back(100 + 10 * w + j);
    offsets.push_back(static_cast<std::uint32_t>(items.size()));
  }
  return IdTable(offsets, items);
}
constexpr std::size_t kLadderVocab = 501;  // ids up to 176 in the table, 500 in the sentences
}  // namespace

TEST_CASE("SynonymSampler: replacement rate |N|/(|N|+1) per word and uniform draws (RS-DA reference)") {
  const SynonymSampler s(ladder(), kLadderVocab);
  const std::vector<std::int64_t> sentence = {0, 1, 2, 3, 4, 5, 6, 7, 500};
  const std::size_t copies = 20000;
  const auto out = s.augment(sentence, copies, 11, 0);
  for (std::size_t w = 0; w < sentence.size(); ++w) {
    std::map<std::int64_t, std::size_t> seen;
    for (std::size_t c = 0; c < copies; ++c) seen[out(c, w)]++;
    const double k = w < 8 ? double(w) : 0.0;
    const double p = k / (k + 1);
    const double rate = 1.0 - double(seen[sentence[w]]) / copies;
    CHECK(std::abs(rate - p) <= 3 * std::sqrt(p * (1 - p) / copies) + 1e-12);
    // Every outcome in {w} U N(w), each about 1 / (k + 1) (chi-square at 99.9%).
    CHECK(seen.size() == std::size_t(k) + 1);
    double chi2 = 0;
    for (const auto& [id, n] : seen) {
      if (id != sentence[w]) CHECK(id >= 100 + 10 * std::int64_t(w));
      chi2 += (n - copies / (k + 1)) * (n - copies / (k + 1)) / (copies / (k + 1));
    }
    const double crit[8] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32};
    if (k > 0) CHECK(chi2 < crit[std::size_t(k)]);
  }
}

TEST_CASE("SynonymSampler options: probability, cap, protected words; pairs use separate streams") {
  SynonymOptions o;
  o.replace_probability = 0.5;
  const SynonymSampler half(ladder(), kLadderVocab, o);
  const std::vector<std::int64_t> one = {7};
  const auto out = half.augment(one, 20000, 3, 0);
  const double rate = double(std::count_if(out.begin(), out.end(), [](std::int64_t v) { return v != 7; })) / 20000;
  const double p = 0.5 * 7 / 8;
  CHECK(std::abs(rate - p) <= 3 * std::sqrt(p * (1 - p) / 20000));

  o = {};
  o.max_replace_fraction = 0.25;
  o.protected_ids = {6};
  const SynonymSampler capped(ladder(), kLadderVocab, o);
  const std::vector<std::int64_t> s = {7, 7, 7, 7, 6, 6, 7, 7};
  std::vector<std::int64_t> buf(s.size());
  for (std::uint64_t c = 0; c < 2000; ++c) {
    const std::size_t changed = capped.sample(s.data(), s.size(), buf.data(), 1, 2, c);
    CHECK(changed <= 2);
    CHECK(buf[4] == 6);
    CHECK(buf[5] == 6);
  }
  const auto [a, b] = SynonymSampler(ladder(), kLadderVocab).augment_pair(std::vector<std::int64_t>(30, 7), std::vector<std::int64_t>(30, 7), 4, 9, 1);
  CHECK(a != b);
  std::vector<std::int64_t> neg = {1, -3};
  CHECK_THROWS_WITH_AS(SynonymSampler(ladder(), kLadderVocab).sample(neg.data(), 2, buf.data(), 0, 0, 0),
                       "SynonymSampler::sample: ids[1] must be in [0, 501) (the vocabulary size), got -3", InvalidArgument);
  o.protected_ids = {501};
  CHECK_THROWS_WITH_AS(SynonymSampler(ladder(), kLadderVocab, o),
                       "SynonymSampler: protected_ids: ids[0] must be in [0, 501) (the vocabulary size), got 501", InvalidArgument);
  o = {};
  o.replace_probability = 1.5;
  CHECK_THROWS_WITH_AS(SynonymSampler(ladder(), kLadderVocab, o), "SynonymSampler: replace_probability must be in [0, 1], got 1.5", InvalidArgument);
}

TEST_CASE("CodeSwitchSampler: sentence ratio, word cross rate, uniform language choice") {
  // Three languages: word 1 is translated by all (ids 10+l), word 2 only by language 2 (ids 40, 41).
  auto dict = [](std::uint32_t l) {
    std::vector<std::uint32_t> offsets{0, 0, 1}, items{10 + l};
    if (l == 2) {
      items.push_back(40);
      items.push_back(41);
    }
    offsets.push_back(static_cast<std::uint32_t>(items.size()));
    return IdTable(offsets, items);
  };
  CodeSwitchOptions o;
  o.ratio = 0.3;
  o.cross = 0.6;
  const CodeSwitchSampler cs({dict(0), dict(1), dict(2)}, 42, o);
  const std::vector<std::int64_t> s = {0, 1, 2, 1, 1, 1, 1, 1, 1, 1};
  const std::size_t copies = 20000;
  const auto out = cs.augment(s, copies, 5, 3);
  std::size_t chosen = 0, word_changes = 0, word_slots = 0;
  std::map<std::int64_t, std::size_t> lang_of_1, of_2;
  for (std::size_t c = 0; c < copies; ++c) {
    bool any = false;
    for (std::size_t i = 0; i < s.size(); ++i) any |= out(c, i) != s[i];
    CHECK(out(c, 0) == 0);  // no translation: never changes
    if (!any) continue;
    ++chosen;
    for (std::size_t i = 1; i < s.size(); ++i) {
      ++word_slots;
      if (out(c, i) != s[i]) ++word_changes;
      if (s[i] == 1 && out(c, i) != 1) lang_of_1[out(c, i)]++;
      if (s[i] == 2 && out(c, i) != 2) of_2[out(c, i)]++;
    }
  }
  // A chosen sentence with 9 translatable words stays unchanged with probability 0.4^9: negligible.
  const double r = double(chosen) / copies;
  CHECK(std::abs(r - 0.3) <= 3 * std::sqrt(0.3 * 0.7 / copies) + 0.0003);
  const double x = double(word_changes) / word_slots;
  CHECK(std::abs(x - 0.6) <= 3 * std::sqrt(0.6 * 0.4 / word_slots) + 0.001);
  // Word 1: language uniform over 3 (ids 10, 11, 12); word 2: only language 2, translations 40/41 uniform.
  CHECK(lang_of_1.size() == 3);
  double chi2 = 0, n1 = 0;
  for (const auto& [id, n] : lang_of_1) n1 += n;
  for (const auto& [id, n] : lang_of_1) chi2 += (n - n1 / 3) * (n - n1 / 3) / (n1 / 3);
  CHECK(chi2 < 13.82);
  CHECK(of_2.size() == 2);
  CHECK(std::abs(double(of_2[40]) - double(of_2[41])) < 4 * std::sqrt(double(of_2[40] + of_2[41])));
  CHECK_THROWS_WITH_AS(CodeSwitchSampler({}, 42), "CodeSwitchSampler: needs at least one dictionary, got 0", InvalidArgument);
  CHECK_THROWS_WITH_AS(CodeSwitchSampler({dict(0), dict(2)}, 41), "CodeSwitchSampler: dictionaries[1] lists id 41, outside the vocabulary [0, 41)",
                       InvalidArgument);
  const std::vector<std::int64_t> beyond = {1, 42};
  std::vector<std::int64_t> sink(2);
  CHECK_THROWS_WITH_AS(cs.sample(beyond.data(), 2, sink.data(), 0, 0, 0),
                       "CodeSwitchSampler::sample: ids[1] must be in [0, 42) (the vocabulary size), got 42", InvalidArgument);
}

TEST_CASE("reproducibility: keyed by (seed, example, copy), independent of order and threads") {
  const SynonymSampler s(ladder(), kLadderVocab);
  std::vector<std::vector<std::int64_t>> sentences;
  Rng rng(1);
  for (int e = 0; e < 64; ++e) {
    std::vector<std::int64_t> v(20);
    for (auto& x : v) x = static_cast<std::int64_t>(rng.below(8));
    sentences.push_back(v);
  }
  auto run = [&](int threads, bool reverse) {
    set_num_threads(threads);
    std::vector<Tensor<std::int64_t, 2>> out(sentences.size());
    parallel_for(0, static_cast<std::ptrdiff_t>(sentences.size()), [&](std::ptrdiff_t i) {
      const std::size_t e = reverse ? sentences.size() - 1 - static_cast<std::size_t>(i) : static_cast<std::size_t>(i);
      out[e] = s.augment(sentences[e], 3, 99, e);
    });
    set_num_threads(1);
    return out;
  };
  const auto a = run(1, false), b = run(1, true);
  CHECK(a == b);
  // One copy on its own equals the same copy inside a batch of copies.
  std::vector<std::int64_t> single(20);
  s.sample(sentences[5].data(), 20, single.data(), 99, 5, 2);
  for (std::size_t i = 0; i < 20; ++i) CHECK(single[i] == a[5](2, i));
  if (robustxlt_test::openmp) CHECK(run(2, true) == a);
  else MESSAGE("OpenMP off: the 2-thread comparison is skipped (see the next test case)");
}

TEST_CASE("embedding noise does not depend on the thread count" * robustxlt_test::needs_threads()) {
  Tensor<float, 3> x1 = xt::zeros<float>({6, 5, 16}), x2 = x1;
  Tensor<std::int64_t, 2> mask = xt::ones<std::int64_t>({6, 5});
  add_embedding_noise(x1, mask, EmbeddingNoise::gaussian, 0.1f, 4, 10, 1);
  set_num_threads(2);
  add_embedding_noise(x2, mask, EmbeddingNoise::gaussian, 0.1f, 4, 10, 1);
  set_num_threads(1);
  CHECK(x1 == x2);
}

TEST_CASE("embedding noise: moments, ranges, ball radii, padding untouched") {
  const std::size_t B = 40, T = 50, D = 32;
  Tensor<std::int64_t, 2> mask = xt::ones<std::int64_t>({B, T});
  for (std::size_t b = 0; b < B; ++b) mask(b, T - 1) = 0;
  Tensor<float, 3> g = xt::zeros<float>({B, T, D});
  add_embedding_noise(g, mask, EmbeddingNoise::gaussian, 0.5f, 1, 0, 0);
  double s2 = 0, n = 0;
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t d = 0; d < D; ++d) {
        if (!mask(b, t)) {
          REQUIRE(g(b, t, d) == 0.0f);
          continue;
        }
        s2 += double(g(b, t, d)) * g(b, t, d);
        ++n;
      }
  CHECK(std::sqrt(s2 / n) == doctest::Approx(0.5).epsilon(0.01));
  Tensor<float, 3> u = xt::zeros<float>({B, T, D});
  add_embedding_noise(u, mask, EmbeddingNoise::uniform, 0.2f, 1, 0, 0);
  CHECK(xt::amax(xt::abs(u))() <= 0.2f);
  CHECK(xt::amax(xt::abs(u))() > 0.199f);
  CHECK(std::abs(xt::mean(u)()) < 0.002);
  Tensor<float, 3> l = xt::zeros<float>({B, T, std::size_t(3)});
  add_embedding_noise(l, Tensor<std::int64_t, 2>{}, EmbeddingNoise::l2_ball, 2.0f, 1, 0, 0);
  std::vector<double> u3;
  for (std::size_t k = 0; k < B * T; ++k) {
    const float* r = l.data() + 3 * k;
    const double radius = std::sqrt(double(r[0]) * r[0] + double(r[1]) * r[1] + double(r[2]) * r[2]);
    REQUIRE(radius <= 2.0 * (1 + 1e-6));
    u3.push_back(std::pow(radius / 2.0, 3.0));
  }
  std::sort(u3.begin(), u3.end());
  double ks = 0;
  for (std::size_t i = 0; i < u3.size(); ++i)
    ks = std::max({ks, std::abs(double(i + 1) / u3.size() - u3[i]), std::abs(u3[i] - double(i) / u3.size())});
  CHECK(ks < 1.95 / std::sqrt(double(u3.size())));
  CHECK_THROWS_WITH_AS(add_embedding_noise(g, mask, EmbeddingNoise::gaussian, -1.0f, 0, 0, 0),
                       "add_embedding_noise: scale (sigma, r or radius) must be >= 0 and finite, got -1", InvalidArgument);
  // NaN in the clean embeddings is named where it enters.
  Tensor<float, 3> bad = xt::zeros<float>({2, 3, 4});
  bad(1, 0, 2) = std::nanf("");
  CHECK_THROWS_WITH_AS(add_embedding_noise(bad, Tensor<int, 2>{}, EmbeddingNoise::gaussian, 0.1f, 0, 0, 0),
                       "add_embedding_noise: x must be finite, got nan at [1, 0, 2]", NumericError);
  // A view of the caller's buffer is noised in place, with the same draws as a container.
  std::vector<float> buffer(B * T * D, 0.0f);
  add_embedding_noise(xt::adapt(buffer.data(), buffer.size(), xt::no_ownership(), std::array<std::size_t, 3>{B, T, D}), mask,
                      EmbeddingNoise::gaussian, 0.5f, 1, 0, 0);
  CHECK(std::equal(buffer.begin(), buffer.end(), g.begin()));
}

TEST_CASE("Debian lexicons: WordNet synonyms and FreeDict dictionaries converted by examples/convert_lexicons.py") {
  const char* env = std::getenv("ROBUSTXLT_LEXICONS");
  if (!env || !fs::exists(fs::path(env) / "en_synonyms.json")) {
    MESSAGE("converted lexicons not found (set ROBUSTXLT_LEXICONS); skipping");
    robustxlt_test::parity_skipped = true;
    return;
  }
  const fs::path dir(env);
  const auto json = load_neighbours_json(dir / "en_synonyms.json");
  const auto tsv = load_neighbours_tsv(dir / "en_synonyms.tsv");
  CHECK(json.size() > 10000);
  CHECK(json.size() == tsv.size());
  CHECK(json.pairs() == tsv.pairs());
  for (const auto& [w, list] : json.entries()) REQUIRE(tsv.lookup(w) == list);
  CHECK_FALSE(json.lookup("good").empty());
  CHECK_FALSE(json.lookup("big").empty());
  MESSAGE("WordNet: ", json.size(), " words, ", json.pairs(), " synonym pairs");
  for (const char* lang : {"deu", "hin", "swh", "fra", "spa"}) {
    const fs::path p = dir / (std::string("en-") + lang + ".txt");
    if (!fs::exists(p)) continue;
    const auto d = load_muse(p);
    CHECK(d.size() > 500);
    MESSAGE("FreeDict en-", std::string(lang), ": ", d.size(), " English words, ", d.pairs(), " pairs");
  }
  const auto de = load_muse(dir / "en-deu.txt");
  const auto& house = de.lookup("house");
  CHECK(std::find(house.begin(), house.end(), "Haus") != house.end());
  CHECK(fs::exists(dir / "en-hin.txt"));
  CHECK(fs::exists(dir / "en-swh.txt"));
  // The real tables drive the samplers.
  Vocabulary vocab;
  const IdTable synonyms = IdTable::build_adding(json, vocab, vocab);
  for (const char* w : {"the", "car", "was"}) vocab.add(w);
  const SynonymSampler syn(synonyms, vocab.size());
  std::vector<std::int64_t> sentence;
  for (const char* w : {"the", "good", "car", "was", "big"}) sentence.push_back(vocab.add(w));
  const auto copies = syn.augment(sentence, 50, 1, 0);
  std::set<std::int64_t> variants(xt::view(copies, xt::all(), 1).begin(), xt::view(copies, xt::all(), 1).end());
  CHECK(variants.size() > 1);
  Vocabulary multi;
  std::vector<IdTable> dicts;
  for (const char* lang : {"deu", "hin", "swh"})
    dicts.push_back(IdTable::build_adding(load_muse(dir / (std::string("en-") + lang + ".txt")), multi, multi));
  const CodeSwitchSampler cs(dicts, multi.size(), CodeSwitchOptions{1.0, 1.0});
  const std::vector<std::int64_t> en = {multi.id("house")};
  const auto switched = cs.augment(en, 20, 2, 0);
  for (std::size_t c = 0; c < 20; ++c) CHECK(switched(c, 0) != en[0]);
}

// ---------------------------------------------------------------------------------------------------------
// Large inputs: a 250k-word vocabulary, as in multilingual encoders' vocabularies.

TEST_CASE("250k-word vocabulary: loader, ids, IdTable rows and both samplers stay exact at the top of the id range") {
  constexpr std::uint32_t N = 250000;
  auto name = [](std::uint32_t i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "w%06u", i);  // zero-padded: sorted order is numeric order
    return std::string(buf);
  };
  auto neighbours = [&](std::uint32_t i) {
    std::vector<std::uint32_t> n{(i + 1) % N};
    const std::uint32_t second = static_cast<std::uint32_t>((7ull * i + 3) % N);
    if (second != n[0]) n.push_back(second);
    return n;
  };
  std::string tsv;
  tsv.reserve(std::size_t(N) * 24);
  for (std::uint32_t i = 0; i < N; ++i) {
    tsv += name(i);
    for (auto j : neighbours(i)) tsv += '\t' + name(j);
    tsv += '\n';
  }
  const WordLists lists = parse_neighbours_tsv(tsv, "250k.tsv");
  CHECK(lists.size() == N);
  // One vocabulary for words and neighbours, as the samplers need: ids follow first appearance (sorted
  // keys, each followed by its new neighbours), so rows are compared through the words they name.
  Vocabulary vocab;
  const IdTable table = IdTable::build_adding(lists, vocab, vocab);
  REQUIRE(vocab.size() == N);
  REQUIRE(table.rows() == N);
  std::size_t items = 0, wrong_rows = 0;
  auto index_of = [&](std::int64_t id) { return static_cast<std::uint32_t>(std::stoul(vocab.word(id).substr(1))); };
  // Reference neighbour ids of id w, from the words alone.
  auto expected_row = [&](std::int64_t w) {
    std::vector<std::uint32_t> r;
    for (auto j : neighbours(index_of(w))) r.push_back(static_cast<std::uint32_t>(vocab.id(name(j))));
    return r;
  };
  for (std::uint32_t i = 0; i < N; ++i) {
    const std::int64_t id = vocab.find(name(i));
    items += neighbours(i).size();
    const auto expected = expected_row(id);
    if (id == Vocabulary::npos || table.count(id) != expected.size() ||
        !std::equal(expected.begin(), expected.end(), table.row(id)))
      ++wrong_rows;
  }
  CHECK(wrong_rows == 0);
  CHECK(table.items() == items);
  CHECK(table.count(vocab.find("w083333")) == 1);  // w083334 twice: duplicates are dropped
  for (std::int64_t id : {0u, 65535u, 65536u, 131072u, N - 1}) CHECK(vocab.find(vocab.word(id)) == id);
  CHECK(vocab.find("w250000") == Vocabulary::npos);
  CHECK_THROWS_AS(vocab.word(N), InvalidArgument);

  // RS-DA over ids spread across the whole range: every output is w or one of N(w), and words with two
  // neighbours change with probability 2/3.
  const SynonymSampler syn(table, N);
  std::vector<std::int64_t> ids(20000), out(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int64_t>((i * 12347 + 249000) % N);
  const std::size_t changed = syn.sample(ids.data(), ids.size(), out.data(), 11, 0, 0);
  std::size_t eligible_two = 0, changed_two = 0, outside = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto n = expected_row(ids[i]);
    outside += !(out[i] == ids[i] || std::find(n.begin(), n.end(), static_cast<std::uint32_t>(out[i])) != n.end());
    if (n.size() == 2) {
      ++eligible_two;
      changed_two += out[i] != ids[i];
    }
  }
  CHECK(outside == 0);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) differ += out[i] != ids[i];
  CHECK(changed == differ);
  const double rate = double(changed_two) / double(eligible_two), se = std::sqrt(2.0 / 9.0 / double(eligible_two));
  CHECK(std::abs(rate - 2.0 / 3.0) < 3 * se);

  // CoSDA-ML with two 250k dictionaries (the table and its shift by one): every replacement is a translation.
  std::vector<std::uint32_t> offsets(N + 1), shifted(N);
  for (std::uint32_t i = 0; i <= N; ++i) offsets[i] = i;
  for (std::uint32_t i = 0; i < N; ++i) shifted[i] = (i + 2) % N;
  const CodeSwitchSampler cs({table, IdTable(offsets, shifted)}, N, CodeSwitchOptions{1.0, 1.0});
  cs.sample(ids.data(), ids.size(), out.data(), 12, 0, 0);
  std::size_t not_translations = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto w = static_cast<std::uint32_t>(ids[i]);
    const auto n = expected_row(w);
    const auto o = static_cast<std::uint32_t>(out[i]);
    not_translations += !(o == (w + 2) % N || std::find(n.begin(), n.end(), o) != n.end());
  }
  CHECK(not_translations == 0);
}
