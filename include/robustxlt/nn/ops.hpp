#pragma once
// Layer operations as forward/backward pairs over raw row-major buffers. Each forward keeps exactly what
// its backward needs; every backward accumulates (+=) into its gradient outputs, so gradients of shared
// inputs add up without extra buffers. Shapes are written beside each argument; N = B * T rows.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "robustxlt/core/parallel.hpp"
#include "robustxlt/core/random.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"
#include "robustxlt/nn/row_kernels.hpp"

namespace robustxlt::nn {

// Rows per parallel task for row-wise kernels: large enough to amortise the fork, small enough to balance.
inline constexpr std::ptrdiff_t rows_per_task = 64;

template <class Fn>
void parallel_rows(std::size_t n, Fn&& fn) {
  const auto tasks = static_cast<std::ptrdiff_t>((n + rows_per_task - 1) / rows_per_task);
  parallel_for(0, tasks, [&](std::ptrdiff_t task) {
    const std::size_t r0 = static_cast<std::size_t>(task) * rows_per_task;
    const std::size_t r1 = std::min(n, r0 + rows_per_task);
    for (std::size_t r = r0; r < r1; ++r) fn(r);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Linear: out = in W^T + b (PyTorch nn.Linear layout: W is [O, I]).

template <class T>
void linear_forward(T* out,       // [N, O]
                    const T* in,  // [N, I]
                    const T* w,   // [O, I]
                    const T* b,   // [O] or nullptr
                    std::size_t n, std::size_t in_dim, std::size_t out_dim) {
  detail::sync_eigen_threads();
  MatrixMap<T> o(out, static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(out_dim));
  ConstMatrixMap<T> x(in, static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(in_dim));
  ConstMatrixMap<T> W(w, static_cast<Eigen::Index>(out_dim), static_cast<Eigen::Index>(in_dim));
  if (b) {
    // Start from the bias and accumulate the product: one pass over out instead of zero-fill plus bias pass.
    parallel_rows(n, [&](std::size_t r) { std::copy_n(b, out_dim, out + r * out_dim); });
    o.noalias() += x * W.transpose();
  } else {
    o.noalias() = x * W.transpose();
  }
}

// Column sums accumulated into acc: acc[c] += sum_r m[r, c]. Split by column blocks, each summed over the
// rows in a fixed order, so the result does not depend on the thread count.
template <class T>
void add_column_sums(T* acc, const T* m, std::size_t rows, std::size_t cols) {
  constexpr std::size_t block = 64;
  parallel_rows((cols + block - 1) / block, [&](std::size_t k) {
    const std::size_t c0 = k * block, len = std::min(block, cols - c0);
    for (std::size_t r = 0; r < rows; ++r) simd::add_inplace(len, m + r * cols + c0, acc + c0);
  });
}

// din += dout W (skipped when din is null; overwritten instead of accumulated when overwrite_din),
// dw += dout^T in (skipped when dw is null), db += column sums of dout (skipped when db is null).
template <class T>
void linear_backward(T* din,         // [N, I] or nullptr
                     T* dw,          // [O, I] or nullptr
                     T* db,          // [O] or nullptr
                     const T* dout,  // [N, O]
                     const T* in,    // [N, I]
                     const T* w,     // [O, I]
                     std::size_t n, std::size_t in_dim, std::size_t out_dim, bool overwrite_din = false) {
  detail::sync_eigen_threads();
  const auto N = static_cast<Eigen::Index>(n), I = static_cast<Eigen::Index>(in_dim),
             O = static_cast<Eigen::Index>(out_dim);
  ConstMatrixMap<T> g(dout, N, O);
  ConstMatrixMap<T> x(in, N, I);
  ConstMatrixMap<T> W(w, O, I);
  if (din) {
    MatrixMap<T> dx(din, N, I);
    if (overwrite_din) dx.noalias() = g * W;
    else dx.noalias() += g * W;
  }
  if (dw) {
    MatrixMap<T> dW(dw, O, I);
    dW.noalias() += g.transpose() * x;
  }
  if (db) add_column_sums(db, dout, n, out_dim);
}

// ---------------------------------------------------------------------------------------------------------
// Layer norm over the last dimension, biased variance (as PyTorch).

template <class T>
void layer_norm_forward(T* out,       // [N, D]
                        T* mean,      // [N]
                        T* rstd,      // [N]
                        const T* in,  // [N, D]
                        const T* w,   // [D]
                        const T* b,   // [D]
                        std::size_t n, std::size_t d, T eps) {
  parallel_rows(n, [&](std::size_t r) { kernels::layer_norm_row(d, in + r * d, w, b, eps, out + r * d, mean[r], rstd[r]); });
}

template <class T>
void layer_norm_backward(T* din,         // [N, D], accumulated (overwritten when overwrite_din)
                         T* dw,          // [D], accumulated; nullptr skips the parameter gradients
                         T* db,          // [D], accumulated; nullptr skips the parameter gradients
                         const T* dout,  // [N, D]
                         const T* in,    // [N, D]
                         const T* w,     // [D]
                         const T* mean,  // [N]
                         const T* rstd,  // [N]
                         std::size_t n, std::size_t d, bool overwrite_din = false) {
  parallel_rows(n, [&](std::size_t r) {
    if (overwrite_din) std::fill_n(din + r * d, d, T(0));
    kernels::layer_norm_row_backward_input(d, in + r * d, w, dout + r * d, mean[r], rstd[r], din + r * d);
  });
  if (!dw || !db) return;
  // Parameter gradients by column blocks, rows in a fixed order: thread-count independent.
  constexpr std::size_t block = 64;
  parallel_rows((d + block - 1) / block, [&](std::size_t k) {
    const std::size_t c0 = k * block, len = std::min(block, d - c0);
    for (std::size_t r = 0; r < n; ++r)
      kernels::layer_norm_row_backward_params(len, in + r * d + c0, dout + r * d + c0, mean[r], rstd[r], dw + c0, db + c0);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Exact GELU.

template <class T>
void gelu_forward(T* out, const T* in, std::size_t n) {  // [n], out may alias in
  constexpr std::size_t chunk = 4096;
  parallel_rows((n + chunk - 1) / chunk, [&](std::size_t c) {
    const std::size_t i0 = c * chunk, len = std::min(chunk, n - i0);
    kernels::gelu_forward(len, in + i0, out + i0);
  });
}

template <class T>
void gelu_backward(T* din, const T* in, const T* dout, std::size_t n,
                   bool overwrite_din = false) {  // [n], din accumulated (or overwritten)
  constexpr std::size_t chunk = 4096;
  parallel_rows((n + chunk - 1) / chunk, [&](std::size_t c) {
    const std::size_t i0 = c * chunk, len = std::min(chunk, n - i0);
    if (overwrite_din) std::fill_n(din + i0, len, T(0));
    kernels::gelu_backward(len, in + i0, dout + i0, din + i0);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Inverted dropout: keep with probability 1 - p and scale by 1 / (1 - p). The mask is drawn from streams
// keyed by (seed, site, chunk index), so it does not depend on the thread count.

inline constexpr std::size_t dropout_chunk = 1024;

// Chunk c of a dropout mask over n elements: 0 with probability p, 1 / (1 - p) otherwise.
template <class T>
void dropout_mask_chunk(T* mask, std::size_t c, std::size_t n, T p, std::uint64_t seed, std::uint64_t site) {
  const T keep_scale = T(1) / (T(1) - p);
  Rng rng(seed, site, c);
  const std::size_t i0 = c * dropout_chunk, i1 = std::min(n, i0 + dropout_chunk);
  for (std::size_t i = i0; i < i1; ++i) mask[i] = rng.uniform<T>() < p ? T(0) : keep_scale;
}

// The mask alone (for the attention weights, which are dropped after the softmax the backward needs):
// the same values dropout_forward would draw at this seed and site.
template <class T>
void fill_dropout_mask(T* mask,  // [n], written: 0 or 1 / (1 - p)
                       std::size_t n, T p, std::uint64_t seed, std::uint64_t site) {
  parallel_rows((n + dropout_chunk - 1) / dropout_chunk,
                [&](std::size_t c) { dropout_mask_chunk(mask, c, n, p, seed, site); });
}

template <class T>
void dropout_forward(T* x,     // [n], in place
                     T* mask,  // [n], written: 0 or 1 / (1 - p)
                     std::size_t n, T p, std::uint64_t seed, std::uint64_t site) {
  parallel_rows((n + dropout_chunk - 1) / dropout_chunk, [&](std::size_t c) {
    dropout_mask_chunk(mask, c, n, p, seed, site);
    const std::size_t i0 = c * dropout_chunk, i1 = std::min(n, i0 + dropout_chunk);
    simd::mul(i1 - i0, x + i0, mask + i0, x + i0);
  });
}

// dx = dx * mask (in place: the gradient through dropout).
template <class T>
void dropout_backward(T* dx, const T* mask, std::size_t n) {
  simd::mul(n, dx, mask, dx);
}

// ---------------------------------------------------------------------------------------------------------
// Multi-head self-attention core (the projections are linear layers around it). qkv holds, per row,
// [q | k | v] as PyTorch's in_proj produces them; head h uses columns [h*dh, (h+1)*dh) of each part.
// key_valid[b*T + j] == 0 masks key j of sequence b for every query.

template <class T>
void attention_forward(T* out,                     // [B, T, D] heads concatenated
                       T* probs,                   // [B, H, T, T] softmax weights (kept for backward)
                       T* probs_dropped,           // [B, H, T, T] probs * drop mask, or nullptr when no dropout
                       const T* drop_mask,         // [B, H, T, T] or nullptr
                       const T* qkv,               // [B, T, 3D]
                       const std::uint8_t* key_valid,  // [B, T]
                       std::size_t B, std::size_t Tn, std::size_t D, std::size_t H) {
  const std::size_t dh = D / H;
  const T scale = T(1) / std::sqrt(static_cast<T>(dh));
  const auto t = static_cast<Eigen::Index>(Tn), e = static_cast<Eigen::Index>(dh);
  parallel_for(0, static_cast<std::ptrdiff_t>(B * H), [&](std::ptrdiff_t bh) {
    const std::size_t b = static_cast<std::size_t>(bh) / H, h = static_cast<std::size_t>(bh) % H;
    const T* base = qkv + b * Tn * 3 * D + h * dh;
    ConstStridedMatrixMap<T> q(base, t, e, Eigen::OuterStride<>(3 * D));
    ConstStridedMatrixMap<T> k(base + D, t, e, Eigen::OuterStride<>(3 * D));
    ConstStridedMatrixMap<T> v(base + 2 * D, t, e, Eigen::OuterStride<>(3 * D));
    T* pp = probs + static_cast<std::size_t>(bh) * Tn * Tn;
    MatrixMap<T> p(pp, t, t);
    p.noalias() = (q * k.transpose()) * scale;
    const std::uint8_t* valid = key_valid + b * Tn;
    for (std::size_t i = 0; i < Tn; ++i) {
      T* row = pp + i * Tn;
      for (std::size_t j = 0; j < Tn; ++j)
        if (!valid[j]) row[j] = -std::numeric_limits<T>::infinity();
      simd::softmax_inplace(Tn, row);
    }
    StridedMatrixMap<T> o(out + b * Tn * D + h * dh, t, e, Eigen::OuterStride<>(D));
    if (probs_dropped) {
      T* pd = probs_dropped + static_cast<std::size_t>(bh) * Tn * Tn;
      simd::mul(Tn * Tn, pp, drop_mask + static_cast<std::size_t>(bh) * Tn * Tn, pd);
      o.noalias() = ConstMatrixMap<T>(pd, t, t) * v;
    } else {
      o.noalias() = p * v;
    }
  });
}

template <class T>
void attention_backward(T* dqkv,                 // [B, T, 3D], accumulated (overwritten when overwrite)
                        const T* dout,           // [B, T, D]
                        const T* qkv,            // [B, T, 3D]
                        const T* probs,          // [B, H, T, T]
                        const T* probs_dropped,  // [B, H, T, T] or nullptr
                        const T* drop_mask,      // [B, H, T, T] or nullptr
                        std::size_t B, std::size_t Tn, std::size_t D, std::size_t H, bool overwrite = false) {
  const std::size_t dh = D / H;
  const T scale = T(1) / std::sqrt(static_cast<T>(dh));
  const auto t = static_cast<Eigen::Index>(Tn), e = static_cast<Eigen::Index>(dh);
  parallel_for(0, static_cast<std::ptrdiff_t>(B * H), [&](std::ptrdiff_t bh) {
    // Per-thread [T, T] scratch, reused across heads and calls.
    thread_local RowMatrix<T> dp;
    const std::size_t b = static_cast<std::size_t>(bh) / H, h = static_cast<std::size_t>(bh) % H;
    const std::size_t off = b * Tn * 3 * D + h * dh;
    ConstStridedMatrixMap<T> q(qkv + off, t, e, Eigen::OuterStride<>(3 * D));
    ConstStridedMatrixMap<T> k(qkv + off + D, t, e, Eigen::OuterStride<>(3 * D));
    ConstStridedMatrixMap<T> v(qkv + off + 2 * D, t, e, Eigen::OuterStride<>(3 * D));
    StridedMatrixMap<T> dq(dqkv + off, t, e, Eigen::OuterStride<>(3 * D));
    StridedMatrixMap<T> dk(dqkv + off + D, t, e, Eigen::OuterStride<>(3 * D));
    StridedMatrixMap<T> dv(dqkv + off + 2 * D, t, e, Eigen::OuterStride<>(3 * D));
    ConstStridedMatrixMap<T> g(dout + b * Tn * D + h * dh, t, e, Eigen::OuterStride<>(D));
    const std::size_t po = static_cast<std::size_t>(bh) * Tn * Tn;
    ConstMatrixMap<T> p(probs + po, t, t);
    const T* used = probs_dropped ? probs_dropped + po : probs + po;
    if (overwrite) dv.noalias() = ConstMatrixMap<T>(used, t, t).transpose() * g;
    else dv.noalias() += ConstMatrixMap<T>(used, t, t).transpose() * g;
    dp.resize(t, t);
    dp.noalias() = g * v.transpose();  // [T, T] gradient w.r.t. the (dropped) weights
    if (drop_mask) simd::mul(Tn * Tn, dp.data(), drop_mask + po, dp.data());
    // Softmax backward row by row: ds = p * (dp - <p, dp>); the 1/sqrt(dh) of the scores folds in here.
    for (std::size_t i = 0; i < Tn; ++i) {
      const T* pr = probs + po + i * Tn;
      T* dr = dp.data() + i * Tn;
      const T inner = simd::dot(Tn, pr, dr);
      for (std::size_t j = 0; j < Tn; ++j) dr[j] = pr[j] * (dr[j] - inner) * scale;
    }
    if (overwrite) {
      dq.noalias() = dp * k;
      dk.noalias() = dp.transpose() * q;
    } else {
      dq.noalias() += dp * k;
      dk.noalias() += dp.transpose() * q;
    }
  });
}

}  // namespace robustxlt::nn
