#include <robustxlt/robustxlt.hpp>
#include <cstdio>
using namespace robustxlt;

int main() {
  // The model's vocabulary, in its id order (e.g. the lines of its vocab.txt). Tables are built against it
  // and never grow it: a neighbour the model lacks is an error (or dropped with UnknownWords::drop).
  noise::Vocabulary vocab;
  for (const char* w : {"[PAD]", "a", "good", "film", "fine", "nice", "movie", "gut", "Film", "bon"}) vocab.add(w);
  // RS-DA: neighbour lists (e.g. from examples/convert_lexicons.py) become id tables over that vocabulary.
  const auto neighbours = noise::parse_neighbours_json(R"({"good": ["fine", "nice"], "film": ["movie"]})", "inline");
  const noise::SynonymSampler synonyms(noise::IdTable::build(neighbours, vocab, vocab), vocab.size());
  const std::vector<std::int64_t> sentence = {vocab.id("a"), vocab.id("good"), vocab.id("film")};
  const auto copies = synonyms.augment(sentence, /*k=*/10, /*seed=*/42, /*example=*/0);  // [10, 3]
  bool ok = true;
  for (std::size_t c = 0; c < copies.shape()[0]; ++c) {
    const std::string second = vocab.word(copies(c, 1));  // "good", "fine" or "nice"
    ok = ok && copies(c, 0) == sentence[0] && (second == "good" || second == "fine" || second == "nice");
  }

  // CoSDA-ML: bilingual dictionaries (MUSE format) into the same multilingual vocabulary.
  std::vector<noise::IdTable> dictionaries;
  for (const char* muse : {"good gut\nfilm Film\n", "good bon\nfilm film\n"})
    dictionaries.push_back(noise::IdTable::build(noise::parse_muse(muse, "inline"), vocab, vocab));
  const noise::CodeSwitchSampler code_switch(std::move(dictionaries), vocab.size(), {/*ratio=*/1.0, /*cross=*/1.0});
  const auto switched = code_switch.augment(sentence, 1, /*seed=*/42, /*example=*/0);
  const std::string word = vocab.word(switched(0, 1));
  ok = ok && (word == "gut" || word == "bon");
  std::printf("code-switched: %s; checks %s\n", word.c_str(), ok ? "passed" : "FAILED");
  return ok ? 0 : 1;
}
