#pragma once
// The simulated multilingual world of the zero-shot demo.
//
// Lexicon: English "concepts" (headwords) with English synonyms and translations into each requested
// language, read from the files examples/convert_lexicons.py writes from Debian's WordNet and FreeDict
// packages (en-XXX.txt MUSE dictionaries, en_synonyms.tsv), or from the built-in table when those are
// missing.
//
// Embedding space: no pretrained multilingual weights are assumed, so the "pretrained" table is simulated.
// Each concept c gets a random vector v_c ~ N(0, I/D) (norm about 1). An English synonym of c sits at
// v_c + N(0, s^2 I/D). A word of language L that translates c sits at R_L v_c + N(0, sigma_L^2 I/D), where
// R_L rotates by angle theta_L in each of D/2 random orthogonal planes: a partial random rotation of the
// whole space plus word-level noise. The low-resource languages (Hindi, Swahili) get larger theta and
// sigma than German, French and Spanish, as multilingual encoders align them worse.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <robustxlt/robustxlt.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "builtin_lexicon.hpp"

namespace zero_shot {

using robustxlt::Rng;
using robustxlt::Tensor;

// How far a language's words sit from their English translations.
struct Misalignment {
  double angle = 0.5;  // radians, rotation in every plane
  double noise = 0.45; // per-word noise norm (expected)
};

struct LanguageInfo {
  std::string code;  // ISO 639-3, as the FreeDict packages name them (deu, fra, ...)
  std::string short_code;
  Misalignment misalignment;
};

// Misalignment levels, fixed before any training run: high-resource languages about 0.45 from their English
// translation (cosine about 0.9), low-resource ones about 0.9 (cosine about 0.65). Other FreeDict languages
// get a level in between.
inline LanguageInfo language_info(const std::string& code) {
  static const std::map<std::string, LanguageInfo> known = {
      {"deu", {"deu", "de", {0.35, 0.30}}}, {"fra", {"fra", "fr", {0.30, 0.30}}}, {"spa", {"spa", "es", {0.30, 0.25}}},
      {"hin", {"hin", "hi", {0.70, 0.60}}}, {"swh", {"swh", "sw", {0.80, 0.65}}}};
  static const std::map<std::string, std::string> two_letter = {
      {"de", "deu"}, {"fr", "fra"}, {"es", "spa"}, {"hi", "hin"}, {"sw", "swh"}, {"it", "ita"}, {"pt", "por"},
      {"nl", "nld"}, {"ru", "rus"}, {"ja", "jpn"}};
  std::string c = code;
  if (auto it = two_letter.find(c); it != two_letter.end()) c = it->second;
  if (auto it = known.find(c); it != known.end()) return it->second;
  if (c.size() != 3 || !std::all_of(c.begin(), c.end(), [](unsigned char ch) { return std::islower(ch); }))
    robustxlt::fail("language: expected a FreeDict code such as deu or a two-letter code such as de, got '", code, "'");
  return {c, c, {0.5, 0.45}};
}

struct Lexicon {
  std::string source;                            // where it came from, for the report
  std::vector<std::string> languages;            // ISO 639-3 codes, in the order requested
  std::vector<std::string> concepts;             // English headwords
  std::vector<std::vector<std::string>> synonyms;  // [concept] English neighbours (never another concept)
  std::vector<std::vector<std::vector<std::string>>> translations;  // [language][concept] words, non-empty
};

namespace detail {

inline bool plain_lowercase_word(const std::string& w) {
  return !w.empty() && std::all_of(w.begin(), w.end(), [](unsigned char c) { return c >= 'a' && c <= 'z'; });
}

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep))
    if (!cur.empty()) out.push_back(cur);
  return out;
}

// Keeps the concepts that still have at least one translation in every language and one word per
// (language, word): a word that translates several concepts stays with the first (in concept order).
inline Lexicon finish(Lexicon in, std::size_t max_synonyms) {
  Lexicon out;
  out.source = in.source;
  out.languages = in.languages;
  out.translations.resize(in.languages.size());
  std::vector<std::set<std::string>> claimed(in.languages.size());
  std::set<std::string> english(in.concepts.begin(), in.concepts.end()), claimed_synonyms;
  for (std::size_t c = 0; c < in.concepts.size(); ++c) {
    std::vector<std::vector<std::string>> words(in.languages.size());
    bool ok = true;
    for (std::size_t l = 0; l < in.languages.size() && ok; ++l) {
      for (const auto& w : in.translations[l][c])
        if (!claimed[l].count(w) && std::find(words[l].begin(), words[l].end(), w) == words[l].end()) words[l].push_back(w);
      ok = !words[l].empty();
    }
    if (!ok) continue;
    std::vector<std::string> syn;
    for (const auto& s : in.synonyms[c]) {
      if (syn.size() >= max_synonyms) break;
      if (english.count(s) || claimed_synonyms.count(s) || !plain_lowercase_word(s)) continue;
      syn.push_back(s);
      claimed_synonyms.insert(s);
    }
    for (std::size_t l = 0; l < in.languages.size(); ++l) {
      for (const auto& w : words[l]) claimed[l].insert(w);
      out.translations[l].push_back(std::move(words[l]));
    }
    out.concepts.push_back(in.concepts[c]);
    out.synonyms.push_back(std::move(syn));
  }
  return out;
}

}  // namespace detail

// The built-in table, restricted to the requested languages (all of which it must hold).
inline Lexicon builtin_lexicon(const std::vector<std::string>& languages) {
  Lexicon lex;
  lex.source = "built-in lexicon (examples/zero_shot/builtin_lexicon.hpp)";
  lex.languages = languages;
  std::vector<std::size_t> column;
  for (const auto& code : languages) {
    const auto* begin = std::begin(kBuiltinLexiconLanguages);
    const auto* end = std::end(kBuiltinLexiconLanguages);
    const auto* it = std::find_if(begin, end, [&](const char* c) { return code == c; });
    if (it == end)
      robustxlt::fail("builtin lexicon: language '", code, "' is not built in (deu, fra, spa, hin, swh); "
                              "install dict-freedict-eng-", code, " and pass --lexicons");
    column.push_back(static_cast<std::size_t>(it - begin) + 2);
  }
  lex.translations.resize(languages.size());
  std::istringstream rows(kBuiltinLexicon);
  std::string row;
  while (std::getline(rows, row)) {
    if (row.empty()) continue;
    std::vector<std::string> f;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= row.size(); ++i)
      if (i == row.size() || row[i] == '|') {
        f.push_back(row.substr(start, i - start));
        start = i + 1;
      }
    lex.concepts.push_back(f[0]);
    lex.synonyms.push_back(detail::split(f[1], ','));
    for (std::size_t l = 0; l < languages.size(); ++l) lex.translations[l].push_back(detail::split(f[column[l]], ','));
  }
  return detail::finish(std::move(lex), 8);
}

// The converted Debian resources in dir (en-XXX.txt per language, en_synonyms.tsv). Concepts are the plain
// lowercase English words that every requested dictionary translates, in sorted order, at most max_concepts.
inline Lexicon file_lexicon(const std::filesystem::path& dir, const std::vector<std::string>& languages,
                            std::size_t max_concepts) {
  Lexicon lex;
  lex.source = "WordNet and FreeDict, converted by examples/convert_lexicons.py (" + dir.string() + ")";
  lex.languages = languages;
  std::vector<robustxlt::noise::WordLists> dicts;
  for (const auto& code : languages) dicts.push_back(robustxlt::noise::load_muse(dir / ("en-" + code + ".txt")));
  const auto synonyms = robustxlt::noise::load_neighbours_tsv(dir / "en_synonyms.tsv");
  std::vector<std::string> common;
  for (const auto& [word, targets] : dicts.front().entries()) {
    if (!detail::plain_lowercase_word(word)) continue;
    if (std::all_of(dicts.begin(), dicts.end(), [&](const auto& d) { return d.contains(word); })) common.push_back(word);
  }
  std::sort(common.begin(), common.end());
  if (common.size() > max_concepts) common.resize(max_concepts);
  lex.translations.resize(languages.size());
  for (const auto& w : common) {
    lex.concepts.push_back(w);
    lex.synonyms.push_back(synonyms.contains(w) ? synonyms.lookup(w) : std::vector<std::string>{});
    for (std::size_t l = 0; l < languages.size(); ++l) lex.translations[l].push_back(dicts[l].lookup(w));
  }
  return detail::finish(std::move(lex), 8);
}

inline bool has_lexicon_files(const std::filesystem::path& dir, const std::vector<std::string>& languages) {
  if (dir.empty() || !std::filesystem::exists(dir / "en_synonyms.tsv")) return false;
  return std::all_of(languages.begin(), languages.end(),
                     [&](const std::string& c) { return std::filesystem::exists(dir / ("en-" + c + ".txt")); });
}

// Token ids: 0 = padding, 1 = [CLS], 2 = [SEP], then English concepts, English synonyms, then the words of
// each language in turn.
inline constexpr std::int64_t kPad = 0, kCls = 1, kSep = 2;

struct World {
  Lexicon lexicon;
  std::size_t dim = 0;
  std::vector<LanguageInfo> languages;            // the target languages (English is not listed)
  std::vector<std::string> words;                 // [V] "en:dog", "de:Hund", ...
  std::vector<std::int32_t> word_language;        // [V] -1 English or special, else index into languages
  std::vector<std::int64_t> word_concept;         // [V] concept id, -1 for specials
  std::vector<std::vector<std::int64_t>> synonym_ids;                 // [concept] English synonym ids
  std::vector<std::vector<std::vector<std::int64_t>>> translation_ids;  // [language][concept] ids
  Tensor<float, 2> table;                         // [V, D] the frozen embedding table
  std::vector<int> field;                         // [concept] 0, 1 or 2
  std::vector<double> field_margin;               // [concept] L2 distance of the English vector to its field's border
  std::vector<std::vector<std::size_t>> field_concepts;  // [3] concepts of each field

  std::size_t vocab_size() const { return words.size(); }
  std::int64_t english_id(std::size_t concept) const { return 3 + static_cast<std::int64_t>(concept); }
};

namespace detail {

// A D x D matrix with orthonormal columns, from Gram-Schmidt on Gaussian columns (D is small).
inline std::vector<double> random_orthonormal(std::size_t D, Rng& rng) {
  std::vector<double> q(D * D);
  for (auto& x : q) x = rng.normal<double>();
  for (std::size_t j = 0; j < D; ++j) {  // column j = q[i * D + j]
    for (int pass = 0; pass < 2; ++pass)
      for (std::size_t k = 0; k < j; ++k) {
        double dot = 0;
        for (std::size_t i = 0; i < D; ++i) dot += q[i * D + j] * q[i * D + k];
        for (std::size_t i = 0; i < D; ++i) q[i * D + j] -= dot * q[i * D + k];
      }
    double n = 0;
    for (std::size_t i = 0; i < D; ++i) n += q[i * D + j] * q[i * D + j];
    n = std::sqrt(n);
    for (std::size_t i = 0; i < D; ++i) q[i * D + j] /= n;
  }
  return q;
}

}  // namespace detail

// R = Q B Q^T with B rotating each plane (2i, 2i+1) of Q's basis by angle: every vector turns by angle.
inline std::vector<double> partial_rotation(std::size_t D, double angle, Rng& rng) {
  const auto q = detail::random_orthonormal(D, rng);
  const double c = std::cos(angle), s = std::sin(angle);
  std::vector<double> r(D * D, 0.0);
  for (std::size_t i = 0; i < D; ++i) r[i * D + i] = 1.0;  // an odd D leaves the last axis alone
  // R = I + sum over planes of (c - 1)(a a^T + b b^T) + s (b a^T - a b^T), a, b the plane's basis vectors.
  for (std::size_t p = 0; p + 1 < D; p += 2)
    for (std::size_t i = 0; i < D; ++i)
      for (std::size_t j = 0; j < D; ++j) {
        const double ai = q[i * D + p], bi = q[i * D + p + 1], aj = q[j * D + p], bj = q[j * D + p + 1];
        r[i * D + j] += (c - 1.0) * (ai * aj + bi * bj) + s * (bi * aj - ai * bj);
      }
  return r;
}

// Builds the vocabulary, the embedding table and the concept fields from seed.
inline World build_world(Lexicon lexicon, std::size_t dim, std::uint64_t seed, double synonym_noise = 0.4) {
  World w;
  w.dim = dim;
  w.lexicon = std::move(lexicon);
  const auto& lex = w.lexicon;
  const std::size_t C = lex.concepts.size(), D = dim;
  for (const auto& code : lex.languages) w.languages.push_back(language_info(code));
  auto add = [&](std::string word, std::int32_t lang, std::int64_t concept) {
    w.words.push_back(std::move(word));
    w.word_language.push_back(lang);
    w.word_concept.push_back(concept);
    return static_cast<std::int64_t>(w.words.size() - 1);
  };
  add("[PAD]", -1, -1);
  add("[CLS]", -1, -1);
  add("[SEP]", -1, -1);
  for (std::size_t c = 0; c < C; ++c) add("en:" + lex.concepts[c], -1, static_cast<std::int64_t>(c));
  w.synonym_ids.resize(C);
  for (std::size_t c = 0; c < C; ++c)
    for (const auto& s : lex.synonyms[c]) w.synonym_ids[c].push_back(add("en:" + s, -1, static_cast<std::int64_t>(c)));
  w.translation_ids.resize(w.languages.size());
  for (std::size_t l = 0; l < w.languages.size(); ++l) {
    w.translation_ids[l].resize(C);
    for (std::size_t c = 0; c < C; ++c)
      for (const auto& t : lex.translations[l][c])
        w.translation_ids[l][c].push_back(
            add(w.languages[l].short_code + ":" + t, static_cast<std::int32_t>(l), static_cast<std::int64_t>(c)));
  }

  // Vectors: every draw comes from a stream keyed by what it is for, so adding a language changes nothing else.
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  w.table = Tensor<float, 2>::from_shape({w.words.size(), D});
  std::vector<double> concept_vec(C * D);
  for (std::size_t c = 0; c < C; ++c) {
    Rng rng(seed, 1, c);
    for (std::size_t k = 0; k < D; ++k) concept_vec[c * D + k] = scale * rng.normal<double>();
  }
  for (std::size_t id = 0; id < 3; ++id) {
    Rng rng(seed, 2, id);
    for (std::size_t k = 0; k < D; ++k) w.table(id, k) = static_cast<float>(scale * rng.normal<double>());
  }
  std::vector<std::vector<double>> rotation;
  for (std::size_t l = 0; l < w.languages.size(); ++l) {
    Rng rng(seed, 3, l);
    rotation.push_back(partial_rotation(D, w.languages[l].misalignment.angle, rng));
  }
  for (std::size_t id = 3; id < w.words.size(); ++id) {
    const auto c = static_cast<std::size_t>(w.word_concept[id]);
    const double* v = concept_vec.data() + c * D;
    Rng rng(seed, 4, id);
    const std::int32_t l = w.word_language[id];
    const bool head = static_cast<std::int64_t>(id) == w.english_id(c);
    const double noise = l >= 0 ? w.languages[static_cast<std::size_t>(l)].misalignment.noise : (head ? 0.0 : synonym_noise);
    for (std::size_t i = 0; i < D; ++i) {
      double x = v[i];
      if (l >= 0) {
        const auto& r = rotation[static_cast<std::size_t>(l)];
        x = 0;
        for (std::size_t j = 0; j < D; ++j) x += r[i * D + j] * v[j];
      }
      w.table(id, i) = static_cast<float>(x + noise * scale * rng.normal<double>());
    }
  }

  // Three semantic fields: the field of a concept is the one of three random orthonormal directions its
  // English vector projects on most.
  Rng frng(seed, 5, 0);
  const auto u = detail::random_orthonormal(D, frng);
  w.field.resize(C);
  w.field_margin.resize(C);
  w.field_concepts.assign(3, {});
  for (std::size_t c = 0; c < C; ++c) {
    double p[3];
    for (std::size_t k = 0; k < 3; ++k) {
      p[k] = 0;
      for (std::size_t i = 0; i < D; ++i) p[k] += concept_vec[c * D + i] * u[i * D + k];
    }
    const int f = static_cast<int>(std::max_element(p, p + 3) - p);
    // The border with field j is the hyperplane normal to (u_f - u_j) / sqrt(2).
    double margin = 1e300;
    for (int j = 0; j < 3; ++j)
      if (j != f) margin = std::min(margin, (p[f] - p[j]) / std::sqrt(2.0));
    w.field[c] = f;
    w.field_margin[c] = margin;
    w.field_concepts[static_cast<std::size_t>(f)].push_back(c);
  }
  for (const auto& f : w.field_concepts)
    if (f.size() < 2) robustxlt::fail("build_world: a semantic field has fewer than 2 concepts; the lexicon is too small (", C, " concepts)");
  return w;
}

}  // namespace zero_shot
