// Monarch matrices: docs/derivation.md §2, eqs. (2)-(4).
#include "monarch/monarch_matrix.hpp"

#include <utility>

#include "steps.hpp"

namespace monarch {

template <class S>
MonarchFactors<S> random_factors(int m, int b, std::mt19937_64& rng) {
  // Entries in [kMinEntry, 1) so every factor is strictly positive, then normalised.
  constexpr double kMinEntry = 0.05;
  std::uniform_real_distribution<double> U(kMinEntry, 1.0);
  MonarchFactors<S> f;
  f.m = m;
  f.b = b;
  for (int j = 0; j < b; ++j) {
    Matrix<S> L_j(m, m);
    for (int k = 0; k < m; ++k)
      for (int l = 0; l < m; ++l) L_j(k, l) = static_cast<S>(U(rng));
    for (int l = 0; l < m; ++l) L_j.col(l) /= L_j.col(l).sum();  // columns on the simplex
    f.L.push_back(std::move(L_j));
  }
  for (int k = 0; k < m; ++k) {
    Matrix<S> R_k(b, b);
    for (int j = 0; j < b; ++j)
      for (int i = 0; i < b; ++i) R_k(j, i) = static_cast<S>(U(rng));
    for (int j = 0; j < b; ++j) R_k.row(j) /= R_k.row(j).sum();  // rows on the simplex
    f.R.push_back(std::move(R_k));
  }
  return f;
}

template <class S>
Matrix<S> dense_from_factors(const MonarchFactors<S>& f) {
  const int m = f.m, b = f.b;
  Matrix<S> A(m * b, m * b);  // (N', N')
  // eq. (2): A[(l,j),(k,i)] = L_j[k,l] * R_k[j,i]
  for (int l = 0; l < m; ++l)
    for (int j = 0; j < b; ++j)
      for (int k = 0; k < m; ++k)
        for (int i = 0; i < b; ++i) A(l * b + j, k * b + i) = f.L[j](k, l) * f.R[k](j, i);
  return A;
}

template <class S>
Matrix<S> perfect_shuffle(int m, int b) {
  // (P x)[j*m + k] = x[k*b + j]: block-major (k, j) to position-major (j, k), eq. (3).
  Matrix<S> P = Matrix<S>::Zero(m * b, m * b);
  for (int k = 0; k < m; ++k)
    for (int j = 0; j < b; ++j) P(j * m + k, k * b + j) = 1;
  return P;
}

template <class S>
Matrix<S> dense_from_matrix_form(const MonarchFactors<S>& f) {
  const int m = f.m, b = f.b, Np = m * b;
  Matrix<S> blockR = Matrix<S>::Zero(Np, Np);   // diag(R_0, ..., R_{m-1})
  for (int k = 0; k < m; ++k) blockR.block(k * b, k * b, b, b) = f.R[k];
  Matrix<S> blockLt = Matrix<S>::Zero(Np, Np);  // diag(L_0^T, ..., L_{b-1}^T)
  for (int j = 0; j < b; ++j) blockLt.block(j * m, j * m, m, m) = f.L[j].transpose();
  const Matrix<S> P = perfect_shuffle<S>(m, b);
  // eq. (3): A = P^T diag(L^T) P diag(R)
  return P.transpose() * blockLt * P * blockR;
}

template <class S>
Matrix<S> monarch_apply(const MonarchFactors<S>& f, const Matrix<S>& V) {
  const int m = f.m, b = f.b;
  const auto dv = V.cols();
  // eq. (4), first half: Y[k, j] = sum_i R_k[j, i] v_(k,i), one (b, b)(b, d_v) product per block.
  Matrix<S> Y(m * b, dv);  // (m, b, d_v)
  for (int k = 0; k < m; ++k) Y.middleRows(k * b, b).noalias() = f.R[k] * V.middleRows(k * b, b);
  // eq. (4), second half: o_(l,j) = sum_k L_j[k, l] Y[k, j], one (m, m)^T (m, d_v) product per position.
  Matrix<S> O(m * b, dv);  // (m, b, d_v)
  for (int j = 0; j < b; ++j) {
    auto O_j = detail::position_rows(O, j, b);                      // (m, d_v): row l
    const auto Y_j = detail::position_rows(std::as_const(Y), j, b);  // (m, d_v): row k
    O_j.noalias() = f.L[j].transpose() * Y_j;
  }
  return O;
}

#define MONARCH_INSTANTIATE(S)                                                  \
  template MonarchFactors<S> random_factors<S>(int, int, std::mt19937_64&);     \
  template Matrix<S> dense_from_factors<S>(const MonarchFactors<S>&);           \
  template Matrix<S> perfect_shuffle<S>(int, int);                              \
  template Matrix<S> dense_from_matrix_form<S>(const MonarchFactors<S>&);       \
  template Matrix<S> monarch_apply<S>(const MonarchFactors<S>&, const Matrix<S>&);
MONARCH_INSTANTIATE(double)
MONARCH_INSTANTIATE(float)
#undef MONARCH_INSTANTIATE

}  // namespace monarch
