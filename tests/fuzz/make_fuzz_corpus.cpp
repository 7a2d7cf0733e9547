// Writes the seed corpora under tests/fuzz/corpus/<target>/: a handful of small valid inputs and typical
// invalid ones per parser, the binary ones (safetensors, checkpoints) produced by the library's own writers.
// Not part of the build by default: cmake --build --preset fuzz --target make_fuzz_corpus, then run
//   build/fuzz/tests/fuzz/make_fuzz_corpus tests/fuzz/corpus
// Inputs that once crashed a target are kept in the corpus as well; this program never deletes files.
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "robustxlt/nn/checkpoint.hpp"

using namespace robustxlt;
namespace fs = std::filesystem;

namespace {

fs::path root;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / target);
  write_file_atomic(root / target / name, bytes);
}

std::string checkpoint_bytes(const nn::TransformerConfig& cfg, std::uint64_t seed) {
  const nn::TransformerClassifier<float> model(cfg, seed);
  const fs::path tmp = root / ".checkpoint.tmp";
  nn::save_checkpoint(model, tmp);
  std::string bytes = read_file(tmp);
  fs::remove(tmp);
  return bytes;
}

std::string metadata_lines(const nn::TransformerConfig& cfg) {
  std::string out;
  for (const auto& [k, v] : cfg.to_metadata()) out += k + "=" + v + "\n";
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  root = argv[1];

  // Pharaoh: the first byte holds the options (1 = 1-based, 2 = reversed, 4 = four 8 x 8 sentence pairs).
  put("pharaoh", "valid_sure_possible", std::string("\x00", 1) + "0-0 1-1 2p3 3?2\n\n1-2 1-2\n");
  put("pharaoh", "valid_ids_one_based", std::string("\x01", 1) + "s1\t1-1 2-3\ns2\t\n");
  put("pharaoh", "valid_lengths_reversed", std::string("\x06", 1) + "0-1\n7-7 3p2\n\n5?5\n");
  put("pharaoh", "invalid_malformed", std::string("\x00", 1) + "0-0 1-x\n");
  put("pharaoh", "invalid_negative", std::string("\x00", 1) + "-1-2\n");
  put("pharaoh", "invalid_out_of_bounds", std::string("\x04", 1) + "0-9\n\n\n\n");

  put("muse", "valid", "the der\nthe die\ncat Katze\n\nwater eau\r\n");
  put("muse", "valid_utf8", "\xc3\x89t\xc3\xa9 summer\nwater \xe0\xa4\xaa\xe0\xa4\xbe\xe0\xa4\xa8\xe0\xa5\x80\n");
  put("muse", "invalid_one_field", "alone\n");
  put("muse", "invalid_three_fields", "a b c\n");
  put("muse", "invalid_utf8", "\xff\xfe x\n");

  put("neighbours_tsv", "valid", "# word<TAB>neighbours\ngood\tfine\tnice\nalone\n\nBig\tlarge\n");
  put("neighbours_tsv", "invalid_empty_field", "a\t\tb\n");
  put("neighbours_tsv", "invalid_space", "a b\tc\n");
  put("neighbours_tsv", "invalid_only_comments", "# nothing\n");

  put("neighbours_json", "valid", "{\"good\": [\"fine\", \"nice\"], \"alone\": [], \"\\u00c9t\\u00e9\": [\"summer\"]}");
  put("neighbours_json", "invalid_array", "[1, 2]");
  put("neighbours_json", "invalid_value", "{\"a\": \"b\"}");
  put("neighbours_json", "invalid_element", "{\"a\": [1]}");
  put("neighbours_json", "invalid_truncated", "{\"a\": [\"b\",\n");

  put("id_pairs", "valid", "en-000001\tde-000007\nen-000002\tde-000009\n\n");
  put("id_pairs", "invalid_three_fields", "a\tb\tc\n");
  put("id_pairs", "invalid_empty_id", "\tx\n");

  SafetensorsWriter w;
  const float f[6] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-40f, -0.0f};
  const double d[2] = {1e300, -1e-300};
  const std::int64_t i64[3] = {-1, 0, 1};
  const std::uint8_t u8[4] = {0, 1, 2, 255};
  w.add("weights", f, {2, 3});
  w.add("scale", d, {2});
  w.add("ids", i64, {3});
  w.add("flags", u8, {4});
  w.add("empty", f, {0, 5});
  w.set_metadata("format", "pt");
  const std::string st = w.serialize();
  put("safetensors", "valid", st);
  put("safetensors", "valid_metadata_only", [] {
    SafetensorsWriter m;
    m.set_metadata("only", "metadata");
    return m.serialize();
  }());
  put("safetensors", "invalid_truncated", st.substr(0, st.size() - 3));
  put("safetensors", "invalid_header_length", std::string("\xff\xff\xff\xff\x00\x00\x00\x00{}", 10));
  put("safetensors", "invalid_short", std::string("\x02\x00\x00", 3));

  nn::TransformerConfig tiny;
  tiny.vocab_size = 6, tiny.max_positions = 4, tiny.dim = 4, tiny.heads = 2, tiny.ff_dim = 4, tiny.layers = 1,
  tiny.num_classes = 2;
  const std::string ck = checkpoint_bytes(tiny, 1);
  put("checkpoint", "valid_post_ln", ck);
  nn::TransformerConfig pre = tiny;
  pre.pre_ln = true, pre.type_vocab_size = 2, pre.pooling = nn::Pooling::mean, pre.embedding_layer_norm = false;
  pre.layers = 2;
  put("checkpoint", "valid_pre_ln_segments", checkpoint_bytes(pre, 2));
  put("checkpoint", "invalid_truncated", ck.substr(0, ck.size() - 8));
  {
    // Metadata of one config, tensors of another: the loader must name the mismatch.
    SafetensorsReader r(ck, "seed");
    SafetensorsWriter m;
    for (const auto& [name, rec] : r.records()) m.add_raw(name, rec.dtype, rec.shape, r.raw(name));
    for (const auto& [k, v] : r.metadata()) m.set_metadata(k, v);
    m.set_metadata("dim", "8");
    put("checkpoint", "invalid_config_mismatch", m.serialize());
  }

  put("config", "valid_default", metadata_lines(nn::TransformerConfig{}));
  put("config", "valid_tiny", metadata_lines(pre));
  put("config", "invalid_number", "dim=abc\n");
  put("config", "invalid_heads", "dim=4\nheads=3\n");
  put("config", "invalid_dropout", "dropout=1.5\n");
  put("config", "invalid_bool", "pre_ln=yes\n");
  std::printf("seed corpus written under %s\n", root.string().c_str());
  return 0;
}
