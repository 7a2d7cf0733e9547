#pragma once
// The minimal transformer encoder classifier: token + position (+ segment) embeddings, optional embedding
// layer norm, L encoder layers (post-LN as BERT, or pre-LN with a final norm), pooling and a linear head.
// Parameter names and layouts match a PyTorch model made of nn.Embedding, nn.TransformerEncoder
// (batch_first, activation "gelu") and nn.Linear, so state_dicts exchange directly through checkpoints.
//
// The forward pass can start from token ids (optionally adding a perturbation delta to the token
// embeddings) or from embeddings the caller supplies; backward yields every parameter gradient and the
// gradient with respect to the input embeddings [B, T, D], which is what perturbers need.
//
// Inside, one table lists every activation forward keeps and every gradient backward uses, with its size;
// it allocates them and it is the memory budget. Forward runs embeddings, one forward_layer_* per layer and
// the head; backward runs their *_backward counterparts in the reverse order, d_<name> holding the
// gradient of activation <name>.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/memory.hpp"
#include "robustxlt/core/norms.hpp"
#include "robustxlt/core/objective.hpp"
#include "robustxlt/core/random.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"
#include "robustxlt/nn/config.hpp"
#include "robustxlt/nn/loss.hpp"
#include "robustxlt/nn/ops.hpp"
#include "robustxlt/nn/parameters.hpp"

namespace robustxlt::nn {

// A batch of token sequences.
struct TokenBatch {
  Tensor<std::int64_t, 2> ids;       // [B, T] token ids in [0, vocab_size); may be empty for forward_embeddings
  Tensor<std::int64_t, 2> mask;      // [B, T] 1 = token, 0 = padding; empty = every position is a token
  Tensor<std::int64_t, 2> segments;  // [B, T] segment ids in [0, type_vocab_size); empty = all 0

  // Sets mask from any [B, T] integral or bool tensor or view (a tokenizer's uint8 attention mask through
  // xt::adapt, say); the forward pass checks it as it checks every mask (values exactly 0 or 1, the first
  // other value named by position). A floating mask does not compile.
  template <class M>
  TokenBatch& set_mask(const M& m) {
    static_assert(std::is_integral_v<std::decay_t<typename M::value_type>>,
                  "TokenBatch::set_mask: a mask must hold an integral or bool type (1 = token, 0 = padding)");
    mask = xt::cast<std::int64_t>(m);
    return *this;
  }
};

template <class T>
class TransformerClassifier {
  static_assert(simd::is_supported_scalar<T>, "TransformerClassifier: T must be float or double");

 public:
  using scalar_type = T;

  // Builds the model and initialises it from seed: N(0, init_std) for matrices and tables, zero biases,
  // unit layer-norm scales. Throws InvalidArgument when the config is invalid, MemoryBudgetError (before
  // allocating) when parameter_bytes(config) exceeds memory_budget().
  explicit TransformerClassifier(const TransformerConfig& config, std::uint64_t seed = 0)
      : cfg_(config), dropout_seed_(seed ^ 0x5eedd00dULL) {
    static_assert(table_is_well_formed(), "TransformerClassifier: activation table rows out of order or malformed");
    cfg_.validate();
    check_memory_budget("TransformerClassifier", "the parameters and gradients of this config", parameter_bytes(cfg_));
    const std::size_t D = cfg_.dim, F = cfg_.ff_dim;
    tok_ = params_.add("tok_embeddings.weight", {cfg_.vocab_size, D});
    pos_ = params_.add("pos_embeddings.weight", {cfg_.max_positions, D});
    if (cfg_.type_vocab_size > 0) seg_ = params_.add("seg_embeddings.weight", {cfg_.type_vocab_size, D});
    if (cfg_.embedding_layer_norm) {
      emb_norm_w_ = params_.add("emb_norm.weight", {D});
      emb_norm_b_ = params_.add("emb_norm.bias", {D});
    }
    for (std::size_t l = 0; l < cfg_.layers; ++l) {
      const std::string p = "encoder.layers." + std::to_string(l) + ".";
      LayerIndex li;
      li.in_w = params_.add(p + "self_attn.in_proj_weight", {3 * D, D});
      li.in_b = params_.add(p + "self_attn.in_proj_bias", {3 * D});
      li.out_w = params_.add(p + "self_attn.out_proj.weight", {D, D});
      li.out_b = params_.add(p + "self_attn.out_proj.bias", {D});
      li.l1_w = params_.add(p + "linear1.weight", {F, D});
      li.l1_b = params_.add(p + "linear1.bias", {F});
      li.l2_w = params_.add(p + "linear2.weight", {D, F});
      li.l2_b = params_.add(p + "linear2.bias", {D});
      li.n1_w = params_.add(p + "norm1.weight", {D});
      li.n1_b = params_.add(p + "norm1.bias", {D});
      li.n2_w = params_.add(p + "norm2.weight", {D});
      li.n2_b = params_.add(p + "norm2.bias", {D});
      layer_idx_.push_back(li);
    }
    if (cfg_.pre_ln) {
      final_norm_w_ = params_.add("encoder.norm.weight", {D});
      final_norm_b_ = params_.add("encoder.norm.bias", {D});
    }
    cls_w_ = params_.add("classifier.weight", {cfg_.num_classes, D});
    cls_b_ = params_.add("classifier.bias", {cfg_.num_classes});
    initialize(seed);
  }

  const TransformerConfig& config() const noexcept { return cfg_; }
  ParameterStore<T>& params() noexcept { return params_; }
  const ParameterStore<T>& params() const noexcept { return params_; }

  // Training mode turns dropout on (when config().dropout > 0). Models start in eval mode.
  void train(bool on = true) noexcept { training_ = on; }
  void eval() noexcept { training_ = false; }
  bool training() const noexcept { return training_; }

  // Reseeds the dropout streams; the k-th training forward after this uses masks keyed by (seed, k).
  void seed_dropout(std::uint64_t seed) noexcept {
    dropout_seed_ = seed;
    forward_count_ = 0;
  }

  // Re-initialises every parameter from seed (see the constructor).
  void initialize(std::uint64_t seed) {
    for (std::size_t i = 0; i < params_.count(); ++i) {
      const auto& info = params_.infos()[i];
      T* v = params_.value(i);
      const bool is_norm = info.name.find("norm") != std::string::npos;
      if (info.shape.size() == 1) {
        std::fill(v, v + info.size, is_norm && ends_with(info.name, ".weight") ? T(1) : T(0));
      } else {
        Rng rng(seed, i);
        for (std::size_t j = 0; j < info.size; ++j) v[j] = static_cast<T>(cfg_.init_std) * rng.normal<T>();
      }
    }
    params_.zero_grad();
  }

  // Token-embedding lookup: rows of tok_embeddings.weight, [B, T] -> [B, T, D]. Throws on ids out of range.
  Tensor<T, 3> embed(const Tensor<std::int64_t, 2>& ids) const {
    check_ids("embed", ids);
    const std::size_t B = ids.shape()[0], Tn = ids.shape()[1], D = cfg_.dim;
    Tensor<T, 3> out = Tensor<T, 3>::from_shape({B, Tn, D});
    const T* table = params_.value(tok_);
    for (std::size_t n = 0; n < B * Tn; ++n)
      std::copy_n(table + static_cast<std::size_t>(ids.data()[n]) * D, D, out.data() + n * D);
    return out;
  }

  // Forward from token ids. When delta is non-null ([B, T, D], finite) it is added to the token
  // embeddings, e.g. an adversarial perturbation; backward then sends the input gradient to the token
  // table as well. Returns logits [B, C] (valid until the next forward).
  const Tensor<T, 2>& forward(const TokenBatch& batch, const Tensor<T, 3>* delta = nullptr) {
    check_ids("forward", batch.ids);
    const std::size_t B = batch.ids.shape()[0], Tn = batch.ids.shape()[1];
    if (delta) check_embeddings("forward", "delta", *delta, B, Tn);
    prepare(B, Tn, batch, "forward");
    const T* table = params_.value(tok_);
    const std::size_t D = cfg_.dim;
    for (std::size_t n = 0; n < B * Tn; ++n) {
      const T* row = table + static_cast<std::size_t>(batch.ids.data()[n]) * D;
      if (delta) simd::add(D, row, delta->data() + n * D, bufs_(Buf::input) + n * D);
      else std::copy_n(row, D, bufs_(Buf::input) + n * D);
    }
    ids_ = batch.ids;
    from_ids_ = true;
    B_ = B;
    return run_forward();
  }

  // Forward from embeddings [B, T, D] supplied by the caller (finite), in place of the token lookup;
  // mask and segments as in TokenBatch (ids ignored). backward leaves the token table's gradient alone.
  const Tensor<T, 2>& forward_embeddings(const Tensor<T, 3>& embeddings, const TokenBatch& batch) {
    if (embeddings.dimension() != 3 || embeddings.shape()[0] == 0 || embeddings.shape()[1] == 0)
      detail::fail<ShapeError>("forward_embeddings: embeddings must have shape [B >= 1, T >= 1, ", cfg_.dim, "], got ",
                               shape_string(embeddings.shape()));
    const std::size_t B = embeddings.shape()[0], Tn = embeddings.shape()[1];
    check_embeddings("forward_embeddings", "embeddings", embeddings, B, Tn);
    prepare(B, Tn, batch, "forward_embeddings");
    std::copy_n(embeddings.data(), embeddings.size(), bufs_(Buf::input));
    from_ids_ = false;
    B_ = B;
    return run_forward();
  }

  // Logits of the last forward, [B, C].
  const Tensor<T, 2>& logits() const noexcept { return logits_; }

  // Backward from dLoss/dlogits [B, C] of the last forward. Accumulates (+=) into params().grads() and
  // overwrites input_grad(). With parameter_gradients = false only input_grad() is computed (about half the
  // work; what an attack step needs) and params().grads() is left untouched.
  // Throws when no forward ran or the shape differs.
  void backward(const Tensor<T, 2>& dlogits, bool parameter_gradients = true) {
    if (B_ == 0) detail::fail("backward: call forward first");
    detail::check_shape("backward", "dlogits", dlogits.shape(), std::array<std::size_t, 2>{B_, cfg_.num_classes});
    if (!simd::all_finite(dlogits.size(), dlogits.data()))
      detail::fail<NumericError>("backward: dlogits must be finite, got NaN or Inf");
    const std::size_t need = detail::saturating_add(forward_bytes_for(B_, T_, dropout_at_forward_), backward_bytes(B_, T_));
    if (need > memory_budget())  // the message is formatted only when it is needed
      check_memory_budget("backward", detail::concat("activations and gradients of a batch of shape [", B_, ", ", T_, "]"), need);
    run_backward(dlogits.data(), parameter_gradients);
  }

  // Gradient of the loss w.r.t. the input embeddings (token embeddings + delta, or the caller's), [B, T, D].
  // Exactly zero at padded positions.
  const Tensor<T, 3>& input_grad() const noexcept { return input_grad_; }

  // backward, writing the input gradient into the caller's [B, T, D] buffer (a contiguous container or view:
  // an objective's GradientView, an xt::adapt of the caller's memory) instead of input_grad(), which keeps
  // its previous contents. With an embedding layer norm the gradient is computed there directly, no copy.
  // Throws ShapeError when the buffer's shape is not the last forward's [B, T, D], and as backward.
  template <class E>
  void backward_into(const Tensor<T, 2>& dlogits, E&& input_grad, bool parameter_gradients = true) {
    if (B_ == 0) detail::fail("backward_into: call forward first");
    auto v = detail::view3(input_grad, "backward_into", "input_grad");
    static_assert(!std::is_const_v<std::remove_pointer_t<decltype(v.data)>>, "backward_into: input_grad must be writable");
    static_assert(std::is_same_v<std::remove_const_t<std::remove_pointer_t<decltype(v.data)>>, T>,
                  "backward_into: input_grad must hold the model's scalar type");
    if (v.B != B_ || v.T != T_ || v.D != cfg_.dim)
      detail::fail<ShapeError>("backward_into: input_grad must have shape [", B_, ", ", T_, ", ", cfg_.dim, "], got [", v.B,
                               ", ", v.T, ", ", v.D, "]");
    struct Reset {
      T*& target;
      ~Reset() { target = nullptr; }
    } reset{input_grad_out_};
    input_grad_out_ = v.data;
    backward(dlogits, parameter_gradients);
  }

  // Convenience: forward from ids (+ delta), cross-entropy against labels, backward. Returns the loss.
  T loss_and_backward(const TokenBatch& batch, const Tensor<std::int64_t, 1>& labels,
                      const CrossEntropyOptions<T>& opt = {}, const Tensor<T, 3>* delta = nullptr) {
    const auto& z = forward(batch, delta);
    CrossEntropy<T> ce;
    const T loss = ce.forward(z, labels, opt);
    ce.backward(dlogits_);
    backward(dlogits_);
    return loss;
  }

  // Bytes of the parameter and gradient buffers of a model with this config (each parameter padded to
  // 64 bytes); saturates at SIZE_MAX instead of overflowing for absurd configs.
  static std::size_t parameter_bytes(const TransformerConfig& c) noexcept {
    using detail::saturating_add, detail::saturating_mul;
    const std::size_t D = c.dim, F = c.ff_dim;
    std::size_t elems = 0, count = 0;
    auto param = [&](std::size_t rows, std::size_t cols) {
      elems = saturating_add(elems, saturating_mul(rows, cols));
      ++count;
    };
    param(c.vocab_size, D);
    param(c.max_positions, D);
    if (c.type_vocab_size > 0) param(c.type_vocab_size, D);
    if (c.embedding_layer_norm) param(1, D), param(1, D);
    const std::size_t layer = saturating_add(
        saturating_add(saturating_mul(saturating_mul(4, D), D), saturating_mul(saturating_mul(2, D), F)),
        saturating_add(saturating_mul(9, D), F));
    elems = saturating_add(elems, saturating_mul(c.layers, layer));
    count = saturating_add(count, saturating_mul(c.layers, 12));
    if (c.pre_ln) param(1, D), param(1, D);
    param(c.num_classes, D);
    param(1, c.num_classes);
    const std::size_t padded = saturating_add(elems, saturating_mul(count, 64 / sizeof(T)));
    return saturating_mul(saturating_mul(2, padded), sizeof(T));
  }

  // Bytes that forward keeps for a batch of B sequences of length T in the current mode (training mode adds
  // the dropout masks): every activation backward needs, the mask and segment bookkeeping and the copy of
  // the ids, as the activation table lists them. forward and forward_embeddings throw MemoryBudgetError
  // before allocating anything when this exceeds memory_budget(). Saturates at SIZE_MAX.
  std::size_t forward_bytes(std::size_t B, std::size_t Tn) const noexcept {
    return forward_bytes_for(B, Tn, dropout_active());
  }

  // Scratch bytes that backward adds on top of forward_bytes for the same batch (a gradient buffer for each
  // activation, the input gradient, the loss gradient of loss_and_backward, the per-thread attention
  // scratch). backward throws MemoryBudgetError before allocating when forward_bytes + backward_bytes
  // exceeds memory_budget(). Saturates at SIZE_MAX.
  std::size_t backward_bytes(std::size_t B, std::size_t Tn) const noexcept {
    return table_bytes(Pass::backward, B, Tn, false);
  }

  // Bytes of the activation, gradient and bookkeeping buffers the model holds now (their capacities). A
  // fresh model holds forward_bytes(B, T) after its first forward, and forward_bytes + backward_bytes after
  // loss_and_backward, less the attention scratch that attention_backward keeps per thread
  // (num_threads() * T * T scalars). Buffers keep their capacity, so after a larger batch this can exceed
  // what the current batch needs.
  std::size_t held_bytes() const noexcept {
    std::size_t bytes = 0;
    auto add_capacity = [&](const auto& v) { bytes += v.capacity() * sizeof(v[0]); };
    auto add_size = [&](const auto& t) { bytes += t.size() * sizeof(*t.data()); };
    for (const auto& v : bufs_.all()) add_capacity(v);
    for (const auto& layer : layer_bufs_)
      for (const auto& v : layer.all()) add_capacity(v);
    add_capacity(key_valid_);
    add_capacity(segments_);
    add_capacity(valid_count_);
    add_size(ids_);
    add_size(logits_);
    add_size(dlogits_);
    add_size(input_grad_);
    return bytes;
  }

  // Model FLOPs of one forward pass for a batch of B sequences of length T (matrix products only);
  // a training step (forward + backward) costs about three times this.
  double forward_flops(std::size_t B, std::size_t Tn) const noexcept {
    const double N = static_cast<double>(B * Tn), D = static_cast<double>(cfg_.dim), F = static_cast<double>(cfg_.ff_dim);
    const double per_layer = 2.0 * N * (4.0 * D * D + 2.0 * D * F) + 4.0 * static_cast<double>(B) * Tn * Tn * D;
    return static_cast<double>(cfg_.layers) * per_layer + 2.0 * static_cast<double>(B) * D * cfg_.num_classes;
  }

 private:
  struct LayerIndex {
    std::size_t in_w, in_b, out_w, out_b, l1_w, l1_b, l2_w, l2_b, n1_w, n1_b, n2_w, n2_b;
  };

  // -------------------------------------------------------------------------------------------------------
  // The activation table. Every buffer forward keeps for backward and every gradient buffer backward uses
  // is one row below: its element count as a function of the batch [B, T] and the config, when it exists,
  // and who holds it. prepare and run_backward allocate from the table, and forward_bytes / backward_bytes
  // sum it, so what is allocated and what is budgeted are one list. N = B * T rows; "after dropout" means
  // the buffer holds the dropped values (dropout runs in place) and its mask is the row named *_mask.

  struct Buf {
    enum Id : std::size_t {
      // Forward, once per batch.
      input,         // token embeddings (+ delta), or the caller's embeddings
      emb_sum,       // input + position (+ segment) embeddings, the embedding norm's input
      emb_mean,      // embedding norm statistics
      emb_rstd,
      x0,            // the first layer's input, after the embedding norm and dropout
      emb_mask,      // dropout mask of x0
      final_ln,      // pre-LN: the final norm of the last layer's output
      final_mean,
      final_rstd,
      pooled,        // the first token's or the mean over tokens of the encoder output
      logits,        // held by logits_
      key_valid,     // 1 = token, 0 = padding; held by key_valid_
      segment_ids,   // held by segments_
      token_ids,     // copy of the ids for the token table's gradient; held by ids_
      valid_count,   // tokens per sequence; held by valid_count_
      // Forward, once per layer.
      ln1,           // norm1 of the layer input (pre-LN) or of res1 (post-LN)
      ln1_mean,
      ln1_rstd,
      qkv,           // in-projection, [q | k | v] per row
      probs,         // attention weights
      probs_mask,    // dropout mask of the weights
      probs_drop,    // weights after dropout
      att,           // attention output, heads concatenated
      att_out,       // out-projection, after dropout
      att_out_mask,
      res1,          // layer input + att_out
      ln2,           // pre-LN: norm2 of res1 (post-LN writes norm2 into out)
      ln2_mean,
      ln2_rstd,
      ff_hidden,     // linear1 output
      ff_act,        // GELU of ff_hidden, after dropout
      ff_act_mask,
      ff_out,        // linear2 output, after dropout
      ff_out_mask,
      res2,          // post-LN: ln1 + ff_out
      out,           // the layer output: res1 + ff_out (pre-LN) or norm2 of res2 (post-LN)
      // Backward, once per batch; the gradients of a layer's activations are reused by every layer.
      d_logits,      // the loss gradient loss_and_backward passes in; held by dlogits_
      d_pooled,
      d_final_ln,
      d_x0,
      d_emb_sum,
      d_input,       // held by input_grad_
      d_res2,
      d_ff_out,
      d_ff_act,
      d_ff_hidden,
      d_ln2,
      d_res1,
      d_att_out,
      d_att,
      d_qkv,
      d_ln1,
      d_scores,      // attention score gradients, one [T, T] per thread, held by attention_backward
      // Backward, once per layer.
      d_out,         // gradient of the layer output, which is the next layer's d_x
      count
    };
  };

  using BufId = typename Buf::Id;

  enum class Pass : std::uint8_t { forward, backward };
  enum class Copies : std::uint8_t { once, per_layer };
  enum class Extent : std::uint8_t { B, N, BD, BC, ND, N3D, NF, BHTT, threads_TT };
  // When a row exists: the bits it needs, all of them (0 = always).
  enum Keep : std::uint8_t { always = 0, with_dropout = 1, pre_ln_only = 2, post_ln_only = 4, emb_norm_only = 8 };
  // buffer: a std::vector<T> that allocate() sizes; separately: sized by the code that fills it.
  enum class Held : std::uint8_t { buffer, separately };

  struct Row {
    BufId id;
    Pass pass;
    Copies copies;
    Extent extent;
    std::uint8_t keep;
    std::size_t element_bytes;
    Held held;
  };

  // Short names for the table's columns.
  static constexpr Pass fwd = Pass::forward, bwd = Pass::backward;
  static constexpr Copies once = Copies::once, per_layer = Copies::per_layer;
  static constexpr Held buffer = Held::buffer, separately = Held::separately;
  static constexpr std::size_t scalar = sizeof(T);

  static constexpr Row table[Buf::count] = {
      // id               pass copies     extent              keep           bytes per element     held
      {Buf::input,        fwd, once,      Extent::ND,         always,        scalar,              buffer},
      {Buf::emb_sum,      fwd, once,      Extent::ND,         emb_norm_only, scalar,              buffer},
      {Buf::emb_mean,     fwd, once,      Extent::N,          emb_norm_only, scalar,              buffer},
      {Buf::emb_rstd,     fwd, once,      Extent::N,          emb_norm_only, scalar,              buffer},
      {Buf::x0,           fwd, once,      Extent::ND,         always,        scalar,              buffer},
      {Buf::emb_mask,     fwd, once,      Extent::ND,         with_dropout,  scalar,              buffer},
      {Buf::final_ln,     fwd, once,      Extent::ND,         pre_ln_only,   scalar,              buffer},
      {Buf::final_mean,   fwd, once,      Extent::N,          pre_ln_only,   scalar,              buffer},
      {Buf::final_rstd,   fwd, once,      Extent::N,          pre_ln_only,   scalar,              buffer},
      {Buf::pooled,       fwd, once,      Extent::BD,         always,        scalar,              buffer},
      {Buf::logits,       fwd, once,      Extent::BC,         always,        scalar,              separately},
      {Buf::key_valid,    fwd, once,      Extent::N,          always,        1,                   separately},
      {Buf::segment_ids,  fwd, once,      Extent::N,          always,        sizeof(std::size_t), separately},
      {Buf::token_ids,    fwd, once,      Extent::N,          always,        sizeof(std::int64_t), separately},
      {Buf::valid_count,  fwd, once,      Extent::B,          always,        sizeof(std::size_t), separately},
      {Buf::ln1,          fwd, per_layer, Extent::ND,         always,        scalar,              buffer},
      {Buf::ln1_mean,     fwd, per_layer, Extent::N,          always,        scalar,              buffer},
      {Buf::ln1_rstd,     fwd, per_layer, Extent::N,          always,        scalar,              buffer},
      {Buf::qkv,          fwd, per_layer, Extent::N3D,        always,        scalar,              buffer},
      {Buf::probs,        fwd, per_layer, Extent::BHTT,       always,        scalar,              buffer},
      {Buf::probs_mask,   fwd, per_layer, Extent::BHTT,       with_dropout,  scalar,              buffer},
      {Buf::probs_drop,   fwd, per_layer, Extent::BHTT,       with_dropout,  scalar,              buffer},
      {Buf::att,          fwd, per_layer, Extent::ND,         always,        scalar,              buffer},
      {Buf::att_out,      fwd, per_layer, Extent::ND,         always,        scalar,              buffer},
      {Buf::att_out_mask, fwd, per_layer, Extent::ND,         with_dropout,  scalar,              buffer},
      {Buf::res1,         fwd, per_layer, Extent::ND,         always,        scalar,              buffer},
      {Buf::ln2,          fwd, per_layer, Extent::ND,         pre_ln_only,   scalar,              buffer},
      {Buf::ln2_mean,     fwd, per_layer, Extent::N,          always,        scalar,              buffer},
      {Buf::ln2_rstd,     fwd, per_layer, Extent::N,          always,        scalar,              buffer},
      {Buf::ff_hidden,    fwd, per_layer, Extent::NF,         always,        scalar,              buffer},
      {Buf::ff_act,       fwd, per_layer, Extent::NF,         always,        scalar,              buffer},
      {Buf::ff_act_mask,  fwd, per_layer, Extent::NF,         with_dropout,  scalar,              buffer},
      {Buf::ff_out,       fwd, per_layer, Extent::ND,         always,        scalar,              buffer},
      {Buf::ff_out_mask,  fwd, per_layer, Extent::ND,         with_dropout,  scalar,              buffer},
      {Buf::res2,         fwd, per_layer, Extent::ND,         post_ln_only,  scalar,              buffer},
      {Buf::out,          fwd, per_layer, Extent::ND,         always,        scalar,              buffer},
      {Buf::d_logits,     bwd, once,      Extent::BC,         always,        scalar,              separately},
      {Buf::d_pooled,     bwd, once,      Extent::BD,         always,        scalar,              buffer},
      {Buf::d_final_ln,   bwd, once,      Extent::ND,         pre_ln_only,   scalar,              buffer},
      {Buf::d_x0,         bwd, once,      Extent::ND,         always,        scalar,              buffer},
      {Buf::d_emb_sum,    bwd, once,      Extent::ND,         emb_norm_only, scalar,              buffer},
      {Buf::d_input,      bwd, once,      Extent::ND,         always,        scalar,              separately},
      {Buf::d_res2,       bwd, once,      Extent::ND,         post_ln_only,  scalar,              buffer},
      {Buf::d_ff_out,     bwd, once,      Extent::ND,         always,        scalar,              buffer},
      {Buf::d_ff_act,     bwd, once,      Extent::NF,         always,        scalar,              buffer},
      {Buf::d_ff_hidden,  bwd, once,      Extent::NF,         always,        scalar,              buffer},
      {Buf::d_ln2,        bwd, once,      Extent::ND,         pre_ln_only,   scalar,              buffer},
      {Buf::d_res1,       bwd, once,      Extent::ND,         always,        scalar,              buffer},
      {Buf::d_att_out,    bwd, once,      Extent::ND,         always,        scalar,              buffer},
      {Buf::d_att,        bwd, once,      Extent::ND,         always,        scalar,              buffer},
      {Buf::d_qkv,        bwd, once,      Extent::N3D,        always,        scalar,              buffer},
      {Buf::d_ln1,        bwd, once,      Extent::ND,         always,        scalar,              buffer},
      {Buf::d_scores,     bwd, once,      Extent::threads_TT, always,        scalar,              separately},
      {Buf::d_out,        bwd, per_layer, Extent::ND,         always,        scalar,              buffer},
  };

  static constexpr bool table_is_well_formed() noexcept {
    for (std::size_t i = 0; i < Buf::count; ++i) {
      if (table[i].id != i) return false;  // rows in Buf order, one per buffer
      // backward_bytes has no mode argument, so the backward pass may not depend on dropout.
      if (table[i].pass == Pass::backward && (table[i].keep & with_dropout)) return false;
    }
    return true;
  }

  std::size_t elements(Extent e, std::size_t B, std::size_t Tn) const noexcept {
    using detail::saturating_mul;
    const std::size_t N = saturating_mul(B, Tn), D = cfg_.dim;
    switch (e) {
      case Extent::B: return B;
      case Extent::N: return N;
      case Extent::BD: return saturating_mul(B, D);
      case Extent::BC: return saturating_mul(B, cfg_.num_classes);
      case Extent::ND: return saturating_mul(N, D);
      case Extent::N3D: return saturating_mul(N, saturating_mul(3, D));
      case Extent::NF: return saturating_mul(N, cfg_.ff_dim);
      case Extent::BHTT: return saturating_mul(saturating_mul(B, cfg_.heads), saturating_mul(Tn, Tn));
      case Extent::threads_TT: return saturating_mul(static_cast<std::size_t>(num_threads()), saturating_mul(Tn, Tn));
    }
    return 0;
  }

  bool kept(const Row& r, bool drop) const noexcept {
    return (!(r.keep & with_dropout) || drop) && (!(r.keep & pre_ln_only) || cfg_.pre_ln) &&
           (!(r.keep & post_ln_only) || !cfg_.pre_ln) && (!(r.keep & emb_norm_only) || cfg_.embedding_layer_norm);
  }

  // Sum of the pass's rows in bytes for a [B, T] batch (drop: whether forward uses dropout).
  std::size_t table_bytes(Pass pass, std::size_t B, std::size_t Tn, bool drop) const noexcept {
    using detail::saturating_add, detail::saturating_mul;
    std::size_t bytes = 0;
    for (const Row& r : table) {
      if (r.pass != pass || !kept(r, drop)) continue;
      const std::size_t copies = r.copies == Copies::per_layer ? cfg_.layers : 1;
      bytes = saturating_add(bytes, saturating_mul(copies, saturating_mul(elements(r.extent, B, Tn), r.element_bytes)));
    }
    return bytes;
  }

  std::size_t forward_bytes_for(std::size_t B, std::size_t Tn, bool drop) const noexcept {
    return table_bytes(Pass::forward, B, Tn, drop);
  }

  // The table's buffer rows by id: bufs(Buf::qkv) is the [N, 3D] buffer's first element.
  class Buffers {
   public:
    T* operator()(BufId id) noexcept { return v_[id].data(); }
    const T* operator()(BufId id) const noexcept { return v_[id].data(); }
    std::vector<T>& vec(BufId id) noexcept { return v_[id]; }
    const std::array<std::vector<T>, Buf::count>& all() const noexcept { return v_; }

   private:
    std::array<std::vector<T>, Buf::count> v_;
  };

  // Sizes the pass's buffer rows for a [B, T] batch; rows absent in this config or mode get size 0.
  void allocate(Pass pass, std::size_t B, std::size_t Tn, bool drop) {
    layer_bufs_.resize(cfg_.layers);
    for (const Row& r : table) {
      if (r.pass != pass || r.held != Held::buffer) continue;
      const std::size_t n = kept(r, drop) ? elements(r.extent, B, Tn) : 0;
      if (r.copies == Copies::once) bufs_.vec(r.id).resize(n);
      else
        for (Buffers& layer : layer_bufs_) layer.vec(r.id).resize(n);
    }
  }

  // Dropout sites, numbered in forward order: the embeddings, then four per layer. A site keys its mask's
  // random stream (with the seed and the forward count), so the numbering fixes which mask a seed draws.
  enum LayerDropout : std::uint64_t { attention_weights, attention_output, ff_hidden_units, ff_output, dropout_sites_per_layer };
  static constexpr std::uint64_t embedding_dropout_site = 0;
  static constexpr std::uint64_t dropout_site(std::size_t layer, LayerDropout kind) noexcept {
    return 1 + static_cast<std::uint64_t>(layer) * dropout_sites_per_layer + kind;
  }

  static bool ends_with(const std::string& s, const char* suffix) {
    const std::string x(suffix);
    return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
  }

  void check_ids(const char* where, const Tensor<std::int64_t, 2>& ids) const {
    if (ids.shape()[0] == 0 || ids.shape()[1] == 0)
      detail::fail<ShapeError>(where, ": ids must have shape [B >= 1, T >= 1], got ", shape_string(ids.shape()));
    const std::size_t Tn = ids.shape()[1];
    for (std::size_t n = 0; n < ids.size(); ++n) {
      const auto v = ids.data()[n];
      if (v < 0 || static_cast<std::size_t>(v) >= cfg_.vocab_size)
        detail::fail(where, ": ids[", n / Tn, ", ", n % Tn, "] must be in [0, ", cfg_.vocab_size, "), got ", v);
    }
  }

  void check_embeddings(const char* where, const char* name, const Tensor<T, 3>& e, std::size_t B, std::size_t Tn) const {
    detail::check_shape(where, name, e.shape(), std::array<std::size_t, 3>{B, Tn, cfg_.dim});
    if (!simd::all_finite(e.size(), e.data())) {
      for (std::size_t i = 0; i < e.size(); ++i)
        if (!std::isfinite(e.data()[i]))
          detail::fail<NumericError>(where, ": ", name, " must be finite, got ", e.data()[i], " at [", i / (Tn * cfg_.dim),
                                     ", ", (i / cfg_.dim) % Tn, ", ", i % cfg_.dim, "]");
    }
  }

  // Validates mask and segments for a [B, T] batch and sizes every buffer; checks the memory budget first.
  // Every check runs before any member changes, so a refused batch leaves the last forward's state (and the
  // backward that may follow it) intact. The mask follows the library's one rule (core/norms.hpp TokenMask).
  void prepare(std::size_t B, std::size_t Tn, const TokenBatch& batch, const char* where) {
    if (Tn > cfg_.max_positions)
      detail::fail(where, ": sequence length must be <= max_positions ", cfg_.max_positions, ", got ", Tn);
    if (const std::size_t need = forward_bytes(B, Tn); need > memory_budget())
      check_memory_budget(where, detail::concat("activations of a batch of shape [", B, ", ", Tn, "]"), need);
    const std::size_t N = B * Tn;
    const TokenMask mask = TokenMask::from(batch.mask, B, Tn, where);
    for (std::size_t b = 0; b < B; ++b) {
      if (mask.tokens(b).empty())
        detail::fail(where, ": mask row ", b, " must contain at least one token, got only padding");
      if (cfg_.pooling == Pooling::first && !mask.valid(b * Tn))
        detail::fail(where, ": mask[", b, ", 0] must be 1 for first-token pooling, got 0");
    }
    const std::size_t S = cfg_.type_vocab_size;
    if (batch.segments.size() != 0) {
      detail::check_shape(where, "segments", batch.segments.shape(), std::array<std::size_t, 2>{B, Tn});
      for (std::size_t n = 0; n < N; ++n) {
        const auto s = batch.segments.data()[n];
        if (S == 0 ? s != 0 : (s < 0 || static_cast<std::size_t>(s) >= S))
          detail::fail(where, ": segments[", n / Tn, ", ", n % Tn, "] must be in [0, ", std::max<std::size_t>(S, 1),
                       "), got ", s);
      }
    }
    // From here on the last forward's state is overwritten: until the caller has filled the input and sets
    // B_ again, backward reports that no forward ran (an allocation that fails leaves no half-made state).
    B_ = 0;
    key_valid_.resize(N);
    for (std::size_t n = 0; n < N; ++n) key_valid_[n] = mask.valid(n) ? 1 : 0;
    valid_count_.resize(B);
    for (std::size_t b = 0; b < B; ++b) valid_count_[b] = mask.tokens(b).size();
    segments_.assign(N, 0);
    if (batch.segments.size() != 0)
      for (std::size_t n = 0; n < N; ++n) segments_[n] = static_cast<std::size_t>(batch.segments.data()[n]);
    T_ = Tn;
    dropout_at_forward_ = dropout_active();
    allocate(Pass::forward, B, Tn, dropout_at_forward_);
    if (logits_.shape() != std::array<std::size_t, 2>{B, cfg_.num_classes})
      logits_ = Tensor<T, 2>::from_shape({B, cfg_.num_classes});
  }

  bool dropout_active() const noexcept { return training_ && cfg_.dropout > 0.0; }

  // The residual stream: stream(0) is x0, stream(l + 1) is layer l's output; d_stream likewise.
  T* stream(std::size_t l) noexcept { return l == 0 ? bufs_(Buf::x0) : layer_bufs_[l - 1](Buf::out); }
  T* d_stream(std::size_t l) noexcept { return l == 0 ? bufs_(Buf::d_x0) : layer_bufs_[l - 1](Buf::d_out); }

  const T* val(std::size_t i) const noexcept { return params_.value(i); }
  // Parameter gradient i, or nullptr when this backward computes the input gradient only.
  T* grad(std::size_t i) noexcept { return param_grads_ ? params_.grad(i) : nullptr; }

  void norm_forward(T* out, T* mean, T* rstd, const T* in, std::size_t w, std::size_t b) {
    layer_norm_forward(out, mean, rstd, in, val(w), val(b), B_ * T_, cfg_.dim, static_cast<T>(cfg_.layer_norm_eps));
  }
  void norm_backward(T* d_in, std::size_t w, std::size_t b, const T* d_out, const T* in, const T* mean, const T* rstd,
                     bool overwrite_d_in) {
    layer_norm_backward(d_in, grad(w), grad(b), d_out, in, val(w), mean, rstd, B_ * T_, cfg_.dim, overwrite_d_in);
  }

  // Inverted dropout of x in place at a numbered site, keeping its mask; nothing when this forward runs
  // without dropout. The masks of one forward are keyed by (dropout seed, forward count, site).
  void dropout_in_place(T* x, T* mask, std::size_t n, std::uint64_t site) {
    if (dropout_at_forward_) dropout_forward(x, mask, n, static_cast<T>(cfg_.dropout), dropout_step_seed_, site);
  }
  void dropout_backward_in_place(T* dx, const T* mask, std::size_t n) {
    if (dropout_at_forward_) dropout_backward(dx, mask, n);
  }
  // The gradient of sum = a + b reaches both terms unchanged.
  static void residual_backward(T* d_a, T* d_b, const T* d_sum, std::size_t n) {
    std::copy_n(d_sum, n, d_a);
    std::copy_n(d_sum, n, d_b);
  }

  // -------------------------------------------------------------------------------------------------------
  // Forward. Each step names the buffers it writes; backward below undoes them in reverse order.

  const Tensor<T, 2>& run_forward() {
    dropout_step_seed_ = dropout_at_forward_ ? dropout_seed_ + 0x9e3779b97f4a7c15ULL * forward_count_++ : 0;
    embeddings_forward();
    for (std::size_t l = 0; l < cfg_.layers; ++l) {
      if (cfg_.pre_ln) forward_layer_pre_ln(l);
      else forward_layer_post_ln(l);
    }
    head_forward();
    return logits_;
  }

  // x0 = dropout(norm(input + position (+ segment))), the norm when embedding_layer_norm.
  void embeddings_forward() {
    const std::size_t N = B_ * T_, D = cfg_.dim, Tn = T_;
    const T* pos = val(pos_);
    const T* seg = cfg_.type_vocab_size ? val(seg_) : nullptr;
    const T* input = bufs_(Buf::input);
    T* x0 = bufs_(Buf::x0);
    T* sum = cfg_.embedding_layer_norm ? bufs_(Buf::emb_sum) : x0;
    parallel_rows(N, [&](std::size_t n) {
      simd::add(D, input + n * D, pos + (n % Tn) * D, sum + n * D);
      if (seg) simd::add_inplace(D, seg + segments_[n] * D, sum + n * D);
    });
    if (cfg_.embedding_layer_norm) norm_forward(x0, bufs_(Buf::emb_mean), bufs_(Buf::emb_rstd), sum, emb_norm_w_, emb_norm_b_);
    dropout_in_place(x0, bufs_(Buf::emb_mask), N * D, embedding_dropout_site);
  }

  // Post-LN (BERT): res1 = x + attention(x); ln1 = norm1(res1); res2 = ln1 + ff(ln1); out = norm2(res2).
  void forward_layer_post_ln(std::size_t l) {
    const std::size_t ND = B_ * T_ * cfg_.dim;
    const LayerIndex& w = layer_idx_[l];
    Buffers& c = layer_bufs_[l];
    const T* x = stream(l);
    self_attention_forward(l, x);
    simd::add(ND, x, c(Buf::att_out), c(Buf::res1));
    norm_forward(c(Buf::ln1), c(Buf::ln1_mean), c(Buf::ln1_rstd), c(Buf::res1), w.n1_w, w.n1_b);
    feed_forward_forward(l, c(Buf::ln1));
    simd::add(ND, c(Buf::ln1), c(Buf::ff_out), c(Buf::res2));
    norm_forward(c(Buf::out), c(Buf::ln2_mean), c(Buf::ln2_rstd), c(Buf::res2), w.n2_w, w.n2_b);
  }

  // Pre-LN: ln1 = norm1(x); res1 = x + attention(ln1); ln2 = norm2(res1); out = res1 + ff(ln2).
  void forward_layer_pre_ln(std::size_t l) {
    const std::size_t ND = B_ * T_ * cfg_.dim;
    const LayerIndex& w = layer_idx_[l];
    Buffers& c = layer_bufs_[l];
    const T* x = stream(l);
    norm_forward(c(Buf::ln1), c(Buf::ln1_mean), c(Buf::ln1_rstd), x, w.n1_w, w.n1_b);
    self_attention_forward(l, c(Buf::ln1));
    simd::add(ND, x, c(Buf::att_out), c(Buf::res1));
    norm_forward(c(Buf::ln2), c(Buf::ln2_mean), c(Buf::ln2_rstd), c(Buf::res1), w.n2_w, w.n2_b);
    feed_forward_forward(l, c(Buf::ln2));
    simd::add(ND, c(Buf::res1), c(Buf::ff_out), c(Buf::out));
  }

  // att_out = dropout(out_proj(attention(in_proj(in)))), dropout also on the attention weights.
  void self_attention_forward(std::size_t l, const T* in) {
    const std::size_t B = B_, Tn = T_, N = B * Tn, D = cfg_.dim, H = cfg_.heads;
    const LayerIndex& w = layer_idx_[l];
    Buffers& c = layer_bufs_[l];
    linear_forward(c(Buf::qkv), in, val(w.in_w), val(w.in_b), N, D, 3 * D);
    T* probs_mask = nullptr;
    T* probs_drop = nullptr;
    if (dropout_at_forward_) {
      probs_mask = c(Buf::probs_mask);
      probs_drop = c(Buf::probs_drop);
      const std::size_t n = B * H * Tn * Tn;
      // Kept weights are scaled by 1 / (1 - p), as at every other site; attention_forward applies the mask
      // after the softmax, whose output backward needs undropped.
      fill_dropout_mask(probs_mask, n, static_cast<T>(cfg_.dropout), dropout_step_seed_, dropout_site(l, attention_weights));
    }
    attention_forward(c(Buf::att), c(Buf::probs), probs_drop, static_cast<const T*>(probs_mask), c(Buf::qkv),
                      key_valid_.data(), B, Tn, D, H);
    linear_forward(c(Buf::att_out), c(Buf::att), val(w.out_w), val(w.out_b), N, D, D);
    dropout_in_place(c(Buf::att_out), c(Buf::att_out_mask), N * D, dropout_site(l, attention_output));
  }

  // ff_out = dropout(linear2(dropout(gelu(linear1(in))))).
  void feed_forward_forward(std::size_t l, const T* in) {
    const std::size_t N = B_ * T_, D = cfg_.dim, F = cfg_.ff_dim;
    const LayerIndex& w = layer_idx_[l];
    Buffers& c = layer_bufs_[l];
    linear_forward(c(Buf::ff_hidden), in, val(w.l1_w), val(w.l1_b), N, D, F);
    gelu_forward(c(Buf::ff_act), c(Buf::ff_hidden), N * F);
    dropout_in_place(c(Buf::ff_act), c(Buf::ff_act_mask), N * F, dropout_site(l, ff_hidden_units));
    linear_forward(c(Buf::ff_out), c(Buf::ff_act), val(w.l2_w), val(w.l2_b), N, F, D);
    dropout_in_place(c(Buf::ff_out), c(Buf::ff_out_mask), N * D, dropout_site(l, ff_output));
  }

  // Pre-LN: final_ln = norm(stream(L)). Then pooling (first token, or mean over tokens) and the linear head.
  void head_forward() {
    const std::size_t B = B_, Tn = T_, D = cfg_.dim;
    const T* h = stream(cfg_.layers);
    if (cfg_.pre_ln) {
      norm_forward(bufs_(Buf::final_ln), bufs_(Buf::final_mean), bufs_(Buf::final_rstd), h, final_norm_w_, final_norm_b_);
      h = bufs_(Buf::final_ln);
    }
    T* pooled = bufs_(Buf::pooled);
    for (std::size_t b = 0; b < B; ++b) {
      T* pr = pooled + b * D;
      if (cfg_.pooling == Pooling::first) {
        std::copy_n(h + b * Tn * D, D, pr);
      } else {
        std::fill_n(pr, D, T(0));
        for (std::size_t t = 0; t < Tn; ++t)
          if (key_valid_[b * Tn + t]) simd::add_inplace(D, h + (b * Tn + t) * D, pr);
        simd::scale(D, T(1) / static_cast<T>(valid_count_[b]), pr);
      }
    }
    linear_forward(logits_.data(), pooled, val(cls_w_), val(cls_b_), B, D, cfg_.num_classes);
  }

  // -------------------------------------------------------------------------------------------------------
  // Backward: the forward steps undone in reverse order, d_<name> the gradient of activation <name>. The
  // first gradient written into a buffer overwrites it, a second one (where an activation feeds two
  // places) accumulates; dropout backward runs in place, as its forward.

  void run_backward(const T* dlogits, bool parameter_gradients) {
    param_grads_ = parameter_gradients;
    allocate(Pass::backward, B_, T_, dropout_at_forward_);
    head_backward(dlogits);
    for (std::size_t l = cfg_.layers; l-- > 0;) {
      if (cfg_.pre_ln) backward_layer_pre_ln(l);
      else backward_layer_post_ln(l);
    }
    embeddings_backward();
  }

  void head_backward(const T* dlogits) {
    const std::size_t B = B_, Tn = T_, D = cfg_.dim;
    T* d_pooled = bufs_(Buf::d_pooled);
    linear_backward(d_pooled, grad(cls_w_), grad(cls_b_), dlogits, bufs_(Buf::pooled), val(cls_w_), B, D,
                    cfg_.num_classes, true);
    T* d_h = cfg_.pre_ln ? bufs_(Buf::d_final_ln) : d_stream(cfg_.layers);
    std::fill_n(d_h, B * Tn * D, T(0));
    for (std::size_t b = 0; b < B; ++b) {
      const T* g = d_pooled + b * D;
      if (cfg_.pooling == Pooling::first) {
        std::copy_n(g, D, d_h + b * Tn * D);
      } else {
        const T inv = T(1) / static_cast<T>(valid_count_[b]);
        for (std::size_t t = 0; t < Tn; ++t)
          if (key_valid_[b * Tn + t]) simd::axpy(D, inv, g, d_h + (b * Tn + t) * D);
      }
    }
    if (cfg_.pre_ln)
      norm_backward(d_stream(cfg_.layers), final_norm_w_, final_norm_b_, d_h, stream(cfg_.layers), bufs_(Buf::final_mean),
                    bufs_(Buf::final_rstd), true);
  }

  void backward_layer_post_ln(std::size_t l) {
    const std::size_t ND = B_ * T_ * cfg_.dim;
    const LayerIndex& w = layer_idx_[l];
    Buffers& c = layer_bufs_[l];
    const T* x = stream(l);
    const T* d_out = d_stream(l + 1);
    T* d_x = d_stream(l);
    T* d_res2 = bufs_(Buf::d_res2);
    T* d_ln1 = bufs_(Buf::d_ln1);
    T* d_res1 = bufs_(Buf::d_res1);
    norm_backward(d_res2, w.n2_w, w.n2_b, d_out, c(Buf::res2), c(Buf::ln2_mean), c(Buf::ln2_rstd), true);
    residual_backward(d_ln1, bufs_(Buf::d_ff_out), d_res2, ND);
    feed_forward_backward(l, d_ln1, c(Buf::ln1), false);
    norm_backward(d_res1, w.n1_w, w.n1_b, d_ln1, c(Buf::res1), c(Buf::ln1_mean), c(Buf::ln1_rstd), true);
    residual_backward(d_x, bufs_(Buf::d_att_out), d_res1, ND);
    self_attention_backward(l, d_x, x, false);
  }

  void backward_layer_pre_ln(std::size_t l) {
    const std::size_t ND = B_ * T_ * cfg_.dim;
    const LayerIndex& w = layer_idx_[l];
    Buffers& c = layer_bufs_[l];
    const T* x = stream(l);
    const T* d_out = d_stream(l + 1);
    T* d_x = d_stream(l);
    T* d_res1 = bufs_(Buf::d_res1);
    T* d_ln2 = bufs_(Buf::d_ln2);
    T* d_ln1 = bufs_(Buf::d_ln1);
    residual_backward(d_res1, bufs_(Buf::d_ff_out), d_out, ND);
    feed_forward_backward(l, d_ln2, c(Buf::ln2), true);
    norm_backward(d_res1, w.n2_w, w.n2_b, d_ln2, c(Buf::res1), c(Buf::ln2_mean), c(Buf::ln2_rstd), false);
    residual_backward(d_x, bufs_(Buf::d_att_out), d_res1, ND);
    self_attention_backward(l, d_ln1, c(Buf::ln1), true);
    norm_backward(d_x, w.n1_w, w.n1_b, d_ln1, x, c(Buf::ln1_mean), c(Buf::ln1_rstd), false);
  }

  // From d_att_out to the block input: d_in = (or +=, unless overwrite_d_in) the in-projection's input gradient.
  void self_attention_backward(std::size_t l, T* d_in, const T* in, bool overwrite_d_in) {
    const std::size_t B = B_, Tn = T_, N = B * Tn, D = cfg_.dim, H = cfg_.heads;
    const LayerIndex& w = layer_idx_[l];
    Buffers& c = layer_bufs_[l];
    T* d_att_out = bufs_(Buf::d_att_out);
    T* d_att = bufs_(Buf::d_att);
    T* d_qkv = bufs_(Buf::d_qkv);
    dropout_backward_in_place(d_att_out, c(Buf::att_out_mask), N * D);
    linear_backward(d_att, grad(w.out_w), grad(w.out_b), d_att_out, c(Buf::att), val(w.out_w), N, D, D, true);
    attention_backward(d_qkv, d_att, c(Buf::qkv), c(Buf::probs), dropout_at_forward_ ? c(Buf::probs_drop) : nullptr,
                       dropout_at_forward_ ? c(Buf::probs_mask) : nullptr, B, Tn, D, H, true);
    linear_backward(d_in, grad(w.in_w), grad(w.in_b), d_qkv, in, val(w.in_w), N, D, 3 * D, overwrite_d_in);
  }

  // From d_ff_out to the block input: d_in = (or +=, unless overwrite_d_in) linear1's input gradient.
  void feed_forward_backward(std::size_t l, T* d_in, const T* in, bool overwrite_d_in) {
    const std::size_t N = B_ * T_, D = cfg_.dim, F = cfg_.ff_dim;
    const LayerIndex& w = layer_idx_[l];
    Buffers& c = layer_bufs_[l];
    T* d_ff_out = bufs_(Buf::d_ff_out);
    T* d_ff_act = bufs_(Buf::d_ff_act);
    T* d_ff_hidden = bufs_(Buf::d_ff_hidden);
    dropout_backward_in_place(d_ff_out, c(Buf::ff_out_mask), N * D);
    linear_backward(d_ff_act, grad(w.l2_w), grad(w.l2_b), d_ff_out, c(Buf::ff_act), val(w.l2_w), N, F, D, true);
    dropout_backward_in_place(d_ff_act, c(Buf::ff_act_mask), N * F);
    gelu_backward(d_ff_hidden, c(Buf::ff_hidden), d_ff_act, N * F, true);
    linear_backward(d_in, grad(w.l1_w), grad(w.l1_b), d_ff_hidden, in, val(w.l1_w), N, D, F, overwrite_d_in);
  }

  // From d_x0 to the input embeddings (input_grad_) and the position, segment and token tables.
  void embeddings_backward() {
    const std::size_t N = B_ * T_, D = cfg_.dim, Tn = T_;
    T* d_x0 = bufs_(Buf::d_x0);
    dropout_backward_in_place(d_x0, bufs_(Buf::emb_mask), N * D);
    const T* d_sum = d_x0;
    if (cfg_.embedding_layer_norm) {
      // Into the caller's buffer when backward_into gave one: it is then the input gradient, uncopied.
      T* d_emb_sum = input_grad_out_ ? input_grad_out_ : bufs_(Buf::d_emb_sum);
      norm_backward(d_emb_sum, emb_norm_w_, emb_norm_b_, d_x0, bufs_(Buf::emb_sum), bufs_(Buf::emb_mean),
                    bufs_(Buf::emb_rstd), true);
      d_sum = d_emb_sum;
    }
    T* d_pos = grad(pos_);
    T* d_seg = cfg_.type_vocab_size ? grad(seg_) : nullptr;
    if (d_pos)
      for (std::size_t n = 0; n < N; ++n) {
        simd::add_inplace(D, d_sum + n * D, d_pos + (n % Tn) * D);
        if (d_seg) simd::add_inplace(D, d_sum + n * D, d_seg + segments_[n] * D);
      }
    if (input_grad_out_) {
      if (d_sum != input_grad_out_) std::copy_n(d_sum, N * D, input_grad_out_);
    } else {
      if (input_grad_.shape() != std::array<std::size_t, 3>{B_, Tn, D}) input_grad_ = Tensor<T, 3>::from_shape({B_, Tn, D});
      std::copy_n(d_sum, N * D, input_grad_.data());
    }
    if (from_ids_ && param_grads_) {
      T* d_tok = grad(tok_);
      for (std::size_t n = 0; n < N; ++n)
        simd::add_inplace(D, d_sum + n * D, d_tok + static_cast<std::size_t>(ids_.data()[n]) * D);
    }
  }

  TransformerConfig cfg_;
  ParameterStore<T> params_;
  std::size_t tok_ = 0, pos_ = 0, seg_ = 0, emb_norm_w_ = 0, emb_norm_b_ = 0, final_norm_w_ = 0, final_norm_b_ = 0,
              cls_w_ = 0, cls_b_ = 0;
  std::vector<LayerIndex> layer_idx_;
  bool training_ = false;
  std::uint64_t dropout_seed_ = 0;
  std::uint64_t forward_count_ = 0;

  // Forward state: the batch, whether its forward used dropout and with which seed, and the table's buffers.
  std::size_t B_ = 0, T_ = 0;
  bool from_ids_ = false;
  bool dropout_at_forward_ = false;
  std::uint64_t dropout_step_seed_ = 0;
  Tensor<std::int64_t, 2> ids_;           // [B, T]
  std::vector<std::uint8_t> key_valid_;   // [N]
  T* input_grad_out_ = nullptr;            // the caller's input-gradient buffer during backward_into
  std::vector<std::size_t> valid_count_;  // [B]
  std::vector<std::size_t> segments_;     // [N]
  Buffers bufs_;                          // rows held once
  std::vector<Buffers> layer_bufs_;       // rows held per layer
  Tensor<T, 2> logits_, dlogits_;         // [B, C]
  bool param_grads_ = true;               // whether the running backward computes parameter gradients
  Tensor<T, 3> input_grad_;               // [B, T, D]
};

}  // namespace robustxlt::nn
