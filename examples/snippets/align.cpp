#include <robustxlt/robustxlt.hpp>
#include <cstdio>
using namespace robustxlt;

int main() {
  // Word vectors of a sentence pair, [words, dim] (e.g. subword embeddings averaged with average_subwords).
  const Tensor<float, 2> source = {{1.0f, 0.1f, 0.0f}, {0.0f, 1.0f, 0.2f}, {0.1f, 0.0f, 1.0f}};
  const Tensor<float, 2> target = {{0.1f, 0.9f, 0.0f}, {0.0f, 0.2f, 1.0f}, {0.9f, 0.0f, 0.1f}};
  const Tensor<float, 2> sim = align::cosine_similarity(source, target);  // [3, 3]

  std::vector<align::SentenceAlignment> hypothesis(1);
  hypothesis[0].sure = align::argmax_links(sim);  // also: itermax_links, match_links, softmax_links
  const auto gold = align::parse_pharaoh("0-2 1-0 2p1\n", "gold");  // sure 0-2, 1-0; possible 2-1
  const align::AlignmentScores s = align::score(gold, hypothesis);
  std::printf("links %sprecision %.2f recall %.2f AER %.2f\n", align::format_pharaoh(hypothesis).c_str(), s.precision,
              s.recall, s.aer);

  // Word translation retrieval with CSLS: the first neighbour of each source word is its translation.
  const auto nb = align::retrieve(source, target, align::Retrieval::csls, {/*k=*/1, /*csls_k=*/2, /*block=*/2048});
  const double p_at_1 = align::precision_at_k(nb, {{2}, {0}, {1}}, {1})[0];
  std::printf("CSLS P@1 %.2f\n", p_at_1);
  return s.aer == 0.0 && s.precision == 1.0 && p_at_1 == 1.0 ? 0 : 1;
}
