// The model config stored in checkpoint metadata (TransformerConfig::from_metadata). The input is read as
// "key=value" lines (everything up to the first '=' is the key); an accepted config is valid, its integer
// fields were plain decimal digits, and to_metadata -> from_metadata returns the same config.
#include <map>

#include "fuzz_support.hpp"
#include "robustxlt/nn/config.hpp"
#include "robustxlt/core/io.hpp"

using namespace robustxlt;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::map<std::string, std::string> meta;
  for_each_line(robustxlt_fuzz::as_text(data, size), [&](std::size_t, std::string_view l) {
    const std::size_t eq = l.find('=');
    if (eq == std::string_view::npos) meta[std::string(l)] = "";
    else meta[std::string(l.substr(0, eq))] = std::string(l.substr(eq + 1));
  });
  nn::TransformerConfig c;
  if (!robustxlt_fuzz::accepts([&] { c = nn::TransformerConfig::from_metadata(meta); })) return 0;
  c.validate();  // must not throw
  // Integer fields are accepted in plain decimal only (no sign, no spaces that stoull would skip).
  for (const char* key : {"vocab_size", "max_positions", "type_vocab_size", "dim", "heads", "ff_dim", "layers", "num_classes"}) {
    const auto it = meta.find(key);
    if (it != meta.end()) FUZZ_CHECK(!it->second.empty() && it->second.find_first_not_of("0123456789") == std::string::npos);
  }
  const auto back = nn::TransformerConfig::from_metadata(c.to_metadata());
  FUZZ_CHECK(back.vocab_size == c.vocab_size && back.max_positions == c.max_positions &&
             back.type_vocab_size == c.type_vocab_size && back.dim == c.dim && back.heads == c.heads &&
             back.ff_dim == c.ff_dim && back.layers == c.layers && back.num_classes == c.num_classes);
  FUZZ_CHECK(back.pre_ln == c.pre_ln && back.embedding_layer_norm == c.embedding_layer_norm && back.pooling == c.pooling);
  FUZZ_CHECK(back.layer_norm_eps == c.layer_norm_eps && back.dropout == c.dropout);
  return 0;
}
