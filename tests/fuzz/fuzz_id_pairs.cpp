// BUCC gold pairs (align::parse_id_pairs): accepted pairs have two non-empty ids without tabs or newlines,
// and one pair per non-empty line.
#include "fuzz_support.hpp"
#include "robustxlt/align/retrieval.hpp"

using namespace robustxlt;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = robustxlt_fuzz::as_text(data, size);
  std::vector<std::pair<std::string, std::string>> pairs;
  if (!robustxlt_fuzz::accepts([&] { pairs = align::parse_id_pairs(text, "fuzz"); })) return 0;
  std::size_t lines = 0;
  for_each_line(text, [&](std::size_t, std::string_view l) { lines += !l.empty(); });
  FUZZ_CHECK(pairs.size() == lines);
  for (const auto& [a, b] : pairs) {
    FUZZ_CHECK(!a.empty() && !b.empty());
    FUZZ_CHECK(a.find_first_of("\t\n") == std::string::npos && b.find_first_of("\t\n") == std::string::npos);
  }
  return 0;
}
