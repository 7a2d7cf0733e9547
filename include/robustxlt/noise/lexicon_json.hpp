#pragma once
// JSON neighbour tables (the format counter-fitted neighbour lists are published in), in a header of their
// own so that the rest of noise/ does not pay for the JSON reader. Included by robustxlt.hpp, not by
// noise.hpp.

#include <filesystem>
#include <string>
#include <string_view>

#include "robustxlt/core/detail/json.hpp"
#include "robustxlt/core/error.hpp"
#include "robustxlt/core/io.hpp"
#include "robustxlt/noise/lexicon.hpp"

namespace robustxlt::noise {

// Parses a JSON neighbour table {"word": ["neighbour", ...], ...}: empty lists allowed, lists need not be
// symmetric. Throws FormatError with the line of a syntax error (a repeated word included), of a non-object
// document, or of the key whose value is not an array of strings.
inline WordLists parse_neighbours_json(std::string_view text, const std::string& source, bool fold_case = false) {
  robustxlt::detail::json::Value doc;
  try {
    doc = robustxlt::detail::json::Parser(text).parse();
  } catch (const robustxlt::detail::json::ParseError& e) {
    detail::format_error("json", source, detail::line_of(text, e.offset()), e.what());
  }
  if (!doc.is_object()) {
    const std::size_t first = text.find_first_not_of(" \t\r\n");
    detail::format_error("json", source, detail::line_of(text, first == std::string_view::npos ? 0 : first),
                         "expected an object {\"word\": [\"neighbour\", ...]}, got ", doc.type_name());
  }
  WordLists out(fold_case);
  for (const auto& [key, value] : doc.members) {
    const auto where = [&, &key = key] {
      std::string quoted;
      robustxlt::detail::json::append_quoted(quoted, key);
      return detail::line_of(text, text.find(quoted));
    };
    if (!value.is_array())
      detail::format_error("json", source, where(), "value of '", key, "' must be an array of strings, got ", value.type_name());
    out.touch(key);
    for (const auto& v : value.items) {
      if (!v.is_string()) detail::format_error("json", source, where(), "neighbours of '", key, "' must be strings, got ", v.type_name());
      out.add(key, v.text);
    }
  }
  if (out.size() == 0) robustxlt::detail::fail<FormatError>("json '", source, "': no entries (empty object)");
  return out;
}

inline WordLists load_neighbours_json(const std::filesystem::path& path, bool fold_case = false) {
  return parse_neighbours_json(read_file(path), path.string(), fold_case);
}

}  // namespace robustxlt::noise
