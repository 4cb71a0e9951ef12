// Eigen aliases used throughout the reference. Row-major so that a row is one token's features.
#pragma once

#include <Eigen/Dense>

namespace monarch {

/// A dense row-major matrix: row r is token r's features.
template <class S>
using Matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// A dense column vector.
template <class S>
using Vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;
/// A row-major Matrix view of memory owned elsewhere (a head inside a Tensor4).
template <class S>
using MatrixMap = Eigen::Map<Matrix<S>>;
/// A read-only MatrixMap.
template <class S>
using ConstMatrixMap = Eigen::Map<const Matrix<S>>;

}  // namespace monarch
