// JSON neighbour tables (noise::parse_neighbours_json); the invariants are in lexicon_checks.hpp.
#include "lexicon_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  robustxlt_fuzz::check_lexicon(
      robustxlt_fuzz::as_text(data, size),
      [](std::string_view text, bool fold) { return robustxlt::noise::parse_neighbours_json(text, "fuzz", fold); }, false);
  return 0;
}
