// Monarch matrices (docs/derivation.md §2): the factors L_j and R_k, the dense matrix of
// eq. (2), the shuffle form of eq. (3), and the fast product of eq. (4).
#pragma once

#include <random>
#include <vector>

#include "monarch/eigen_types.hpp"

namespace monarch {

/// The two factor families of a Monarch matrix of size N' = m b.
///  - L[j] (m x m) for each position j in [0, b): every column a probability vector.
///  - R[k] (b x b) for each block k in [0, m): every row a probability vector, or all zeros
///    when block k holds no valid key (then L gives it zero weight, spec §4).
template <class S>
struct MonarchFactors {
  ///@{
  /// m blocks of b positions: N' = m b.
  int m = 0, b = 0;
  ///@}
  std::vector<Matrix<S>> L;  ///< b x (m, m), L[j](k, l) = L_j[k, l]; eq. (2)
  std::vector<Matrix<S>> R;  ///< m x (b, b), R[k](j, i) = R_k[j, i]; eq. (2)
};

/// Random factors with strictly positive entries (for tests of the algebra).
template <class S>
MonarchFactors<S> random_factors(int m, int b, std::mt19937_64& rng);

/// Dense A (N' x N') entry by entry from eq. (2): A[(l,j),(k,i)] = L_j[k,l] R_k[j,i].
template <class S>
Matrix<S> dense_from_factors(const MonarchFactors<S>& f);

/// The perfect shuffle P (N' x N') of eq. (3): block-major (k, j) -> position-major (j, k).
template <class S>
Matrix<S> perfect_shuffle(int m, int b);

/// Dense A from the matrix form of eq. (3): A = P^T diag(L_0^T..L_{b-1}^T) P diag(R_0..R_{m-1}).
template <class S>
Matrix<S> dense_from_matrix_form(const MonarchFactors<S>& f);

/// A V in O(N'(b + m) d_v) without forming A, eq. (4): Y = diag(R) V, then o_(l,j) = sum_k L_j[k,l] Y[k,j].
template <class S>
Matrix<S> monarch_apply(const MonarchFactors<S>& f, const Matrix<S>& V);

}  // namespace monarch
