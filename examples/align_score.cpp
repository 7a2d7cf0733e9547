// Scores a word alignment against a gold standard, both in the Pharaoh format ("i-j" sure, "ipj" or "i?j"
// possible, one sentence pair per line, optional "id<TAB>" prefix), and prints the link counts with
// precision, recall, F-measure and the alignment error rate (Och and Ney 2003), summed over the corpus.
// Sentence pairs are matched by line; where both files give a pair an id, the ids must agree.
//
//   align_score gold.txt hyp.txt                      both files 0-based, source-target
//   align_score --one-based gold.txt hyp.txt          both files 1-based
//   align_score --hyp-one-based --reverse gold.txt hyp.txt
//                                                     hypothesis 1-based and written target-source
//
// --reverse swaps source and target of the hypothesis only: swapping both files would leave every score
// unchanged, so the hypothesis is the only side whose direction matters. Exit status: 0 on success, 1 on a
// bad or unreadable file (the message names the file and line), 2 on bad command-line arguments.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <robustxlt/align.hpp>
#include <string>
#include <vector>

using namespace robustxlt;

namespace {

// How the gold file's possible links count.
enum class GoldLinks { sure_possible, all_sure, sure_only };

void apply(std::vector<align::SentenceAlignment>& gold, GoldLinks mode) {
  if (mode == GoldLinks::sure_possible) return;
  for (auto& s : gold) {
    if (mode == GoldLinks::all_sure) {
      s.sure = s.all();
    }
    s.possible.clear();
  }
}

// Sentence pairs are matched by position; when both files name their pairs, the names must agree.
void check_ids(const std::vector<align::SentenceAlignment>& gold, const std::vector<align::SentenceAlignment>& hyp,
               const std::string& gold_path, const std::string& hyp_path) {
  for (std::size_t k = 0; k < gold.size() && k < hyp.size(); ++k)
    if (!gold[k].id.empty() && !hyp[k].id.empty() && gold[k].id != hyp[k].id)
      robustxlt::fail<FormatError>("line ", k + 1, ": sentence pair id '", hyp[k].id, "' in '", hyp_path,
                                "' does not match id '", gold[k].id, "' in '", gold_path, "'");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Scores a hypothesis word alignment against gold links (Pharaoh format): counts, precision, recall, "
      "F-measure and AER over the whole corpus."};
  std::string gold_path, hyp_path;
  bool one_based = false, gold_one_based = false, hyp_one_based = false, reverse = false;
  double alpha = 0.5;
  app.add_option("gold", gold_path, "gold alignment: i-j sure links, ipj or i?j possible links")->required();
  app.add_option("hypothesis", hyp_path, "hypothesis alignment (its possible links count as links too)")->required();
  app.add_flag("--one-based", one_based, "indices in both files start at 1");
  app.add_flag("--gold-one-based", gold_one_based, "indices in the gold file start at 1");
  app.add_flag("--hyp-one-based", hyp_one_based, "indices in the hypothesis file start at 1");
  app.add_flag("-r,--reverse", reverse,
               "the hypothesis is written target-source (e.g. an aligner run in the other direction): swap it");
  std::string gold_links_name = "sure-possible";
  app.add_option("--gold-links", gold_links_name,
                 "how gold links count: sure-possible (i-j sure, ipj possible), all-sure (every gold link is sure), "
                 "sure-only (possible links dropped)")
      ->check(CLI::IsMember({"sure-possible", "all-sure", "sure-only"}))
      ->capture_default_str();
  app.add_option("--alpha", alpha, "F-measure weight: F = 1 / (alpha / precision + (1 - alpha) / recall)")
      ->check(CLI::Range(0.0, 1.0));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help prints and succeeds; any other parse error is a usage error
  }

  const GoldLinks gold_links = gold_links_name == "all-sure"    ? GoldLinks::all_sure
                               : gold_links_name == "sure-only" ? GoldLinks::sure_only
                                                                : GoldLinks::sure_possible;
  try {
    align::PharaohOptions gold_opt, hyp_opt;
    gold_opt.one_based = one_based || gold_one_based;
    hyp_opt.one_based = one_based || hyp_one_based;
    hyp_opt.reverse = reverse;
    auto gold = align::load_pharaoh(gold_path, gold_opt);
    const auto hyp = align::load_pharaoh(hyp_path, hyp_opt);
    if (gold.size() != hyp.size())
      robustxlt::fail<FormatError>("'", hyp_path, "' has ", hyp.size(), " sentence pairs (lines) but '", gold_path,
                                "' has ", gold.size());
    check_ids(gold, hyp, gold_path, hyp_path);
    apply(gold, gold_links);
    const align::AlignmentScores s = align::score(gold, hyp, alpha);
    auto row = [](const std::string& label, const std::string& value) {
      std::printf("%-23s%s\n", (label + ":").c_str(), value.c_str());
    };
    auto fixed4 = [](double v) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4f", v);
      return std::string(buf);
    };
    row("sentence pairs", std::to_string(gold.size()));
    row("sure links |S|", std::to_string(s.sure));
    row("possible links |P|", std::to_string(s.possible) + " (P includes S)");
    row("hypothesis links |A|", std::to_string(s.hypothesis));
    row("|A n S|", std::to_string(s.hypothesis_sure));
    row("|A n P|", std::to_string(s.hypothesis_possible));
    row("precision", fixed4(s.precision));
    row("recall", fixed4(s.recall));
    row(alpha == 0.5 ? std::string("F1") : "F (alpha=" + fixed4(alpha) + ")", fixed4(s.f));
    row("AER", fixed4(s.aer));
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "align_score: %s\n", e.what());
    return 1;
  }
}
