#pragma once
// JSON neighbour tables (the format counter-fitted neighbour lists are published in), in a header of their
// own so that the rest of noise/ does not pay for the JSON parser. Included by robustxlt.hpp, not by
// noise.hpp.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/io.hpp"
#include "robustxlt/noise/lexicon.hpp"

namespace robustxlt::noise {

// Parses a JSON neighbour table {"word": ["neighbour", ...], ...}: empty lists allowed, lists need not be
// symmetric. Throws FormatError with the line of a syntax error, of a non-object document, or of the key
// whose value is not an array of strings.
inline WordLists parse_neighbours_json(std::string_view text, const std::string& source, bool fold_case = false) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    detail::format_error("json", source, detail::line_of(text, e.byte == 0 ? 0 : e.byte - 1), e.what());
  } catch (const nlohmann::json::exception& e) {
    // Valid syntax the parser still refuses, e.g. a number beyond the range of double (1e400); it reports
    // no position, the message quotes the number.
    robustxlt::detail::fail<FormatError>("json '", source, "': ", e.what());
  }
  if (!doc.is_object()) {
    const std::size_t first = text.find_first_not_of(" \t\r\n");
    detail::format_error("json", source, detail::line_of(text, first == std::string_view::npos ? 0 : first),
                         "expected an object {\"word\": [\"neighbour\", ...]}, got ", doc.type_name());
  }
  WordLists out(fold_case);
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const auto where = [&] {
      const std::string quoted = nlohmann::json(it.key()).dump();
      return detail::line_of(text, text.find(quoted));
    };
    if (!it.value().is_array())
      detail::format_error("json", source, where(), "value of '", it.key(), "' must be an array of strings, got ",
                           it.value().type_name());
    out.touch(it.key());
    for (const auto& v : it.value()) {
      if (!v.is_string())
        detail::format_error("json", source, where(), "neighbours of '", it.key(), "' must be strings, got ", v.type_name());
      out.add(it.key(), v.get<std::string>());
    }
  }
  if (out.size() == 0) robustxlt::detail::fail<FormatError>("json '", source, "': no entries (empty object)");
  return out;
}

inline WordLists load_neighbours_json(const std::filesystem::path& path, bool fold_case = false) {
  return parse_neighbours_json(read_file(path), path.string(), fold_case);
}

}  // namespace robustxlt::noise
