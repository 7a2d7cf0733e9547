#pragma once
// Word alignments in the Pharaoh format and their scores. A line holds one sentence pair's links separated
// by spaces: "i-j" is a sure link, "ipj" or "i?j" a possible one; an optional "id<TAB>" prefix names the
// pair. Scores follow Och and Ney (2003), summed over the corpus before dividing, with the possible set P
// including the sure set S.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/io.hpp"

namespace robustxlt::align {

struct Link {
  std::int64_t source = 0;  // word index in the source sentence (0-based)
  std::int64_t target = 0;  // word index in the target sentence (0-based)
  friend bool operator==(const Link& a, const Link& b) { return a.source == b.source && a.target == b.target; }
  friend bool operator<(const Link& a, const Link& b) {
    return a.source != b.source ? a.source < b.source : a.target < b.target;
  }
};

// One sentence pair's alignment: sure links and possible-only links (each sorted, no duplicates; a link
// given as both sure and possible counts as sure).
struct SentenceAlignment {
  std::string id;               // the "id<TAB>" prefix, or empty
  std::vector<Link> sure;
  std::vector<Link> possible;   // possible but not sure

  // S U P-only: every link a hypothesis may have without penalty.
  std::vector<Link> all() const {
    std::vector<Link> a = sure;
    a.insert(a.end(), possible.begin(), possible.end());
    std::sort(a.begin(), a.end());
    return a;
  }
};

struct PharaohOptions {
  bool one_based = false;  // indices in the text start at 1
  bool reverse = false;    // the text writes target-source; swap on reading and writing
  // Sentence lengths for bounds checks, [source, target] per line; empty = no check.
  std::vector<std::pair<std::size_t, std::size_t>> lengths{};
};

namespace detail {

inline void normalise(SentenceAlignment& s) {
  auto tidy = [](std::vector<Link>& v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  };
  tidy(s.sure);
  tidy(s.possible);
  std::vector<Link> only;
  std::set_difference(s.possible.begin(), s.possible.end(), s.sure.begin(), s.sure.end(), std::back_inserter(only));
  s.possible = std::move(only);
}

inline bool parse_index(std::string_view t, long long& out) {
  if (t.empty() || t.size() > 9) return false;
  long long v = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

}  // namespace detail

// Parses Pharaoh text, one SentenceAlignment per line (blank lines are sentence pairs without links).
// Throws FormatError naming source and line for a malformed link, a negative index (or 0 when one_based),
// an index beyond the given sentence lengths, or a line count that differs from lengths.
inline std::vector<SentenceAlignment> parse_pharaoh(std::string_view text, const std::string& source,
                                                    const PharaohOptions& opt = {}) {
  std::vector<SentenceAlignment> out;
  for_each_line(text, [&](std::size_t line, std::string_view l) {
    auto fail = [&](auto&&... args) {
      robustxlt::detail::fail<FormatError>("pharaoh '", source, "' line ", line, ": ", args...);
    };
    SentenceAlignment s;
    const std::size_t tab = l.find('\t');
    if (tab != std::string_view::npos) {
      s.id = std::string(l.substr(0, tab));
      l = l.substr(tab + 1);
    }
    std::size_t i = 0;
    while (i < l.size()) {
      while (i < l.size() && l[i] == ' ') ++i;
      const std::size_t b = i;
      while (i < l.size() && l[i] != ' ') ++i;
      if (i == b) break;
      const std::string_view tok = l.substr(b, i - b);
      const std::size_t sep = tok.find_first_of("-p?", tok[0] == '-' ? 1 : 0);
      long long a = 0, c = 0;
      if (tok[0] == '-' || (sep != std::string_view::npos && sep + 1 < tok.size() && tok[sep + 1] == '-'))
        fail("negative index in link '", tok, "'");
      if (sep == std::string_view::npos || !detail::parse_index(tok.substr(0, sep), a) ||
          !detail::parse_index(tok.substr(sep + 1), c))
        fail("malformed link '", tok, "', expected i-j, ipj or i?j with non-negative integers");
      if (opt.one_based) {
        if (a == 0 || c == 0) fail("index 0 in link '", tok, "' with 1-based indices");
        --a;
        --c;
      }
      Link lk{static_cast<std::int64_t>(a), static_cast<std::int64_t>(c)};
      if (opt.reverse) std::swap(lk.source, lk.target);
      if (!opt.lengths.empty() && out.size() < opt.lengths.size()) {
        const auto [m, n] = opt.lengths[out.size()];
        if (static_cast<std::size_t>(lk.source) >= m || static_cast<std::size_t>(lk.target) >= n)
          fail("link '", tok, "' is outside the sentence pair of lengths ", m, " x ", n);
      }
      (tok[sep] == '-' ? s.sure : s.possible).push_back(lk);
    }
    detail::normalise(s);
    out.push_back(std::move(s));
  });
  if (!opt.lengths.empty() && opt.lengths.size() != out.size())
    robustxlt::detail::fail<FormatError>("pharaoh '", source, "': ", out.size(), " lines but ", opt.lengths.size(),
                                         " sentence lengths");
  return out;
}

inline std::vector<SentenceAlignment> load_pharaoh(const std::filesystem::path& path, const PharaohOptions& opt = {}) {
  return parse_pharaoh(read_file(path), path.string(), opt);
}

// Pharaoh text for alignments (sure as i-j, possible as ipj, sorted, ids as prefixes when present).
inline std::string format_pharaoh(const std::vector<SentenceAlignment>& corpus, const PharaohOptions& opt = {}) {
  std::string out;
  const std::int64_t base = opt.one_based ? 1 : 0;
  for (const auto& s : corpus) {
    if (!s.id.empty()) out += s.id + "\t";
    bool first = true;
    auto put = [&](const Link& l, char sep) {
      const std::int64_t a = (opt.reverse ? l.target : l.source) + base, b = (opt.reverse ? l.source : l.target) + base;
      if (!first) out += ' ';
      out += std::to_string(a) + sep + std::to_string(b);
      first = false;
    };
    for (const auto& l : s.sure) put(l, '-');
    for (const auto& l : s.possible) put(l, 'p');
    out += '\n';
  }
  return out;
}

// Writes format_pharaoh atomically. Throws IoError.
inline void save_pharaoh(const std::filesystem::path& path, const std::vector<SentenceAlignment>& corpus,
                         const PharaohOptions& opt = {}) {
  write_file_atomic(path, format_pharaoh(corpus, opt));
}

struct AlignmentScores {
  std::size_t hypothesis = 0;          // |A|
  std::size_t sure = 0;                // |S|
  std::size_t possible = 0;            // |P| (including S)
  std::size_t hypothesis_sure = 0;     // |A n S|
  std::size_t hypothesis_possible = 0; // |A n P|
  double precision = 0;  // |A n P| / |A|; 1 when A is empty (no wrong link was proposed)
  double recall = 0;     // |A n S| / |S|; 1 when S is empty (nothing to find)
  double f = 0;          // 1 / (alpha / precision + (1 - alpha) / recall); 0 when either is 0
  double aer = 0;        // 1 - (|A n S| + |A n P|) / (|A| + |S|); 0 when A and S are both empty
};

// Corpus-level scores of hypothesis links against gold (sure and possible); sentence pairs are matched by
// position. hypothesis: only its sure and possible links together count as A. Throws ShapeError when the
// corpora differ in size, InvalidArgument when alpha is outside [0, 1].
inline AlignmentScores score(const std::vector<SentenceAlignment>& gold, const std::vector<SentenceAlignment>& hypothesis,
                             double alpha = 0.5) {
  if (gold.size() != hypothesis.size())
    robustxlt::detail::fail<ShapeError>("score: hypothesis must have one line per gold line (", gold.size(), "), got ",
                                        hypothesis.size());
  if (!(alpha >= 0.0 && alpha <= 1.0)) robustxlt::detail::fail("score: alpha must be in [0, 1], got ", alpha);
  AlignmentScores s;
  for (std::size_t k = 0; k < gold.size(); ++k) {
    const auto a = hypothesis[k].all();
    const auto p = gold[k].all();
    const auto& sure = gold[k].sure;
    std::vector<Link> as, ap;
    std::set_intersection(a.begin(), a.end(), sure.begin(), sure.end(), std::back_inserter(as));
    std::set_intersection(a.begin(), a.end(), p.begin(), p.end(), std::back_inserter(ap));
    s.hypothesis += a.size();
    s.sure += sure.size();
    s.possible += p.size();
    s.hypothesis_sure += as.size();
    s.hypothesis_possible += ap.size();
  }
  s.precision = s.hypothesis ? double(s.hypothesis_possible) / double(s.hypothesis) : 1.0;
  s.recall = s.sure ? double(s.hypothesis_sure) / double(s.sure) : 1.0;
  s.f = (s.precision > 0 && s.recall > 0) ? 1.0 / (alpha / s.precision + (1 - alpha) / s.recall) : 0.0;
  const std::size_t den = s.hypothesis + s.sure;
  s.aer = den ? 1.0 - double(s.hypothesis_sure + s.hypothesis_possible) / double(den) : 0.0;
  return s;
}

}  // namespace robustxlt::align
