// Tests of core/: SIMD kernels against scalar formulas, safetensors and atomic files. Random streams and the
// normal generator are in test_random.cpp, which is built once per instruction set.
#include "test_support.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/stat.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <robustxlt/core.hpp>
#include <robustxlt/core/safetensors.hpp>
#include <robustxlt/nn/row_kernels.hpp>  // the transformer's row kernels, checked here with the core kernels
#include <robustxlt/version.hpp>
#include <set>
#include <vector>

namespace fs = std::filesystem;
using namespace robustxlt;

namespace {
fs::path temp_dir(const char* name) {
  fs::path p = fs::temp_directory_path() / (std::string("robustxlt_test_core_") + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}
}  // namespace

TEST_CASE("version macros agree") {
  CHECK(ROBUSTXLT_VERSION == ROBUSTXLT_VERSION_MAJOR * 10000 + ROBUSTXLT_VERSION_MINOR * 100 + ROBUSTXLT_VERSION_PATCH);
  CHECK(std::string(version_string) ==
        std::to_string(version_major) + "." + std::to_string(version_minor) + "." + std::to_string(version_patch));
}

TEST_CASE_TEMPLATE("simd kernels match scalar formulas", T, float, double) {
  const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-14;
  for (std::size_t n : {1u, 3u, 16u, 37u, 100u}) {
    std::vector<T> x(n), y(n), w(n), b(n), out(n), dout(n), dx(n, T(0));
    Rng rng(n);
    for (std::size_t i = 0; i < n; ++i) {
      x[i] = T(4) * rng.uniform<T>() - T(2);
      y[i] = rng.normal<T>();
      w[i] = rng.normal<T>();
      b[i] = rng.normal<T>();
      dout[i] = rng.normal<T>();
    }
    double ref_dot = 0, ref_sum = 0, ref_max = -1e300;
    for (std::size_t i = 0; i < n; ++i) {
      ref_dot += double(x[i]) * y[i];
      ref_sum += x[i];
      ref_max = std::max(ref_max, double(x[i]));
    }
    CHECK(simd::dot(n, x.data(), y.data()) == doctest::Approx(ref_dot).epsilon(tol * 10));
    CHECK(simd::sum(n, x.data()) == doctest::Approx(ref_sum).epsilon(tol * 10));
    CHECK(double(simd::max(n, x.data())) == ref_max);

    nn::kernels::gelu_forward(n, x.data(), out.data());
    for (std::size_t i = 0; i < n; ++i) {
      const double g = 0.5 * x[i] * (1 + std::erf(x[i] / std::sqrt(2.0)));
      CHECK(double(out[i]) == doctest::Approx(g).epsilon(tol * 5).scale(1));
    }
    nn::kernels::gelu_backward(n, x.data(), dout.data(), dx.data());
    for (std::size_t i = 0; i < n; ++i) {
      const double xi = x[i];
      const double d = 0.5 * (1 + std::erf(xi / std::sqrt(2.0))) + xi * std::exp(-0.5 * xi * xi) / std::sqrt(2 * M_PI);
      CHECK(double(dx[i]) == doctest::Approx(dout[i] * d).epsilon(tol * 5).scale(1));
    }

    std::vector<T> sm = x;
    simd::softmax_inplace(n, sm.data());
    double z = 0;
    for (std::size_t i = 0; i < n; ++i) z += std::exp(double(x[i]) - ref_max);
    for (std::size_t i = 0; i < n; ++i) CHECK(double(sm[i]) == doctest::Approx(std::exp(x[i] - ref_max) / z).epsilon(tol * 5));

    T mean = 0, rstd = 0;
    nn::kernels::layer_norm_row(n, x.data(), w.data(), b.data(), T(1e-5), out.data(), mean, rstd);
    double m = ref_sum / n, var = 0;
    for (std::size_t i = 0; i < n; ++i) var += (x[i] - m) * (x[i] - m);
    var /= n;
    CHECK(double(mean) == doctest::Approx(m).epsilon(tol * 10).scale(1));
    CHECK(double(rstd) == doctest::Approx(1 / std::sqrt(var + 1e-5)).epsilon(tol * 10));
    for (std::size_t i = 0; i < n; ++i)
      CHECK(double(out[i]) == doctest::Approx((x[i] - m) / std::sqrt(var + 1e-5) * w[i] + b[i]).epsilon(tol * 20).scale(1));
  }
}

TEST_CASE("simd: masked and degenerate rows stay finite") {
  const float ninf = -std::numeric_limits<float>::infinity();
  std::vector<float> row = {ninf, 1.0f, ninf, 1.0f};
  simd::softmax_inplace(row.size(), row.data());
  CHECK(row == std::vector<float>{0.0f, 0.5f, 0.0f, 0.5f});
  std::vector<float> all_masked(5, ninf);
  simd::softmax_inplace(all_masked.size(), all_masked.data());
  CHECK(all_masked == std::vector<float>(5, 0.0f));
  std::vector<float> big = {1e4f, -1e4f, 1e4f};
  simd::softmax_inplace(big.size(), big.data());
  CHECK(big == std::vector<float>{0.5f, 0.0f, 0.5f});
  // A constant row has zero variance: layer norm gives the bias, not NaN.
  std::vector<float> c(9, 3.0f), w(9, 2.0f), b(9, 0.25f), out(9);
  float mean, rstd;
  nn::kernels::layer_norm_row(9, c.data(), w.data(), b.data(), 1e-5f, out.data(), mean, rstd);
  CHECK(out == std::vector<float>(9, 0.25f));
  std::vector<double> v = {1.0, 2.0, std::nan(""), 4.0};
  CHECK_FALSE(simd::all_finite(v.size(), v.data()));
  v[2] = 3.0;
  CHECK(simd::all_finite(v.size(), v.data()));
}

TEST_CASE("parallel settings") {
  CHECK_THROWS_WITH_AS(set_num_threads(0), "set_num_threads: n must be >= 1, got 0", InvalidArgument);
  set_num_threads(2);
  CHECK(num_threads() == 2);
  std::vector<int> hits(1000, 0);
  parallel_for(0, 1000, [&](std::ptrdiff_t i) { hits[static_cast<std::size_t>(i)] += 1; });
  CHECK(std::count(hits.begin(), hits.end(), 1) == 1000);
  set_num_threads(1);
}

TEST_CASE("atomic file writes") {
  const fs::path dir = temp_dir("atomic");
  const fs::path f = dir / "a.bin";
  write_file_atomic(f, "first");
  write_file_atomic(f, "second version");
  CHECK(read_file(f) == "second version");
  // Only the target remains: no temporary file is left behind.
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}) == 1);
  CHECK_THROWS_AS(write_file_atomic(dir / "missing" / "x.bin", "data"), IoError);
  CHECK_THROWS_WITH_AS(read_file(dir / "nope.bin"), doctest::Contains("nope.bin"), IoError);
  // A path that is not a regular file is refused, not replaced by the rename.
  const fs::path sub = dir / "sub";
  fs::create_directory(sub);
  CHECK_THROWS_WITH_AS(write_file_atomic(sub, "x"), doctest::Contains("is not a regular file"), IoError);
  CHECK(fs::is_directory(sub));
#if defined(__unix__) || defined(__APPLE__)
  const fs::path fifo = dir / "pipe";
  REQUIRE(::mkfifo(fifo.string().c_str(), 0600) == 0);
  CHECK_THROWS_WITH_AS(write_file_atomic(fifo, "x"), doctest::Contains("pipe' exists and is not a regular file"), IoError);
  CHECK(fs::is_fifo(fs::status(fifo)));
#endif
  fs::remove_all(dir);
}

TEST_CASE("safetensors: round trip and byte layout") {
  SafetensorsWriter w;
  Tensor<float, 2> a = {{1.0f, 2.0f, 3.0f}, {4.0f, 5.0f, 6.0f}};
  Tensor<std::int64_t, 1> ids = {7, -8, 9};
  Tensor<double, 1> empty = Tensor<double, 1>::from_shape({0});
  w.add("a", a);
  w.add("ids", ids);
  w.add("empty", empty);
  w.set_metadata("k", "v");
  const std::string img = w.serialize();
  std::uint64_t n;
  std::memcpy(&n, img.data(), 8);
  CHECK((8 + n) % 8 == 0);
  CHECK(img.size() == 8 + n + 6 * 4 + 3 * 8);
  // The data section is raw little-endian: the first float is 1.0f.
  float first;
  std::memcpy(&first, img.data() + 8 + n, 4);
  CHECK(first == 1.0f);

  SafetensorsReader r(img, "mem");
  CHECK(r.metadata().at("k") == "v");
  CHECK(r.tensor<float, 2>("a") == a);
  CHECK(r.tensor<std::int64_t, 1>("ids") == ids);
  CHECK(r.tensor<double, 1>("empty").size() == 0);
  CHECK_THROWS_WITH_AS((r.tensor<double, 2>("a")), doctest::Contains("expected dtype F64, got F32"), FormatError);
  CHECK_THROWS_WITH_AS((r.tensor<float, 1>("a")), doctest::Contains("expected rank 1"), FormatError);
  CHECK_THROWS_WITH_AS(r.record("b"), doctest::Contains("missing tensor 'b'"), FormatError);
  CHECK_THROWS_WITH_AS(w.add("a", a), doctest::Contains("duplicate tensor name 'a'"), InvalidArgument);

  const fs::path dir = temp_dir("st");
  w.write(dir / "x.safetensors");
  CHECK(SafetensorsReader(dir / "x.safetensors").tensor<float, 2>("a") == a);
  fs::remove_all(dir);
}

TEST_CASE("safetensors: malformed files raise FormatError naming the problem") {
  auto image = [](const std::string& header, const std::string& data) {
    std::string out(8, '\0');
    const std::uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    return out + header + data;
  };
  const std::string four_bytes(4, '\0');
  CHECK_THROWS_WITH_AS(SafetensorsReader(std::string("abc"), "f"), doctest::Contains("truncated: expected at least 8 bytes, got 3"), FormatError);
  {
    std::string img = image("{}", "");
    img[0] = 100;  // header length 100, only 2 bytes follow
    CHECK_THROWS_WITH_AS(SafetensorsReader(img, "f"), doctest::Contains("header length 100 exceeds"), FormatError);
  }
  CHECK_THROWS_WITH_AS(SafetensorsReader(image("{not json", ""), "f"), doctest::Contains("bad JSON header"), FormatError);
  CHECK_THROWS_WITH_AS(SafetensorsReader(image("[1]", ""), "f"), doctest::Contains("must be a JSON object"), FormatError);
  CHECK_THROWS_WITH_AS(
      SafetensorsReader(image(R"({"t":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", four_bytes), "f"),
      doctest::Contains("tensor 't': unknown dtype 'F99'"), FormatError);
  CHECK_THROWS_WITH_AS(
      SafetensorsReader(image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", four_bytes), "f"),
      doctest::Contains("tensor 't': shape [2] of F32 needs 8 bytes, data_offsets span 4"), FormatError);
  CHECK_THROWS_WITH_AS(
      SafetensorsReader(image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", four_bytes), "f"),
      doctest::Contains("outside the data section"), FormatError);
  CHECK_THROWS_WITH_AS(
      SafetensorsReader(image(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four_bytes), "f"),
      doctest::Contains("non-negative integers"), FormatError);
  CHECK_THROWS_WITH_AS(SafetensorsReader(image(R"({"__metadata__":{"a":1}})", ""), "f"),
                       doctest::Contains("__metadata__ value of 'a' must be a string"), FormatError);
  CHECK_THROWS_WITH_AS(SafetensorsReader(image(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", four_bytes), "f"),
                       doctest::Contains("missing string field 'dtype'"), FormatError);
  CHECK_NOTHROW(SafetensorsReader(image(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", four_bytes), "f"));
}

// ---------------------------------------------------------------------------------------------------------
// Numerical robustness: extreme, degenerate and denormal inputs.

namespace {
// Softmax in long double, shifted by the maximum: the reference for rows with huge logits.
std::vector<long double> reference_softmax(const std::vector<double>& x) {
  const long double m = *std::max_element(x.begin(), x.end());
  long double s = 0;
  std::vector<long double> p(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) s += p[i] = std::exp(static_cast<long double>(x[i]) - m);
  for (auto& v : p) v /= s;
  return p;
}
}  // namespace

TEST_CASE_TEMPLATE("softmax_inplace: logits of +-1e4 give the exact probabilities, no NaN or Inf", T, float, double) {
  // Lengths below, at and above the SIMD width, so both the vector loop and the scalar tail see the extremes.
  for (std::size_t n : {2u, 3u, 8u, 17u, 64u}) {
    CAPTURE(n);
    std::vector<double> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = (i % 3 == 0) ? 1e4 : (i % 3 == 1 ? -1e4 : 1e4 - 2.0 * double(i % 5));
    std::vector<T> row(x.begin(), x.end());
    simd::softmax_inplace(n, row.data());
    const auto ref = reference_softmax(x);
    double total = 0;
    for (std::size_t i = 0; i < n; ++i) {
      REQUIRE(std::isfinite(row[i]));
      CHECK(double(row[i]) == doctest::Approx(double(ref[i])).epsilon(1e-5).scale(1e-30));
      total += double(row[i]);
    }
    CHECK(total == doctest::Approx(1.0).epsilon(1e-5));
  }
  // Every logit at -1e4: uniform, not 0/0.
  std::vector<T> low(5, T(-1e4));
  simd::softmax_inplace(low.size(), low.data());
  for (T v : low) CHECK(double(v) == doctest::Approx(0.2).epsilon(1e-6));
  // Two logits 50 apart at 1e4: 1 / (1 + e^-50) and its complement, which is far below float's epsilon.
  std::vector<T> gap = {T(1e4), T(1e4 - 50)};
  simd::softmax_inplace(2, gap.data());
  CHECK(double(gap[0]) == doctest::Approx(1.0));
  CHECK(double(gap[1]) == doctest::Approx(std::exp(-50.0)).epsilon(1e-4));
}

TEST_CASE_TEMPLATE("layer norm of a constant row: output is beta, gradients finite and equal to hand values", T, float, double) {
  const std::size_t d = 11;  // past one SIMD width and into the scalar tail
  const T eps = T(1e-5);
  std::vector<T> w(d), b(d), dout(d);
  for (std::size_t i = 0; i < d; ++i) {
    w[i] = T(0.5) + T(0.25) * T(i);
    b[i] = T(-1) + T(0.125) * T(i);
    dout[i] = T(0.3) * T(i % 4) - T(0.4);
  }
  for (T c : {T(3), T(-1024), T(0)}) {
    CAPTURE(double(c));
    std::vector<T> x(d, c), out(d);
    T mean, rstd;
    nn::kernels::layer_norm_row(d, x.data(), w.data(), b.data(), eps, out.data(), mean, rstd);
    CHECK(out == b);  // exactly: x - mean is exactly 0 for these constants
    CHECK(mean == c);
    CHECK(double(rstd) == doctest::Approx(1.0 / std::sqrt(double(eps))).epsilon(1e-6));
    // xhat = 0, so dx = rstd (g - mean(g)) with g = dout * w, dw = dout * xhat = 0 and db = dout.
    std::vector<T> dx(d, T(0)), dw(d, T(0)), db(d, T(0));
    nn::kernels::layer_norm_row_backward_input(d, x.data(), w.data(), dout.data(), mean, rstd, dx.data());
    nn::kernels::layer_norm_row_backward_params(d, x.data(), dout.data(), mean, rstd, dw.data(), db.data());
    double gmean = 0;
    for (std::size_t i = 0; i < d; ++i) gmean += double(dout[i]) * double(w[i]) / double(d);
    for (std::size_t i = 0; i < d; ++i) {
      REQUIRE(std::isfinite(dx[i]));
      CHECK(double(dx[i]) == doctest::Approx(double(rstd) * (double(dout[i]) * double(w[i]) - gmean)).epsilon(1e-5).scale(1e-3));
      CHECK(dw[i] == T(0));
      CHECK(db[i] == dout[i]);
    }
  }
  // A constant that float cannot hold exactly: the mean is off by rounding, the output stays within
  // rounding of beta rather than blowing up by 1/sqrt(eps).
  std::vector<T> x(d, T(0.1)), out(d);
  T mean, rstd;
  nn::kernels::layer_norm_row(d, x.data(), w.data(), b.data(), eps, out.data(), mean, rstd);
  for (std::size_t i = 0; i < d; ++i) CHECK(std::abs(double(out[i]) - double(b[i])) < 1e-4);
}

TEST_CASE("layer norm of a constant row: input gradient matches central differences (double)") {
  const std::size_t d = 7;
  const double eps = 1e-5;
  std::vector<double> x(d, 2.5), w(d), b(d, 0.1), r(d), out(d), dx(d, 0.0);
  for (std::size_t i = 0; i < d; ++i) {
    w[i] = 1.0 + 0.1 * double(i);
    r[i] = std::sin(double(i) + 0.5);
  }
  auto f = [&] {
    double m, s;
    nn::kernels::layer_norm_row(d, x.data(), w.data(), b.data(), eps, out.data(), m, s);
    double acc = 0;
    for (std::size_t i = 0; i < d; ++i) acc += out[i] * r[i];
    return acc;
  };
  double mean, rstd;
  nn::kernels::layer_norm_row(d, x.data(), w.data(), b.data(), eps, out.data(), mean, rstd);
  nn::kernels::layer_norm_row_backward_input(d, x.data(), w.data(), r.data(), mean, rstd, dx.data());
  // h far below sqrt(eps): the perturbed row's variance stays much smaller than eps, so f is smooth there.
  const double h = 1e-7;
  for (std::size_t i = 0; i < d; ++i) {
    const double old = x[i];
    x[i] = old + h;
    const double fp = f();
    x[i] = old - h;
    const double fm = f();
    x[i] = old;
    CHECK(dx[i] == doctest::Approx((fp - fm) / (2 * h)).epsilon(1e-5));
  }
}

TEST_CASE_TEMPLATE("denormal inputs: softmax, layer norm, GELU and reductions stay finite and correct", T, float, double) {
  const T tiny = std::numeric_limits<T>::denorm_min();
  const T sub = std::numeric_limits<T>::min() / T(8);  // a subnormal well above denorm_min
  REQUIRE(std::fpclassify(sub) == FP_SUBNORMAL);
  const std::size_t n = 19;
  std::vector<T> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = (i % 2 ? sub : tiny) * T(i % 5);
  // Softmax: logits that differ by subnormals are equal for all practical purposes: uniform.
  std::vector<T> p = x;
  simd::softmax_inplace(n, p.data());
  for (T v : p) CHECK(double(v) == doctest::Approx(1.0 / double(n)).epsilon(1e-6));
  // Sums, dots and the max see the subnormals exactly as the scalar loop does.
  double s = 0;
  for (T v : x) s += double(v);
  CHECK(double(simd::sum(n, x.data())) == doctest::Approx(s).epsilon(1e-6));
  CHECK(simd::max(n, x.data()) == *std::max_element(x.begin(), x.end()));
  CHECK(simd::all_finite(n, x.data()));
  // Layer norm: the variance underflows far below eps, so the output is beta to within rounding and the
  // gradients are finite; backward still equals rstd (g - mean(g)) since xhat is negligible.
  std::vector<T> w(n, T(1.5)), b(n, T(0.25)), out(n), g(n, T(1)), dx(n, T(0)), dw(n, T(0)), db(n, T(0));
  g[3] = T(-2);
  T mean, rstd;
  nn::kernels::layer_norm_row(n, x.data(), w.data(), b.data(), T(1e-5), out.data(), mean, rstd);
  nn::kernels::layer_norm_row_backward_input(n, x.data(), w.data(), g.data(), mean, rstd, dx.data());
  nn::kernels::layer_norm_row_backward_params(n, x.data(), g.data(), mean, rstd, dw.data(), db.data());
  double gm = 0;
  for (std::size_t i = 0; i < n; ++i) gm += 1.5 * double(g[i]) / double(n);
  for (std::size_t i = 0; i < n; ++i) {
    CHECK(double(out[i]) == doctest::Approx(0.25).epsilon(1e-6));
    REQUIRE(std::isfinite(dx[i]));
    CHECK(double(dx[i]) == doctest::Approx(double(rstd) * (1.5 * double(g[i]) - gm)).epsilon(1e-5));
    CHECK(std::abs(double(dw[i])) < 1e-20);
    CHECK(db[i] == g[i]);
  }
  // GELU(x) = x Phi(x) ~ x / 2 near 0, GELU'(0) = 1/2: both finite, the output subnormal or zero.
  std::vector<T> y(n), dy(n, T(0)), ones(n, T(1));
  nn::kernels::gelu_forward(n, x.data(), y.data());
  nn::kernels::gelu_backward(n, x.data(), ones.data(), dy.data());
  for (std::size_t i = 0; i < n; ++i) {
    REQUIRE(std::isfinite(y[i]));
    CHECK(std::abs(double(y[i]) - 0.5 * double(x[i])) <= double(sub));
    CHECK(double(dy[i]) == doctest::Approx(0.5).epsilon(1e-6));
  }
}

TEST_CASE("safetensors regression: an empty tensor whose other extents overflow a signed stride is rejected") {
  // Found while writing fuzz_safetensors (its corpus keeps the input as regression_empty_shape_overflow):
  // numel is 0, so the size checks passed, but extracting the tensor multiplied 2^40 * 2^40 in xtensor's
  // signed strides.
  const std::string header = R"({"t": {"dtype": "F32", "shape": [0, 1099511627776, 1099511627776], "data_offsets": [0, 0]}})";
  std::string img(8, '\0');
  const std::uint64_t n = header.size();
  std::memcpy(img.data(), &n, 8);
  img += header;
  CHECK_THROWS_WITH_AS(SafetensorsReader(img, "f"),
                       "safetensors 'f': tensor 't': shape [0,1099511627776,1099511627776] overflows (the product of its "
                       "extents exceeds 9223372036854775807)",
                       FormatError);
  // Empty tensors with modest extents still load.
  const std::string ok = R"({"t": {"dtype": "F32", "shape": [0, 3, 5], "data_offsets": [0, 0]}})";
  std::string img2(8, '\0');
  const std::uint64_t n2 = ok.size();
  std::memcpy(img2.data(), &n2, 8);
  img2 += ok;
  const SafetensorsReader r(img2, "f");
  CHECK(r.tensor<float, 3>("t").size() == 0);
  CHECK(r.tensor<float, 3>("t").shape()[2] == 5);
}

TEST_CASE("test support: max_relative compares shapes before values") {
  const Tensor<float, 2> a = xt::zeros<float>({2, 3}), b = xt::zeros<float>({3, 2});
  CHECK_THROWS_WITH_AS(robustxlt_test::max_relative(a, b), "max_relative: shapes differ, [2, 3] against [3, 2]",
                       std::invalid_argument);
  const std::vector<float> shorter(5, 0.0f);
  CHECK_THROWS_AS(robustxlt_test::max_relative(shorter, a), std::invalid_argument);
  const Tensor<float, 2> c = {{1, 2, 4}, {0, 0, 0}}, d = {{1, 2, 3}, {0, 0, 0}};
  CHECK(robustxlt_test::max_relative(c, d) == doctest::Approx(1.0 / 3));
}

TEST_CASE("public error helpers: robustxlt::require and robustxlt::fail") {
  CHECK_NOTHROW(require(true, "never"));
  CHECK_THROWS_WITH_AS(require(1 > 2, "loop: copies must be > 0, got ", 0), "loop: copies must be > 0, got 0", InvalidArgument);
  CHECK_THROWS_WITH_AS(require<FormatError>(false, "data 'x' line ", 3, ": no tab"), "data 'x' line 3: no tab", FormatError);
  CHECK_THROWS_WITH_AS(robustxlt::fail<LookupError>("'", "w", "' unknown"), "'w' unknown", LookupError);
  CHECK_THROWS_AS(robustxlt::fail<LookupError>("x"), InvalidArgument);  // LookupError is an InvalidArgument
}

TEST_CASE("safetensors headers: the JSON reader's escapes, strictness and writer round trip") {
  using detail::json::Parser;
  // Escapes decode to UTF-8: é is C3 A9, U+1F600 (the pair D83D DE00) is F0 9F 98 80.
  const auto v = Parser(R"( {"caf\u00e9 \ud83d\ude00": [0, 18446744073709551615, -1, 2.5e3, "\"\\\/\b\f\n\r\t", true, null]} )").parse();
  REQUIRE(v.is_object());
  REQUIRE(v.members.size() == 1);
  CHECK(v.members[0].first == "caf\xC3\xA9 \xF0\x9F\x98\x80");
  const auto& items = v.members[0].second.items;
  REQUIRE(items.size() == 7);
  std::size_t n = 0;
  CHECK((items[0].as_size(n) && n == 0));
  CHECK((items[1].as_size(n) && n == 18446744073709551615ull));
  CHECK_FALSE(items[2].as_size(n));  // negative
  CHECK_FALSE(items[3].as_size(n));  // not an integer literal
  CHECK(items[4].text == "\"\\/\b\f\n\r\t");
  CHECK(items[5].type_name() == std::string("boolean"));
  CHECK(items[6].type_name() == std::string("null"));
  CHECK_FALSE(Parser("18446744073709551616").parse().as_size(n));  // one past 2^64 - 1
  // What the grammar refuses, each with the byte where it stopped.
  for (const char* bad : {"{\"a\":1,\"a\":2}", "[1,]", "{\"a\" 1}", "\"\\ud800\"", "\"\\udc00\"", "01", "1 2", "-", "1.",
                          "tru", "\"a\nb\"", "\"\\x\"", "\"\xC0\xAF\"", "\"\xED\xA0\x80\"", "{", "[\"a\"", "\"\\u12\""}) {
    CAPTURE(std::string(bad));
    CHECK_THROWS_WITH_AS(Parser(bad).parse(), doctest::Contains("at byte "), FormatError);
  }
  CHECK_THROWS_WITH_AS(Parser(std::string(65, '[') + std::string(65, ']')).parse(), doctest::Contains("nesting deeper than 64"),
                       FormatError);
  CHECK_NOTHROW(Parser(std::string(63, '[') + std::string(63, ']')).parse());
  // Names and metadata that need escaping survive the writer and the reader.
  SafetensorsWriter w;
  const float x[2] = {1.0f, 2.0f};
  w.add("caf\xC3\xA9 \"q\"\\", x, {2});
  w.set_metadata("line\nbreak", "tab\there \x01");
  const SafetensorsReader r(w.serialize(), "mem");
  CHECK(r.tensor<float, 1>("caf\xC3\xA9 \"q\"\\") == Tensor<float, 1>{1.0f, 2.0f});
  CHECK(r.metadata().at("line\nbreak") == "tab\there \x01");
  // A header with a duplicate tensor name is malformed, not silently the later entry.
  auto image = [](const std::string& header) {
    std::string out(8, '\0');
    const std::uint64_t len = header.size();
    std::memcpy(out.data(), &len, 8);
    return out + header + std::string(4, '\0');
  };
  CHECK_THROWS_WITH_AS(
      SafetensorsReader(image(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})"), "f"),
      doctest::Contains("bad JSON header: at byte"), FormatError);
}
