#pragma once
// Hyper-parameters of the minimal transformer classifier.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>

#include "robustxlt/core/error.hpp"

namespace robustxlt::nn {

enum class Pooling {
  first,  // hidden state of position 0 (a [CLS] token); position 0 must be a real token
  mean,   // mean over the real (unmasked) positions
};

struct TransformerConfig {
  std::size_t vocab_size = 8000;
  std::size_t max_positions = 512;   // rows of the learned position table; longer sequences are rejected
  std::size_t type_vocab_size = 0;   // segment embeddings rows; 0 = no segment embeddings
  std::size_t dim = 256;             // model width D
  std::size_t heads = 4;             // D must be divisible by heads
  std::size_t ff_dim = 1024;         // feed-forward width F
  std::size_t layers = 4;
  std::size_t num_classes = 3;
  bool pre_ln = false;               // false: post-LN (BERT, PyTorch norm_first=False); true: pre-LN + final norm
  bool embedding_layer_norm = true;  // layer norm over (token + position + segment) embeddings, as BERT does
  Pooling pooling = Pooling::first;
  double layer_norm_eps = 1e-5;
  double dropout = 0.0;              // one rate for embeddings, attention weights, residual branches, feed-forward
  double init_std = 0.02;            // N(0, init_std) for weight matrices and embedding tables

  // Throws InvalidArgument naming the first field out of range.
  void validate() const {
    auto positive = [](const char* name, std::size_t v) {
      if (v == 0) detail::fail("TransformerConfig: ", name, " must be > 0, got 0");
    };
    positive("vocab_size", vocab_size);
    positive("max_positions", max_positions);
    positive("dim", dim);
    positive("heads", heads);
    positive("ff_dim", ff_dim);
    positive("layers", layers);
    positive("num_classes", num_classes);
    if (dim % heads != 0)
      detail::fail("TransformerConfig: dim must be divisible by heads, got dim ", dim, " and heads ", heads);
    if (!(layer_norm_eps > 0.0) || !std::isfinite(layer_norm_eps))
      detail::fail("TransformerConfig: layer_norm_eps must be > 0 and finite, got ", layer_norm_eps);
    if (!(dropout >= 0.0 && dropout < 1.0))
      detail::fail("TransformerConfig: dropout must be in [0, 1), got ", dropout);
    if (!(init_std >= 0.0) || !std::isfinite(init_std))
      detail::fail("TransformerConfig: init_std must be >= 0 and finite, got ", init_std);
  }

  // String form stored in checkpoint metadata.
  std::map<std::string, std::string> to_metadata() const {
    auto num = [](double v) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", v);
      return std::string(buf);
    };
    return {{"vocab_size", std::to_string(vocab_size)},
            {"max_positions", std::to_string(max_positions)},
            {"type_vocab_size", std::to_string(type_vocab_size)},
            {"dim", std::to_string(dim)},
            {"heads", std::to_string(heads)},
            {"ff_dim", std::to_string(ff_dim)},
            {"layers", std::to_string(layers)},
            {"num_classes", std::to_string(num_classes)},
            {"pre_ln", pre_ln ? "1" : "0"},
            {"embedding_layer_norm", embedding_layer_norm ? "1" : "0"},
            {"pooling", pooling == Pooling::first ? "first" : "mean"},
            {"layer_norm_eps", num(layer_norm_eps)},
            {"dropout", num(dropout)}};
  }

  // Inverse of to_metadata. Keys that are absent keep their defaults; malformed values throw FormatError.
  static TransformerConfig from_metadata(const std::map<std::string, std::string>& m) {
    TransformerConfig c;
    auto get = [&](const char* key) -> const std::string* {
      auto it = m.find(key);
      return it == m.end() ? nullptr : &it->second;
    };
    auto size_field = [&](const char* key, std::size_t& out) {
      if (const auto* v = get(key)) {
        // Digits only: stoull alone would accept leading spaces and a sign, and wrap " -1" to 2^64 - 1.
        const bool digits = !v->empty() && v->find_first_not_of("0123456789") == std::string::npos;
        std::size_t pos = 0;
        unsigned long long x = 0;
        try {
          if (digits) x = std::stoull(*v, &pos);
        } catch (const std::exception&) {
          pos = 0;
        }
        if (!digits || pos != v->size())
          detail::fail<FormatError>("TransformerConfig metadata: '", key, "' must be a non-negative integer, got '", *v, "'");
        out = static_cast<std::size_t>(x);
      }
    };
    auto bool_field = [&](const char* key, bool& out) {
      if (const auto* v = get(key)) {
        if (*v != "0" && *v != "1")
          detail::fail<FormatError>("TransformerConfig metadata: '", key, "' must be '0' or '1', got '", *v, "'");
        out = *v == "1";
      }
    };
    auto real_field = [&](const char* key, double& out) {
      if (const auto* v = get(key)) {
        std::size_t pos = 0;
        double x = 0;
        try {
          x = std::stod(*v, &pos);
        } catch (const std::exception&) {
          pos = 0;
        }
        if (pos == 0 || pos != v->size())
          detail::fail<FormatError>("TransformerConfig metadata: '", key, "' must be a number, got '", *v, "'");
        out = x;
      }
    };
    size_field("vocab_size", c.vocab_size);
    size_field("max_positions", c.max_positions);
    size_field("type_vocab_size", c.type_vocab_size);
    size_field("dim", c.dim);
    size_field("heads", c.heads);
    size_field("ff_dim", c.ff_dim);
    size_field("layers", c.layers);
    size_field("num_classes", c.num_classes);
    bool_field("pre_ln", c.pre_ln);
    bool_field("embedding_layer_norm", c.embedding_layer_norm);
    if (const auto* v = get("pooling")) {
      if (*v == "first") c.pooling = Pooling::first;
      else if (*v == "mean") c.pooling = Pooling::mean;
      else detail::fail<FormatError>("TransformerConfig metadata: 'pooling' must be 'first' or 'mean', got '", *v, "'");
    }
    real_field("layer_norm_eps", c.layer_norm_eps);
    real_field("dropout", c.dropout);
    c.validate();
    return c;
  }
};

}  // namespace robustxlt::nn
