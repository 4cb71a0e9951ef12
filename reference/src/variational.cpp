// The variational form of softmax: docs/derivation.md §3, eqs. (5)-(10).
#include "monarch/variational.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "steps.hpp"

namespace monarch {

template <class S>
S logsumexp(const Vector<S>& z) {
  // eq. (5): max_p <p, z> + H(p) = log sum_i exp(z_i); shift by the max for stability.
  const S zmax = z.maxCoeff();
  if (zmax == -std::numeric_limits<S>::infinity()) return zmax;  // empty support
  return zmax + std::log((z.array() - zmax).exp().sum());
}

template <class S>
S entropy(const Vector<S>& p) {
  S h = 0;
  for (Eigen::Index i = 0; i < p.size(); ++i)
    if (p[i] > 0) h -= p[i] * std::log(p[i]);  // 0 log 0 = 0
  return h;
}

template <class S>
S variational_value(const Vector<S>& p, const Vector<S>& z) {
  S inner = 0;
  for (Eigen::Index i = 0; i < p.size(); ++i)
    if (p[i] > 0) inner += p[i] * z[i];  // zero weight: z_i may be -inf
  return inner + entropy(p);
}

template <class S>
S objective_dense(const Matrix<S>& A, const Matrix<S>& Sc, const std::vector<std::uint8_t>& valid) {
  // eq. (6): F(A) = sum over valid rows r of <A_r, S_r> + H(A_r)
  S F = 0;
  for (Eigen::Index r = 0; r < A.rows(); ++r)
    if (valid[r]) F += variational_value<S>(A.row(r).transpose(), Sc.row(r).transpose());
  return F;
}

namespace {
// The objective's inputs as a PaddedHead, so the shared step functions can be reused.
template <class S>
PaddedHead<S> as_padded(int m, int b, const Matrix<S>& Qp, const Matrix<S>& Kp,
                        const std::vector<std::uint8_t>& valid) {
  PaddedHead<S> ph;
  ph.g.N = ph.g.Np = m * b;
  ph.g.m = m;
  ph.g.b = b;
  ph.Qp = Qp;
  ph.Kp = Kp;
  ph.valid = valid;
  return ph;
}
}  // namespace

template <class S>
S objective_monarch(const MonarchFactors<S>& f, const Matrix<S>& Qp, const Matrix<S>& Kp,
                    const std::vector<std::uint8_t>& valid, S tau) {
  const int m = f.m, b = f.b;
  const PaddedHead<S> ph = as_padded(m, b, Qp, Kp, valid);
  // eq. (10): the block summaries of R.
  Matrix<S> alpha_L(m * b, Qp.cols());  // (m, b, d)
  Vector<S> c_L(m * b);                 // (m, b)
  for (int k = 0; k < m; ++k) detail::block_summaries(ph, k, f.R[k], alpha_L, c_L);
  // eq. (9): row (l, j) contributes sum_k L_j[k,l] (tau q_(l,j) . alpha_L[k,j] - c_L[k,j]) + H(L_j[:,l]).
  S F = 0;
  for (int j = 0; j < b; ++j) {
    const Matrix<S> Zt = tau * (detail::position_rows(Qp, j, b) *
                                detail::position_rows(alpha_L, j, b).transpose());  // (m, m): [l, k]
    const auto c_L_j = detail::position_entries(c_L, j, b);
    for (int l = 0; l < m; ++l) {
      if (!valid[l * b + j]) continue;  // invalid queries do not steer the fit
      Vector<S> z = Zt.row(l).transpose() - c_L_j;  // (m); +inf c_L gives -inf, where L = 0
      F += variational_value<S>(f.L[j].col(l), z);
    }
  }
  return F;
}

template <class S>
S objective_optimum(const Matrix<S>& Qp, const Matrix<S>& Kp, const std::vector<std::uint8_t>& valid,
                    S tau) {
  // eqs. (5)-(6): F* = sum over valid rows of logsumexp of the scores over valid keys.
  constexpr Eigen::Index kChunk = 256;  // query rows per score block: bounds memory at kChunk x N'
  const Eigen::Index Np = Qp.rows();
  S F = 0;
  for (Eigen::Index r0 = 0; r0 < Np; r0 += kChunk) {
    const Eigen::Index rows = std::min(kChunk, Np - r0);
    Matrix<S> Sc = tau * (Qp.middleRows(r0, rows) * Kp.transpose());  // (rows, N')
    for (Eigen::Index c = 0; c < Np; ++c)
      if (!valid[c]) Sc.col(c).setConstant(-std::numeric_limits<S>::infinity());
    for (Eigen::Index r = 0; r < rows; ++r)
      if (valid[r0 + r]) F += logsumexp<S>(Sc.row(r).transpose());
  }
  return F;
}

template <class S>
S kl_gap(const MonarchFactors<S>& f, const Matrix<S>& Qp, const Matrix<S>& Kp,
         const std::vector<std::uint8_t>& valid, S tau) {
  // eq. (7): F* - F(A) = sum_r KL(A_r || P*_r)
  return objective_optimum(Qp, Kp, valid, tau) - objective_monarch(f, Qp, Kp, valid, tau);
}

#define MONARCH_INSTANTIATE(S)                                                                       \
  template S logsumexp<S>(const Vector<S>&);                                                         \
  template S entropy<S>(const Vector<S>&);                                                           \
  template S variational_value<S>(const Vector<S>&, const Vector<S>&);                               \
  template S objective_dense<S>(const Matrix<S>&, const Matrix<S>&, const std::vector<std::uint8_t>&); \
  template S objective_monarch<S>(const MonarchFactors<S>&, const Matrix<S>&, const Matrix<S>&,      \
                                  const std::vector<std::uint8_t>&, S);                              \
  template S objective_optimum<S>(const Matrix<S>&, const Matrix<S>&, const std::vector<std::uint8_t>&, \
                                  S);                                                                \
  template S kl_gap<S>(const MonarchFactors<S>&, const Matrix<S>&, const Matrix<S>&,                 \
                       const std::vector<std::uint8_t>&, S);
MONARCH_INSTANTIATE(double)
MONARCH_INSTANTIATE(float)
#undef MONARCH_INSTANTIATE

}  // namespace monarch
