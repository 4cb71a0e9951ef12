// Eigen aliases used throughout the reference. Row-major so that a row is one token's features.
#pragma once

#include <Eigen/Dense>

namespace monarch {

template <class S>
using Matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using Vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;
template <class S>
using MatrixMap = Eigen::Map<Matrix<S>>;
template <class S>
using ConstMatrixMap = Eigen::Map<const Matrix<S>>;

}  // namespace monarch
