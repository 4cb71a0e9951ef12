// The individual steps of spec §4 for one head, shared by attention.cpp (the algorithm) and
// variational.cpp (the factored objective). Internal to the reference: not installed.
//
// Two views of the padded (N', .) arrays are used throughout:
//   block view    : block k is the b contiguous rows k*b .. k*b+b-1             (keys of block k)
//   position view : position j is the m rows j, j+b, ..., j+(m-1)b, stride b   (queries at j)
#pragma once

#include <cmath>
#include <limits>

#include "monarch/attention.hpp"

namespace monarch::detail {

template <class S>
using StridedRows = Eigen::Map<Matrix<S>, 0, Eigen::OuterStride<>>;
template <class S>
using ConstStridedRows = Eigen::Map<const Matrix<S>, 0, Eigen::OuterStride<>>;
template <class S>
using StridedVec = Eigen::Map<Vector<S>, 0, Eigen::InnerStride<>>;
template <class S>
using ConstStridedVec = Eigen::Map<const Vector<S>, 0, Eigen::InnerStride<>>;

/// Rows j, j+b, ..., j+(m-1)b of a padded (N', cols) array: the position-j slice, (m, cols).
template <class S>
ConstStridedRows<S> position_rows(const Matrix<S>& M, int j, int b) {
  const auto cols = M.cols();
  return ConstStridedRows<S>(M.data() + j * cols, M.rows() / b, cols, Eigen::OuterStride<>(b * cols));
}
template <class S>
StridedRows<S> position_rows(Matrix<S>& M, int j, int b) {
  const auto cols = M.cols();
  return StridedRows<S>(M.data() + j * cols, M.rows() / b, cols, Eigen::OuterStride<>(b * cols));
}
template <class S>
ConstStridedVec<S> position_entries(const Vector<S>& v, int j, int b) {
  return ConstStridedVec<S>(v.data() + j, v.size() / b, Eigen::InnerStride<>(b));
}
template <class S>
StridedVec<S> position_entries(Vector<S>& v, int j, int b) {
  return StridedVec<S>(v.data() + j, v.size() / b, Eigen::InnerStride<>(b));
}

/// Softmax of each row of Z in place; entries at -inf get weight 0. Every row needs one finite entry.
template <class S>
void softmax_rows(Matrix<S>& Z) {
  for (Eigen::Index r = 0; r < Z.rows(); ++r) {
    auto z = Z.row(r);
    const S zmax = z.maxCoeff();
    // A masked entry (-inf) gets exactly 0: Eigen's vectorised exp clamps its argument, so
    // exp(-inf) would come out as a denormal rather than zero.
    z = (z.array() == -std::numeric_limits<S>::infinity()).select(S(0), (z.array() - zmax).exp());
    z /= z.sum();
  }
}

/// True when block k holds at least one valid key.
template <class S>
bool block_has_valid_key(const PaddedHead<S>& ph, int k) {
  const int b = ph.g.b;
  for (int i = 0; i < b; ++i)
    if (ph.valid[k * b + i]) return true;
  return false;
}

/// eq. (12): R_k[j, :] = softmax_i( tau * alpha_R[k, j] . k_(k,i) / max(c_R[k, j], tiny) ) over the
/// valid keys i of block k. Returns the (b, b) matrix R_k, all zeros when block k has no valid key.
template <class S>
Matrix<S> r_update_block(const PaddedHead<S>& ph, int k, const Matrix<S>& alpha_R, const Vector<S>& c_R,
                         S tau) {
  const int b = ph.g.b;
  if (!block_has_valid_key(ph, k)) return Matrix<S>::Zero(b, b);  // no R row exists (spec §4)
  const S tiny = std::numeric_limits<S>::min();
  auto K_k = ph.Kp.middleRows(k * b, b);                             // (b, d)
  // The L-weighted mean query of each position j: alpha_R / c_R; c_R = 0 gives alpha_R = 0 (uniform).
  Matrix<S> mean_q = alpha_R.middleRows(k * b, b);                   // (b, d)
  for (int j = 0; j < b; ++j) mean_q.row(j) /= std::max(c_R[k * b + j], tiny);
  Matrix<S> Z = tau * (mean_q * K_k.transpose());                    // (b, b): Z[j, i]
  for (int i = 0; i < b; ++i)
    if (!ph.valid[k * b + i]) Z.col(i).setConstant(-std::numeric_limits<S>::infinity());
  softmax_rows(Z);
  return Z;
}

/// eq. (10): alpha_L[k, j] = sum_i R_k[j, i] k_(k,i) and c_L[k, j] = sum_i R_k[j, i] log R_k[j, i],
/// written into rows k*b .. k*b+b-1. c_L = +inf for a block with no valid key (zero weight in eq. (13)).
template <class S>
void block_summaries(const PaddedHead<S>& ph, int k, const Matrix<S>& R_k, Matrix<S>& alpha_L,
                     Vector<S>& c_L) {
  const int b = ph.g.b;
  alpha_L.middleRows(k * b, b).noalias() = R_k * ph.Kp.middleRows(k * b, b);  // (b, b)(b, d)
  const bool empty = !block_has_valid_key(ph, k);
  for (int j = 0; j < b; ++j) {
    S neg_entropy = 0;  // 0 log 0 = 0
    for (int i = 0; i < b; ++i) {
      const S r = R_k(j, i);
      if (r > 0) neg_entropy += r * std::log(r);
    }
    c_L[k * b + j] = empty ? std::numeric_limits<S>::infinity() : neg_entropy;
  }
}

/// eq. (13): L_j[:, l] = softmax_k( tau * q_(l,j) . alpha_L[k, j] - c_L[k, j] ) for every query block l.
/// Returns the (m, m) matrix L_j, each column a probability vector.
template <class S>
Matrix<S> l_update_position(const PaddedHead<S>& ph, int j, const Matrix<S>& alpha_L, const Vector<S>& c_L,
                            S tau) {
  const int b = ph.g.b;
  auto alpha_L_j = position_rows(alpha_L, j, b);  // (m, d): row k
  auto Q_j = position_rows(ph.Qp, j, b);          // (m, d): row l
  auto c_L_j = position_entries(c_L, j, b);       // (m)
  // Build Z transposed, Zt[l, k], so that the softmax over k is a row softmax.
  Matrix<S> Zt = tau * (Q_j * alpha_L_j.transpose());  // (m, m)
  Zt.rowwise() -= c_L_j.transpose();                   // c_L = +inf -> -inf -> weight 0
  softmax_rows(Zt);
  return Zt.transpose();                               // L_j[k, l]
}

/// eq. (11): alpha_R[k, j] = sum_l L_j[k, l] valid(l, j) q_(l,j), c_R[k, j] = sum_l L_j[k, l] valid(l, j),
/// for every block k at position j.
template <class S>
void r_statistics_position(const PaddedHead<S>& ph, int j, const Matrix<S>& L_j, Matrix<S>& alpha_R,
                           Vector<S>& c_R) {
  const int b = ph.g.b, m = ph.g.m;
  Vector<S> valid_j(m);  // (m): valid(l, j)
  for (int l = 0; l < m; ++l) valid_j[l] = ph.valid[l * b + j] ? S(1) : S(0);
  auto Q_j = position_rows(ph.Qp, j, b);  // (m, d)
  position_rows(alpha_R, j, b).noalias() = L_j * (valid_j.asDiagonal() * Q_j);  // (m, m)(m, d)
  position_entries(c_R, j, b) = L_j * valid_j;                                     // (m, m)(m)
}

}  // namespace monarch::detail
