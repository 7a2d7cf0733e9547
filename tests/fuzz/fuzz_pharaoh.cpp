// Pharaoh alignments (align::parse_pharaoh). The first byte picks the options (1-based indices, reversed
// direction, a bounds check against four 8 x 8 sentence pairs); the rest is the text. Accepted text must
// survive format_pharaoh -> parse_pharaoh unchanged, with sorted, duplicate-free, disjoint link sets.
#include <algorithm>

#include "fuzz_support.hpp"
#include "robustxlt/align/pharaoh.hpp"

using namespace robustxlt;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  align::PharaohOptions opt;
  opt.one_based = data[0] & 1;
  opt.reverse = data[0] & 2;
  if (data[0] & 4) opt.lengths.assign(4, {8, 8});
  const std::string_view text = robustxlt_fuzz::as_text(data + 1, size - 1);
  std::vector<align::SentenceAlignment> corpus;
  if (!robustxlt_fuzz::accepts([&] { corpus = align::parse_pharaoh(text, "fuzz", opt); })) return 0;
  for (const auto& s : corpus) {
    FUZZ_CHECK(std::is_sorted(s.sure.begin(), s.sure.end()));
    FUZZ_CHECK(std::is_sorted(s.possible.begin(), s.possible.end()));
    FUZZ_CHECK(std::adjacent_find(s.sure.begin(), s.sure.end()) == s.sure.end());
    for (const auto& l : s.possible) FUZZ_CHECK(!std::binary_search(s.sure.begin(), s.sure.end(), l));
    if (!opt.lengths.empty())
      for (const auto& l : s.all()) FUZZ_CHECK(l.source < 8 && l.target < 8);
  }
  const std::string again = align::format_pharaoh(corpus, opt);
  const auto back = align::parse_pharaoh(again, "fuzz round trip", opt);
  FUZZ_CHECK(back.size() == corpus.size());
  for (std::size_t k = 0; k < back.size(); ++k) {
    FUZZ_CHECK(back[k].id == corpus[k].id);
    FUZZ_CHECK(back[k].sure == corpus[k].sure);
    FUZZ_CHECK(back[k].possible == corpus[k].possible);
  }
  (void)align::score(corpus, back);
  return 0;
}
