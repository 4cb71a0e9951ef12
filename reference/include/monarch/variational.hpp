// The variational form of softmax (docs/derivation.md §3): logsumexp, entropy, the objective F
// of eq. (6) for a dense or a factored Monarch A, and the KL gap of eq. (7).
#pragma once

#include <cstdint>
#include <vector>

#include "monarch/eigen_types.hpp"
#include "monarch/monarch_matrix.hpp"

namespace monarch {

/// logsumexp(z) = log sum_i exp(z_i), stably; the maximum of eq. (5). Entries of -inf are skipped.
template <class S>
S logsumexp(const Vector<S>& z);

/// H(p) = -sum_i p_i log p_i with 0 log 0 = 0: the entropy term of eq. (5).
template <class S>
S entropy(const Vector<S>& p);

/// <p, z> + H(p): the quantity that softmax(z) maximises over the simplex, eq. (5).
/// Entries with p_i = 0 contribute nothing (so z_i may be -inf there).
template <class S>
S variational_value(const Vector<S>& p, const Vector<S>& z);

/// F(A) of eq. (6) for a dense row-stochastic A (N' x N') and scores Sc = tau Q K^T (N' x N'):
/// the sum over valid rows r of <A_r, Sc_r> + H(A_r). valid has N' entries (nonzero = valid).
template <class S>
S objective_dense(const Matrix<S>& A, const Matrix<S>& Sc, const std::vector<std::uint8_t>& valid);

/// F of a Monarch A in factored form, eqs. (8)-(10), without forming A: O(N'(b + m) d).
/// Qp, Kp are the padded (N' x d) queries and keys; valid has N' entries.
template <class S>
S objective_monarch(const MonarchFactors<S>& f, const Matrix<S>& Qp, const Matrix<S>& Kp,
                    const std::vector<std::uint8_t>& valid, S tau);

/// F* = F(softmax(S)) = sum over valid rows of logsumexp over valid keys, eqs. (5)-(6). O(N'^2 d).
template <class S>
S objective_optimum(const Matrix<S>& Qp, const Matrix<S>& Kp, const std::vector<std::uint8_t>& valid,
                    S tau);

/// KL gap F* - F(A) = sum_r KL(A_r || P*_r) >= 0, eq. (7), for a Monarch A.
template <class S>
S kl_gap(const MonarchFactors<S>& f, const Matrix<S>& Qp, const Matrix<S>& Kp,
         const std::vector<std::uint8_t>& valid, S tau);

}  // namespace monarch
