#pragma once
// The minimal transformer encoder classifier: token + position (+ segment) embeddings, optional embedding
// layer norm, L encoder layers (post-LN as BERT, or pre-LN with a final norm), pooling and a linear head.
// Parameter names and layouts match a PyTorch model made of nn.Embedding, nn.TransformerEncoder
// (batch_first, activation "gelu") and nn.Linear, so state_dicts exchange directly through checkpoints.
//
// The forward pass can start from token ids (optionally adding a perturbation delta to the token
// embeddings) or from embeddings the caller supplies; backward yields every parameter gradient and the
// gradient with respect to the input embeddings [B, T, D], which is what perturbers need.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/memory.hpp"
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
    prepare(B, Tn, batch, "forward");
    if (delta) check_embeddings("forward", "delta", *delta, B, Tn);
    const T* table = params_.value(tok_);
    const std::size_t D = cfg_.dim;
    for (std::size_t n = 0; n < B * Tn; ++n) {
      const T* row = table + static_cast<std::size_t>(batch.ids.data()[n]) * D;
      if (delta) simd::add(D, row, delta->data() + n * D, input_.data() + n * D);
      else std::copy_n(row, D, input_.data() + n * D);
    }
    ids_ = batch.ids;
    from_ids_ = true;
    return run_forward();
  }

  // Forward from embeddings [B, T, D] supplied by the caller (finite), in place of the token lookup;
  // mask and segments as in TokenBatch (ids ignored). backward leaves the token table's gradient alone.
  const Tensor<T, 2>& forward_embeddings(const Tensor<T, 3>& embeddings, const TokenBatch& batch) {
    if (embeddings.dimension() != 3 || embeddings.shape()[0] == 0 || embeddings.shape()[1] == 0)
      detail::fail<ShapeError>("forward_embeddings: embeddings must have shape [B >= 1, T >= 1, ", cfg_.dim, "], got ",
                               shape_string(embeddings.shape()));
    const std::size_t B = embeddings.shape()[0], Tn = embeddings.shape()[1];
    prepare(B, Tn, batch, "forward_embeddings");
    check_embeddings("forward_embeddings", "embeddings", embeddings, B, Tn);
    std::copy_n(embeddings.data(), embeddings.size(), input_.data());
    from_ids_ = false;
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
    const std::size_t need = detail::saturating_add(forward_bytes_for(B_, T_, dropout_active_at_forward()), backward_bytes(B_, T_));
    if (need > memory_budget())  // the message is formatted only when it is needed
      check_memory_budget("backward", detail::concat("activations and gradients of a batch of shape [", B_, ", ", T_, "]"), need);
    run_backward(dlogits.data(), parameter_gradients);
  }

  // Gradient of the loss w.r.t. the input embeddings (token embeddings + delta, or the caller's), [B, T, D].
  // Exactly zero at padded positions.
  const Tensor<T, 3>& input_grad() const noexcept { return input_grad_; }

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
  // the ids. forward and forward_embeddings throw MemoryBudgetError before allocating anything when this
  // exceeds memory_budget(). Saturates at SIZE_MAX.
  std::size_t forward_bytes(std::size_t B, std::size_t Tn) const noexcept {
    return forward_bytes_for(B, Tn, dropout_active());
  }

  // Scratch bytes that backward adds on top of forward_bytes for the same batch (gradient buffers of every
  // activation kind, the input gradient, the per-thread attention scratch). backward throws
  // MemoryBudgetError before allocating when forward_bytes + backward_bytes exceeds memory_budget().
  std::size_t backward_bytes(std::size_t B, std::size_t Tn) const noexcept {
    using detail::saturating_add, detail::saturating_mul;
    const std::size_t N = saturating_mul(B, Tn), ND = saturating_mul(N, cfg_.dim), NF = saturating_mul(N, cfg_.ff_dim);
    std::size_t e = saturating_mul(B, saturating_add(cfg_.dim, cfg_.num_classes));  // d pooled, dlogits
    e = saturating_add(e, saturating_mul(8, ND));  // d_a, d_b, d_c, d_att, d_qkv (3), input gradient
    e = saturating_add(e, saturating_mul(2, NF));  // d_act, d_ff1
    e = saturating_add(e, saturating_mul(static_cast<std::size_t>(num_threads()), saturating_mul(Tn, Tn)));
    return saturating_mul(e, sizeof(T));
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
  // Activations one layer keeps for its backward pass.
  struct LayerCache {
    std::vector<T> ln1, ln1_mean, ln1_rstd;  // [N, D], [N], [N]
    std::vector<T> qkv;                      // [N, 3D]
    std::vector<T> probs, probs_drop, att_mask;  // [B, H, T, T]
    std::vector<T> att;                      // [N, D]
    std::vector<T> att_proj, drop1;          // [N, D]
    std::vector<T> res1;                     // [N, D]
    std::vector<T> ln2, ln2_mean, ln2_rstd;  // [N, D], [N], [N]  (post-LN: res2 lives in ln2's input slot)
    std::vector<T> res2;                     // [N, D] post-LN only
    std::vector<T> ff1, act, act_drop;       // [N, F]
    std::vector<T> ff2, drop2;               // [N, D]
  };

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

  std::size_t forward_bytes_for(std::size_t B, std::size_t Tn, bool drop) const noexcept {
    using detail::saturating_add, detail::saturating_mul;
    const std::size_t N = saturating_mul(B, Tn), D = cfg_.dim, F = cfg_.ff_dim, L = cfg_.layers;
    const std::size_t ND = saturating_mul(N, D), NF = saturating_mul(N, F);
    const std::size_t BHTT = saturating_mul(saturating_mul(B, cfg_.heads), saturating_mul(Tn, Tn));
    // Elements of T, buffer by buffer as prepare sizes them.
    std::size_t e = saturating_add(saturating_mul(drop ? 3 : 2, ND), saturating_mul(2, N));  // input, emb_sum (+drop), mean, rstd
    e = saturating_add(e, saturating_mul(L + 1, ND));                                          // residual stream
    std::size_t layer = saturating_add(saturating_mul(drop ? 3 : 1, BHTT), saturating_mul(4, N));  // probs (+drop, mask); LN stats
    // qkv (3), att, att_proj, res1, ln1, ff2, then ln2 (pre-LN) or res2 (post-LN); dropout adds drop1, drop2.
    layer = saturating_add(layer, saturating_mul(drop ? 11 : 9, ND));
    layer = saturating_add(layer, saturating_mul(drop ? 3 : 2, NF));                            // ff1, act (+drop)
    e = saturating_add(e, saturating_mul(L, layer));
    if (cfg_.pre_ln) e = saturating_add(e, saturating_add(ND, saturating_mul(2, N)));          // final norm
    e = saturating_add(e, saturating_mul(B, saturating_add(D, cfg_.num_classes)));              // pooled, logits
    // key_valid (1 byte), segments and ids (8 bytes each) per position; valid counts per sequence.
    const std::size_t book = saturating_add(saturating_mul(N, 1 + sizeof(std::size_t) + sizeof(std::int64_t)),
                                            saturating_mul(B, sizeof(std::size_t)));
    return saturating_add(saturating_mul(e, sizeof(T)), book);
  }

  // Validates mask and segments for a [B, T] batch and sizes every buffer; checks the memory budget first.
  void prepare(std::size_t B, std::size_t Tn, const TokenBatch& batch, const char* where) {
    if (Tn > cfg_.max_positions)
      detail::fail(where, ": sequence length must be <= max_positions ", cfg_.max_positions, ", got ", Tn);
    if (const std::size_t need = forward_bytes(B, Tn); need > memory_budget())
      check_memory_budget(where, detail::concat("activations of a batch of shape [", B, ", ", Tn, "]"), need);
    const std::size_t N = B * Tn;
    key_valid_.assign(N, 1);
    if (batch.mask.size() != 0) {
      detail::check_shape(where, "mask", batch.mask.shape(), std::array<std::size_t, 2>{B, Tn});
      for (std::size_t n = 0; n < N; ++n) {
        const auto m = batch.mask.data()[n];
        if (m != 0 && m != 1)
          detail::fail(where, ": mask[", n / Tn, ", ", n % Tn, "] must be 0 or 1, got ", m);
        key_valid_[n] = static_cast<std::uint8_t>(m);
      }
    }
    valid_count_.assign(B, 0);
    for (std::size_t b = 0; b < B; ++b) {
      for (std::size_t t = 0; t < Tn; ++t) valid_count_[b] += key_valid_[b * Tn + t];
      if (valid_count_[b] == 0)
        detail::fail(where, ": mask row ", b, " must contain at least one token, got only padding");
      if (cfg_.pooling == Pooling::first && !key_valid_[b * Tn])
        detail::fail(where, ": mask[", b, ", 0] must be 1 for first-token pooling, got 0");
    }
    segments_.assign(N, 0);
    if (batch.segments.size() != 0) {
      detail::check_shape(where, "segments", batch.segments.shape(), std::array<std::size_t, 2>{B, Tn});
      const std::size_t S = cfg_.type_vocab_size;
      for (std::size_t n = 0; n < N; ++n) {
        const auto s = batch.segments.data()[n];
        if (S == 0 ? s != 0 : (s < 0 || static_cast<std::size_t>(s) >= S))
          detail::fail(where, ": segments[", n / Tn, ", ", n % Tn, "] must be in [0, ", std::max<std::size_t>(S, 1),
                       "), got ", s);
        segments_[n] = static_cast<std::size_t>(s);
      }
    }
    B_ = B;
    T_ = Tn;
    const std::size_t D = cfg_.dim, F = cfg_.ff_dim, H = cfg_.heads, L = cfg_.layers;
    const bool drop = dropout_active();
    input_.resize(N * D);
    emb_sum_.resize(N * D);
    emb_mean_.resize(N);
    emb_rstd_.resize(N);
    emb_drop_.resize(drop ? N * D : 0);
    stream_.resize(L + 1);
    for (auto& s : stream_) s.resize(N * D);
    caches_.resize(L);
    for (auto& c : caches_) {
      c.qkv.resize(N * 3 * D);
      c.probs.resize(B * H * Tn * Tn);
      c.probs_drop.resize(drop ? B * H * Tn * Tn : 0);
      c.att_mask.resize(drop ? B * H * Tn * Tn : 0);
      c.att.resize(N * D);
      c.att_proj.resize(N * D);
      c.drop1.resize(drop ? N * D : 0);
      c.res1.resize(N * D);
      c.ln1.resize(N * D);
      c.ln1_mean.resize(N);
      c.ln1_rstd.resize(N);
      c.ln2.resize(cfg_.pre_ln ? N * D : 0);
      c.ln2_mean.resize(N);
      c.ln2_rstd.resize(N);
      c.res2.resize(cfg_.pre_ln ? 0 : N * D);
      c.ff1.resize(N * F);
      c.act.resize(N * F);
      c.act_drop.resize(drop ? N * F : 0);
      c.ff2.resize(N * D);
      c.drop2.resize(drop ? N * D : 0);
    }
    final_.resize(cfg_.pre_ln ? N * D : 0);
    final_mean_.resize(cfg_.pre_ln ? N : 0);
    final_rstd_.resize(cfg_.pre_ln ? N : 0);
    if (pooled_.shape()[0] != B) {
      pooled_ = Tensor<T, 2>::from_shape({B, D});
      logits_ = Tensor<T, 2>::from_shape({B, cfg_.num_classes});
    }
  }

  bool dropout_active() const noexcept { return training_ && cfg_.dropout > 0.0; }

  const Tensor<T, 2>& run_forward() {
    const std::size_t B = B_, Tn = T_, N = B * Tn, D = cfg_.dim, F = cfg_.ff_dim, H = cfg_.heads;
    const T eps = static_cast<T>(cfg_.layer_norm_eps);
    const bool drop = dropout_active();
    const T p = static_cast<T>(cfg_.dropout);
    const std::uint64_t step = drop ? forward_count_++ : 0;
    std::uint64_t site = 0;
    auto next_seed = [&]() { return dropout_seed_ + 0x9e3779b97f4a7c15ULL * step; };

    // Embeddings: input + position (+ segment), then optional layer norm and dropout.
    const T* pos = params_.value(pos_);
    const T* seg = cfg_.type_vocab_size ? params_.value(seg_) : nullptr;
    T* x0 = stream_[0].data();
    T* sum = cfg_.embedding_layer_norm ? emb_sum_.data() : x0;
    parallel_rows(N, [&](std::size_t n) {
      simd::add(D, input_.data() + n * D, pos + (n % Tn) * D, sum + n * D);
      if (seg) simd::add_inplace(D, seg + segments_[n] * D, sum + n * D);
    });
    if (cfg_.embedding_layer_norm)
      layer_norm_forward(x0, emb_mean_.data(), emb_rstd_.data(), sum, params_.value(emb_norm_w_),
                         params_.value(emb_norm_b_), N, D, eps);
    if (drop) dropout_forward(x0, emb_drop_.data(), N * D, p, next_seed(), site++);

    for (std::size_t l = 0; l < cfg_.layers; ++l) {
      const LayerIndex& w = layer_idx_[l];
      LayerCache& c = caches_[l];
      const T* x = stream_[l].data();
      T* out = stream_[l + 1].data();
      // Self-attention block.
      const T* att_in = x;
      if (cfg_.pre_ln) {
        layer_norm_forward(c.ln1.data(), c.ln1_mean.data(), c.ln1_rstd.data(), x, params_.value(w.n1_w),
                           params_.value(w.n1_b), N, D, eps);
        att_in = c.ln1.data();
      }
      linear_forward(c.qkv.data(), att_in, params_.value(w.in_w), params_.value(w.in_b), N, D, 3 * D);
      if (drop) {
        fill_dropout_mask(c.att_mask.data(), c.att_mask.size(), p, next_seed(), site++);
        attention_forward(c.att.data(), c.probs.data(), c.probs_drop.data(), c.att_mask.data(), c.qkv.data(),
                          key_valid_.data(), B, Tn, D, H);
      } else {
        site++;
        attention_forward(c.att.data(), c.probs.data(), static_cast<T*>(nullptr), static_cast<const T*>(nullptr),
                          c.qkv.data(), key_valid_.data(), B, Tn, D, H);
      }
      linear_forward(c.att_proj.data(), c.att.data(), params_.value(w.out_w), params_.value(w.out_b), N, D, D);
      if (drop) dropout_forward(c.att_proj.data(), c.drop1.data(), N * D, p, next_seed(), site);
      site++;
      simd::add(N * D, x, c.att_proj.data(), c.res1.data());
      // Feed-forward block.
      const T* ff_in = c.res1.data();
      if (cfg_.pre_ln) {
        layer_norm_forward(c.ln2.data(), c.ln2_mean.data(), c.ln2_rstd.data(), c.res1.data(), params_.value(w.n2_w),
                           params_.value(w.n2_b), N, D, eps);
        ff_in = c.ln2.data();
      } else {
        layer_norm_forward(c.ln1.data(), c.ln1_mean.data(), c.ln1_rstd.data(), c.res1.data(), params_.value(w.n1_w),
                           params_.value(w.n1_b), N, D, eps);
        ff_in = c.ln1.data();
      }
      linear_forward(c.ff1.data(), ff_in, params_.value(w.l1_w), params_.value(w.l1_b), N, D, F);
      gelu_forward(c.act.data(), c.ff1.data(), N * F);
      if (drop) dropout_forward(c.act.data(), c.act_drop.data(), N * F, p, next_seed(), site);
      site++;
      linear_forward(c.ff2.data(), c.act.data(), params_.value(w.l2_w), params_.value(w.l2_b), N, F, D);
      if (drop) dropout_forward(c.ff2.data(), c.drop2.data(), N * D, p, next_seed(), site);
      site++;
      if (cfg_.pre_ln) {
        simd::add(N * D, c.res1.data(), c.ff2.data(), out);
      } else {
        simd::add(N * D, c.ln1.data(), c.ff2.data(), c.res2.data());
        layer_norm_forward(out, c.ln2_mean.data(), c.ln2_rstd.data(), c.res2.data(), params_.value(w.n2_w),
                           params_.value(w.n2_b), N, D, eps);
      }
    }
    const T* h = stream_[cfg_.layers].data();
    if (cfg_.pre_ln) {
      layer_norm_forward(final_.data(), final_mean_.data(), final_rstd_.data(), h, params_.value(final_norm_w_),
                         params_.value(final_norm_b_), N, D, eps);
      h = final_.data();
    }
    // Pooling and the classification head.
    for (std::size_t b = 0; b < B; ++b) {
      T* pr = pooled_.data() + b * D;
      if (cfg_.pooling == Pooling::first) {
        std::copy_n(h + b * Tn * D, D, pr);
      } else {
        std::fill_n(pr, D, T(0));
        for (std::size_t t = 0; t < Tn; ++t)
          if (key_valid_[b * Tn + t]) simd::add_inplace(D, h + (b * Tn + t) * D, pr);
        simd::scale(D, T(1) / static_cast<T>(valid_count_[b]), pr);
      }
    }
    linear_forward(logits_.data(), pooled_.data(), params_.value(cls_w_), params_.value(cls_b_), B, D, cfg_.num_classes);
    return logits_;
  }

  void fill_dropout_mask(T* mask, std::size_t n, T p, std::uint64_t seed, std::uint64_t site) {
    std::fill_n(mask, n, T(1));
    dropout_forward(mask, mask, n, p, seed, site);
  }

  void run_backward(const T* dlogits, bool pg) {
    const std::size_t B = B_, Tn = T_, N = B * Tn, D = cfg_.dim, F = cfg_.ff_dim, H = cfg_.heads, C = cfg_.num_classes;
    const bool drop = dropout_active_at_forward();
    auto grad = [&](std::size_t i) { return pg ? params_.grad(i) : static_cast<T*>(nullptr); };
    auto val = [&](std::size_t i) { return params_.value(i); };

    d_pooled_.assign(B * D, T(0));
    linear_backward(d_pooled_.data(), grad(cls_w_), grad(cls_b_), dlogits, pooled_.data(), val(cls_w_), B, D, C);
    // dh: gradient at the encoder output [N, D].
    d_a_.assign(N * D, T(0));
    for (std::size_t b = 0; b < B; ++b) {
      const T* g = d_pooled_.data() + b * D;
      if (cfg_.pooling == Pooling::first) {
        std::copy_n(g, D, d_a_.data() + b * Tn * D);
      } else {
        const T inv = T(1) / static_cast<T>(valid_count_[b]);
        for (std::size_t t = 0; t < Tn; ++t)
          if (key_valid_[b * Tn + t]) simd::axpy(D, inv, g, d_a_.data() + (b * Tn + t) * D);
      }
    }
    d_b_.resize(N * D);
    if (cfg_.pre_ln) {
      layer_norm_backward(d_b_.data(), grad(final_norm_w_), grad(final_norm_b_), d_a_.data(), stream_[cfg_.layers].data(),
                          val(final_norm_w_), final_mean_.data(), final_rstd_.data(), N, D, true);
      std::swap(d_a_, d_b_);
    }
    // d_a_ now holds dLoss/d stream[L]; each layer maps it to dLoss/d stream[l].
    d_c_.resize(N * D);
    d_att_.resize(N * D);
    d_qkv_.resize(N * 3 * D);
    d_act_.resize(N * F);
    d_ff1_.resize(N * F);
    for (std::size_t l = cfg_.layers; l-- > 0;) {
      const LayerIndex& w = layer_idx_[l];
      LayerCache& c = caches_[l];
      const T* x = stream_[l].data();
      T* dout = d_a_.data();  // consumed; becomes scratch
      T* dres = d_b_.data();  // dLoss/d res1 (pre-LN: also the residual path to x)
      T* dx = d_c_.data();    // dLoss/d x, written last
      const T* ff_in = cfg_.pre_ln ? c.ln2.data() : c.ln1.data();
      T* dff_out = nullptr;  // dLoss/d ff2 (after its dropout)
      if (cfg_.pre_ln) {
        std::copy_n(dout, N * D, dres);
        dff_out = dout;
      } else {
        // out = LN2(res2), res2 = ln1 + ff2.
        layer_norm_backward(dres, grad(w.n2_w), grad(w.n2_b), dout, c.res2.data(), val(w.n2_w), c.ln2_mean.data(),
                            c.ln2_rstd.data(), N, D, true);
        std::copy_n(dres, N * D, dout);  // dout := d res2 = d ff2 = d ln1 (residual part)
        dff_out = dout;
        // dres keeps d ln1 (the residual part); the feed-forward input gradient is added below.
      }
      if (drop) dropout_backward(dff_out, c.drop2.data(), N * D);
      linear_backward(d_act_.data(), grad(w.l2_w), grad(w.l2_b), dff_out, c.act.data(), val(w.l2_w), N, F, D, true);
      if (drop) dropout_backward(d_act_.data(), c.act_drop.data(), N * F);
      gelu_backward(d_ff1_.data(), c.ff1.data(), d_act_.data(), N * F, true);
      if (cfg_.pre_ln) {
        // d ln2 -> LN2 backward adds into d res1.
        linear_backward(d_att_.data(), grad(w.l1_w), grad(w.l1_b), d_ff1_.data(), ff_in, val(w.l1_w), N, D, F, true);
        layer_norm_backward(dres, grad(w.n2_w), grad(w.n2_b), d_att_.data(), c.res1.data(), val(w.n2_w),
                            c.ln2_mean.data(), c.ln2_rstd.data(), N, D);
      } else {
        // d ln1 = residual part + feed-forward part; then LN1 backward gives d res1.
        linear_backward(dres, grad(w.l1_w), grad(w.l1_b), d_ff1_.data(), ff_in, val(w.l1_w), N, D, F);
        layer_norm_backward(dout, grad(w.n1_w), grad(w.n1_b), dres, c.res1.data(), val(w.n1_w), c.ln1_mean.data(),
                            c.ln1_rstd.data(), N, D, true);
        std::swap(d_a_, d_b_);
        dout = d_a_.data();
        dres = d_b_.data();
      }
      // dres = dLoss/d res1, res1 = x + dropout(att_proj).
      std::copy_n(dres, N * D, dx);
      if (drop) dropout_backward(dres, c.drop1.data(), N * D);
      linear_backward(d_att_.data(), grad(w.out_w), grad(w.out_b), dres, c.att.data(), val(w.out_w), N, D, D, true);
      attention_backward(d_qkv_.data(), d_att_.data(), c.qkv.data(), c.probs.data(),
                         drop ? c.probs_drop.data() : nullptr, drop ? c.att_mask.data() : nullptr, B, Tn, D, H, true);
      if (cfg_.pre_ln) {
        linear_backward(dout, grad(w.in_w), grad(w.in_b), d_qkv_.data(), c.ln1.data(), val(w.in_w), N, D, 3 * D, true);
        layer_norm_backward(dx, grad(w.n1_w), grad(w.n1_b), dout, x, val(w.n1_w), c.ln1_mean.data(), c.ln1_rstd.data(),
                            N, D);
      } else {
        linear_backward(dx, grad(w.in_w), grad(w.in_b), d_qkv_.data(), x, val(w.in_w), N, D, 3 * D);
      }
      std::swap(d_a_, d_c_);  // d_a_ := dLoss/d stream[l]
    }
    // Embeddings: d_a_ = dLoss/d x0.
    if (drop) dropout_backward(d_a_.data(), emb_drop_.data(), N * D);
    const T* dsum = d_a_.data();
    if (cfg_.embedding_layer_norm) {
      layer_norm_backward(d_b_.data(), grad(emb_norm_w_), grad(emb_norm_b_), d_a_.data(), emb_sum_.data(),
                          val(emb_norm_w_), emb_mean_.data(), emb_rstd_.data(), N, D, true);
      dsum = d_b_.data();
    }
    T* dpos = grad(pos_);
    T* dseg = cfg_.type_vocab_size ? grad(seg_) : nullptr;
    if (dpos)
      for (std::size_t n = 0; n < N; ++n) {
        simd::add_inplace(D, dsum + n * D, dpos + (n % Tn) * D);
        if (dseg) simd::add_inplace(D, dsum + n * D, dseg + segments_[n] * D);
      }
    if (input_grad_.shape() != std::array<std::size_t, 3>{B, Tn, D}) input_grad_ = Tensor<T, 3>::from_shape({B, Tn, D});
    std::copy_n(dsum, N * D, input_grad_.data());
    if (from_ids_ && pg) {
      T* dtok = grad(tok_);
      for (std::size_t n = 0; n < N; ++n)
        simd::add_inplace(D, dsum + n * D, dtok + static_cast<std::size_t>(ids_.data()[n]) * D);
    }
  }

  // Dropout buffers are sized at forward time, so their presence says whether that forward used dropout.
  bool dropout_active_at_forward() const noexcept { return !emb_drop_.empty(); }

  TransformerConfig cfg_;
  ParameterStore<T> params_;
  std::size_t tok_ = 0, pos_ = 0, seg_ = 0, emb_norm_w_ = 0, emb_norm_b_ = 0, final_norm_w_ = 0, final_norm_b_ = 0,
              cls_w_ = 0, cls_b_ = 0;
  std::vector<LayerIndex> layer_idx_;
  bool training_ = false;
  std::uint64_t dropout_seed_ = 0;
  std::uint64_t forward_count_ = 0;

  // Forward state.
  std::size_t B_ = 0, T_ = 0;
  bool from_ids_ = false;
  Tensor<std::int64_t, 2> ids_;
  std::vector<std::uint8_t> key_valid_;      // [N]
  std::vector<std::size_t> valid_count_;     // [B]
  std::vector<std::size_t> segments_;        // [N]
  std::vector<T> input_, emb_sum_, emb_mean_, emb_rstd_, emb_drop_;
  std::vector<std::vector<T>> stream_;       // L + 1 residual-stream tensors [N, D]
  std::vector<LayerCache> caches_;
  std::vector<T> final_, final_mean_, final_rstd_;
  Tensor<T, 2> pooled_, logits_, dlogits_;
  // Backward scratch.
  std::vector<T> d_pooled_, d_a_, d_b_, d_c_, d_att_, d_qkv_, d_act_, d_ff1_;
  Tensor<T, 3> input_grad_;
};

}  // namespace robustxlt::nn
