#pragma once
// Tensor vocabulary: xtensor containers (row-major, batch first) at the API, Eigen maps over the same
// memory for matrix products, and shape checks that produce readable errors.

#include <Eigen/Core>
#include <array>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>
#include <xtensor/xadapt.hpp>
#include <xtensor/xtensor.hpp>

#include "robustxlt/core/error.hpp"
#include "robustxlt/core/parallel.hpp"

namespace robustxlt {

// Row-major N-d tensor that owns its data.
template <class T, std::size_t N>
using Tensor = xt::xtensor<T, N, xt::layout_type::row_major>;

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<RowMatrix<T>>;
template <class T>
using ConstMatrixMap = Eigen::Map<const RowMatrix<T>>;
// A column block of a wider row-major matrix (e.g. one attention head inside [T, 3D]).
template <class T>
using StridedMatrixMap = Eigen::Map<RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ConstStridedMatrixMap = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using VectorMap = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
template <class T>
using ConstVectorMap = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;

// "[2, 3, 4]"
template <class Shape>
std::string shape_string(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  bool first = true;
  for (auto s : shape) {
    if (!first) os << ", ";
    os << s;
    first = false;
  }
  os << ']';
  return os.str();
}

namespace detail {

// Throws ShapeError "<where>: <name> must have shape [..], got [..]" unless the shapes agree.
template <class Shape, std::size_t N>
void check_shape(const char* where, const char* name, const Shape& actual,
                 const std::array<std::size_t, N>& expected) {
  bool ok = actual.size() == N;
  for (std::size_t i = 0; ok && i < N; ++i) ok = static_cast<std::size_t>(actual[i]) == expected[i];
  if (!ok)
    fail<ShapeError>(where, ": ", name, " must have shape ", shape_string(expected), ", got ",
                     shape_string(actual));
}

// Eigen parallelises its products with its own global setting; keep it equal to ours.
inline void sync_eigen_threads() {
  if (Eigen::nbThreads() != num_threads()) Eigen::setNbThreads(num_threads());
}

}  // namespace detail
}  // namespace robustxlt
