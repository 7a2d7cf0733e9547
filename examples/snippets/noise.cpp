#include <robustxlt/robustxlt.hpp>
#include <cmath>
#include <cstdio>
using namespace robustxlt;

int main() {
  // RS-DA: neighbour lists (e.g. from examples/convert_lexicons.py) become id tables over one vocabulary.
  const auto neighbours = noise::parse_neighbours_json(R"({"good": ["fine", "nice"], "film": ["movie"]})", "inline");
  noise::Vocabulary vocab;
  const noise::SynonymSampler synonyms(noise::IdTable::build(neighbours, vocab, vocab));
  const std::vector<std::int64_t> sentence = {vocab.add("a"), vocab.add("good"), vocab.add("film")};
  const auto copies = synonyms.augment(sentence, /*k=*/10, /*seed=*/42, /*example=*/0);  // [10, 3]
  bool ok = true;
  for (std::size_t c = 0; c < copies.shape()[0]; ++c) {
    const std::string second = vocab.word(static_cast<std::uint32_t>(copies(c, 1)));  // "good", "fine" or "nice"
    ok = ok && copies(c, 0) == sentence[0] && (second == "good" || second == "fine" || second == "nice");
  }

  // CoSDA-ML: bilingual dictionaries (MUSE format) into the same multilingual vocabulary.
  std::vector<noise::IdTable> dictionaries;
  for (const char* muse : {"good gut\nfilm Film\n", "good bon\nfilm film\n"})
    dictionaries.push_back(noise::IdTable::build(noise::parse_muse(muse, "inline"), vocab, vocab));
  const noise::CodeSwitchSampler code_switch(std::move(dictionaries), {/*ratio=*/1.0, /*cross=*/1.0});
  const auto switched = code_switch.augment(sentence, 1, /*seed=*/42, /*example=*/0);
  const std::string word = vocab.word(static_cast<std::uint32_t>(switched(0, 1)));
  ok = ok && (word == "gut" || word == "bon");

  // RS-RP: uniform noise in the per-token L2 ball of radius 0.1, only at token positions.
  Tensor<float, 3> x = xt::zeros<float>({1, 3, 8});
  const Tensor<int, 2> mask = {{1, 1, 0}};
  noise::add_embedding_noise(x, mask, noise::EmbeddingNoise::l2_ball, 0.1f, /*seed=*/42, /*first_example=*/0, /*copy=*/0);
  for (std::size_t t = 0; t < 3; ++t) {
    float squared = 0;
    for (std::size_t d = 0; d < 8; ++d) squared += x(0, t, d) * x(0, t, d);
    ok = ok && (mask(0, t) ? squared > 0 && squared <= 0.01f + 1e-6f : squared == 0);
  }
  std::printf("code-switched: %s; checks %s\n", word.c_str(), ok ? "passed" : "FAILED");
  return ok ? 0 : 1;
}
