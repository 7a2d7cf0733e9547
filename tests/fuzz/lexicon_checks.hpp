// Invariants the lexicon fuzz targets check on every accepted input: parsing with and without case folding
// accept the same texts; keys and values are valid UTF-8 and non-empty; folding never adds entries; the
// id table built from the lists has one row per source word and only ids the target vocabulary knows.
#pragma once

#include "fuzz_support.hpp"
#include "robustxlt/noise/lexicon.hpp"
#include "robustxlt/noise/lexicon_json.hpp"

namespace robustxlt_fuzz {

template <class Parse>
void check_lexicon(std::string_view text, Parse&& parse, bool words_without_spaces) {
  using namespace robustxlt;
  noise::WordLists plain, folded(true);
  const bool ok = accepts([&] { plain = parse(text, false); });
  const bool ok_folded = accepts([&] { folded = parse(text, true); });
  FUZZ_CHECK(ok == ok_folded);
  if (!ok) return;
  FUZZ_CHECK(plain.size() > 0);
  FUZZ_CHECK(folded.size() <= plain.size());
  FUZZ_CHECK(folded.folds_case());
  for (const auto& [key, values] : plain.entries()) {
    FUZZ_CHECK(noise::valid_utf8(key));
    FUZZ_CHECK(folded.contains(key));
    if (words_without_spaces) FUZZ_CHECK(!key.empty() && noise::split_whitespace(key).size() == 1);
    for (const auto& v : values) {
      FUZZ_CHECK(noise::valid_utf8(v));
      if (words_without_spaces) FUZZ_CHECK(!v.empty() && noise::split_whitespace(v).size() == 1);
    }
    FUZZ_CHECK(plain.lookup(key).size() == values.size());
  }
  noise::Vocabulary source, target;
  const auto table = noise::IdTable::build_adding(plain, source, target);
  FUZZ_CHECK(table.rows() == source.size());
  FUZZ_CHECK(table.items() <= plain.pairs());
  for (std::uint32_t v = 0; v < table.rows(); ++v)
    for (std::size_t k = 0; k < table.count(v); ++k) FUZZ_CHECK(table.row(v)[k] < target.size());
}

}  // namespace robustxlt_fuzz
