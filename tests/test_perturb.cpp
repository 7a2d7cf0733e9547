// Tests of perturb/: kernels against hand-computed values and invariants on random inputs, the methods on
// objectives with known maxima, statistical checks of random starts, and parity with PyTorch.
#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <filesystem>
#include <robustxlt/robustxlt.hpp>
#include <vector>
#include <xtensor/xview.hpp>

namespace fs = std::filesystem;
using namespace robustxlt;
using namespace robustxlt::perturb;

namespace {

Tensor<float, 3> random_tensor(std::size_t B, std::size_t T, std::size_t D, std::uint64_t seed, float scale = 1.0f) {
  Tensor<float, 3> x = Tensor<float, 3>::from_shape({B, T, D});
  Rng rng(seed);
  for (auto& v : x) v = scale * rng.normal<float>();
  return x;
}

Tensor<std::int64_t, 2> lengths_mask(std::size_t T, const std::vector<std::size_t>& lengths) {
  Tensor<std::int64_t, 2> m = xt::zeros<std::int64_t>({lengths.size(), T});
  for (std::size_t b = 0; b < lengths.size(); ++b)
    for (std::size_t t = 0; t < lengths[b]; ++t) m(b, t) = 1;
  return m;
}

// Reference norms computed element by element in double.
std::vector<double> reference_norms(const Tensor<float, 3>& x, const Tensor<std::int64_t, 2>& mask, Norm norm,
                                    Granularity g) {
  const std::size_t B = x.shape()[0], T = x.shape()[1], D = x.shape()[2];
  const std::size_t groups = g == Granularity::token ? B * T : g == Granularity::sequence ? B : 1;
  std::vector<double> acc(groups, 0.0);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < T; ++t) {
      if (mask(b, t) == 0) continue;
      const std::size_t k = g == Granularity::token ? b * T + t : g == Granularity::sequence ? b : 0;
      for (std::size_t d = 0; d < D; ++d) {
        const double v = x(b, t, d);
        acc[k] = norm == Norm::l2 ? acc[k] + v * v : std::max(acc[k], std::abs(v));
      }
    }
  if (norm == Norm::l2)
    for (auto& a : acc) a = std::sqrt(a);
  return acc;
}

const Norm kNorms[] = {Norm::l2, Norm::linf};
const Granularity kGrans[] = {Granularity::token, Granularity::sequence, Granularity::batch};

// A linear objective <w, x> (gradient w, scaled by the request) that counts its calls.
struct LinearObjective {
  explicit LinearObjective(Tensor<float, 3> weights) : w(std::move(weights)) {}
  Tensor<float, 3> w;
  int calls = 0;
  int param_calls = 0;
  std::vector<float> scales;
  float operator()(const Tensor<float, 3>& x, GradientView<float>& g, const Evaluation<float>& req) {
    ++calls;
    param_calls += req.parameter_gradients;
    scales.push_back(req.scale);
    g = w * req.scale;
    return xt::sum(w * x)();
  }
};

}  // namespace

TEST_CASE("norms: hand-computed values with a mask") {
  // x[0] = tokens (3, 4) and (1, 0); x[1] = (0, 2) and a padded (100, 100).
  Tensor<float, 3> x = {{{3, 4}, {1, 0}}, {{0, -2}, {100, 100}}};
  Tensor<std::int64_t, 2> mask = {{1, 1}, {1, 0}};
  CHECK(norms(x, mask, Norm::l2, Granularity::token) == Tensor<float, 1>{5, 1, 2, 0});
  CHECK(norms(x, mask, Norm::linf, Granularity::token) == Tensor<float, 1>{4, 1, 2, 0});
  auto seq = norms(x, mask, Norm::l2, Granularity::sequence);
  CHECK(seq(0) == doctest::Approx(std::sqrt(26.0)));
  CHECK(seq(1) == doctest::Approx(2.0));
  CHECK(norms(x, mask, Norm::l2, Granularity::batch)(0) == doctest::Approx(std::sqrt(30.0)));
  CHECK(norms(x, mask, Norm::linf, Granularity::batch)(0) == 4.0f);
  // Without a mask the padded token counts.
  CHECK(norms(x, Tensor<std::int64_t, 2>{}, Norm::linf, Granularity::batch)(0) == 100.0f);
}

TEST_CASE("projection, directions and SMART normalisation: hand-computed values") {
  Tensor<float, 3> x = {{{3, 4}, {0.3f, -0.4f}}};
  Tensor<std::int64_t, 2> none;
  project(x, none, Ball<float>{Norm::l2, Granularity::token, 1.0f});
  CHECK(x(0, 0, 0) == doctest::Approx(0.6f));
  CHECK(x(0, 0, 1) == doctest::Approx(0.8f));
  CHECK(x(0, 1, 0) == doctest::Approx(0.3f));  // inside the ball: unchanged
  project(x, none, Ball<float>{Norm::linf, Granularity::token, 0.5f});
  CHECK(x == Tensor<float, 3>{{{0.5f, 0.5f}, {0.3f, -0.4f}}});

  Tensor<float, 3> g = {{{3, -4}, {0, 0}}}, dir = xt::zeros<float>({1, 2, 2});
  ascent_direction(dir, g, none, Norm::linf, Granularity::token);
  CHECK(dir == Tensor<float, 3>{{{1, -1}, {0, 0}}});
  ascent_direction(dir, g, none, Norm::l2, Granularity::token);
  CHECK(dir(0, 0, 0) == doctest::Approx(0.6f));
  CHECK(dir(0, 0, 1) == doctest::Approx(-0.8f));
  CHECK(dir(0, 1, 0) == 0.0f);  // zero gradient: zero direction, not NaN

  Tensor<float, 3> s = {{{2, -4}, {0, 0}}};
  normalize_per_token_max(s, none, 0.0f);
  CHECK(s == Tensor<float, 3>{{{0.5f, -1.0f}, {0, 0}}});
}

TEST_CASE("step_and_project: invariants on random inputs for every norm and granularity") {
  const std::size_t B = 4, T = 7, D = 19;
  const auto mask = lengths_mask(T, {7, 5, 1, 0});  // the last sequence is all padding
  for (Norm norm : kNorms)
    for (Granularity gran : kGrans) {
      CAPTURE(std::string(norm_name(norm)));
      CAPTURE(static_cast<int>(gran));
      const float eps = 0.7f, alpha = 0.3f;
      const Ball<float> ball{norm, gran, eps};
      Tensor<float, 3> delta = xt::zeros<float>({B, T, D});
      for (int step = 0; step < 6; ++step) {
        const Tensor<float, 3> g = random_tensor(B, T, D, 100 + step);
        const Tensor<float, 3> before = delta;
        step_and_project(delta, g, mask, ball, alpha);
        // The step matches the unfused definition: direction, add, project.
        Tensor<float, 3> dir = xt::zeros<float>({B, T, D});
        ascent_direction(dir, g, mask, norm, gran);
        Tensor<float, 3> ref = before + alpha * dir;
        project(ref, mask, ball);
        CHECK(xt::amax(xt::abs(delta - ref))() <= 1e-5f);
        // ||delta|| <= eps at the chosen granularity (float rounding allowed).
        const auto n = norms(delta, mask, norm, gran);
        CHECK(xt::amax(n)() <= eps * (1 + 1e-5f));
        // Padded positions stay exactly zero, and nothing is NaN.
        for (std::size_t b = 0; b < B; ++b)
          for (std::size_t t = 0; t < T; ++t)
            for (std::size_t d = 0; d < D; ++d) {
              REQUIRE(std::isfinite(delta(b, t, d)));
              if (mask(b, t) == 0) REQUIRE(delta(b, t, d) == 0.0f);
            }
        // Reference norms agree with the kernel's.
        const auto rn = reference_norms(delta, mask, norm, gran);
        for (std::size_t k = 0; k < rn.size(); ++k) CHECK(n(k) == doctest::Approx(rn[k]).epsilon(1e-5));
      }
      // Zero gradient: no step, no NaN.
      const Tensor<float, 3> before = delta;
      step_and_project(delta, Tensor<float, 3>(xt::zeros<float>({B, T, D})), mask, ball, alpha);
      CHECK(delta == before);
    }
}

TEST_CASE("Linf step equals alpha * sign(g) before projection, and the step works on xt::adapt views") {
  const std::size_t B = 2, T = 3, D = 33;
  const Tensor<float, 3> g = random_tensor(B, T, D, 5);
  std::vector<float> buffer(B * T * D, 0.0f);
  auto delta = xt::adapt(buffer.data(), buffer.size(), xt::no_ownership(), std::array<std::size_t, 3>{B, T, D});
  step_and_project(delta, g, Tensor<std::int64_t, 2>{}, Ball<float>{Norm::linf, Granularity::token, 10.0f}, 0.25f);
  for (std::size_t i = 0; i < buffer.size(); ++i) CHECK(buffer[i] == 0.25f * (g.data()[i] > 0 ? 1.0f : -1.0f));
}

TEST_CASE("uniform ball starts are exactly uniform: P(r <= t eps) = t^d (Kolmogorov-Smirnov)") {
  // Token granularity, d = D = 4: 4000 independent radii. Sequence granularity, d = T_valid * D = 6.
  struct Case {
    Granularity gran;
    std::size_t B, T, D;
  };
  for (const Case c : {Case{Granularity::token, 100, 40, 4}, Case{Granularity::sequence, 3000, 3, 2}}) {
    const float eps = 0.8f;
    Tensor<float, 3> delta = xt::zeros<float>({c.B, c.T, c.D});
    uniform_ball_start(delta, Tensor<std::int64_t, 2>{}, Ball<float>{Norm::l2, c.gran, eps}, 77);
    const auto n = norms(delta, Tensor<std::int64_t, 2>{}, Norm::l2, c.gran);
    const double d = c.gran == Granularity::token ? double(c.D) : double(c.T * c.D);
    std::vector<double> u;
    for (float r : n) {
      REQUIRE(r <= eps * (1 + 1e-6f));
      u.push_back(std::pow(double(r) / eps, d));  // uniform on [0, 1] when the start is uniform in the ball
    }
    std::sort(u.begin(), u.end());
    double ks = 0;
    for (std::size_t i = 0; i < u.size(); ++i)
      ks = std::max({ks, std::abs(double(i + 1) / u.size() - u[i]), std::abs(u[i] - double(i) / u.size())});
    // 99.9% critical value of the one-sample KS statistic: 1.95 / sqrt(n).
    INFO("KS statistic ", ks, " over ", u.size(), " radii");
    CHECK(ks < 1.95 / std::sqrt(double(u.size())));
    // Directions are isotropic: the mean of delta is near zero.
    CHECK(std::abs(xt::mean(delta)()) < 0.01);
  }
}

TEST_CASE("Linf, Gaussian and FreeLB starts: ranges, moments, padding, thread independence") {
  const auto mask = lengths_mask(8, {8, 3});
  Tensor<float, 3> a = xt::zeros<float>({2, 8, 64});
  uniform_ball_start(a, mask, Ball<float>{Norm::linf, Granularity::token, 0.1f}, 3);
  CHECK(xt::amax(xt::abs(a))() <= 0.1f);
  CHECK(xt::amax(xt::abs(a))() > 0.09f);
  CHECK(xt::amax(xt::abs(xt::view(a, 1, xt::range(3, 8), xt::all())))() == 0.0f);

  Tensor<float, 3> g = xt::zeros<float>({64, 16, 64});
  gaussian_start(g, Tensor<std::int64_t, 2>{}, 1e-2f, 4);
  const double var = xt::mean(g * g)();
  CHECK(std::sqrt(var) == doctest::Approx(1e-2).epsilon(0.02));

  Tensor<float, 3> f = xt::zeros<float>({2, 8, 64});
  freelb_start(f, mask, Norm::l2, 0.5f, 5);
  CHECK(xt::amax(xt::abs(xt::view(f, 0)))() <= 0.5f / std::sqrt(8.0f * 64));
  CHECK(xt::amax(xt::abs(xt::view(f, 1)))() <= 0.5f / std::sqrt(3.0f * 64));
  CHECK(xt::amax(xt::abs(xt::view(f, 1)))() > 0.4f / std::sqrt(3.0f * 64));
  CHECK(xt::amax(xt::abs(xt::view(f, 1, xt::range(3, 8), xt::all())))() == 0.0f);
}

TEST_CASE("random starts do not depend on the thread count" * robustxlt_test::needs_threads()) {
  const auto mask = lengths_mask(8, {8, 3});
  Tensor<float, 3> a = xt::zeros<float>({2, 8, 64});
  uniform_ball_start(a, mask, Ball<float>{Norm::linf, Granularity::token, 0.1f}, 3);
  set_num_threads(2);
  Tensor<float, 3> b = xt::zeros<float>({2, 8, 64});
  uniform_ball_start(b, mask, Ball<float>{Norm::linf, Granularity::token, 0.1f}, 3);
  Tensor<float, 3> s2 = xt::zeros<float>({2, 8, 64});
  uniform_ball_start(s2, mask, Ball<float>{Norm::l2, Granularity::sequence, 0.1f}, 3);
  set_num_threads(1);
  Tensor<float, 3> s1 = xt::zeros<float>({2, 8, 64});
  uniform_ball_start(s1, mask, Ball<float>{Norm::l2, Granularity::sequence, 0.1f}, 3);
  CHECK(a == b);
  CHECK(s1 == s2);
}

TEST_CASE("PGD and FGSM reach the known maximiser of a linear objective") {
  const std::size_t B = 3, T = 5, D = 8;
  const auto mask = lengths_mask(T, {5, 2, 4});
  Tensor<float, 3> w = random_tensor(B, T, D, 9);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < T; ++t)
      if (mask(b, t) == 0) xt::view(w, b, t, xt::all()) = 0.0f;
  LinearObjective obj{w};
  const Tensor<float, 3> x0 = random_tensor(B, T, D, 10);
  // L2 per sequence: the maximiser of <w, delta> over ||delta_b|| <= eps is eps * w_b / ||w_b||.
  PGDOptions<float> opt;
  opt.ball = {Norm::l2, Granularity::sequence, 0.5f};
  opt.step_size = 0.2f;
  opt.steps = 5;
  opt.record_losses = true;
  auto r = pgd(obj, x0, mask, opt);
  const auto wn = norms(obj.w, mask, Norm::l2, Granularity::sequence);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t d = 0; d < D; ++d) CHECK(r.delta(b, t, d) == doctest::Approx(0.5f * obj.w(b, t, d) / wn(b)).epsilon(1e-4));
  REQUIRE(r.losses.size() == 6);  // start + after each of 5 steps
  for (std::size_t k = 1; k < r.losses.size(); ++k) CHECK(r.losses[k] >= r.losses[k - 1] - 1e-4f);
  CHECK(obj.param_calls == 0);
  // FGSM with Linf: eps * sign(w) in one step.
  auto f = fgsm(obj, x0, mask, FGSMOptions<float>{Ball<float>{Norm::linf, Granularity::token, 0.1f}});
  for (std::size_t i = 0; i < f.delta.size(); ++i) {
    const float w = obj.w.data()[i];
    CHECK(f.delta.data()[i] == (w > 0 ? 0.1f : w < 0 ? -0.1f : 0.0f));
  }
  // A plain (x, grad) callable works for attacks.
  auto plain = [&](const Tensor<float, 3>& x, GradientView<float>& g) {
    g = obj.w;
    return float(xt::sum(obj.w * x)());
  };
  auto r2 = pgd(plain, x0, mask, opt);
  CHECK(xt::amax(xt::abs(r2.delta - r.delta))() == 0.0f);
}

TEST_CASE("FreeLB asks for parameter gradients of loss / K at each of K evaluations") {
  LinearObjective obj{random_tensor(2, 4, 6, 11)};
  const Tensor<float, 3> x0 = random_tensor(2, 4, 6, 12);
  FreeLBOptions<float> opt;
  opt.steps = 4;
  opt.step_size = 0.1f;
  opt.ball.epsilon = 0.2f;
  auto r = freelb(obj, x0, Tensor<std::int64_t, 2>{}, opt);
  CHECK(obj.calls == 4);
  CHECK(obj.param_calls == 4);
  CHECK(obj.scales == std::vector<float>(4, 0.25f));
  CHECK(r.loss == doctest::Approx((r.losses[0] + r.losses[1] + r.losses[2] + r.losses[3]) / 4));
  CHECK(xt::amax(norms(r.delta, Tensor<std::int64_t, 2>{}, Norm::l2, Granularity::sequence))() <= 0.2f * (1 + 1e-5f));
  // A callable without an Evaluation argument cannot give parameter gradients: a clear error.
  auto plain = [](const Tensor<float, 3>& x, GradientView<float>& g) {
    g = x;
    return 0.0f;
  };
  CHECK_THROWS_WITH_AS(freelb(plain, x0, Tensor<std::int64_t, 2>{}, opt), doctest::Contains("needs parameter gradients"), Error);
}

TEST_CASE("adversarial_training_step: clean gradient reused as the first PGD step; weights applied") {
  LinearObjective obj{random_tensor(2, 3, 4, 13)};
  const Tensor<float, 3> x0 = random_tensor(2, 3, 4, 14);
  AdversarialStepOptions<float> step;
  PGDOptions<float>& attack = step.attack;
  attack.ball = {Norm::l2, Granularity::token, 0.3f};
  attack.step_size = 0.1f;
  attack.steps = 3;
  step.adversarial_weight = 0.5f;
  auto s = adversarial_training_step(obj, x0, Tensor<std::int64_t, 2>{}, step);
  CHECK(obj.calls == 4);  // clean + 2 attack + adversarial: PGD-3 costs 4 passes
  CHECK(obj.param_calls == 2);
  CHECK(obj.scales == std::vector<float>{1.0f, 1.0f, 1.0f, 0.5f});
  CHECK(s.loss == doctest::Approx(s.clean + 0.5f * s.adversarial));
  CHECK(s.losses.size() == 4);
  CHECK(s.adversarial > s.clean);
  // The same delta as a standalone PGD from zero.
  LinearObjective fresh{obj.w};
  auto r = pgd(fresh, x0, Tensor<std::int64_t, 2>{}, attack);
  CHECK(xt::amax(xt::abs(r.delta - s.delta))() <= 1e-6f);
}

TEST_CASE("SMART perturbation: per-token max-abs normalisation after each step") {
  LinearObjective obj{random_tensor(2, 4, 6, 15)};
  const auto mask = lengths_mask(4, {4, 2});
  SMARTOptions<float> opt;
  opt.steps = 2;
  auto r = smart_perturbation(obj, random_tensor(2, 4, 6, 16), mask, opt);
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t t = 0; t < 4; ++t) {
      const float m = xt::amax(xt::abs(xt::view(r.delta, b, t, xt::all())))();
      if (mask(b, t)) CHECK(m == doctest::Approx(1.0f).epsilon(1e-4));
      else CHECK(m == 0.0f);
    }
  CHECK(obj.param_calls == 0);
  auto reg = smart_regularizer(obj, random_tensor(2, 4, 6, 16), mask, opt, 0.3f);
  CHECK(obj.param_calls == 1);
  CHECK(obj.scales.back() == 0.3f);
  CHECK(reg.loss == doctest::Approx(0.3f * reg.adversarial));
}

TEST_CASE("non-finite gradients: an error by default, or the sequence is skipped") {
  const Tensor<float, 3> x0 = random_tensor(2, 3, 4, 17);
  auto bad = [](const Tensor<float, 3>& x, GradientView<float>& g) {
    g = xt::ones<float>(x.shape());
    g(1, 2, 3) = std::numeric_limits<float>::quiet_NaN();
    return 0.0f;
  };
  PGDOptions<float> opt;
  opt.ball = {Norm::l2, Granularity::sequence, 1.0f};
  opt.step_size = 0.5f;
  CHECK_THROWS_WITH_AS(pgd(bad, x0, Tensor<std::int64_t, 2>{}, opt),
                       "pgd: objective returned a non-finite gradient for sequence 1 (set on_non_finite = skip_example to "
                       "leave its delta unchanged)",
                       NumericError);
  opt.on_non_finite = NonFinitePolicy::skip_example;
  auto r = pgd(bad, x0, Tensor<std::int64_t, 2>{}, opt);
  CHECK(xt::amax(xt::abs(xt::view(r.delta, 1)))() == 0.0f);
  CHECK(xt::amax(xt::abs(xt::view(r.delta, 0)))() > 0.0f);
  CHECK(std::all_of(r.delta.begin(), r.delta.end(), [](float v) { return std::isfinite(v); }));
}

TEST_CASE("objective protocol: generic objectives take the view; kernels take a radius of another precision") {
  const Tensor<float, 3> x0 = xt::ones<float>({1, 2, 3});
  PGDOptions<float> opt;
  opt.ball = {Norm::l2, Granularity::token, 1.0f};
  opt.step_size = 0.1f;
  auto by_reference = [](const auto& x, auto& g) {  // deduced return type: never compiled against a Tensor
    g = 2.0f * x;
    return 0.0f;
  };
  auto forwarding = [](const auto& x, auto&& g) -> float {
    g = x;
    return 0.0f;
  };
  const auto a = pgd(by_reference, x0, Tensor<int, 2>{}, opt), b = pgd(forwarding, x0, Tensor<int, 2>{}, opt);
  CHECK(a.delta == b.delta);  // the same direction, x0 everywhere: each token moves 0.1 along (1, 1, 1)
  CHECK(std::abs(a.delta(0, 1, 2) - 0.1f / std::sqrt(3.0f)) < 1e-6f);
  // A double radius or magnitude for float deltas, as before the kernels shared their draws.
  Tensor<float, 3> d = xt::zeros<float>({1, 2, 3});
  freelb_start(d, Tensor<int, 2>{}, Norm::linf, 0.5, 7);
  CHECK(xt::amax(xt::abs(d))() <= 0.5f);
  CHECK(xt::amax(xt::abs(d))() > 0.0f);
}

TEST_CASE("objective protocol: grad_x is a view of one buffer the perturber owns, zeroed before each call") {
  const Tensor<float, 3> x0 = xt::zeros<float>({2, 3, 4});
  std::vector<const float*> buffers;
  bool zeroed = true;
  auto objective = [&](const Tensor<float, 3>& x, GradientView<float>& g) {
    buffers.push_back(g.data());
    for (const float v : g) zeroed = zeroed && v == 0.0f;
    g = x + 1.0f;  // written in place: the view has x's shape
    return float(xt::sum(x)());
  };
  PGDOptions<float> opt;
  opt.ball = {Norm::l2, Granularity::token, 1.0f};
  opt.step_size = 0.1f;
  opt.steps = 4;
  const auto r = pgd(objective, x0, Tensor<int, 2>{}, opt);
  REQUIRE(buffers.size() >= 4);
  for (const float* p : buffers) CHECK(p == buffers.front());
  CHECK(zeroed);
  // x + 1 points along (1, 1, 1, 1) at every step: each token moves 0.1 in L2 per step, 0.4 after four, 0.2 per
  // coordinate.
  CHECK(std::abs(r.delta(1, 2, 3) - 0.2f) < 1e-6f);
}

TEST_CASE("bad input raises robustxlt::Error naming the argument") {
  const Tensor<float, 3> x0 = random_tensor(2, 3, 4, 18);
  LinearObjective obj{random_tensor(2, 3, 4, 19)};
  const Tensor<std::int64_t, 2> none;
  PGDOptions<float> opt;
  opt.ball.epsilon = -0.5f;
  opt.step_size = 0.1f;
  CHECK_THROWS_WITH_AS(pgd(obj, x0, none, opt), "pgd: epsilon must be >= 0 (or +inf, Ball::unbounded), got -0.5",
                       InvalidArgument);
  opt.ball.epsilon = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(pgd(obj, x0, none, opt), InvalidArgument);
  opt.ball = Ball<float>::unbounded();
  opt.start = Start::uniform_ball;
  CHECK_THROWS_WITH_AS(pgd(obj, x0, none, opt), "pgd: epsilon must be >= 0 and finite (a bounded ball), got inf",
                       InvalidArgument);
  opt.start = Start::zero;
  opt.ball.epsilon = 1.0f;
  opt.step_size = 0.0f;
  CHECK_THROWS_WITH_AS(pgd(obj, x0, none, opt), "pgd: step_size must be > 0 and finite, got 0", InvalidArgument);
  opt.step_size = 0.1f;
  opt.steps = 0;
  CHECK_THROWS_WITH_AS(pgd(obj, x0, none, opt), "pgd: steps must be >= 1, got 0", InvalidArgument);
  opt.steps = 1;
  CHECK_THROWS_WITH_AS(pgd(obj, x0, Tensor<std::int64_t, 2>(xt::ones<std::int64_t>({2, 4})), opt),
                       "pgd: mask must have shape [2, 3], got [2, 4]", ShapeError);
  auto wrong = [](const Tensor<float, 3>&, GradientView<float>& g) {
    g = xt::zeros<float>({2, 3, 5});
    return 0.0f;
  };
  CHECK_THROWS_WITH_AS(pgd(wrong, x0, none, opt),
                       "pgd: the objective assigned an expression of shape [2, 3, 5] to grad_x, a view of shape [2, 3, 4] "
                       "(the shape of x)",
                       ShapeError);
  // Taken by value, the view is a copy: the error still says what happened.
  auto wrong_by_value = [](const Tensor<float, 3>&, GradientView<float> g) {
    g = xt::zeros<float>({2, 3, 5});
    return 0.0f;
  };
  CHECK_THROWS_WITH_AS(pgd(wrong_by_value, x0, none, opt),
                       "pgd: the objective assigned an expression of another shape to grad_x, a view of shape [2, 3, 4] "
                       "(the shape of x) that cannot be resized",
                       ShapeError);
  // Same size, other shape: the view would take it without a reallocation; the perturber refuses it.
  auto reshaped = [](const Tensor<float, 3>&, GradientView<float>& g) {
    g = xt::zeros<float>({2, 4, 3});
    return 0.0f;
  };
  CHECK_THROWS_WITH_AS(pgd(reshaped, x0, none, opt),
                       "pgd: the objective reshaped grad_x to [2, 4, 3]; it must keep the shape of x [2, 3, 4]", ShapeError);
  Tensor<float, 3> d = xt::zeros<float>({2, 3, 4});
  const Tensor<float, 3> g5 = xt::zeros<float>({2, 3, 5});
  CHECK_THROWS_WITH_AS(step_and_project(d, g5, none, Ball<float>{}, 0.1f),
                       "step_and_project: grad must have the shape of delta [2, 3, 4], got [2, 3, 5]", ShapeError);
  Tensor<float, 2> flat = xt::zeros<float>({2, 3});
  CHECK_THROWS_WITH_AS(norms(flat, none, Norm::l2, Granularity::token), "norms: x must have rank 3 [B, T, D], got shape [2, 3]",
                       ShapeError);
  FreeLBOptions<float> fo;
  fo.ball.epsilon = -1.0f;
  CHECK_THROWS_WITH_AS(freelb(obj, x0, none, fo), "freelb: epsilon must be >= 0 (or +inf, Ball::unbounded), got -1",
                       InvalidArgument);
  // A mask holds exactly 0 or 1: anything else names its position.
  const Tensor<int, 2> two = {{1, 1, 0}, {1, 2, 0}};
  CHECK_THROWS_WITH_AS(pgd(obj, x0, two, opt), "pgd: mask[1, 1] must be 0 or 1, got 2", InvalidArgument);
  const Tensor<std::int8_t, 2> negative = {{1, 1, 0}, {1, -1, 0}};
  CHECK_THROWS_WITH_AS(norms(x0, negative, Norm::l2, Granularity::token), "norms: mask[1, 1] must be 0 or 1, got -1",
                       InvalidArgument);
  // NaN or Inf in the clean embeddings is blamed on them, before any objective call.
  Tensor<float, 3> nan_x0 = x0;
  nan_x0(1, 2, 3) = std::numeric_limits<float>::infinity();
  const int calls = obj.calls;
  CHECK_THROWS_WITH_AS(pgd(obj, nan_x0, none, opt), "pgd: embeddings must be finite, got inf at [1, 2, 3]", NumericError);
  CHECK_THROWS_WITH_AS(freelb(obj, nan_x0, none, FreeLBOptions<float>{}), "freelb: embeddings must be finite, got inf at [1, 2, 3]",
                       NumericError);
  CHECK_THROWS_WITH_AS(smart_perturbation(obj, nan_x0, none, SMARTOptions<float>{}),
                       "smart_perturbation: embeddings must be finite, got inf at [1, 2, 3]", NumericError);
  CHECK(obj.calls == calls);
}

// ---------------------------------------------------------------------------------------------------------
// Parity with PyTorch (fixtures written by tests/make_perturb_fixtures.py; run by the perturb_pytorch_parity
// ctest).


TEST_CASE("PyTorch parity: PGD (L2 per sequence, Linf per token) and FreeLB deltas and gradients within 1e-4") {
  const char* env = std::getenv("ROBUSTXLT_FIXTURES");
  if (!env || !fs::exists(fs::path(env) / "perturb.io.safetensors")) {
    MESSAGE("PyTorch fixtures not found (set ROBUSTXLT_FIXTURES); skipping");
    robustxlt_test::parity_skipped = true;
    return;
  }
  const fs::path dir(env);
  auto model = nn::load_model<float>(dir / "perturb.weights.safetensors");
  SafetensorsReader io(dir / "perturb.io.safetensors");
  nn::TokenBatch batch;
  batch.ids = io.tensor<std::int64_t, 2>("input.ids");
  batch.mask = io.tensor<std::int64_t, 2>("input.mask");
  batch.segments = io.tensor<std::int64_t, 2>("input.segments");
  const auto labels = io.tensor<std::int64_t, 1>("input.labels");
  const auto& meta = io.metadata();
  const int steps = std::stoi(meta.at("steps"));
  nn::ClassifierObjective<float> objective(model, batch, labels);

  auto run_pgd = [&](const char* key, Norm norm, Granularity gran) {
    CAPTURE(std::string(key));
    PGDOptions<float> opt;
    opt.ball = {norm, gran, std::stof(meta.at(std::string(key) + "_eps"))};
    opt.step_size = std::stof(meta.at(std::string(key) + "_alpha"));  // the reference script's name
    opt.steps = steps;
    const auto start = io.tensor<float, 3>(std::string(key) + ".start");
    auto r = pgd(objective, objective.embeddings(), batch.mask, opt, {}, &start);
    const double err = robustxlt_test::max_relative(r.delta, io.tensor<float, 3>(std::string(key) + ".delta"));
    const auto losses = io.tensor<float, 1>(std::string(key) + ".losses");
    for (int k = 0; k < steps; ++k) CHECK(r.losses[std::size_t(k)] == doctest::Approx(losses(std::size_t(k))).epsilon(1e-4));
    MESSAGE(std::string(key), ": delta after ", steps, " steps matches PyTorch, relative error ", err);
    CHECK(err <= 1e-4);
  };
  model.params().zero_grad();
  run_pgd("pgd_l2", Norm::l2, Granularity::sequence);
  run_pgd("pgd_linf", Norm::linf, Granularity::token);
  // Attack steps leave parameter gradients alone.
  CHECK(std::all_of(model.params().grads().begin(), model.params().grads().end(), [](float g) { return g == 0.0f; }));

  FreeLBOptions<float> fo;
  fo.steps = steps;
  fo.step_size = std::stof(meta.at("freelb_adv_lr"));  // the reference script's names
  fo.ball = {Norm::l2, Granularity::sequence, std::stof(meta.at("freelb_max_norm"))};
  const auto start = io.tensor<float, 3>("freelb.start");
  auto r = freelb(objective, objective.embeddings(), batch.mask, fo, {}, &start);
  const double err = robustxlt_test::max_relative(r.delta, io.tensor<float, 3>("freelb.delta"));
  CHECK(err <= 1e-4);
  double worst = 0;
  for (std::size_t i = 0; i < model.params().count(); ++i) {
    const auto& info = model.params().infos()[i];
    std::vector<float> ref(info.size);
    io.copy_to("freelb.grad." + info.name, ref.data(), info.shape);
    std::vector<float> mine(model.params().grad(i), model.params().grad(i) + info.size);
    const double e = robustxlt_test::max_relative(mine, ref);
    INFO(info.name, " accumulated gradient relative error ", e);
    CHECK(e <= 1e-4);
    worst = std::max(worst, e);
  }
  MESSAGE("freelb: delta error ", err, ", worst accumulated parameter gradient error ", worst, " over ",
          model.params().count(), " tensors");
}

TEST_CASE("fgsm_step equals one PGD step from zero") {
  const auto mask = lengths_mask(6, {6, 3, 1});
  const Tensor<float, 3> g = random_tensor(3, 6, 10, 21);
  for (Norm norm : kNorms)
    for (Granularity gran : kGrans) {
      const Ball<float> ball{norm, gran, 0.3f};
      Tensor<float, 3> a = xt::zeros<float>({3, 6, 10}), b = xt::zeros<float>({3, 6, 10});
      fgsm_step(a, g, mask, ball);
      step_and_project(b, g, mask, ball, 0.3f);
      CHECK(xt::amax(xt::abs(a - b))() <= 1e-6f);
    }
}

TEST_CASE("epsilon 0 perturbs nothing; an unbounded ball never projects") {
  const std::size_t B = 2, T = 4, D = 6;
  const auto mask = lengths_mask(T, {4, 2});
  LinearObjective obj{random_tensor(B, T, D, 31)};
  const Tensor<float, 3> x0 = random_tensor(B, T, D, 32);
  for (Norm norm : kNorms)
    for (Granularity gran : kGrans) {
      // A radius ramp starting at 0: every method runs and returns exactly zero.
      PGDOptions<float> opt;
      opt.ball = {norm, gran, 0.0f};
      opt.step_size = 0.1f;
      opt.steps = 3;
      CHECK(xt::amax(xt::abs(pgd(obj, x0, mask, opt).delta))() == 0.0f);
      opt.start = Start::uniform_ball;
      CHECK(xt::amax(xt::abs(pgd(obj, x0, mask, opt).delta))() == 0.0f);
      CHECK(xt::amax(xt::abs(fgsm(obj, x0, mask, FGSMOptions<float>{opt.ball}).delta))() == 0.0f);
      AdversarialStepOptions<float> step;
      step.attack = opt;
      const auto s = adversarial_training_step(obj, x0, mask, step);
      CHECK(xt::amax(xt::abs(s.delta))() == 0.0f);
      CHECK(s.adversarial == s.clean);  // x0 + 0 is x0
    }
  // Unbounded: the L2 step of size a from zero has norm a exactly, not clipped.
  Tensor<float, 3> delta = xt::zeros<float>({B, T, D});
  step_and_project(delta, obj.w, mask, Ball<float>::unbounded(Norm::l2, Granularity::sequence), 5.0f);
  const auto n = norms(delta, mask, Norm::l2, Granularity::sequence);
  CHECK(n(0) == doctest::Approx(5.0f));
  CHECK(n(1) == doctest::Approx(5.0f));
  Tensor<float, 3> kept = delta;
  project(kept, mask, Ball<float>::unbounded());
  CHECK(kept == delta);
  CHECK_THROWS_WITH_AS(fgsm_step(delta, obj.w, mask, Ball<float>::unbounded()),
                       "fgsm_step: epsilon must be >= 0 and finite (a bounded ball), got inf", InvalidArgument);
}

TEST_CASE("random starts are keyed by (seed, global example index, step), not by batch position") {
  const std::size_t T = 5, D = 8;
  const Tensor<std::int64_t, 2> none;
  for (Granularity gran : {Granularity::token, Granularity::sequence}) {
    const Ball<float> ball{Norm::l2, gran, 0.4f};
    // A batch of examples 10..13 at step 7, and example 12 alone: the same start for example 12.
    Tensor<float, 3> four = xt::zeros<float>({std::size_t(4), T, D}), one = xt::zeros<float>({std::size_t(1), T, D});
    uniform_ball_start(four, none, ball, 99, BatchIndex{10, 7});
    uniform_ball_start(one, none, ball, 99, BatchIndex{12, 7});
    CHECK(Tensor<float, 2>(xt::view(four, 2)) == Tensor<float, 2>(xt::view(one, 0)));
    // Another step or another seed: another start.
    Tensor<float, 3> next = xt::zeros<float>({std::size_t(1), T, D}), reseeded = xt::zeros<float>({std::size_t(1), T, D});
    uniform_ball_start(next, none, ball, 99, BatchIndex{12, 8});
    uniform_ball_start(reseeded, none, ball, 100, BatchIndex{12, 7});
    CHECK(xt::amax(xt::abs(next - one))() > 0.0f);
    CHECK(xt::amax(xt::abs(reseeded - one))() > 0.0f);
  }
  Tensor<float, 3> g4 = xt::zeros<float>({std::size_t(4), T, D}), g1 = xt::zeros<float>({std::size_t(1), T, D});
  gaussian_start(g4, none, 1.0f, 5, BatchIndex{0, 3});
  gaussian_start(g1, none, 1.0f, 5, BatchIndex{3, 3});
  CHECK(Tensor<float, 2>(xt::view(g4, 3)) == Tensor<float, 2>(xt::view(g1, 0)));
  // Through a method: PGD with a random start on a batch equals PGD on its examples one at a time.
  LinearObjective obj{random_tensor(2, T, D, 41)};
  const Tensor<float, 3> x0 = random_tensor(2, T, D, 42);
  PGDOptions<float> opt;
  opt.ball = {Norm::linf, Granularity::token, 0.2f};
  opt.step_size = 0.05f;
  opt.steps = 2;
  opt.start = Start::uniform_ball;
  opt.seed = 3;
  const auto both = pgd(obj, x0, none, opt, BatchIndex{20, 4});
  LinearObjective second{Tensor<float, 3>(xt::view(obj.w, xt::range(1, 2)))};
  const auto alone = pgd(second, Tensor<float, 3>(xt::view(x0, xt::range(1, 2))), none, opt, BatchIndex{21, 4});
  CHECK(Tensor<float, 2>(xt::view(both.delta, 1)) == Tensor<float, 2>(xt::view(alone.delta, 0)));
}

TEST_CASE("a parsed TokenMask is accepted by every kernel, and bool and uint8 masks are masks") {
  const std::size_t B = 2, T = 3, D = 4;
  const Tensor<bool, 2> as_bool = {{true, true, false}, {true, false, false}};
  const Tensor<std::uint8_t, 2> as_u8 = {{1, 1, 0}, {1, 0, 0}};
  const TokenMask parsed = TokenMask::from(as_u8, B, T, "test");
  CHECK(parsed.all_tokens() == std::vector<std::size_t>{0, 1, 3});
  const Tensor<float, 3> g = random_tensor(B, T, D, 51);
  Tensor<float, 3> a = xt::zeros<float>({B, T, D}), b = a, c = a;
  const Ball<float> ball{Norm::l2, Granularity::sequence, 0.5f};
  step_and_project(a, g, as_bool, ball, 0.3f);
  step_and_project(b, g, as_u8, ball, 0.3f);
  step_and_project(c, g, parsed, ball, 0.3f);
  CHECK(a == b);
  CHECK(a == c);
  CHECK(xt::amax(xt::abs(xt::view(a, 1, xt::range(1, 3), xt::all())))() == 0.0f);
  CHECK_THROWS_WITH_AS(step_and_project(c, g, TokenMask(B, T + 1), ball, 0.3f),
                       "step_and_project: mask must have shape [2, 3], got [2, 4]", ShapeError);
}
