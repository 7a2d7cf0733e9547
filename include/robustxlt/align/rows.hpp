#pragma once
// Row embeddings as align/ reads them: [rows, width] matrices given as xtensor containers or xt::adapt views
// of the caller's buffer (contiguous, row-major, float or double; read in place, never copied on entry),
// their unit-length rows for cosine scores, and matrices assembled from row vectors.

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/simd.hpp"
#include "robustxlt/core/tensor.hpp"

namespace robustxlt::align {

namespace detail {

template <class E>
using scalar_of = std::remove_const_t<typename std::decay_t<E>::value_type>;

// A read-only [rows, cols] row-major matrix in the caller's memory.
template <class T>
struct Rows {
  const T* data;
  std::size_t rows, cols;
  std::size_t size() const noexcept { return rows * cols; }
  const T* row(std::size_t r) const noexcept { return data + r * cols; }
};

// The rows of a rank-2 contiguous row-major container or adaptor. Throws ShapeError naming `name`
// otherwise (a strided view must be evaluated first), NumericError when check_finite and a value is NaN or
// Inf.
template <class E>
Rows<scalar_of<E>> view2(const E& e, const char* where, const char* name, bool check_finite = true) {
  using T = scalar_of<E>;
  static_assert(simd::is_supported_scalar<T>, "align: embeddings must hold float or double");
  if (e.dimension() != 2)
    robustxlt::detail::fail<ShapeError>(where, ": ", name, " must have rank 2 [rows, width], got shape ", shape_string(e.shape()));
  const auto& s = e.shape();
  const auto& st = e.strides();
  if (!((s[1] <= 1 || st[1] == 1) && (s[0] <= 1 || static_cast<std::size_t>(st[0]) == s[1])))
    robustxlt::detail::fail<ShapeError>(where, ": ", name, " must be contiguous and row-major, got strides ", shape_string(st));
  const Rows<T> r{static_cast<const T*>(e.data()), s[0], s[1]};
  if (check_finite && !simd::all_finite(r.size(), r.data))
    robustxlt::detail::fail<NumericError>(where, ": ", name, " must be finite, got NaN or Inf");
  return r;
}

// Unit-length copies of the rows (a zero row stays zero): what cosine similarities multiply.
template <class T>
RowMatrix<T> unit_rows(const Rows<T>& x) {
  RowMatrix<T> m = ConstMatrixMap<T>(x.data, static_cast<Eigen::Index>(x.rows), static_cast<Eigen::Index>(x.cols));
  for (Eigen::Index r = 0; r < m.rows(); ++r) {
    const T n = m.row(r).norm();
    if (n > T(0)) m.row(r) /= n;
  }
  return m;
}

}  // namespace detail

// A [rows, width] matrix from row vectors (e.g. embeddings read row by row). Throws ShapeError naming the
// first row whose length differs from the first row's; `where` names the caller in the message.
template <class T>
Tensor<T, 2> matrix_from_rows(const std::vector<std::vector<T>>& rows, const char* where = "matrix_from_rows") {
  const std::size_t w = rows.empty() ? 0 : rows[0].size();
  Tensor<T, 2> out = Tensor<T, 2>::from_shape({rows.size(), w});
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].size() != w)
      robustxlt::detail::fail<ShapeError>(where, ": row ", r, " has ", rows[r].size(), " values, expected ", w, " (ragged rows)");
    std::copy(rows[r].begin(), rows[r].end(), out.data() + r * w);
  }
  return out;
}

}  // namespace robustxlt::align
