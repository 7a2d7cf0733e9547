#pragma once
// Lexicons: bilingual dictionaries (MUSE text format) and neighbour tables (JSON as used for counter-fitted
// neighbour lists, or our TSV), looked up by word, plus a vocabulary and compact id-to-ids tables that the
// samplers use. Loaders throw FormatError naming the file and line of the first malformed input.
//
// TSV neighbour format: UTF-8; lines starting with '#' and blank lines are ignored; every other line is
// "word<TAB>neighbour<TAB>neighbour..." (a word alone has no neighbours); fields are non-empty and contain
// no tab or newline.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/io.hpp"
#include "robustxlt/noise/text.hpp"

namespace robustxlt::noise {

// Word <-> id (ids dense from 0, in insertion order).
class Vocabulary {
 public:
  static constexpr std::uint32_t npos = 0xFFFFFFFFu;

  explicit Vocabulary(bool fold_case = false) : fold_(fold_case) {}

  // Id of word, adding it when absent.
  std::uint32_t add(std::string_view word) {
    std::string key = fold_ ? fold_case(word) : std::string(word);
    auto it = ids_.find(key);
    if (it != ids_.end()) return it->second;
    const auto id = static_cast<std::uint32_t>(words_.size());
    ids_.emplace(key, id);
    words_.push_back(std::move(key));
    return id;
  }

  // Id of word, or npos.
  std::uint32_t find(std::string_view word) const {
    auto it = fold_ ? ids_.find(fold_case(word)) : ids_.find(std::string(word));
    return it == ids_.end() ? npos : it->second;
  }

  // Word of an id; throws InvalidArgument when id >= size().
  const std::string& word(std::uint32_t id) const {
    if (id >= words_.size()) detail::fail("Vocabulary::word: id must be < ", words_.size(), ", got ", id);
    return words_[id];
  }

  std::size_t size() const noexcept { return words_.size(); }
  bool folds_case() const noexcept { return fold_; }

 private:
  bool fold_;
  std::unordered_map<std::string, std::uint32_t> ids_;
  std::vector<std::string> words_;
};

// A word -> list of words map (translations or neighbours), with the insertion order of each list kept and
// duplicates within a list removed.
class WordLists {
 public:
  explicit WordLists(bool fold_case = false) : fold_(fold_case) {}

  void add(std::string_view key, std::string_view value) {
    auto& list = entries_[fold_ ? fold_case(key) : std::string(key)];
    std::string v = fold_ ? fold_case(value) : std::string(value);
    if (std::find(list.begin(), list.end(), v) == list.end()) list.push_back(std::move(v));
  }
  // Registers key with no values (an empty neighbour list).
  void touch(std::string_view key) { entries_[fold_ ? fold_case(key) : std::string(key)]; }

  // The list of word (empty when the word is absent).
  const std::vector<std::string>& lookup(std::string_view word) const {
    static const std::vector<std::string> none;
    auto it = fold_ ? entries_.find(fold_case(word)) : entries_.find(std::string(word));
    return it == entries_.end() ? none : it->second;
  }
  bool contains(std::string_view word) const {
    return (fold_ ? entries_.find(fold_case(word)) : entries_.find(std::string(word))) != entries_.end();
  }

  std::size_t size() const noexcept { return entries_.size(); }  // number of keys
  std::size_t pairs() const noexcept {
    std::size_t n = 0;
    for (const auto& [k, v] : entries_) n += v.size();
    return n;
  }
  const std::unordered_map<std::string, std::vector<std::string>>& entries() const noexcept { return entries_; }
  bool folds_case() const noexcept { return fold_; }

 private:
  bool fold_;
  std::unordered_map<std::string, std::vector<std::string>> entries_;
};

namespace detail {

template <class... Args>
[[noreturn]] void format_error(const std::string& kind, const std::string& source, std::size_t line, Args&&... args) {
  robustxlt::detail::fail<FormatError>(kind, " '", source, "' line ", line, ": ", std::forward<Args>(args)...);
}

inline bool blank(std::string_view l) { return split_whitespace(l).empty(); }

// 1-based line of byte offset pos.
inline std::size_t line_of(std::string_view text, std::size_t pos) {
  pos = std::min(pos, text.size());
  return 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
}

}  // namespace detail

// Parses a MUSE dictionary: one "source target" pair per line, whitespace separated, UTF-8; blank lines are
// skipped; repeated sources collect several translations. source names the text in errors.
// Throws FormatError (invalid UTF-8, a line without a target, a line with more than two fields, no entries).
inline WordLists parse_muse(std::string_view text, const std::string& source, bool fold_case = false) {
  WordLists out(fold_case);
  for_each_line(text, [&](std::size_t line, std::string_view l) {
    if (!valid_utf8(l)) detail::format_error("muse", source, line, "invalid UTF-8");
    const auto fields = split_whitespace(l);
    if (fields.empty()) return;
    if (fields.size() == 1)
      detail::format_error("muse", source, line, "expected 'source target', got '", fields[0], "' without a target");
    if (fields.size() > 2)
      detail::format_error("muse", source, line, "expected 2 whitespace-separated fields, got ", fields.size());
    out.add(fields[0], fields[1]);
  });
  if (out.size() == 0) robustxlt::detail::fail<FormatError>("muse '", source, "': no entries (empty file)");
  return out;
}

inline WordLists load_muse(const std::filesystem::path& path, bool fold_case = false) {
  return parse_muse(read_file(path), path.string(), fold_case);
}

// Parses our TSV neighbour format (see the top of this file).
inline WordLists parse_neighbours_tsv(std::string_view text, const std::string& source, bool fold_case = false) {
  WordLists out(fold_case);
  for_each_line(text, [&](std::size_t line, std::string_view l) {
    if (!valid_utf8(l)) detail::format_error("tsv", source, line, "invalid UTF-8");
    if (l.empty() || l[0] == '#' || detail::blank(l)) return;
    std::vector<std::string_view> fields;
    std::size_t start = 0;
    for (;;) {
      const std::size_t tab = l.find('\t', start);
      fields.push_back(l.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    for (std::size_t f = 0; f < fields.size(); ++f)
      if (fields[f].empty() || split_whitespace(fields[f]).size() != 1 || split_whitespace(fields[f])[0].size() != fields[f].size())
        detail::format_error("tsv", source, line, "field ", f + 1, " must be a non-empty word without spaces, got '",
                             fields[f], "'");
    out.touch(fields[0]);
    for (std::size_t f = 1; f < fields.size(); ++f) out.add(fields[0], fields[f]);
  });
  if (out.size() == 0) robustxlt::detail::fail<FormatError>("tsv '", source, "': no entries (empty file)");
  return out;
}

inline WordLists load_neighbours_tsv(const std::filesystem::path& path, bool fold_case = false) {
  return parse_neighbours_tsv(read_file(path), path.string(), fold_case);
}

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

// A compact id -> ids table (CSR): row v lists the ids related to id v. What the samplers read.
class IdTable {
 public:
  IdTable() = default;
  IdTable(std::vector<std::uint32_t> offsets, std::vector<std::uint32_t> items)
      : offsets_(std::move(offsets)), items_(std::move(items)) {
    if (offsets_.empty() || offsets_.front() != 0 || offsets_.back() != items_.size() ||
        !std::is_sorted(offsets_.begin(), offsets_.end()))
      robustxlt::detail::fail("IdTable: offsets must start at 0, be non-decreasing and end at items.size() ", items_.size());
  }

  // Ids of words in `lists` through the source and target vocabularies: row v = targets of source word v.
  // Source words are added to `source`; targets are added to `target` (which may be the same vocabulary).
  static IdTable build(const WordLists& lists, Vocabulary& source, Vocabulary& target) {
    // Sorted keys: ids and rows must not depend on hash-map iteration order.
    std::vector<const std::string*> keys;
    for (const auto& [k, v] : lists.entries()) keys.push_back(&k);
    std::sort(keys.begin(), keys.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
    std::vector<std::vector<std::uint32_t>> rows;
    for (const std::string* k : keys) {
      const std::uint32_t id = source.add(*k);
      if (rows.size() <= id) rows.resize(id + 1);
      for (const auto& v : lists.lookup(*k)) {
        const std::uint32_t t = target.add(v);
        if (std::find(rows[id].begin(), rows[id].end(), t) == rows[id].end()) rows[id].push_back(t);
      }
    }
    rows.resize(std::max(rows.size(), source.size()));
    std::vector<std::uint32_t> offsets{0}, items;
    for (const auto& r : rows) {
      items.insert(items.end(), r.begin(), r.end());
      offsets.push_back(static_cast<std::uint32_t>(items.size()));
    }
    return IdTable(std::move(offsets), std::move(items));
  }

  // Number of rows (ids >= rows() have no entries).
  std::size_t rows() const noexcept { return offsets_.empty() ? 0 : offsets_.size() - 1; }
  std::size_t items() const noexcept { return items_.size(); }
  std::size_t count(std::uint32_t id) const noexcept { return id < rows() ? offsets_[id + 1] - offsets_[id] : 0; }
  const std::uint32_t* row(std::uint32_t id) const noexcept { return items_.data() + (id < rows() ? offsets_[id] : 0); }
  // Rows as vectors (for smooth::substitution_overlap, which takes a plain adjacency list).
  std::vector<std::vector<std::uint32_t>> adjacency(std::size_t min_rows = 0) const {
    std::vector<std::vector<std::uint32_t>> out(std::max(rows(), min_rows));
    for (std::uint32_t v = 0; v < rows(); ++v) out[v].assign(row(v), row(v) + count(v));
    return out;
  }

 private:
  std::vector<std::uint32_t> offsets_{0};
  std::vector<std::uint32_t> items_;
};

}  // namespace robustxlt::noise
