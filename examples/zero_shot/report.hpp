#pragma once
// The demo's output: result tables (mean ± std over seeds), the paired-difference table (each recipe against
// standard training on the same seed, with a Student t interval over seeds), the CSV, the SVG chart and the
// progress line.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "evaluate.hpp"

namespace zero_shot {

inline double mean(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x;
  return v.empty() ? 0.0 : m / static_cast<double>(v.size());
}

// Sample standard deviation (n - 1 in the denominator); 0 for fewer than two values.
inline double sample_sd(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

// "mean±std" in % with one decimal, or "mean" for a single value.
inline std::string mean_std(const std::vector<double>& v, double scale = 100.0) {
  char buf[64];
  if (v.size() > 1) std::snprintf(buf, sizeof buf, "%.1f±%.1f", scale * mean(v), scale * sample_sd(v));
  else std::snprintf(buf, sizeof buf, "%.1f", scale * mean(v));
  return buf;
}

inline std::string fmt_duration(double s) {
  char buf[32];
  const long t = std::lround(std::max(0.0, s));
  if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

// ---------------------------------------------------------------------------------------------------------
// Paired differences over seeds.

// P(|T| <= t) for Student's t with df degrees of freedom (integer df >= 1), from the closed forms in
// theta = atan(t / sqrt(df)) (Abramowitz and Stegun 26.7.3 and 26.7.4): a finite series in cos(theta).
inline double student_t_two_sided(double t, std::size_t df) {
  const double pi = 3.14159265358979323846;
  const double theta = std::atan(t / std::sqrt(static_cast<double>(df)));
  const double s = std::sin(theta), c = std::cos(theta), c2 = c * c;
  if (df % 2 == 1) {
    // (2/pi) (theta + sin(theta) (cos + 2/3 cos^3 + (2*4)/(3*5) cos^5 + ... up to cos^(df-2)))
    double term = c, sum = 0;
    for (std::size_t k = 1; 2 * k + 1 <= df; ++k) {
      sum += term;
      term *= c2 * static_cast<double>(2 * k) / static_cast<double>(2 * k + 1);
    }
    return 2.0 / pi * (theta + s * sum);
  }
  // sin(theta) (1 + 1/2 cos^2 + (1*3)/(2*4) cos^4 + ... up to cos^(df-2))
  double term = 1, sum = 0;
  for (std::size_t k = 1; 2 * k <= df; ++k) {
    sum += term;
    term *= c2 * static_cast<double>(2 * k - 1) / static_cast<double>(2 * k);
  }
  return s * sum;
}

// The p quantile of Student's t with df >= 1 degrees of freedom, p in [0.5, 1): bisection on the two-sided
// probability until the bracket stops shrinking. t_{0.975} is 12.706 for df 1, 4.303 for 2, 2.776 for 4.
inline double student_t_quantile(double p, std::size_t df) {
  robustxlt::require(df >= 1, "student_t_quantile: df must be >= 1, got ", df);
  robustxlt::require(p >= 0.5 && p < 1.0, "student_t_quantile: p must be in [0.5, 1), got ", p);
  const double target = 2.0 * p - 1.0;
  double lo = 0.0, hi = 1.0;
  while (student_t_two_sided(hi, df) < target) lo = hi, hi *= 2.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    (student_t_two_sided(mid, df) < target ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// d_s = recipe_s - baseline_s over seeds s (the two vectors paired by index): mean, sample standard
// deviation and the 95% Student t interval mean ± t_{0.975, n-1} sd / sqrt(n). With one seed the interval
// is undefined: t, low and high are NaN.
struct PairedDifference {
  std::size_t n = 0;
  double mean = 0, sd = 0, t = 0, low = 0, high = 0;
  bool excludes_zero() const { return n > 1 && (low > 0 || high < 0); }
};

inline PairedDifference paired_difference(const std::vector<double>& recipe, const std::vector<double>& baseline) {
  robustxlt::require(recipe.size() == baseline.size() && !recipe.empty(),
                     "paired_difference: need the same number (>= 1) of recipe and baseline values, got ", recipe.size(),
                     " and ", baseline.size());
  std::vector<double> d(recipe.size());
  for (std::size_t s = 0; s < d.size(); ++s) d[s] = recipe[s] - baseline[s];
  PairedDifference p;
  p.n = d.size();
  p.mean = zero_shot::mean(d);
  p.sd = sample_sd(d);
  if (p.n < 2) {
    p.t = p.low = p.high = std::numeric_limits<double>::quiet_NaN();
  } else {
    p.t = student_t_quantile(0.975, p.n - 1);
    const double half = p.t * p.sd / std::sqrt(static_cast<double>(p.n));
    p.low = p.mean - half, p.high = p.mean + half;
  }
  return p;
}

// The values pick(run)[column] of one recipe's runs in seed order, column == columns.size() meaning the
// mean over all columns (the tables' "avg").
inline std::vector<double> per_seed(const std::vector<RunResult>& runs, const std::string& recipe, std::size_t column,
                                    const std::function<std::vector<double>(const RunResult&)>& pick) {
  std::vector<const RunResult*> mine;
  for (const auto& r : runs)
    if (r.recipe == recipe) mine.push_back(&r);
  std::sort(mine.begin(), mine.end(), [](const RunResult* a, const RunResult* b) { return a->seed < b->seed; });
  std::vector<double> v;
  for (const RunResult* r : mine) {
    const auto x = pick(*r);
    v.push_back(column < x.size() ? x[column] : mean(x));
  }
  return v;
}

// Every recipe but the baseline against the baseline, per column and for the average: [recipe][column].
inline std::vector<std::vector<PairedDifference>> paired_table(const std::vector<RunResult>& runs,
                                                               const std::vector<std::string>& recipes,
                                                               std::size_t columns, const std::string& baseline) {
  const auto acc = [](const RunResult& r) { return r.accuracy; };
  std::vector<std::vector<PairedDifference>> out;
  for (const auto& r : recipes) {
    if (r == baseline) continue;
    std::vector<PairedDifference> row;
    for (std::size_t c = 0; c <= columns; ++c)
      row.push_back(paired_difference(per_seed(runs, r, c, acc), per_seed(runs, baseline, c, acc)));
    out.push_back(row);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The setting and the misalignment table, printed before training.

inline void print_setting(const World& world, std::size_t train_pairs, std::size_t test_pairs, std::size_t steps,
                          std::size_t batch, double epsilon, double sigma, bool code_switch) {
  const std::size_t L = world.languages.size() + 1;
  std::size_t synonyms = 0;
  for (const auto& s : world.synonym_ids) synonyms += s.size();
  std::printf("Zero-shot cross-lingual transfer: train on English only, test on %zu other languages\n", L - 1);
  std::printf("lexicon: %s\n", world.lexicon.source.c_str());
  std::printf("vocabulary: %zu English words (+%zu WordNet-style synonyms)", world.lexicon.concepts.size(), synonyms);
  for (std::size_t l = 0; l + 1 < L; ++l) {
    std::size_t n = 0;
    for (const auto& t : world.translation_ids[l]) n += t.size();
    std::printf(", %zu %s", n, world.languages[l].short_code.c_str());
  }
  std::printf("\nsimulated embedding space: dim %zu; a translation = English vector turned by angle theta in every\n"
              "plane of a random basis, plus noise; fields of the 3-class pair task from 3 random directions\n",
              world.dim);
  std::printf("task: [CLS] s1 [SEP] s2 [SEP], label = (topic(s2) - topic(s1)) mod 3; %zu English training pairs, %zu test pairs\n",
              train_pairs, test_pairs);
  std::printf("training: %zu steps of %zu pairs, AdamW, embeddings frozen; epsilon %.3g (L2 per token), sigma %.3g\n", steps,
              batch, epsilon, sigma);
  if (code_switch)
    std::printf("note: code-switch reads the bilingual dictionaries of the test languages at training time; the other\n"
                "recipes see English only (rs-da uses English synonyms)\n");
}

inline void print_misalignment(const World& world, const AlignmentDiagnostics& d) {
  std::printf("\nMisalignment per language (translation pairs vs. English headwords)\n");
  std::printf("%-6s %8s %8s %8s %8s %14s\n", "lang", "theta", "noise", "cosine", "L2 dist", "coverage@eps");
  for (std::size_t l = 0; l < world.languages.size(); ++l)
    std::printf("%-6s %8.2f %8.2f %8.3f %8.3f %13.1f%%\n", world.languages[l].short_code.c_str(),
                world.languages[l].misalignment.angle, world.languages[l].misalignment.noise, d.cosine[l + 1], d.l2[l + 1],
                100 * d.coverage[l + 1]);
}

// ---------------------------------------------------------------------------------------------------------
// Tables.

// One table: rows = recipes, columns = languages + average, cells = mean±std over seeds (in %).
inline void print_table(const char* title, const std::vector<std::string>& recipes, const std::vector<std::string>& columns,
                        const std::vector<RunResult>& runs, const std::function<std::vector<double>(const RunResult&)>& pick) {
  std::printf("\n%s\n", title);
  std::printf("%-12s", "recipe");
  for (const auto& c : columns) std::printf(" %11s", c.c_str());
  std::printf(" %11s\n", "avg");
  for (const auto& r : recipes) {
    std::printf("%-12s", r.c_str());
    std::vector<std::vector<double>> per_column(columns.size());
    std::vector<double> avg;
    for (const auto& run : runs) {
      if (run.recipe != r) continue;
      const auto v = pick(run);
      for (std::size_t c = 0; c < columns.size(); ++c) per_column[c].push_back(v[c]);
      avg.push_back(mean(v));
    }
    for (const auto& col : per_column) std::printf(" %11s", mean_std(col).c_str());
    std::printf(" %11s\n", mean_std(avg).c_str());
  }
}

// The paired-difference table of zero-shot accuracy: cells "mean±half" in points, half = half-width of the
// 95% t interval, '*' where the interval excludes 0.
inline void print_paired_table(const std::vector<std::string>& recipes, const std::vector<std::string>& columns,
                               const std::vector<RunResult>& runs, std::size_t seeds, const std::string& baseline) {
  if (std::find(recipes.begin(), recipes.end(), baseline) == recipes.end()) return;
  std::printf("\nPaired difference to %s training (accuracy points, same seed and data, both sentences in the test "
              "language):\n", baseline.c_str());
  if (seeds > 1)
    std::printf("mean ± half-width of the 95%% t interval over %zu seeds (t_0.975,%zu = %.3f); * = the interval excludes 0\n",
                seeds, seeds - 1, student_t_quantile(0.975, seeds - 1));
  else
    std::printf("mean of 1 seed: no interval (run --seeds 2 or more)\n");
  std::printf("%-12s", "recipe");
  for (const auto& c : columns) std::printf(" %11s", c.c_str());
  std::printf(" %11s\n", "avg");
  const auto table = paired_table(runs, recipes, columns.size(), baseline);
  std::size_t row = 0;
  for (const auto& r : recipes) {
    if (r == baseline) continue;
    std::printf("%-12s", r.c_str());
    for (const auto& p : table[row]) {
      char buf[64];
      if (p.n > 1)
        std::snprintf(buf, sizeof buf, "%+.1f±%.1f%s", 100 * p.mean, 100 * (p.high - p.mean), p.excludes_zero() ? "*" : "");
      else
        std::snprintf(buf, sizeof buf, "%+.1f", 100 * p.mean);
      std::printf(" %11s", buf);
    }
    std::printf("\n");
    ++row;
  }
}

// ---------------------------------------------------------------------------------------------------------
// CSV: one row per recipe, seed, language, setting and metric; then the paired differences (seed "all",
// setting "paired", language "avg" for the tables' average column).

inline std::string results_csv(const std::vector<RunResult>& runs, const std::vector<std::string>& recipes,
                               const std::vector<std::string>& columns, const std::vector<double>& radii,
                               const AlignmentDiagnostics& diagnostics, const std::string& baseline) {
  std::ostringstream csv;
  csv << "recipe,seed,language,setting,metric,value\n";
  auto row = [&](const std::string& recipe, const std::string& seed, const std::string& language, const char* setting,
                 const std::string& metric, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", v);
    csv << recipe << ',' << seed << ',' << language << ',' << setting << ',' << metric << ',' << buf << '\n';
  };
  for (const auto& r : runs)
    for (std::size_t l = 0; l < columns.size(); ++l) {
      const std::string seed = std::to_string(r.seed);
      row(r.recipe, seed, columns[l], "zero-shot", "accuracy", r.accuracy[l]);
      row(r.recipe, seed, columns[l], "generalized", "accuracy", r.generalized[l]);
      row(r.recipe, seed, columns[l], "smoothed", "accuracy", r.smoothed[l]);
      row(r.recipe, seed, columns[l], "smoothed", "abstention", r.abstained[l]);
      for (std::size_t ri = 0; ri < radii.size(); ++ri) {
        char m[48];
        std::snprintf(m, sizeof m, "certified@%.4g", radii[ri]);
        row(r.recipe, seed, columns[l], "smoothed", m, r.certified[ri][l]);
      }
      if (l > 0) {
        row(r.recipe, seed, columns[l], "diagnostics", "translation_cosine", diagnostics.cosine[l]);
        row(r.recipe, seed, columns[l], "diagnostics", "translation_l2", diagnostics.l2[l]);
        row(r.recipe, seed, columns[l], "diagnostics", "coverage@epsilon", diagnostics.coverage[l]);
      }
    }
  if (std::find(recipes.begin(), recipes.end(), baseline) != recipes.end()) {
    const auto table = paired_table(runs, recipes, columns.size(), baseline);
    std::size_t i = 0;
    for (const auto& r : recipes) {
      if (r == baseline) continue;
      for (std::size_t c = 0; c <= columns.size(); ++c) {
        const auto& p = table[i][c];
        const std::string language = c < columns.size() ? columns[c] : "avg";
        row(r, "all", language, "paired", "accuracy_diff_vs_" + baseline + "_mean", p.mean);
        row(r, "all", language, "paired", "accuracy_diff_vs_" + baseline + "_sd", p.sd);
        if (p.n > 1) {
          row(r, "all", language, "paired", "t_0.975", p.t);
          row(r, "all", language, "paired", "accuracy_diff_vs_" + baseline + "_low", p.low);
          row(r, "all", language, "paired", "accuracy_diff_vs_" + baseline + "_high", p.high);
        }
      }
      ++i;
    }
  }
  return csv.str();
}

// ---------------------------------------------------------------------------------------------------------
// SVG chart.

inline std::string svg_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

// Grouped bar chart of zero-shot accuracy per language per recipe (mean over seeds, whiskers = min..max).
inline std::string accuracy_svg(const std::vector<std::string>& recipes, const std::vector<std::string>& columns,
                                const std::vector<RunResult>& runs) {
  const char* colours[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"};
  const double W = 900, H = 420, left = 60, right = 160, top = 40, bottom = 50;
  const double plot_w = W - left - right, plot_h = H - top - bottom;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << left << "\" y=\"22\" font-size=\"15\">Zero-shot accuracy (%) after English-only training, per recipe</text>\n";
  for (int g = 0; g <= 100; g += 20) {
    const double y = top + plot_h * (1.0 - g / 100.0);
    s << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << y << "\" y2=\"" << y
      << "\" stroke=\"#ddd\"/><text x=\"" << left - 8 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">" << g << "</text>\n";
  }
  const double group_w = plot_w / static_cast<double>(columns.size());
  const double bar_w = group_w * 0.8 / static_cast<double>(recipes.size());
  for (std::size_t c = 0; c < columns.size(); ++c) {
    const double gx = left + group_w * static_cast<double>(c) + group_w * 0.1;
    s << "<text x=\"" << gx + group_w * 0.4 << "\" y=\"" << top + plot_h + 18 << "\" text-anchor=\"middle\">"
      << svg_escape(columns[c]) << "</text>\n";
    for (std::size_t r = 0; r < recipes.size(); ++r) {
      std::vector<double> v;
      for (const auto& run : runs)
        if (run.recipe == recipes[r]) v.push_back(run.accuracy[c]);
      if (v.empty()) continue;
      const double m = mean(v), lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
      const double x = gx + bar_w * static_cast<double>(r), y = top + plot_h * (1.0 - m);
      s << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << bar_w * 0.92 << "\" height=\"" << top + plot_h - y
        << "\" fill=\"" << colours[r % 8] << "\"><title>" << svg_escape(recipes[r]) << " " << svg_escape(columns[c]) << ": "
        << 100 * m << "%</title></rect>\n";
      const double xm = x + bar_w * 0.46;
      s << "<line x1=\"" << xm << "\" x2=\"" << xm << "\" y1=\"" << top + plot_h * (1.0 - lo) << "\" y2=\""
        << top + plot_h * (1.0 - hi) << "\" stroke=\"black\"/>\n";
    }
  }
  s << "<line x1=\"" << left << "\" x2=\"" << left << "\" y1=\"" << top << "\" y2=\"" << top + plot_h << "\" stroke=\"black\"/>\n";
  s << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << top + plot_h << "\" y2=\"" << top + plot_h
    << "\" stroke=\"black\"/>\n";
  const double chance_y = top + plot_h * (1.0 - 1.0 / 3.0);
  s << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << chance_y << "\" y2=\"" << chance_y
    << "\" stroke=\"#888\" stroke-dasharray=\"4 3\"/><text x=\"" << left + plot_w + 4 << "\" y=\"" << chance_y + 4
    << "\" fill=\"#666\">chance</text>\n";
  for (std::size_t r = 0; r < recipes.size(); ++r) {
    const double y = top + 10 + 20.0 * static_cast<double>(r);
    s << "<rect x=\"" << W - right + 50 << "\" y=\"" << y - 10 << "\" width=\"12\" height=\"12\" fill=\"" << colours[r % 8]
      << "\"/><text x=\"" << W - right + 68 << "\" y=\"" << y << "\">" << svg_escape(recipes[r]) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

// ---------------------------------------------------------------------------------------------------------
// Progress on stderr: on a terminal one line redrawn every 250 ms (runs done, time left, each worker's
// recipe, step, loss and examples/s); otherwise one line per finished run with where its time went.

class Progress {
 public:
  Progress(std::size_t workers, std::size_t runs, double total_work) : lines_(workers), runs_total_(runs), total_(total_work) {}

  void update(std::size_t worker, std::string line, double work = 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    lines_[worker] = std::move(line);
    done_ += work;
  }

  // Marks a run finished; `summary` is printed as its own line when stderr is not a terminal.
  void finish(std::size_t worker, const RunResult& r, bool print) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++runs_done_;
    lines_[worker].clear();
    if (!print) return;
    std::fprintf(stderr,
                 "[%zu/%zu] %s seed %zu done in %s (training %s, accuracy %s, smoothing %s; final training loss %.3f, "
                 "English accuracy %.1f%%)\n",
                 runs_done_, runs_total_, r.recipe.c_str(), r.seed,
                 fmt_duration(r.train_seconds + r.accuracy_seconds + r.smoothing_seconds).c_str(),
                 fmt_duration(r.train_seconds).c_str(), fmt_duration(r.accuracy_seconds).c_str(),
                 fmt_duration(r.smoothing_seconds).c_str(), r.final_loss, 100 * r.accuracy[0]);
  }

  // Redraws the line until every run is done or stop() returns true; then erases it.
  template <class Stop>
  void draw_until_done(const examples::Stopwatch& clock, Stop&& stop) {
    std::size_t last_len = 0;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (runs_done_ == runs_total_ || stop()) break;
        const double elapsed = clock.seconds(), f = done_ / total_;
        std::string line = "[" + std::to_string(runs_done_) + "/" + std::to_string(runs_total_) + " runs";
        line += f > 0.02 ? ", " + fmt_duration(elapsed * (1 - f) / f) + " left] " : "] ";
        for (const auto& l : lines_)
          if (!l.empty()) line += l + "  ";
        if (line.size() > 150) line.resize(150);
        std::fprintf(stderr, "\r%s%*s", line.c_str(), static_cast<int>(last_len > line.size() ? last_len - line.size() : 0), "");
        last_len = line.size();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    std::fprintf(stderr, "\r%*s\r", static_cast<int>(last_len), "");
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;  // one per worker
  std::size_t runs_done_ = 0, runs_total_;
  double total_, done_ = 0;
};

// Where the time went, per recipe: mean seconds per run of training, accuracy and smoothing.
inline void print_timings(const std::vector<std::string>& recipes, const std::vector<RunResult>& runs) {
  std::fprintf(stderr, "time per run (mean over seeds): recipe, training, accuracy, smoothing\n");
  for (const auto& r : recipes) {
    std::vector<double> t, a, s;
    for (const auto& run : runs)
      if (run.recipe == r) t.push_back(run.train_seconds), a.push_back(run.accuracy_seconds), s.push_back(run.smoothing_seconds);
    std::fprintf(stderr, "  %-12s %7.1fs %7.1fs %7.1fs\n", r.c_str(), mean(t), mean(a), mean(s));
  }
}

}  // namespace zero_shot
