#pragma once
// Lexicons: bilingual dictionaries (MUSE text format) and neighbour tables (our TSV here; JSON, as used for
// counter-fitted neighbour lists, in noise/lexicon_json.hpp so that only its users pay for the JSON parser),
// looked up by word, plus a vocabulary and compact id-to-ids tables that the
// samplers use. Loaders throw FormatError naming the file and line of the first malformed input.
//
// TSV neighbour format: UTF-8; lines starting with '#' and blank lines are ignored; every other line is
// "word<TAB>neighbour<TAB>neighbour..." (a word alone has no neighbours); fields are non-empty and contain
// no tab or newline.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/io.hpp"
#include "robustxlt/noise/text.hpp"

namespace robustxlt::noise {

// Word <-> id (ids dense from 0, in insertion order). Ids are int64 like every id of the public API; a
// model's vocabulary is rebuilt by adding its words in id order (e.g. the lines of a BERT vocab.txt).
class Vocabulary {
 public:
  static constexpr std::int64_t npos = -1;

  explicit Vocabulary(bool fold_case = false) : fold_(fold_case) {}

  // Id of word, adding it when absent. Throws InvalidArgument past 2^32 - 1 words (the samplers' tables
  // hold 32-bit ids).
  std::int64_t add(std::string_view word) {
    std::string key = fold_ ? fold_case(word) : std::string(word);
    auto it = ids_.find(key);
    if (it != ids_.end()) return it->second;
    if (words_.size() >= 0xFFFFFFFFull)
      robustxlt::detail::fail("Vocabulary::add: at most 4294967295 words, got one more ('", word, "')");
    const auto id = static_cast<std::int64_t>(words_.size());
    ids_.emplace(key, id);
    words_.push_back(std::move(key));
    return id;
  }

  // Id of word, or npos (-1).
  std::int64_t find(std::string_view word) const {
    auto it = fold_ ? ids_.find(fold_case(word)) : ids_.find(std::string(word));
    return it == ids_.end() ? npos : it->second;
  }

  // Id of word; throws LookupError naming the word when it is absent.
  std::int64_t id(std::string_view word) const {
    const std::int64_t v = find(word);
    if (v == npos) robustxlt::detail::fail<LookupError>("Vocabulary::id: '", word, "' is not in the vocabulary of ", size(), " words");
    return v;
  }

  // Word of an id; throws InvalidArgument when id is outside [0, size()).
  const std::string& word(std::int64_t id) const {
    if (id < 0 || static_cast<std::uint64_t>(id) >= words_.size())
      robustxlt::detail::fail("Vocabulary::word: id must be in [0, ", words_.size(), "), got ", id);
    return words_[static_cast<std::size_t>(id)];
  }

  std::size_t size() const noexcept { return words_.size(); }
  bool folds_case() const noexcept { return fold_; }

 private:
  bool fold_;
  std::unordered_map<std::string, std::int64_t> ids_;
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

// What IdTable::build does with a word of the lists that the vocabulary lacks.
enum class UnknownWords {
  error,  // throw LookupError naming the first unknown word (sorted order), so ids never outgrow the model
  drop,   // leave it out: an unknown key gets no row entries, an unknown neighbour is not listed
};

// A compact id -> ids table (CSR): row v lists the ids related to id v. What the samplers read. Ids are
// stored in 32 bits; the accessors take and the builders check int64 ids.
class IdTable {
 public:
  IdTable() = default;
  // Throws InvalidArgument unless offsets starts at 0, is non-decreasing and ends at items.size().
  IdTable(std::vector<std::uint32_t> offsets, std::vector<std::uint32_t> items)
      : offsets_(std::move(offsets)), items_(std::move(items)) {
    if (offsets_.empty() || offsets_.front() != 0 || offsets_.back() != items_.size() ||
        !std::is_sorted(offsets_.begin(), offsets_.end()))
      robustxlt::detail::fail("IdTable: offsets must start at 0, be non-decreasing and end at items.size() ", items_.size());
  }

  // Row v = the words that `lists` gives for the source word of id v, as ids of `target` (which may be the
  // same vocabulary as `source`). Neither vocabulary changes: a model's vocabulary is fixed, and an id
  // beyond its embedding table must never be produced. The table has source.size() rows.
  // Throws LookupError naming the first unknown word (keys in sorted order, then their lists in order)
  // unless unknown == UnknownWords::drop.
  static IdTable build(const WordLists& lists, const Vocabulary& source, const Vocabulary& target,
                       UnknownWords unknown = UnknownWords::error) {
    std::vector<std::vector<std::uint32_t>> rows(source.size());
    for (const std::string* k : sorted_keys(lists)) {
      const std::int64_t id = source.find(*k);
      if (id == Vocabulary::npos) {
        if (unknown == UnknownWords::error)
          robustxlt::detail::fail<LookupError>("IdTable::build: word '", *k,
                                               "' is not in the source vocabulary (pass UnknownWords::drop to leave it out)");
        continue;
      }
      for (const auto& v : lists.lookup(*k)) {
        const std::int64_t t = target.find(v);
        if (t == Vocabulary::npos) {
          if (unknown == UnknownWords::error)
            robustxlt::detail::fail<LookupError>("IdTable::build: '", v, "' (listed for '", *k,
                                                 "') is not in the target vocabulary (pass UnknownWords::drop to leave it out)");
          continue;
        }
        append_unique(rows[static_cast<std::size_t>(id)], static_cast<std::uint32_t>(t));
      }
    }
    return from_rows(rows);
  }

  // As build, but every word the vocabularies lack is added to them (keys in sorted order, each followed by
  // its new neighbours), for tables whose vocabulary is made from the lists themselves.
  static IdTable build_adding(const WordLists& lists, Vocabulary& source, Vocabulary& target) {
    std::vector<std::vector<std::uint32_t>> rows;
    for (const std::string* k : sorted_keys(lists)) {
      const auto id = static_cast<std::size_t>(source.add(*k));
      if (rows.size() <= id) rows.resize(id + 1);
      for (const auto& v : lists.lookup(*k)) append_unique(rows[id], static_cast<std::uint32_t>(target.add(v)));
    }
    rows.resize(std::max(rows.size(), source.size()));
    return from_rows(rows);
  }

  // From integer neighbour lists: row v lists the ids of rows[v] (duplicates kept out), for a vocabulary of
  // vocab_size ids; rows past rows.size() are empty. Throws InvalidArgument when there are more rows than
  // vocab_size or an id is outside [0, vocab_size), naming the row and position.
  template <class Int>
  static IdTable from_lists(const std::vector<std::vector<Int>>& rows, std::size_t vocab_size) {
    static_assert(std::is_integral_v<Int> && !std::is_same_v<Int, bool>, "IdTable::from_lists: ids must be integers");
    if (vocab_size > 0xFFFFFFFFull)
      robustxlt::detail::fail("IdTable::from_lists: vocab_size must be <= 4294967295, got ", vocab_size);
    if (rows.size() > vocab_size)
      robustxlt::detail::fail("IdTable::from_lists: rows must number at most vocab_size ", vocab_size, ", got ", rows.size());
    std::vector<std::vector<std::uint32_t>> out(vocab_size);
    for (std::size_t v = 0; v < rows.size(); ++v)
      for (std::size_t j = 0; j < rows[v].size(); ++j) {
        const Int t = rows[v][j];
        bool negative = false;
        if constexpr (std::is_signed_v<Int>) negative = t < 0;
        if (negative || static_cast<std::uint64_t>(t) >= vocab_size)
          robustxlt::detail::fail("IdTable::from_lists: rows[", v, "][", j, "] must be in [0, ", vocab_size, "), got ", t);
        append_unique(out[v], static_cast<std::uint32_t>(t));
      }
    return from_rows(out);
  }

  // Number of rows (ids >= rows() have no entries).
  std::size_t rows() const noexcept { return offsets_.empty() ? 0 : offsets_.size() - 1; }
  std::size_t items() const noexcept { return items_.size(); }
  // Number of entries of row id (0 for an id outside [0, rows())).
  std::size_t count(std::int64_t id) const noexcept { return in_range(id) ? offsets_[std::size_t(id) + 1] - offsets_[std::size_t(id)] : 0; }
  // The count(id) entries of row id.
  const std::uint32_t* row(std::int64_t id) const noexcept { return items_.data() + (in_range(id) ? offsets_[std::size_t(id)] : 0); }
  // Largest id any row lists plus one (0 for an empty table): the smallest vocabulary the table fits.
  std::size_t id_bound() const noexcept {
    return items_.empty() ? 0 : std::size_t(*std::max_element(items_.begin(), items_.end())) + 1;
  }
  // Rows as vectors (for smooth::substitution_overlap, which takes a plain adjacency list).
  std::vector<std::vector<std::uint32_t>> adjacency(std::size_t min_rows = 0) const {
    std::vector<std::vector<std::uint32_t>> out(std::max(rows(), min_rows));
    for (std::size_t v = 0; v < rows(); ++v) out[v].assign(row(std::int64_t(v)), row(std::int64_t(v)) + count(std::int64_t(v)));
    return out;
  }

 private:
  bool in_range(std::int64_t id) const noexcept { return id >= 0 && static_cast<std::uint64_t>(id) < rows(); }

  // Sorted keys: ids and rows must not depend on hash-map iteration order.
  static std::vector<const std::string*> sorted_keys(const WordLists& lists) {
    std::vector<const std::string*> keys;
    for (const auto& [k, v] : lists.entries()) keys.push_back(&k);
    std::sort(keys.begin(), keys.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
    return keys;
  }
  static void append_unique(std::vector<std::uint32_t>& row, std::uint32_t t) {
    if (std::find(row.begin(), row.end(), t) == row.end()) row.push_back(t);
  }
  static IdTable from_rows(const std::vector<std::vector<std::uint32_t>>& rows) {
    std::vector<std::uint32_t> offsets{0}, items;
    for (const auto& r : rows) {
      items.insert(items.end(), r.begin(), r.end());
      offsets.push_back(static_cast<std::uint32_t>(items.size()));
    }
    return IdTable(std::move(offsets), std::move(items));
  }

  std::vector<std::uint32_t> offsets_{0};
  std::vector<std::uint32_t> items_;
};

}  // namespace robustxlt::noise
