// Tests of nn/: every layer and the whole model against central finite differences in double, parity with
// PyTorch through fixtures, losses and optimizers against hand-computed values, checkpoints, bad input.
#include "test_support.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <robustxlt/robustxlt.hpp>
#include <vector>

namespace fs = std::filesystem;
using namespace robustxlt;
using namespace robustxlt::nn;

namespace {

// Central difference of f at x[i], restoring x[i].
double central_difference(const std::function<double()>& f, double* x, double h = 1e-5) {
  const double old = *x;
  *x = old + h;
  const double fp = f();
  *x = old - h;
  const double fm = f();
  *x = old;
  return (fp - fm) / (2 * h);
}

// ||a - b|| / max(||a||, ||b||), with 0 when both are 0.
double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d += (a[i] - b[i]) * (a[i] - b[i]);
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  const double n = std::sqrt(std::max(na, nb));
  return n == 0 ? 0 : std::sqrt(d) / n;
}

// Checks analytic gradient g (length n) of f with respect to x (length n) by central differences.
void check_gradient(const char* what, const std::function<double()>& f, double* x, const double* g, std::size_t n,
                    double tol = 1e-6) {
  std::vector<double> analytic(g, g + n), numeric(n);
  for (std::size_t i = 0; i < n; ++i) numeric[i] = central_difference(f, x + i);
  const double err = relative_error(analytic, numeric);
  INFO(what, ": relative error ", err);
  CHECK(err <= tol);
  // Guard against a vacuous pass: the gradient must not be identically zero.
  double norm = 0;
  for (double v : numeric) norm += v * v;
  CHECK(norm > 0);
}

std::vector<double> random_vector(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = scale * rng.normal<double>();
  return v;
}

double weighted_sum(const std::vector<double>& out, const std::vector<double>& r) {
  double s = 0;
  for (std::size_t i = 0; i < out.size(); ++i) s += out[i] * r[i];
  return s;
}

TransformerConfig tiny_config(bool pre_ln) {
  TransformerConfig c;
  c.vocab_size = 20;
  c.max_positions = 12;
  c.type_vocab_size = pre_ln ? 0 : 2;
  c.dim = 8;
  c.heads = 2;
  c.ff_dim = 12;
  c.layers = 2;
  c.num_classes = 3;
  c.pre_ln = pre_ln;
  c.embedding_layer_norm = !pre_ln;
  c.pooling = pre_ln ? Pooling::mean : Pooling::first;
  c.init_std = 0.5;  // large enough that every path carries a visible gradient
  return c;
}

TokenBatch tiny_batch(std::size_t vocab, bool segments) {
  TokenBatch b;
  const std::size_t lengths[3] = {6, 4, 2};
  b.ids = Tensor<std::int64_t, 2>::from_shape({3, 6});
  b.mask = Tensor<std::int64_t, 2>::from_shape({3, 6});
  b.segments = Tensor<std::int64_t, 2>::from_shape({3, 6});
  Rng rng(99);
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t t = 0; t < 6; ++t) {
      b.ids(i, t) = static_cast<std::int64_t>(rng.below(vocab));
      b.mask(i, t) = t < lengths[i] ? 1 : 0;
      b.segments(i, t) = segments && t < lengths[i] && t >= lengths[i] / 2 ? 1 : 0;
    }
  if (!segments) b.segments = Tensor<std::int64_t, 2>{};
  return b;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Layers.

TEST_CASE("linear: forward is in W^T + b; gradients match finite differences") {
  const std::size_t N = 5, I = 7, O = 4;
  auto in = random_vector(N * I, 1), w = random_vector(O * I, 2), b = random_vector(O, 3), r = random_vector(N * O, 4);
  std::vector<double> out(N * O);
  auto f = [&] {
    linear_forward(out.data(), in.data(), w.data(), b.data(), N, I, O);
    return weighted_sum(out, r);
  };
  f();
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t o = 0; o < O; ++o) {
      double ref = b[o];
      for (std::size_t i = 0; i < I; ++i) ref += in[n * I + i] * w[o * I + i];
      CHECK(out[n * O + o] == doctest::Approx(ref).epsilon(1e-12));
    }
  std::vector<double> din(N * I, 0.0), dw(O * I, 0.0), db(O, 0.0);
  linear_backward(din.data(), dw.data(), db.data(), r.data(), in.data(), w.data(), N, I, O);
  check_gradient("linear din", f, in.data(), din.data(), din.size());
  check_gradient("linear dw", f, w.data(), dw.data(), dw.size());
  check_gradient("linear db", f, b.data(), db.data(), db.size());
}

TEST_CASE("layer norm: gradients match finite differences") {
  const std::size_t N = 4, D = 9;
  auto in = random_vector(N * D, 5, 2.0), w = random_vector(D, 6), b = random_vector(D, 7), r = random_vector(N * D, 8);
  std::vector<double> out(N * D), mean(N), rstd(N);
  auto f = [&] {
    layer_norm_forward(out.data(), mean.data(), rstd.data(), in.data(), w.data(), b.data(), N, D, 1e-5);
    return weighted_sum(out, r);
  };
  f();
  std::vector<double> din(N * D, 0.0), dw(D, 0.0), db(D, 0.0);
  layer_norm_backward(din.data(), dw.data(), db.data(), r.data(), in.data(), w.data(), mean.data(), rstd.data(), N, D);
  check_gradient("layer_norm din", f, in.data(), din.data(), din.size());
  check_gradient("layer_norm dw", f, w.data(), dw.data(), dw.size());
  check_gradient("layer_norm db", f, b.data(), db.data(), db.size());
}

TEST_CASE("gelu: gradient matches finite differences") {
  const std::size_t n = 50;
  auto in = random_vector(n, 9, 2.0), r = random_vector(n, 10);
  std::vector<double> out(n);
  auto f = [&] {
    gelu_forward(out.data(), in.data(), n);
    return weighted_sum(out, r);
  };
  f();
  std::vector<double> din(n, 0.0);
  gelu_backward(din.data(), in.data(), r.data(), n);
  check_gradient("gelu", f, in.data(), din.data(), n);
}

TEST_CASE("attention: masked keys get no weight; gradients match finite differences, with and without dropout") {
  const std::size_t B = 2, T = 5, D = 6, H = 2;
  auto qkv = random_vector(B * T * 3 * D, 11), r = random_vector(B * T * D, 12);
  std::vector<std::uint8_t> valid = {1, 1, 1, 1, 1, 1, 1, 0, 1, 0};
  std::vector<double> drop_mask(B * H * T * T);
  dropout_forward(drop_mask.data(), (std::fill(drop_mask.begin(), drop_mask.end(), 1.0), drop_mask.data()),
                  drop_mask.size(), 0.3, 77, 0);
  for (bool with_dropout : {false, true}) {
    CAPTURE(with_dropout);
    std::vector<double> out(B * T * D), probs(B * H * T * T), probs_drop(with_dropout ? B * H * T * T : 0);
    auto f = [&] {
      attention_forward(out.data(), probs.data(), with_dropout ? probs_drop.data() : nullptr,
                        with_dropout ? drop_mask.data() : nullptr, qkv.data(), valid.data(), B, T, D, H);
      return weighted_sum(out, r);
    };
    f();
    // Sequence 1 masks keys 2 and 4: their weights are exactly zero and each row sums to one.
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t i = 0; i < T; ++i) {
        const double* row = probs.data() + ((1 * H + h) * T + i) * T;
        CHECK(row[2] == 0.0);
        CHECK(row[4] == 0.0);
        CHECK(row[0] + row[1] + row[3] == doctest::Approx(1.0).epsilon(1e-12));
      }
    std::vector<double> dqkv(qkv.size(), 0.0);
    attention_backward(dqkv.data(), r.data(), qkv.data(), probs.data(), with_dropout ? probs_drop.data() : nullptr,
                       with_dropout ? drop_mask.data() : nullptr, B, T, D, H);
    check_gradient("attention dqkv", f, qkv.data(), dqkv.data(), dqkv.size());
  }
}

TEST_CASE("dropout: keep rate and scaling") {
  const std::size_t n = 100000;
  std::vector<float> x(n, 1.0f), mask(n);
  dropout_forward(x.data(), mask.data(), n, 0.25f, 3, 1);
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i) {
    CHECK((mask[i] == 0.0f || mask[i] == doctest::Approx(1.0f / 0.75f)));
    kept += mask[i] != 0.0f;
  }
  // Binomial(n, 0.75): 5 standard deviations is about 685.
  CHECK(std::abs(double(kept) - 0.75 * n) < 700);
  // The attention weights' mask alone: the same draws, and every kept entry exactly 1 / (1 - p), so a kept
  // weight is scaled once (the transformer once drew it as dropout of ones onto itself, which squared it).
  std::vector<float> alone(n);
  fill_dropout_mask(alone.data(), n, 0.25f, 3, 1);
  CHECK(alone == mask);
  CHECK(*std::max_element(alone.begin(), alone.end()) == 1.0f / 0.75f);
}

TEST_CASE("dropout masks do not depend on the thread count" * robustxlt_test::needs_threads()) {
  const std::size_t n = 100000;
  std::vector<float> x(n, 1.0f), mask(n);
  dropout_forward(x.data(), mask.data(), n, 0.25f, 3, 1);
  set_num_threads(2);
  std::vector<float> y(n, 1.0f), mask2(n);
  dropout_forward(y.data(), mask2.data(), n, 0.25f, 3, 1);
  set_num_threads(1);
  CHECK(mask == mask2);
}

// ---------------------------------------------------------------------------------------------------------
// Losses.

TEST_CASE("cross-entropy: hand-computed values") {
  // logits (0, ln 3): softmax = (1/4, 3/4).
  Tensor<double, 2> logits = {{0.0, std::log(3.0)}};
  Tensor<std::int64_t, 1> labels = {1};
  Tensor<double, 2> d;
  CHECK(cross_entropy(logits, labels, &d) == doctest::Approx(-std::log(0.75)).epsilon(1e-14));
  CHECK(d(0, 0) == doctest::Approx(0.25));
  CHECK(d(0, 1) == doctest::Approx(-0.25));
  CrossEntropyOptions<double> opt;
  opt.label_smoothing = 0.2;  // target (0.1, 0.9)
  CHECK(cross_entropy(logits, labels, &d, opt) == doctest::Approx(0.1 * std::log(4.0) + 0.9 * -std::log(0.75)).epsilon(1e-14));
  // Per-example weights: sum w l / sum w.
  Tensor<double, 2> two = {{0.0, std::log(3.0)}, {0.0, 0.0}};
  Tensor<std::int64_t, 1> lab2 = {1, 0};
  CrossEntropyOptions<double> w;
  w.weights = {3.0, 1.0};
  CHECK(cross_entropy(two, lab2, &d, w) == doctest::Approx((3 * -std::log(0.75) + std::log(2.0)) / 4).epsilon(1e-14));
}

TEST_CASE("cross-entropy, KL and symmetric KL: gradients match finite differences") {
  const std::size_t B = 4, C = 5;
  auto lv = random_vector(B * C, 21, 2.0), qv = random_vector(B * C, 22, 2.0);
  Tensor<double, 2> logits = xt::adapt(lv, std::array<std::size_t, 2>{B, C});
  Tensor<double, 2> other = xt::adapt(qv, std::array<std::size_t, 2>{B, C});
  Tensor<std::int64_t, 1> labels = {0, 4, 2, 2};
  CrossEntropyOptions<double> opt;
  opt.label_smoothing = 0.1;
  opt.weights = {1.0, 0.5, 2.0, 0.0};
  Tensor<double, 2> d;
  cross_entropy(logits, labels, &d, opt);
  check_gradient("cross_entropy", [&] { return cross_entropy<double>(logits, labels, nullptr, opt); }, logits.data(),
                 d.data(), d.size());

  Tensor<double, 2> dp, dq;
  kl_divergence(logits, other, &dp, &dq);
  auto kl = [&] { return kl_divergence<double>(logits, other); };
  check_gradient("kl dp", kl, logits.data(), dp.data(), dp.size());
  check_gradient("kl dq", kl, other.data(), dq.data(), dq.size());
  symmetric_kl(logits, other, &dp, &dq);
  auto skl = [&] { return symmetric_kl<double>(logits, other); };
  check_gradient("symmetric kl dp", skl, logits.data(), dp.data(), dp.size());
  check_gradient("symmetric kl dq", skl, other.data(), dq.data(), dq.size());
}

TEST_CASE("KL: hand-computed value and identical inputs") {
  Tensor<double, 2> p = {{0.0, std::log(3.0)}}, q = {{0.0, 0.0}};
  // KL((1/4, 3/4) || (1/2, 1/2)) = 1/4 ln(1/2) + 3/4 ln(3/2).
  CHECK(kl_divergence(p, q) == doctest::Approx(0.25 * std::log(0.5) + 0.75 * std::log(1.5)).epsilon(1e-14));
  CHECK(symmetric_kl(p, p) == doctest::Approx(0.0));
  CHECK_THROWS_AS(kl_divergence(p, Tensor<double, 2>{{0.0, 1.0, 2.0}}), ShapeError);
}

// ---------------------------------------------------------------------------------------------------------
// Whole model against finite differences.

TEST_CASE("transformer: every parameter and input gradient matches finite differences (post-LN and pre-LN)") {
  for (bool pre_ln : {false, true}) {
    CAPTURE(pre_ln);
    TransformerConfig cfg = tiny_config(pre_ln);
    cfg.dropout = 0.1;
    TransformerClassifier<double> model(cfg, 5);
    model.train();
    TokenBatch batch = tiny_batch(cfg.vocab_size, !pre_ln);
    Tensor<std::int64_t, 1> labels = {2, 0, 1};
    CrossEntropyOptions<double> opt;
    if (pre_ln) {
      opt.label_smoothing = 0.1;
      opt.weights = {1.0, 2.0, 0.5};
    }
    auto delta = Tensor<double, 3>::from_shape({3, 6, cfg.dim});
    auto dv = random_vector(delta.size(), 31, 0.1);
    std::copy(dv.begin(), dv.end(), delta.begin());
    // Each evaluation replays the same dropout masks.
    auto loss = [&] {
      model.seed_dropout(17);
      return cross_entropy<double>(model.forward(batch, &delta), labels, nullptr, opt);
    };
    model.params().zero_grad();
    model.seed_dropout(17);
    model.loss_and_backward(batch, labels, opt, &delta);
    const auto grads = model.params().grads();  // copy: the checks below run more forwards
    const Tensor<double, 3> input_grad = model.input_grad();
    for (std::size_t i = 0; i < model.params().count(); ++i) {
      const auto& info = model.params().infos()[i];
      check_gradient(info.name.c_str(), loss, model.params().value(i), grads.data() + info.offset, info.size);
    }
    check_gradient("input embeddings", loss, delta.data(), input_grad.data(), input_grad.size());
    // Padded positions receive exactly zero gradient.
    for (std::size_t b = 0; b < 3; ++b)
      for (std::size_t t = 0; t < 6; ++t)
        if (batch.mask(b, t) == 0)
          for (std::size_t d = 0; d < cfg.dim; ++d) CHECK(input_grad(b, t, d) == 0.0);
  }
}

TEST_CASE("transformer: forward_embeddings equals forward from ids and leaves the token table's gradient alone") {
  TransformerConfig cfg = tiny_config(false);
  TransformerClassifier<double> model(cfg, 3);
  TokenBatch batch = tiny_batch(cfg.vocab_size, true);
  const Tensor<double, 2> from_ids = model.forward(batch);
  Tensor<double, 3> emb = model.embed(batch.ids);
  TokenBatch no_ids = batch;
  no_ids.ids = Tensor<std::int64_t, 2>{};
  const Tensor<double, 2> from_emb = model.forward_embeddings(emb, no_ids);
  CHECK(from_ids == from_emb);
  Tensor<double, 2> d = xt::ones<double>({3, 3});
  model.params().zero_grad();
  model.backward(d);
  const auto tok = model.params().grad_view("tok_embeddings.weight");
  CHECK(xt::all(xt::equal(tok, 0.0)));
  CHECK(xt::any(xt::not_equal(model.input_grad(), 0.0)));
  // Padding ids do not change the output.
  TokenBatch other = batch;
  other.ids(2, 5) = (other.ids(2, 5) + 1) % 20;
  CHECK(model.forward(other) == from_ids);
}

TEST_CASE("transformer: same seed and thread count give identical bits; dropout is off in eval") {
  TransformerConfig cfg = tiny_config(false);
  cfg.dropout = 0.2;
  cfg.dim = 32;
  cfg.heads = 4;
  cfg.ff_dim = 64;
  TokenBatch batch = tiny_batch(cfg.vocab_size, true);
  Tensor<std::int64_t, 1> labels = {2, 0, 1};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    auto run = [&] {
      TransformerClassifier<float> m(cfg, 11);
      m.train();
      AdamW<float> opt(m.params(), {});
      for (int s = 0; s < 3; ++s) {
        m.params().zero_grad();
        m.loss_and_backward(batch, labels);
        opt.step();
      }
      return std::vector<float>(m.params().values().begin(), m.params().values().end());
    };
    CHECK(run() == run());
  }
  set_num_threads(1);
  TransformerClassifier<float> m(cfg, 11);
  m.train();
  const Tensor<float, 2> a = m.forward(batch);
  const Tensor<float, 2> b = m.forward(batch);
  CHECK(a != b);  // fresh dropout masks each training forward
  m.eval();
  const Tensor<float, 2> c = m.forward(batch);
  CHECK(c == m.forward(batch));
}

TEST_CASE("transformer: dropout training losses are pinned (same seed, same masks at every dropout site)") {
  // Losses of four AdamW steps with dropout 0.1 from a fixed seed: a regression pin, not a reference (the
  // PyTorch parity tests are the references; PyTorch draws other masks). The backward rewrite around the
  // activation table reproduced the earlier implementation's values bit for bit; these are the values after
  // the attention weights' dropout was fixed to scale kept weights by 1 / (1 - p) once, not twice (the
  // earlier post-LN values were 3.12249, 1.03953, 1.67003, 1.93990). They pin the dropout site numbering
  // (embeddings, then per layer: attention weights, attention output, feed-forward hidden, feed-forward
  // output) and the gradients that move the weights. Two sites trading places move the first post-LN loss
  // by tenths; the tolerance only absorbs summation-order differences between GEMM kernels.
  const double pinned[2][4] = {
      // post-LN, embedding layer norm, segments, first-token pooling
      {3.1503690053629096, 1.1582973659769393, 1.7648710318891869, 1.9937788658249811},
      // pre-LN, mean pooling, label smoothing and class weights
      {1.1908229088188396, 1.6548282681241582, 1.1315629692629698, 1.0565225532453599},
  };
  for (bool pre_ln : {false, true}) {
    CAPTURE(pre_ln);
    TransformerConfig cfg = tiny_config(pre_ln);
    cfg.dropout = 0.1;
    TransformerClassifier<double> model(cfg, 5);
    model.train();
    model.seed_dropout(17);
    const TokenBatch batch = tiny_batch(cfg.vocab_size, !pre_ln);
    const Tensor<std::int64_t, 1> labels = {2, 0, 1};
    CrossEntropyOptions<double> opt;
    if (pre_ln) {
      opt.label_smoothing = 0.1;
      opt.weights = {1.0, 2.0, 0.5};
    }
    AdamWOptions<double> ao;
    ao.lr = 1e-2;
    AdamW<double> adam(model.params(), ao);
    for (int step = 0; step < 4; ++step) {
      CAPTURE(step);
      model.params().zero_grad();
      const double loss = model.loss_and_backward(batch, labels, opt);
      CHECK(std::abs(loss - pinned[pre_ln][step]) <= 1e-10 * std::abs(pinned[pre_ln][step]));
      adam.step();
    }
  }
}

TEST_CASE("transformer: learns a word-order task") {
  // Label: 0 if token 1 comes before token 2, 1 if after, 2 if either is missing. Needs positions.
  TransformerConfig cfg;
  cfg.vocab_size = 8;
  cfg.max_positions = 8;
  cfg.dim = 32;
  cfg.heads = 4;
  cfg.ff_dim = 64;
  cfg.layers = 2;
  cfg.num_classes = 3;
  cfg.pooling = Pooling::mean;
  TransformerClassifier<float> model(cfg, 1);
  model.train();
  AdamWOptions<float> ao;
  ao.lr = 3e-3f;
  ao.weight_decay = 0.0f;
  AdamW<float> opt(model.params(), ao);
  Rng rng(4);
  auto make = [&](std::size_t B, TokenBatch& batch, Tensor<std::int64_t, 1>& y) {
    batch.ids = Tensor<std::int64_t, 2>::from_shape({B, 8});
    y = Tensor<std::int64_t, 1>::from_shape({B});
    for (std::size_t b = 0; b < B; ++b) {
      int first = -1, second = -1;
      for (std::size_t t = 0; t < 8; ++t) {
        batch.ids(b, t) = static_cast<std::int64_t>(3 + rng.below(5));
      }
      const auto kind = rng.below(3);
      const auto i = rng.below(8), j = (i + 1 + rng.below(7)) % 8;
      if (kind < 2) {
        batch.ids(b, i) = 1;
        batch.ids(b, j) = 2;
        first = static_cast<int>(i);
        second = static_cast<int>(j);
        y(b) = first < second ? 0 : 1;
      } else {
        batch.ids(b, i) = 1 + static_cast<std::int64_t>(rng.below(2));
        y(b) = 2;
      }
    }
  };
  TokenBatch batch;
  Tensor<std::int64_t, 1> y;
  float first_loss = 0, last_loss = 0;
  for (int step = 0; step < 300; ++step) {
    make(32, batch, y);
    model.params().zero_grad();
    const float l = model.loss_and_backward(batch, y);
    clip_grad_norm(model.params(), 1.0f);
    opt.step();
    if (step == 0) first_loss = l;
    last_loss = l;
  }
  model.eval();
  make(256, batch, y);
  const std::vector<std::int64_t> predicted = predictions(model.forward(batch));
  std::size_t correct = 0;
  for (std::size_t b = 0; b < 256; ++b) correct += predicted[b] == y(b);
  INFO("first loss ", first_loss, ", last loss ", last_loss, ", accuracy ", correct / 256.0);
  CHECK(last_loss < 0.5f * first_loss);
  CHECK(correct >= 230);  // chance is about 1/3
}

// ---------------------------------------------------------------------------------------------------------
// Optimizers and schedules.

TEST_CASE("AdamW and SGD: hand-computed steps") {
  ParameterStore<double> ps;
  ps.add("w", {1});
  ps.add("m", {1, 1});
  AdamWOptions<double> o;
  o.lr = 0.1;
  o.weight_decay = 0.5;
  o.decay_1d = false;  // "w" (1-d) is not decayed, "m" (2-d) is
  AdamW<double> adam(ps, o);
  ps.value(0)[0] = 1.0;
  ps.value(1)[0] = 1.0;
  ps.grad(0)[0] = ps.grad(1)[0] = 0.5;
  adam.step();
  CHECK(ps.value(0)[0] == doctest::Approx(1.0 - 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(1e-14));
  CHECK(ps.value(1)[0] == doctest::Approx(0.8500000019999999).epsilon(1e-14));
  ps.grad(1)[0] = -0.25;
  adam.step();
  CHECK(ps.value(1)[0] == doctest::Approx(0.7808662986078463).epsilon(1e-13));

  ParameterStore<double> sp;
  sp.add("p", {2});
  SGDOptions<double> so;
  so.lr = 0.1;
  so.momentum = 0.9;
  SGD<double> sgd(sp, so);
  sp.value(0)[0] = 1.0;
  sp.grad(0)[0] = 0.5;
  sgd.step();
  CHECK(sp.value(0)[0] == doctest::Approx(0.95));
  sgd.step();  // buf = 0.9 * 0.5 + 0.5
  CHECK(sp.value(0)[0] == doctest::Approx(0.95 - 0.1 * 0.95));
  so.nesterov = true;
  SGD<double> nest(sp, so);
  sp.value(0)[0] = 1.0;
  nest.step();  // d = g + mu * buf = 0.5 + 0.45
  CHECK(sp.value(0)[0] == doctest::Approx(1.0 - 0.1 * 0.95));
  so.momentum = 0;
  CHECK_THROWS_WITH_AS(SGD<double>(sp, so), "SGD: nesterov needs momentum > 0, got 0", InvalidArgument);
  AdamWOptions<double> bad;
  bad.beta1 = 1.0;
  CHECK_THROWS_WITH_AS(AdamW<double>(sp, bad), "AdamW: beta1 must be in [0, 1), got 1", InvalidArgument);
}

TEST_CASE("gradient clipping and the warmup/decay schedule") {
  ParameterStore<float> ps;
  ps.add("a", {1});
  ps.add("b", {1});
  ps.grad(0)[0] = 3.0f;
  ps.grad(1)[0] = 4.0f;
  CHECK(clip_grad_norm(ps, 10.0f) == doctest::Approx(5.0f));
  CHECK(ps.grad(0)[0] == 3.0f);
  CHECK(clip_grad_norm(ps, 1.0f) == doctest::Approx(5.0f));
  CHECK(ps.grad(0)[0] == doctest::Approx(0.6f));
  CHECK(ps.grad(1)[0] == doctest::Approx(0.8f));
  ps.grad(1)[0] = std::nanf("");
  CHECK_THROWS_AS(clip_grad_norm(ps, 1.0f), NumericError);
  CHECK_THROWS_WITH_AS(clip_grad_norm(ps, 0.0f), "clip_grad_norm: max_norm must be > 0, got 0", InvalidArgument);

  LinearWarmupDecay s(1.0, 10, 110);
  CHECK(s(0) == 0.0);
  CHECK(s(5) == doctest::Approx(0.5));
  CHECK(s(10) == doctest::Approx(1.0));
  CHECK(s(60) == doctest::Approx(0.5));
  CHECK(s(110) == 0.0);
  CHECK(s(500) == 0.0);
  CHECK_THROWS_AS(LinearWarmupDecay(1.0, 20, 10), InvalidArgument);
}

// ---------------------------------------------------------------------------------------------------------
// Checkpoints.

TEST_CASE("checkpoints: round trip, atomic write and strict validation") {
  const fs::path dir = fs::temp_directory_path() / "robustxlt_test_nn_ckpt";
  fs::remove_all(dir);
  fs::create_directories(dir);
  TransformerConfig cfg = tiny_config(false);
  TransformerClassifier<float> model(cfg, 21);
  const fs::path path = dir / "model.safetensors";
  save_checkpoint(model, path, {{"note", "unit test"}});
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}) == 1);

  TransformerClassifier<float> loaded = load_model<float>(path);
  CHECK(loaded.config().to_metadata() == cfg.to_metadata());
  CHECK(std::equal(loaded.params().values().begin(), loaded.params().values().end(), model.params().values().begin()));
  SafetensorsReader file(path);
  CHECK(file.metadata().at("note") == "unit test");
  CHECK(file.contains("encoder.layers.1.self_attn.in_proj_weight"));
  CHECK(file.record("encoder.layers.1.self_attn.in_proj_weight").shape == std::vector<std::size_t>{24, 8});

  // Wrong dtype: a float checkpoint into a double model.
  TransformerClassifier<double> dmodel(cfg, 1);
  CHECK_THROWS_WITH_AS(load_checkpoint(dmodel, path), doctest::Contains("tensor 'tok_embeddings.weight' must have dtype F64, got F32"),
                       FormatError);
  // Wrong shape.
  TransformerConfig wide = cfg;
  wide.ff_dim = 16;
  TransformerClassifier<float> wmodel(wide, 1);
  CHECK_THROWS_WITH_AS(load_checkpoint(wmodel, path),
                       doctest::Contains("tensor 'encoder.layers.0.linear1.weight' must have shape [16, 8], got [12, 8]"), FormatError);
  // Missing and unexpected tensors.
  TransformerConfig pre = cfg;
  pre.pre_ln = true;
  TransformerClassifier<float> pmodel(pre, 1);
  CHECK_THROWS_WITH_AS(load_checkpoint(pmodel, path), doctest::Contains("missing tensor 'encoder.norm.weight' (expected shape [8])"), FormatError);
  SafetensorsWriter extra;
  for (std::size_t i = 0; i < model.params().count(); ++i)
    extra.add(model.params().infos()[i].name, model.params().value(i), model.params().infos()[i].shape);
  float one = 1.0f;
  extra.add("pooler.dense.bias", &one, {1});
  extra.write(dir / "extra.safetensors");
  CHECK_THROWS_WITH_AS(load_checkpoint(model, dir / "extra.safetensors"), doctest::Contains("unexpected tensor 'pooler.dense.bias'"),
                       FormatError);
  // Truncated file: every tensor's offsets are checked against the data actually present.
  const std::string bytes = read_file(path);
  write_file_atomic(dir / "cut.safetensors", std::string_view(bytes).substr(0, bytes.size() - 10));
  CHECK_THROWS_WITH_AS(load_checkpoint(model, dir / "cut.safetensors"), doctest::Contains("outside the data section"), FormatError);
  // The failed loads left the model untouched.
  CHECK(std::equal(loaded.params().values().begin(), loaded.params().values().end(), model.params().values().begin()));
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------------------
// Bad input.

TEST_CASE("bad input raises robustxlt::Error naming the argument, expected and actual values") {
  TransformerConfig cfg = tiny_config(false);
  TransformerClassifier<float> model(cfg, 2);
  TokenBatch good = tiny_batch(cfg.vocab_size, true);
  Tensor<std::int64_t, 1> labels = {0, 1, 2};
  CHECK_NOTHROW(model.loss_and_backward(good, labels));

  TokenBatch b = good;
  b.ids(1, 3) = 20;
  CHECK_THROWS_WITH_AS(model.forward(b), "forward: ids[1, 3] must be in [0, 20), got 20", InvalidArgument);
  b.ids(1, 3) = -1;
  CHECK_THROWS_WITH_AS(model.forward(b), "forward: ids[1, 3] must be in [0, 20), got -1", InvalidArgument);

  TokenBatch longer;
  longer.ids = xt::zeros<std::int64_t>({1, 13});
  CHECK_THROWS_WITH_AS(model.forward(longer), "forward: sequence length must be <= max_positions 12, got 13", InvalidArgument);

  TokenBatch empty;
  empty.ids = Tensor<std::int64_t, 2>::from_shape({0, 4});
  CHECK_THROWS_WITH_AS(model.forward(empty), "forward: ids must have shape [B >= 1, T >= 1], got [0, 4]", ShapeError);

  b = good;
  b.mask = xt::ones<std::int64_t>({3, 5});
  CHECK_THROWS_WITH_AS(model.forward(b), "forward: mask must have shape [3, 6], got [3, 5]", ShapeError);
  b.mask = good.mask;
  b.mask(0, 2) = 2;
  CHECK_THROWS_WITH_AS(model.forward(b), "forward: mask[0, 2] must be 0 or 1, got 2", InvalidArgument);
  b.mask = xt::zeros<std::int64_t>({3, 6});
  CHECK_THROWS_WITH_AS(model.forward(b), "forward: mask row 0 must contain at least one token, got only padding", InvalidArgument);
  b = good;
  b.segments(2, 1) = 2;
  CHECK_THROWS_WITH_AS(model.forward(b), "forward: segments[2, 1] must be in [0, 2), got 2", InvalidArgument);

  Tensor<float, 3> delta = xt::zeros<float>({3, 6, 8});
  delta(1, 2, 3) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(model.forward(good, &delta), "forward: delta must be finite, got nan at [1, 2, 3]", NumericError);
  Tensor<float, 3> wrong = xt::zeros<float>({3, 6, 4});
  CHECK_THROWS_WITH_AS(model.forward(good, &wrong), "forward: delta must have shape [3, 6, 8], got [3, 6, 4]", ShapeError);
  Tensor<float, 3> emb = xt::zeros<float>({3, 6, 8});
  emb(0, 0, 0) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH_AS(model.forward_embeddings(emb, good), "forward_embeddings: embeddings must be finite, got inf at [0, 0, 0]",
                       NumericError);
  CHECK_THROWS_WITH_AS(model.forward_embeddings(Tensor<float, 3>::from_shape({0, 6, 8}), good),
                       "forward_embeddings: embeddings must have shape [B >= 1, T >= 1, 8], got [0, 6, 8]", ShapeError);

  Tensor<std::int64_t, 1> bad_labels = {0, 3, 1};
  CHECK_THROWS_WITH_AS(model.loss_and_backward(good, bad_labels), "cross_entropy: labels[1] must be in [0, 3), got 3",
                       InvalidArgument);
  Tensor<std::int64_t, 1> short_labels = {0, 1};
  CHECK_THROWS_WITH_AS(model.loss_and_backward(good, short_labels), "cross_entropy: labels must have shape [3], got [2]",
                       ShapeError);
  model.forward(good);
  CHECK_THROWS_WITH_AS(model.backward(Tensor<float, 2>::from_shape({2, 3})), "backward: dlogits must have shape [3, 3], got [2, 3]",
                       ShapeError);
  Tensor<float, 2> nan_d = xt::zeros<float>({3, 3});
  nan_d(0, 0) = std::nanf("");
  CHECK_THROWS_AS(model.backward(nan_d), NumericError);

  TransformerConfig bad = cfg;
  bad.heads = 3;
  CHECK_THROWS_WITH_AS(TransformerClassifier<float>(bad, 0), "TransformerConfig: dim must be divisible by heads, got dim 8 and heads 3",
                       InvalidArgument);
  bad = cfg;
  bad.dropout = 1.0;
  CHECK_THROWS_WITH_AS(TransformerClassifier<float>(bad, 0), "TransformerConfig: dropout must be in [0, 1), got 1", InvalidArgument);
  // First-token pooling needs a token at position 0.
  b = good;
  b.mask(1, 0) = 0;
  CHECK_THROWS_WITH_AS(model.forward(b), "forward: mask[1, 0] must be 1 for first-token pooling, got 0", InvalidArgument);
  // Every exception above derives from robustxlt::Error.
  CHECK_THROWS_AS(model.forward(longer), Error);
}

// ---------------------------------------------------------------------------------------------------------
// Numerical robustness: extreme logits, masked attention, denormal inputs.

TEST_CASE_TEMPLATE("cross-entropy, log-softmax and KL with logits of +-1e4: exact values, finite gradients", T, float, double) {
  // Row 0: one logit dominates by 2e4. Row 1: all -1e4 (uniform). Row 2: two logits 1 apart at 1e4.
  const Tensor<T, 2> logits = {{T(1e4), T(-1e4), T(0)}, {T(-1e4), T(-1e4), T(-1e4)}, {T(1e4), T(1e4 - 1), T(-1e4)}};
  const Tensor<std::int64_t, 1> labels = {0, 2, 1};
  Tensor<T, 2> d;
  CrossEntropy<T> ce;
  const T loss = ce.forward(logits, labels);
  ce.backward(d);
  // log-softmax by hand: row 0 -> 0 for the winner, -1e4 and -2e4 for the others; row 1 -> -log 3 everywhere;
  // row 2 -> -log(1 + e^-1) and -1 - log(1 + e^-1) for the leaders, about -2e4 for the last.
  const double l2 = std::log1p(std::exp(-1.0));
  const double expected_logp[3][3] = {{0.0, -2e4, -1e4}, {-std::log(3.0), -std::log(3.0), -std::log(3.0)}, {-l2, -1.0 - l2, -2e4 - l2}};
  for (std::size_t b = 0; b < 3; ++b)
    for (std::size_t c = 0; c < 3; ++c) {
      REQUIRE(std::isfinite(ce.log_probs()(b, c)));
      CHECK(double(ce.log_probs()(b, c)) == doctest::Approx(expected_logp[b][c]).epsilon(1e-6).scale(1e-3));
    }
  CHECK(double(loss) == doctest::Approx((0.0 + std::log(3.0) + 1.0 + l2) / 3.0).epsilon(1e-5));
  // dLoss/dlogits = (softmax - one_hot) / B.
  const double p2 = 1.0 / (1.0 + std::exp(-1.0));
  const double expected_d[3][3] = {{0.0, 0.0, 0.0}, {1.0 / 3, 1.0 / 3, -2.0 / 3}, {p2, (1 - p2) - 1.0, 0.0}};
  for (std::size_t b = 0; b < 3; ++b)
    for (std::size_t c = 0; c < 3; ++c) {
      REQUIRE(std::isfinite(d(b, c)));
      CHECK(double(d(b, c)) == doctest::Approx(expected_d[b][c] / 3.0).epsilon(1e-5).scale(1e-6));
    }
  // With label smoothing every log-probability enters the loss, including the -2e4 ones: still finite.
  CrossEntropyOptions<T> smooth;
  smooth.label_smoothing = T(0.1);
  const T ls = cross_entropy(logits, labels, &d, smooth);
  double expected_smooth = 0;
  for (std::size_t b = 0; b < 3; ++b) {
    const auto y = static_cast<std::size_t>(labels(b));
    expected_smooth -= 0.9 * expected_logp[b][y] + 0.1 / 3 * (expected_logp[b][0] + expected_logp[b][1] + expected_logp[b][2]);
  }
  CHECK(double(ls) == doctest::Approx(expected_smooth / 3).epsilon(1e-6));  // about 556, row 0 gives 333
  for (std::size_t i = 0; i < d.size(); ++i) CHECK(std::isfinite(d.data()[i]));
  // KL(P || Q) with P, Q point masses on opposite classes: sum P (log P - log Q) = 2e4 exactly.
  const Tensor<T, 2> p = {{T(1e4), T(-1e4)}}, q = {{T(-1e4), T(1e4)}};
  Tensor<T, 2> dp, dq;
  const T kl = kl_divergence(p, q, &dp, &dq);
  CHECK(double(kl) == doctest::Approx(2e4).epsilon(1e-6));
  CHECK(double(dq(0, 0)) == doctest::Approx(-1.0));  // (Q - P) / B
  CHECK(double(dq(0, 1)) == doctest::Approx(1.0));
  for (std::size_t i = 0; i < 2; ++i) CHECK(std::isfinite(dp(0, i)));
  CHECK(std::isfinite(symmetric_kl(p, q, &dp, &dq)));
}

TEST_CASE("attention: every key but one masked gives that key's value; q and k gradients are zero, v's exact") {
  const std::size_t B = 1, T = 5, D = 4, H = 2;
  auto qkv = random_vector(B * T * 3 * D, 31, 3.0), r = random_vector(B * T * D, 32);
  const std::vector<std::uint8_t> valid = {0, 0, 1, 0, 0};
  std::vector<double> out(B * T * D), probs(B * H * T * T);
  auto f = [&] {
    attention_forward(out.data(), probs.data(), static_cast<double*>(nullptr), static_cast<const double*>(nullptr),
                      qkv.data(), valid.data(), B, T, D, H);
    return weighted_sum(out, r);
  };
  f();
  for (std::size_t h = 0; h < H; ++h)
    for (std::size_t i = 0; i < T; ++i)
      for (std::size_t j = 0; j < T; ++j) CHECK(probs[(h * T + i) * T + j] == (j == 2 ? 1.0 : 0.0));
  // Every query reads key 2's value: out[i, h] = v[2, h].
  for (std::size_t i = 0; i < T; ++i)
    for (std::size_t c = 0; c < D; ++c) CHECK(out[i * D + c] == qkv[2 * 3 * D + 2 * D + c]);
  std::vector<double> dqkv(qkv.size(), 0.0);
  attention_backward(dqkv.data(), r.data(), qkv.data(), probs.data(), static_cast<const double*>(nullptr),
                     static_cast<const double*>(nullptr), B, T, D, H);
  for (std::size_t t = 0; t < T; ++t)
    for (std::size_t c = 0; c < 2 * D; ++c) CHECK(dqkv[t * 3 * D + c] == 0.0);  // the softmax is saturated
  for (std::size_t c = 0; c < D; ++c) {
    double sum = 0;
    for (std::size_t i = 0; i < T; ++i) sum += r[i * D + c];
    CHECK(dqkv[2 * 3 * D + 2 * D + c] == doctest::Approx(sum).epsilon(1e-12));
    for (std::size_t t : {0u, 1u, 3u, 4u}) CHECK(dqkv[t * 3 * D + 2 * D + c] == 0.0);
  }
  check_gradient("attention, one valid key", f, qkv.data(), dqkv.data(), dqkv.size());
}

TEST_CASE("attention on a fully masked row is finite (zeros); the model rejects all-padding sequences") {
  const std::size_t B = 2, T = 4, D = 4, H = 2;
  auto qkv = random_vector(B * T * 3 * D, 41), r = random_vector(B * T * D, 42);
  const std::vector<std::uint8_t> valid = {1, 1, 0, 1, 0, 0, 0, 0};  // sequence 1 is all padding
  std::vector<double> out(B * T * D, 7.0), probs(B * H * T * T);
  attention_forward(out.data(), probs.data(), static_cast<double*>(nullptr), static_cast<const double*>(nullptr), qkv.data(),
                    valid.data(), B, T, D, H);
  for (std::size_t i = 0; i < out.size(); ++i) REQUIRE(std::isfinite(out[i]));
  for (std::size_t i = T * D; i < 2 * T * D; ++i) CHECK(out[i] == 0.0);
  for (std::size_t i = H * T * T; i < 2 * H * T * T; ++i) CHECK(probs[i] == 0.0);
  std::vector<double> dqkv(qkv.size(), 0.0);
  attention_backward(dqkv.data(), r.data(), qkv.data(), probs.data(), static_cast<const double*>(nullptr),
                     static_cast<const double*>(nullptr), B, T, D, H);
  for (std::size_t i = 0; i < dqkv.size(); ++i) REQUIRE(std::isfinite(dqkv[i]));
  for (std::size_t i = T * 3 * D; i < 2 * T * 3 * D; ++i) CHECK(dqkv[i] == 0.0);

  for (bool pre_ln : {false, true}) {
    TransformerConfig cfg = tiny_config(pre_ln);
    TransformerClassifier<double> model(cfg, 3);
    TokenBatch batch = tiny_batch(cfg.vocab_size, !pre_ln);
    for (std::size_t t = 0; t < 6; ++t) batch.mask(2, t) = 0;
    CHECK_THROWS_WITH_AS(model.forward(batch), "forward: mask row 2 must contain at least one token, got only padding",
                         InvalidArgument);
    const Tensor<double, 3> emb = xt::zeros<double>({3, 6, 8});
    CHECK_THROWS_WITH_AS(model.forward_embeddings(emb, batch),
                         "forward_embeddings: mask row 2 must contain at least one token, got only padding", InvalidArgument);
  }
}

TEST_CASE("denormal embeddings: logits equal those of zero embeddings, gradients finite and match finite differences") {
  for (bool pre_ln : {false, true}) {
    CAPTURE(pre_ln);
    TransformerConfig cfg = tiny_config(pre_ln);
    TransformerClassifier<double> model(cfg, 4);
    TokenBatch batch = tiny_batch(cfg.vocab_size, !pre_ln);
    const double tiny = std::numeric_limits<double>::denorm_min();
    Tensor<double, 3> emb = Tensor<double, 3>::from_shape({3, 6, 8});
    for (std::size_t i = 0; i < emb.size(); ++i) emb.data()[i] = tiny * double(i % 7) * (i % 2 ? 1.0 : -1.0);
    const Tensor<double, 2> zero_logits = model.forward_embeddings(xt::zeros<double>({3, 6, 8}), batch);
    const Tensor<double, 2> logits = model.forward_embeddings(emb, batch);
    for (std::size_t i = 0; i < logits.size(); ++i) {
      REQUIRE(std::isfinite(logits.data()[i]));
      CHECK(logits.data()[i] == doctest::Approx(zero_logits.data()[i]).epsilon(1e-12));
    }
    const Tensor<double, 2> r = {{0.3, -1.0, 0.5}, {1.0, 0.2, -0.7}, {-0.4, 0.9, 0.1}};
    model.params().zero_grad();
    model.backward(r);
    const Tensor<double, 3> g = model.input_grad();
    for (std::size_t i = 0; i < g.size(); ++i) REQUIRE(std::isfinite(g.data()[i]));
    auto f = [&] {
      const auto& z = model.forward_embeddings(emb, batch);
      double s = 0;
      for (std::size_t i = 0; i < z.size(); ++i) s += z.data()[i] * r.data()[i];
      return s;
    };
    check_gradient("input gradient at denormal embeddings", f, emb.data(), g.data(), g.size(), 1e-6);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Large inputs: sequences at the position limit, the memory budget.

TEST_CASE("sequences of exactly max_positions tokens work; one more is rejected by name") {
  TransformerConfig cfg;
  cfg.vocab_size = 50, cfg.max_positions = 512, cfg.dim = 8, cfg.heads = 2, cfg.ff_dim = 8, cfg.layers = 1, cfg.num_classes = 2;
  TransformerClassifier<float> model(cfg, 5);
  TokenBatch batch;
  batch.ids = Tensor<std::int64_t, 2>::from_shape({2, 512});
  batch.mask = xt::ones<std::int64_t>({2, 512});
  for (std::size_t i = 0; i < batch.ids.size(); ++i) batch.ids.data()[i] = static_cast<std::int64_t>(i % 50);
  for (std::size_t t = 300; t < 512; ++t) batch.mask(1, t) = 0;
  const Tensor<std::int64_t, 1> labels = {0, 1};
  const float loss = model.loss_and_backward(batch, labels);
  CHECK(std::isfinite(loss));
  CHECK(simd::all_finite(model.input_grad().size(), model.input_grad().data()));
  CHECK(simd::all_finite(model.params().grads().size(), model.params().grads().data()));
  // The last position's embedding row receives gradient from sequence 0 only (sequence 1 is padded there).
  const float* dpos = model.params().grad(model.params().index("pos_embeddings.weight"));
  double last = 0;
  for (std::size_t c = 0; c < 8; ++c) last += std::abs(dpos[511 * 8 + c]);
  CHECK(last > 0);

  TokenBatch longer;
  longer.ids = xt::zeros<std::int64_t>({1, 513});
  CHECK_THROWS_WITH_AS(model.forward(longer), "forward: sequence length must be <= max_positions 512, got 513", InvalidArgument);
  CHECK_THROWS_WITH_AS(model.forward_embeddings(xt::zeros<float>({1, 513, 8}), TokenBatch{}),
                       "forward_embeddings: sequence length must be <= max_positions 512, got 513", InvalidArgument);
}

TEST_CASE("config metadata regression: integer fields accept plain decimal digits only") {
  // Found while writing fuzz_config (its corpus keeps the input as regression_negative_wraps): std::stoull
  // skips leading spaces and negates a '-', so "layers= -1" read as 2^64 - 1 layers.
  CHECK_THROWS_WITH_AS(TransformerConfig::from_metadata({{"layers", " -1"}}),
                       "TransformerConfig metadata: 'layers' must be a non-negative integer, got ' -1'", FormatError);
  for (const char* bad : {"", "+4", " 4", "4 ", "-0", "0x10", "18446744073709551616", "4e2"})
    CHECK_THROWS_AS(TransformerConfig::from_metadata({{"dim", bad}}), FormatError);
  CHECK(TransformerConfig::from_metadata({{"dim", "0016"}, {"heads", "4"}}).dim == 16);
}

TEST_CASE("memory budget: setting, scope, and the error naming requested bytes and the budget") {
  CHECK(memory_budget() == default_memory_budget);
  CHECK(default_memory_budget == std::size_t(64) << 30);
  CHECK_THROWS_WITH_AS(set_memory_budget(0), "set_memory_budget: bytes must be > 0, got 0", InvalidArgument);
  {
    MemoryBudgetScope scope(1000);
    CHECK(memory_budget() == 1000);
    CHECK_NOTHROW(check_memory_budget("f", "x", 1000));
    CHECK_THROWS_WITH_AS(check_memory_budget("f", "a buffer", 1001),
                         "f: a buffer needs 1001 bytes, over the memory budget of 1000 bytes (robustxlt::set_memory_budget)",
                         MemoryBudgetError);
  }
  CHECK(memory_budget() == default_memory_budget);
  CHECK(detail::saturating_mul(std::numeric_limits<std::size_t>::max() / 2, 3) == std::numeric_limits<std::size_t>::max());
  CHECK(detail::saturating_add(std::numeric_limits<std::size_t>::max() - 1, 2) == std::numeric_limits<std::size_t>::max());
  CHECK(detail::saturating_mul(6, 7) == 42);
}

TEST_CASE("memory budget: forward and backward check their exact needs before allocating; the model stays usable") {
  for (bool pre_ln : {false, true}) {
    CAPTURE(pre_ln);
    TransformerConfig cfg = tiny_config(pre_ln);
    cfg.dropout = 0.1;
    TransformerClassifier<float> model(cfg, 6);
    TokenBatch small = tiny_batch(cfg.vocab_size, !pre_ln);
    const Tensor<std::int64_t, 1> labels = {0, 1, 2};
    for (bool training : {false, true}) {
      CAPTURE(training);
      model.train(training);
      const Tensor<float, 2> before = model.forward(small);
      // A batch twice as long and twice as large as `small`.
      TokenBatch big;
      big.ids = Tensor<std::int64_t, 2>::from_shape({6, 12});
      for (std::size_t i = 0; i < big.ids.size(); ++i) big.ids.data()[i] = static_cast<std::int64_t>(i % cfg.vocab_size);
      const std::size_t need = model.forward_bytes(6, 12);
      CHECK(need > model.forward_bytes(3, 6));
      {
        MemoryBudgetScope budget(need - 1);
        CHECK_THROWS_WITH_AS(model.forward(big),
                             doctest::Contains(("forward: activations of a batch of shape [6, 12] needs " + std::to_string(need) +
                                                " bytes, over the memory budget of " + std::to_string(need - 1) + " bytes")
                                                   .c_str()),
                             MemoryBudgetError);
        CHECK_THROWS_AS(model.forward_embeddings(xt::zeros<float>({6, 12, 8}), TokenBatch{}), MemoryBudgetError);
        // The refused batch changed nothing: the last logits and the last batch's shape are intact, so
        // backward still runs for the small batch.
        CHECK(model.logits() == before);
        CHECK_NOTHROW(model.backward(xt::ones<float>({3, 3})));
      }
      {
        MemoryBudgetScope budget(need);  // exactly enough for forward
        CHECK_NOTHROW(model.forward(big));
        // backward needs its scratch on top: refused, then allowed with forward_bytes + backward_bytes.
        CHECK_THROWS_WITH_AS(model.backward(xt::ones<float>({6, 3})), doctest::Contains("backward: activations and gradients of a batch of shape [6, 12] needs"),
                             MemoryBudgetError);
      }
      {
        MemoryBudgetScope budget(need + model.backward_bytes(6, 12));
        model.forward(big);
        CHECK_NOTHROW(model.backward(xt::ones<float>({6, 3})));
        CHECK(simd::all_finite(model.input_grad().size(), model.input_grad().data()));
      }
    }
  }
}

TEST_CASE_TEMPLATE("memory budget: forward_bytes and backward_bytes are the bytes the model allocates", T, float, double) {
  for (bool pre_ln : {false, true})
    for (bool emb_norm : {false, true})
      for (bool dropout : {false, true}) {
        CAPTURE(pre_ln);
        CAPTURE(emb_norm);
        CAPTURE(dropout);
        TransformerConfig cfg = tiny_config(pre_ln);
        cfg.embedding_layer_norm = emb_norm;
        cfg.layers = 3;
        cfg.dropout = 0.1;
        TransformerClassifier<T> model(cfg, 2);
        model.train(dropout);
        const TokenBatch batch = tiny_batch(cfg.vocab_size, !pre_ln);
        const Tensor<std::int64_t, 1> labels = {0, 1, 2};
        CHECK(model.held_bytes() == 0);
        model.forward(batch);
        const std::size_t forward = model.forward_bytes(3, 6);
        CHECK(model.held_bytes() == forward);
        // Dropout keeps its masks; eval mode does not.
        CHECK((model.forward_bytes(3, 6) > TransformerClassifier<T>(cfg, 2).forward_bytes(3, 6)) == dropout);
        model.loss_and_backward(batch, labels);
        // backward_bytes also counts the [T, T] scratch that attention_backward keeps per thread.
        const std::size_t scratch = static_cast<std::size_t>(num_threads()) * 6 * 6 * sizeof(T);
        const std::size_t after_backward = model.held_bytes();
        CHECK(after_backward == forward + model.backward_bytes(3, 6) - scratch);
        // Another step with the same shape allocates nothing more.
        model.loss_and_backward(batch, labels);
        CHECK(model.held_bytes() == after_backward);
      }
}

TEST_CASE("memory budget: absurd batches and configs fail with MemoryBudgetError, not an allocation failure") {
  // 2^17 positions and 8 heads: the attention weights alone would take 8 * 2^34 floats = 512 GiB.
  TransformerConfig cfg;
  cfg.vocab_size = 4, cfg.max_positions = std::size_t(1) << 17, cfg.dim = 8, cfg.heads = 8, cfg.ff_dim = 8, cfg.layers = 1,
  cfg.num_classes = 2;
  TransformerClassifier<float> model(cfg, 7);
  TokenBatch batch;
  batch.ids = xt::zeros<std::int64_t>({std::size_t(1), std::size_t(1) << 17});
  CHECK(model.forward_bytes(1, std::size_t(1) << 17) > (std::size_t(512) << 30));
  CHECK_THROWS_WITH_AS(model.forward(batch), doctest::Contains("over the memory budget of 68719476736 bytes"), MemoryBudgetError);
  // Sizes whose byte counts overflow 64 bits saturate instead of wrapping around to a small number.
  CHECK(model.forward_bytes(std::numeric_limits<std::size_t>::max() / 4, 1u << 20) == std::numeric_limits<std::size_t>::max());
  // A config read from an untrusted checkpoint: the parameters alone exceed the budget.
  TransformerConfig huge = cfg;
  huge.vocab_size = std::size_t(1) << 40;
  CHECK(TransformerClassifier<float>::parameter_bytes(huge) > (std::size_t(1) << 40) * 8 * 8);
  CHECK_THROWS_WITH_AS(TransformerClassifier<float>(huge, 0),
                       doctest::Contains("TransformerClassifier: the parameters and gradients of this config needs"), MemoryBudgetError);
  huge.vocab_size = 4;
  huge.dim = huge.heads = std::size_t(1) << 33;
  CHECK(TransformerClassifier<float>::parameter_bytes(huge) == std::numeric_limits<std::size_t>::max());
  CHECK_THROWS_AS(TransformerClassifier<float>(huge, 0), MemoryBudgetError);
  // parameter_bytes is exact up to the 64-byte padding of each parameter.
  const TransformerConfig t = tiny_config(false);
  TransformerClassifier<double> m(t, 0);
  const std::size_t actual = 2 * m.params().values().size() * sizeof(double);
  CHECK(TransformerClassifier<double>::parameter_bytes(t) >= actual);
  CHECK(TransformerClassifier<double>::parameter_bytes(t) <= actual + 2 * 64 * m.params().count());
}

// ---------------------------------------------------------------------------------------------------------
// Parity with PyTorch (fixtures written by tests/make_nn_fixtures.py; run by the nn_pytorch_parity ctest).


// The fixture folder of ROBUSTXLT_FIXTURES when it holds `file`; otherwise nothing, and the binary reports
// the parity tests skipped.
std::optional<fs::path> parity_fixtures(const char* file) {
  const char* env = std::getenv("ROBUSTXLT_FIXTURES");
  if (env && fs::exists(fs::path(env) / file)) return fs::path(env);
  MESSAGE("PyTorch fixture ", file, " not found (set ROBUSTXLT_FIXTURES); skipping");
  robustxlt_test::parity_skipped = true;
  return std::nullopt;
}

TEST_CASE("PyTorch parity: logits, loss and every gradient within 1e-4") {
  const auto fixtures = parity_fixtures("postln.io.safetensors");
  if (!fixtures) return;
  for (const char* name : {"postln", "preln"}) {
    CAPTURE(name);
    const fs::path& dir = *fixtures;
    TransformerClassifier<float> model = load_model<float>(dir / (std::string(name) + ".weights.safetensors"));
    SafetensorsReader io(dir / (std::string(name) + ".io.safetensors"));
    TokenBatch batch;
    batch.ids = io.tensor<std::int64_t, 2>("input.ids");
    batch.mask = io.tensor<std::int64_t, 2>("input.mask");
    if (model.config().type_vocab_size > 0) batch.segments = io.tensor<std::int64_t, 2>("input.segments");
    const auto labels = io.tensor<std::int64_t, 1>("input.labels");
    CrossEntropyOptions<float> opt;
    opt.label_smoothing = std::stof(io.metadata().at("label_smoothing"));
    model.params().zero_grad();
    const float loss = model.loss_and_backward(batch, labels, opt);
    const auto ref_logits = io.tensor<float, 2>("output.logits");
    CHECK(robustxlt_test::max_relative(model.logits(), ref_logits) <= 1e-4);
    CHECK(std::abs(loss - io.tensor<float, 1>("output.loss")(0)) <= 1e-4 * std::abs(io.tensor<float, 1>("output.loss")(0)));
    const auto ref_in = io.tensor<float, 3>("grad.input_embeddings");
    const double in_err = robustxlt_test::max_relative(model.input_grad(), ref_in);
    INFO("input embedding gradient relative error ", in_err);
    CHECK(in_err <= 1e-4);
    std::size_t compared = 0;
    double worst = std::max(robustxlt_test::max_relative(model.logits(), ref_logits), in_err);
    for (std::size_t i = 0; i < model.params().count(); ++i) {
      const auto& info = model.params().infos()[i];
      const std::string key = "grad." + info.name;
      REQUIRE(io.contains(key));
      std::vector<float> ref(info.size);
      io.copy_to(key, ref.data(), info.shape);
      std::vector<float> mine(model.params().grad(i), model.params().grad(i) + info.size);
      const double err = robustxlt_test::max_relative(mine, ref);
      INFO(info.name, " gradient relative error ", err);
      CHECK(err <= 1e-4);
      worst = std::max(worst, err);
      ++compared;
    }
    CHECK(compared == model.params().count());
    MESSAGE(std::string(name), ": ", compared, " parameter gradients, logits, loss and input gradient match PyTorch; worst relative error ",
            worst);
  }
}

TEST_CASE("PyTorch parity: 5 AdamW steps with warmup, decay and clipping; loss after each step and final weights within 1e-5") {
  const auto fixtures = parity_fixtures("postln.train.safetensors");
  if (!fixtures) return;
  for (const char* name : {"postln", "preln"}) {
    CAPTURE(name);
    const fs::path& dir = *fixtures;
    // float64 on both sides, so the comparison measures the algorithm, not float32 rounding that AdamW's
    // m / sqrt(v) would amplify where a gradient is near zero.
    TransformerClassifier<double> model = load_model<double>(dir / (std::string(name) + ".train_init.safetensors"));
    SafetensorsReader io(dir / (std::string(name) + ".io.safetensors"));
    SafetensorsReader run(dir / (std::string(name) + ".train.safetensors"));
    const auto& meta = run.metadata();
    TokenBatch batch;
    batch.ids = io.tensor<std::int64_t, 2>("input.ids");
    batch.mask = io.tensor<std::int64_t, 2>("input.mask");
    if (model.config().type_vocab_size > 0) batch.segments = io.tensor<std::int64_t, 2>("input.segments");
    const auto labels = io.tensor<std::int64_t, 1>("input.labels");
    CrossEntropyOptions<double> ce;
    ce.label_smoothing = std::stod(meta.at("label_smoothing"));
    AdamWOptions<double> ao;
    ao.lr = std::stod(meta.at("train_lr"));
    ao.weight_decay = std::stod(meta.at("train_weight_decay"));
    AdamW<double> adam(model.params(), ao);
    const LinearWarmupDecay schedule(ao.lr, std::stoul(meta.at("train_warmup")), std::stoul(meta.at("train_total")));
    const double clip = std::stod(meta.at("train_clip"));
    const std::size_t steps = std::stoul(meta.at("train_steps"));
    const auto ref_loss = run.tensor<double, 1>("train.loss");
    const auto ref_norm = run.tensor<double, 1>("train.grad_norm");
    REQUIRE(ref_loss.size() == steps + 1);
    for (std::size_t s = 0; s <= steps; ++s) {
      CAPTURE(s);
      model.params().zero_grad();
      const double loss = model.loss_and_backward(batch, labels, ce);
      CHECK(std::abs(loss - ref_loss(s)) <= 1e-5 * std::abs(ref_loss(s)));
      if (s == steps) break;
      const double norm = clip_grad_norm(model.params(), clip);
      CHECK(std::abs(norm - ref_norm(s)) <= 1e-5 * ref_norm(s));
      adam.set_lr(schedule(s));
      adam.step();
    }
    double worst = 0;
    for (std::size_t i = 0; i < model.params().count(); ++i) {
      const auto& info = model.params().infos()[i];
      std::vector<double> ref(info.size);
      run.copy_to("train.final." + info.name, ref.data(), info.shape);
      const std::vector<double> mine(model.params().value(i), model.params().value(i) + info.size);
      const double err = robustxlt_test::max_relative(mine, ref);
      INFO(info.name, " final weight relative error ", err);
      CHECK(err <= 1e-5);
      worst = std::max(worst, err);
    }
    MESSAGE(std::string(name), ": ", steps, " AdamW steps match PyTorch; worst final-weight relative error ", worst);
  }
}

TEST_CASE("transformer: backward_into writes the input gradient into the caller's buffer") {
  for (bool pre_ln : {false, true}) {  // with an embedding layer norm (written in place) and without (copied)
    CAPTURE(pre_ln);
    const TransformerConfig cfg = tiny_config(pre_ln);
    TransformerClassifier<double> model(cfg, 3);
    const TokenBatch batch = tiny_batch(cfg.vocab_size, !pre_ln);
    const Tensor<std::int64_t, 1> labels = {2, 0, 1};
    CrossEntropy<double> ce;
    ce.forward(model.forward(batch), labels);
    Tensor<double, 2> dlogits;
    ce.backward(dlogits);
    model.params().zero_grad();
    model.backward(dlogits);
    const Tensor<double, 3> expected = model.input_grad();
    const auto expected_param_grads = model.params().grads();
    // The caller's memory, seen through xt::adapt; filled with garbage first.
    std::vector<double> buffer(expected.size(), 7.0);
    auto view = xt::adapt(buffer.data(), buffer.size(), xt::no_ownership(), expected.shape());
    model.params().zero_grad();
    model.backward_into(dlogits, view);
    CHECK(std::equal(buffer.begin(), buffer.end(), expected.data()));
    CHECK(model.input_grad() == expected);  // left as it was
    CHECK(model.params().grads() == expected_param_grads);
    Tensor<double, 3> wrong = xt::zeros<double>({3, 5, 8});
    CHECK_THROWS_WITH_AS(model.backward_into(dlogits, wrong),
                         "backward_into: input_grad must have shape [3, 6, 8], got [3, 5, 8]", ShapeError);
  }
}

TEST_CASE("transformer: a refused batch leaves the last forward intact; masks of any integral type") {
  const TransformerConfig cfg = tiny_config(false);
  TransformerClassifier<double> model(cfg, 3);
  const TokenBatch batch = tiny_batch(cfg.vocab_size, true);
  const Tensor<double, 2> logits = model.forward(batch);
  Tensor<double, 2> dlogits = xt::ones<double>({3, 3});
  model.backward(dlogits, false);
  const Tensor<double, 3> expected = model.input_grad();
  model.forward(batch);
  // Same shape, one bad mask value at the end: refused before anything of the last forward changed.
  TokenBatch bad = batch;
  bad.mask(2, 5) = 2;
  CHECK_THROWS_WITH_AS(model.forward(bad), "forward: mask[2, 5] must be 0 or 1, got 2", InvalidArgument);
  TokenBatch bad_segments = batch;
  bad_segments.mask(1, 5) = 1;  // a valid mask change, then a bad segment: still nothing changes
  bad_segments.segments(2, 5) = 7;
  CHECK_THROWS_AS(model.forward(bad_segments), InvalidArgument);
  model.backward(dlogits, false);
  CHECK(model.input_grad() == expected);
  // The same batch with a uint8 mask, a bool mask, and a view of a caller's int32 buffer.
  TokenBatch as_uint8 = batch, as_bool = batch, as_view = batch;
  as_uint8.set_mask(Tensor<std::uint8_t, 2>(xt::cast<std::uint8_t>(batch.mask)));
  as_bool.set_mask(Tensor<bool, 2>(xt::cast<bool>(batch.mask)));
  std::vector<std::int32_t> mask32(batch.mask.begin(), batch.mask.end());
  as_view.set_mask(xt::adapt(mask32.data(), mask32.size(), xt::no_ownership(), batch.mask.shape()));
  for (const TokenBatch* b : {&as_uint8, &as_bool, &as_view}) CHECK(model.forward(*b) == logits);
}

TEST_CASE("predictions: the largest logit per row, ties to the lowest class, non-finite logits refused") {
  const Tensor<float, 2> z = {{0.1f, 2.0f, -1.0f}, {3.0f, 3.0f, 1.0f}, {-5.0f, -4.0f, -4.0f}};
  CHECK(predictions(z) == std::vector<std::int64_t>{1, 0, 1});
  Tensor<float, 2> bad = z;
  bad(2, 0) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(predictions(bad), "predictions: logits must be finite, got NaN or Inf", NumericError);
  CHECK_THROWS_AS(predictions(Tensor<float, 2>::from_shape({0, 3})), ShapeError);
}
