// MonarchAttention exactly as spec §4 (docs/derivation.md §4), and exact softmax attention.
//
// Layout of every intermediate (shared with cuda/, which returns the same arrays):
//   alpha_R, alpha_L : (m, b, d)   row k*b + j is the d-vector for block k, position j
//   c_R, c_L         : (m, b)      entry k*b + j
//   Y                : (m, b, d_v) row k*b + j
//   O                : (N, d_v)    unpadded output rows, token order
//   R                : m matrices (b, b), R[k](j, i) = R_k[j, i]
//   L                : b matrices (m, m), L[j](k, l) = L_j[k, l]
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "monarch/eigen_types.hpp"
#include "monarch/monarch_matrix.hpp"
#include "monarch/options.hpp"
#include "monarch/tensor.hpp"

namespace monarch {

/// Everything one round t of (R-update, L-update) produced, for one head.
template <class S>
struct Round {
  Matrix<S> alpha_R;  ///< (m*b, d)   eq. (11), the statistics this round's R-update used
  Vector<S> c_R;      ///< (m*b)      eq. (11)
  Matrix<S> alpha_L;  ///< (m*b, d)   eq. (10), from this round's R
  Vector<S> c_L;      ///< (m*b)      eq. (10); +inf for a block with no valid key
  MonarchFactors<S> A;  ///< this round's R (eq. (12)) and L (eq. (13))
  Matrix<S> Y;        ///< (m*b, d_v) eq. (4) with this round's R
  Matrix<S> O;        ///< (N, d_v)   eq. (4) with this round's R and L: the output had T = t
  S F_after_R = 0;    ///< F of eq. (6) after the R-update (L from the previous round, I at t = 1)
  S F_after_L = 0;    ///< F after the L-update
};

/// The trace of one head: geometry, the optimum F*, and every round.
template <class S>
struct HeadTrace {
  Geometry g;                    ///< the padded layout, eq. (1)
  S tau = 0;                     ///< the score scale tau
  S F_star = 0;                  ///< F(softmax(S)), eqs. (5)-(6); KL gap = F_star - F, eq. (7)
  std::vector<Round<S>> rounds;  ///< one entry per round t = 1..T
};

/// The padded inputs of one head: eq. (1) places token n at padded index n + off.
template <class S>
struct PaddedHead {
  Geometry g;                        ///< the padded layout
  ///@{
  /// Padded Q (N', d), K (N', d) and V (N', d_v); pad rows are zero.
  Matrix<S> Qp, Kp, Vp;              // (N', d), (N', d), (N', d_v); pad rows are zero
  ///@}
  std::vector<std::uint8_t> valid;   ///< (N') valid(l, j): a token whose key is kept
  std::vector<std::uint8_t> token;   ///< (N') not a pad
};

/// Pads one head's Q, K, V (N x d row-major) and key mask (N entries or empty = keep all):
/// token n goes to padded index n + off, eq. (1).
template <class S>
PaddedHead<S> pad_head(const S* Q, const S* K, const S* V, int N, int d, int dv,
                       std::span<const std::uint8_t> keep, const Geometry& g);

/// MonarchAttention on one head. Q, K: (N, d); V: (N, d_v); keep: N entries or empty.
/// Returns O (N, d_v). Runs the algorithm of docs §4.4: initialisation eq. (14), then T rounds of
/// the R-update (eqs. (12), (10)) and the L-update (eq. (13)) with the statistics of eq. (11),
/// and the output of eq. (4); the steps are the functions of monarch::detail. When trace is non-null it receives every intermediate of every round and F
/// after every half-step (this costs O(N'^2 d) for F* and O(N m) memory for the factors).
template <class S>
Matrix<S> monarch_head(const S* Q, const S* K, const S* V, int N, int d, int dv,
                       std::span<const std::uint8_t> keep, const Options& opt,
                       HeadTrace<S>* trace = nullptr);

/// Exact softmax attention on one head with the same scale and key mask. O(N^2 d) time,
/// O(chunk * N) memory (queries are processed in chunks). This is P* = softmax(S), the maximiser
/// of eq. (6); monarch_head() with b = 1 or b = N reproduces it exactly, eq. (16).
template <class S>
Matrix<S> exact_head(const S* Q, const S* K, const S* V, int N, int d, int dv,
                     std::span<const std::uint8_t> keep, S tau);

/// MonarchAttention over (E, H, N, d) tensors. Validates everything first (InputError).
/// traces, when non-null, receives one HeadTrace per (e, h) in row-major order.
template <class S>
Tensor4<S> monarch_attention(const Tensor4<S>& Q, const Tensor4<S>& K, const Tensor4<S>& V,
                             const KeyMask* mask, const Options& opt,
                             std::vector<HeadTrace<S>>* traces = nullptr);

/// Exact softmax attention over (E, H, N, d) tensors with scale tau (unset = 1/sqrt(d)).
template <class S>
Tensor4<S> exact_attention(const Tensor4<S>& Q, const Tensor4<S>& K, const Tensor4<S>& V,
                           const KeyMask* mask, const Options& opt);

/// Attention FLOPs of one head, counting a multiply-add as 2 and an exp as 1, for the
/// cost comparison of docs eq. (15).
double monarch_flops(int N, int d, int dv, int b, int steps);
/// FLOPs of exact softmax attention on one head (Q K^T, the exps, P V), eq. (15).
double exact_flops(int N, int d, int dv);

}  // namespace monarch
