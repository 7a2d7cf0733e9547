// Zero-shot cross-lingual transfer with robust training: a model fine-tuned on English only, evaluated on
// German, French, Spanish, Hindi and Swahili, with and without robust-training recipes.
//
// The multilingual embedding space is simulated (examples/zero_shot/world.hpp): translations sit near, not
// on, their English words, further away for the low-resource languages. The task (examples/zero_shot/task.hpp)
// is a three-class sentence-pair task whose label depends on the meaning of every word of both sentences.
// Each recipe (examples/zero_shot/recipes.hpp) trains the library's transformer on English pairs with the
// embedding table frozen, then every language is evaluated plainly, in the "generalized" setting (the two
// sentences in different languages) and with Gaussian randomized smoothing (examples/zero_shot/evaluate.hpp).
// Tables go to stdout, results to CSV and an SVG chart (examples/zero_shot/report.hpp). Run with --help.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <robustxlt/robustxlt.hpp>
#include <string>
#include <thread>
#include <vector>

#include "example_support.hpp"
#include "zero_shot/evaluate.hpp"
#include "zero_shot/recipes.hpp"
#include "zero_shot/report.hpp"
#include "zero_shot/task.hpp"
#include "zero_shot/world.hpp"

using namespace zero_shot;

namespace {

struct Options {
  std::vector<std::string> languages = {"de", "fr", "es", "hi", "sw"};
  std::vector<std::string> recipes = recipe_names();
  std::size_t seeds = 3, threads = 2, dim = 32, train_size = 4000, test_size = 600, max_concepts = 1000;
  TrainSettings train;
  EvalSettings eval;
  std::string lexicons, out_dir = ".";
  bool quick = false, quiet = false;
};

void add_options(CLI::App& app, Options& opt) {
  app.add_option("--languages", opt.languages, "target languages (two-letter or FreeDict codes)")->delimiter(',')->capture_default_str();
  app.add_option("--recipes", opt.recipes, "recipes: standard, pgd, freelb, rs-rp, rs-da, code-switch")
      ->delimiter(',')->check(CLI::IsMember(recipe_names()))->capture_default_str();
  app.add_option("--seeds", opt.seeds, "training seeds per recipe (mean and std over them)")->check(CLI::Range(1, 100))->capture_default_str();
  app.add_option("--data-seed", opt.train.data_seed, "seed of the embedding space and the datasets")->capture_default_str();
  app.add_option("--epsilon", opt.train.epsilon,
                 "L2 radius per token for PGD and FreeLB, and for robust-region coverage (default: the radius that "
                 "leaves 95% of English words in their semantic field)")
      ->check(CLI::PositiveNumber);
  app.add_option("--sigma", opt.train.sigma, "Gaussian noise per coordinate for RS-RP and smoothing (default epsilon/sqrt(dim))")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--steps", opt.train.steps, "optimizer steps per training run")->check(CLI::Range(1, 10000000))->capture_default_str();
  app.add_option("--lr", opt.train.lr, "peak AdamW learning rate (linear warmup over 10% of the steps, then linear decay)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--batch", opt.train.batch, "training pairs per step")->check(CLI::Range(1, 4096))->capture_default_str();
  app.add_option("--copies", opt.train.copies, "noisy copies per example for rs-da and code-switch")->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--threads", opt.threads, "training runs in parallel (each single-threaded; results do not depend on it)")
      ->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--dim", opt.dim, "embedding and model width (multiple of 4)")->check(CLI::Range(8, 1024))->capture_default_str();
  app.add_option("--train-size", opt.train_size, "English training pairs")->check(CLI::Range(10, 10000000))->capture_default_str();
  app.add_option("--test-size", opt.test_size, "test pairs per language")->check(CLI::Range(10, 10000000))->capture_default_str();
  app.add_option("--smooth-examples", opt.eval.smooth_examples, "test pairs per language for smoothed prediction")
      ->check(CLI::Range(1, 10000000))->capture_default_str();
  app.add_option("--smooth-n", opt.eval.smooth_n, "noisy copies for PREDICT and for CERTIFY's estimate")->check(CLI::Range(1, 10000000))->capture_default_str();
  app.add_option("--smooth-n0", opt.eval.smooth_n0, "noisy copies for CERTIFY's class selection")->check(CLI::Range(1, 10000000))->capture_default_str();
  app.add_option("--alpha", opt.eval.alpha, "failure probability of PREDICT and CERTIFY")->check(CLI::Range(1e-12, 0.5))->capture_default_str();
  app.add_option("--max-concepts", opt.max_concepts, "English words taken from the FreeDict dictionaries")->check(CLI::Range(10, 10000000))->capture_default_str();
  app.add_option("--lexicons", opt.lexicons, "directory written by examples/convert_lexicons.py; built-in lexicon when absent");
  app.add_option("--out", opt.out_dir, "directory for zero_shot_results.csv and zero_shot_accuracy.svg")->capture_default_str();
  app.add_flag("--quick", opt.quick, "a small run for smoke tests: 1 seed (unless --seeds is given), 1000 steps, smaller test sets (under 30 s)");
  app.add_flag("--quiet", opt.quiet, "no progress line");
}

// Trains and evaluates every (recipe, seed) run on `threads` worker threads. Each run is single-threaded and
// seeded, so the results do not depend on the thread count or on which worker takes which run.
std::vector<RunResult> run_all(const Options& opt, const World& world, const std::vector<Example>& train_set,
                               const std::vector<Example>& test, const examples::Stopwatch& clock) {
  std::vector<RunResult> results;
  double work = 0;
  for (const auto& r : opt.recipes)
    for (std::size_t s = 1; s <= opt.seeds; ++s) {
      results.emplace_back();
      results.back().recipe = r, results.back().seed = s;
      work += find_recipe(r).cost * static_cast<double>(opt.train.steps);
    }
  const std::size_t workers = std::min(opt.threads, results.size());
  const bool live = !opt.quiet && isatty(STDERR_FILENO);
  Progress progress(workers, results.size(), work);
  const Augmenters augment = make_augmenters(world);
  std::atomic<std::size_t> next{0};
  std::mutex error_mutex;
  std::string first_error;
  auto worker = [&](std::size_t w) {
    for (std::size_t j; (j = next.fetch_add(1)) < results.size();) {
      try {
        RunResult& res = results[j];
        const Recipe& recipe = find_recipe(res.recipe);
        const examples::Stopwatch t0;
        std::size_t last_step = 0;
        auto model = train(world, train_set, augment, opt.train, recipe, res.seed, res.final_loss,
                           [&](std::size_t step, double loss, std::uint64_t epoch) {
                             char line[160];
                             std::snprintf(line, sizeof line, "%s seed %zu: epoch %llu, step %zu/%zu, loss %.3f, %.0f ex/s",
                                           res.recipe.c_str(), res.seed, static_cast<unsigned long long>(epoch + 1), step,
                                           opt.train.steps, loss,
                                           static_cast<double>(step * opt.train.batch) / std::max(t0.seconds(), 1e-9));
                             progress.update(w, line, recipe.cost * static_cast<double>(step - last_step));
                             last_step = step;
                           });
        res.train_seconds = t0.seconds();
        progress.update(w, res.recipe + " seed " + std::to_string(res.seed) + ": evaluating");
        evaluate(*model, world, test, opt.eval, res);
        progress.finish(w, res, !opt.quiet && !live);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (first_error.empty()) first_error = e.what();
        next = results.size();
      }
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t w = 0; w < workers; ++w) pool.emplace_back(worker, w);
  if (live)
    progress.draw_until_done(clock, [&] {
      std::lock_guard<std::mutex> lock(error_mutex);
      return !first_error.empty();
    });
  for (auto& t : pool) t.join();
  if (!first_error.empty()) robustxlt::fail(first_error);
  return results;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{
      "Zero-shot cross-lingual transfer demo: fine-tune on English only, evaluate other languages, compare\n"
      "robust-training recipes. The multilingual embedding space is simulated (see examples/README.md)."};
  add_options(app, opt);
  CLI11_PARSE(app, argc, argv);

  try {
    if (opt.dim % 4 != 0) robustxlt::fail("--dim must be a multiple of 4 (4 attention heads), got ", opt.dim);
    if (opt.quick) {
      if (app.count("--seeds") == 0) opt.seeds = 1;
      opt.train.steps = std::min<std::size_t>(opt.train.steps, 1000);
      opt.test_size = std::min<std::size_t>(opt.test_size, 300);
      opt.eval.smooth_examples = std::min<std::size_t>(opt.eval.smooth_examples, 30);
      opt.eval.smooth_n = std::min<std::size_t>(opt.eval.smooth_n, 50);
    }
    robustxlt::set_num_threads(1);  // parallelism is across runs
    const examples::Stopwatch clock;

    // The world: lexicon, simulated embedding table, radii, datasets.
    std::vector<std::string> codes;
    for (const auto& l : opt.languages) codes.push_back(language_info(l).code);
    const bool files = has_lexicon_files(opt.lexicons, codes);
    if (!opt.lexicons.empty() && !files)
      std::fprintf(stderr, "zero_shot_transfer: %s lacks en_synonyms.tsv or an en-XXX.txt dictionary; using the built-in lexicon\n",
                   opt.lexicons.c_str());
    const World world = build_world(files ? file_lexicon(opt.lexicons, codes, opt.max_concepts) : builtin_lexicon(codes), opt.dim,
                                    opt.train.data_seed);
    if (opt.train.epsilon == 0) {
      // A radius inside which the task's meaning is safe: 95% of English words cannot leave their field.
      std::vector<double> m = world.field_margin;
      std::sort(m.begin(), m.end());
      opt.train.epsilon = m[m.size() / 20];
    }
    if (opt.train.sigma == 0) opt.train.sigma = opt.train.epsilon / std::sqrt(static_cast<double>(opt.dim));
    opt.eval.data_seed = opt.train.data_seed;
    opt.eval.sigma = opt.train.sigma;
    opt.eval.radii = {0.0, opt.train.sigma / 2, opt.train.sigma};
    const auto train_set = make_dataset(world, opt.train_size, opt.train.data_seed, 100);
    const auto test = make_dataset(world, opt.test_size, opt.train.data_seed, 200);
    std::vector<std::string> columns{"en"};
    for (const auto& l : world.languages) columns.push_back(l.short_code);

    print_setting(world, train_set.size(), test.size(), opt.train.steps, opt.train.batch, opt.train.epsilon, opt.train.sigma,
                  std::find(opt.recipes.begin(), opt.recipes.end(), "code-switch") != opt.recipes.end());
    const AlignmentDiagnostics diagnostics = alignment_diagnostics(world, opt.train.epsilon);
    print_misalignment(world, diagnostics);
    std::fflush(stdout);

    const std::vector<RunResult> results = run_all(opt, world, train_set, test, clock);

    // Tables.
    const auto& eval = opt.eval;
    char title[256];
    std::snprintf(title, sizeof title, "Zero-shot accuracy (%%), both sentences in the test language; mean±std over %zu seed%s",
                  opt.seeds, opt.seeds > 1 ? "s" : "");
    print_table(title, opt.recipes, columns, results, [](const RunResult& r) { return r.accuracy; });
    print_paired_table(opt.recipes, columns, results, opt.seeds, "standard");
    print_table("Generalized accuracy (%), the two sentences in different languages (column = either side)", opt.recipes,
                columns, results, [](const RunResult& r) { return r.generalized; });
    std::snprintf(title, sizeof title,
                  "Smoothed prediction (%%): Gaussian noise sigma %.3g on the input embeddings, PREDICT with n = %zu, alpha = %g, "
                  "%zu pairs per language", eval.sigma, eval.smooth_n, eval.alpha, std::min(eval.smooth_examples, test.size()));
    print_table(title, opt.recipes, columns, results, [](const RunResult& r) { return r.smoothed; });
    print_table("Abstention rate of smoothed prediction (%)", opt.recipes, columns, results,
                [](const RunResult& r) { return r.abstained; });
    for (std::size_t ri = 0; ri < eval.radii.size(); ++ri) {
      std::snprintf(title, sizeof title, "Certified accuracy (%%) at L2 radius %.3g (CERTIFY, n0 = %zu, n = %zu)", eval.radii[ri],
                    eval.smooth_n0, eval.smooth_n);
      print_table(title, opt.recipes, columns, results, [ri](const RunResult& r) { return r.certified[ri]; });
    }

    // CSV and chart, each written atomically.
    std::filesystem::create_directories(opt.out_dir);
    const auto csv_path = std::filesystem::path(opt.out_dir) / "zero_shot_results.csv";
    const auto svg_path = std::filesystem::path(opt.out_dir) / "zero_shot_accuracy.svg";
    robustxlt::write_file_atomic(csv_path, results_csv(results, opt.recipes, columns, eval.radii, diagnostics, "standard"));
    robustxlt::write_file_atomic(svg_path, accuracy_svg(opt.recipes, columns, results));
    std::printf("\nwrote %s and %s\n", csv_path.string().c_str(), svg_path.string().c_str());
    if (!opt.quiet) {
      print_timings(opt.recipes, results);
      std::fprintf(stderr, "zero_shot_transfer: %zu runs in %s\n", results.size(), fmt_duration(clock.seconds()).c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zero_shot_transfer: %s\n", e.what());
    return 1;
  }
}
