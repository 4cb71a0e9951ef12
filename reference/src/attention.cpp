// MonarchAttention, spec §4 step by step (docs/derivation.md §4), and exact softmax attention.
#include "monarch/attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "monarch/variational.hpp"
#include "steps.hpp"

namespace monarch {

template <class S>
PaddedHead<S> pad_head(const S* Q, const S* K, const S* V, int N, int d, int dv,
                       std::span<const std::uint8_t> keep, const Geometry& g) {
  PaddedHead<S> ph;
  ph.g = g;
  ph.Qp = Matrix<S>::Zero(g.Np, d);   // (N', d): pad rows stay zero
  ph.Kp = Matrix<S>::Zero(g.Np, d);   // (N', d)
  ph.Vp = Matrix<S>::Zero(g.Np, dv);  // (N', d_v)
  ph.valid.assign(g.Np, 0);
  ph.token.assign(g.Np, 0);
  for (int n = 0; n < N; ++n) {
    const int p = n + g.off;  // eq. (1)
    ph.Qp.row(p) = ConstMatrixMap<S>(Q + static_cast<std::size_t>(n) * d, 1, d);
    ph.Kp.row(p) = ConstMatrixMap<S>(K + static_cast<std::size_t>(n) * d, 1, d);
    ph.Vp.row(p) = ConstMatrixMap<S>(V + static_cast<std::size_t>(n) * dv, 1, dv);
    ph.token[p] = 1;
    ph.valid[p] = keep.empty() || keep[n] != 0;
  }
  return ph;
}

namespace {

// Drops the pad rows of a padded (N', d_v) output: row n of O is padded row n + off, eq. (1).
template <class S>
Matrix<S> unpad(const Matrix<S>& Op, const Geometry& g) {
  return Op.middleRows(g.off, g.N);
}

template <class S>
MonarchFactors<S> identity_L(const Geometry& g) {
  MonarchFactors<S> f;
  f.m = g.m;
  f.b = g.b;
  f.L.assign(g.b, Matrix<S>::Identity(g.m, g.m));  // eq. (14): L_j = I
  return f;
}

}  // namespace

template <class S>
Matrix<S> monarch_head(const S* Q, const S* K, const S* V, int N, int d, int dv,
                       std::span<const std::uint8_t> keep, const Options& opt, HeadTrace<S>* trace) {
  validate_options(opt);
  const Geometry g = Geometry::make(N, opt.block, opt.pad);
  const S tau = static_cast<S>(resolve_scale(opt, d));
  validate_score_range(Q, K, static_cast<std::size_t>(N) * d, d, tau);
  const PaddedHead<S> ph = pad_head(Q, K, V, N, d, dv, keep, g);
  if (std::none_of(ph.valid.begin(), ph.valid.end(), [](auto v) { return v != 0; }))
    throw InputError("every key of the sequence is masked: attention over an empty set is undefined");
  const int m = g.m, b = g.b, T = opt.steps;

  Matrix<S> alpha_R = ph.Qp;                  // (m, b, d)   eq. (14): alpha_R = q (0 at pads)
  Vector<S> c_R = Vector<S>::Ones(g.Np);      // (m, b)      eq. (14): c_R = 1
  Matrix<S> alpha_L(g.Np, d);                 // (m, b, d)   eq. (10)
  Vector<S> c_L(g.Np);                        // (m, b)      eq. (10)
  Matrix<S> Y(g.Np, dv);                      // (m, b, d_v) eq. (4)
  Matrix<S> Op(g.Np, dv);                     // (m, b, d_v) eq. (4), padded output

  MonarchFactors<S> factors = identity_L<S>(g);  // L and R of the current round (trace only)
  if (trace) {
    trace->g = g;
    trace->tau = tau;
    trace->F_star = objective_optimum(ph.Qp, ph.Kp, ph.valid, tau);
    trace->rounds.clear();
    factors.R.assign(m, Matrix<S>());
  }

  for (int t = 0; t < T; ++t) {
    const bool last = t == T - 1;
    const bool want_output = last || trace;  // Y and O are needed at the end, or for every traced round
    Round<S>* round = nullptr;
    if (trace) {
      trace->rounds.emplace_back();
      round = &trace->rounds.back();
      round->alpha_R = alpha_R;
      round->c_R = c_R;
    }

    // R-half: every key block k at once, given L (through alpha_R, c_R).
    for (int k = 0; k < m; ++k) {
      const Matrix<S> R_k = detail::r_update_block(ph, k, alpha_R, c_R, tau);  // (b, b) eq. (12)
      detail::block_summaries(ph, k, R_k, alpha_L, c_L);                       // eq. (10)
      if (want_output) Y.middleRows(k * b, b).noalias() = R_k * ph.Vp.middleRows(k * b, b);  // eq. (4)
      if (trace) factors.R[k] = R_k;
    }
    if (trace) round->F_after_R = objective_monarch(factors, ph.Qp, ph.Kp, ph.valid, tau);

    // L-half: every position j at once, given R (through alpha_L, c_L). L_j is used and dropped:
    // it feeds the next round's R statistics, or the output.
    for (int j = 0; j < b; ++j) {
      const Matrix<S> L_j = detail::l_update_position(ph, j, alpha_L, c_L, tau);  // (m, m) eq. (13)
      if (!last) detail::r_statistics_position(ph, j, L_j, alpha_R, c_R);        // eq. (11)
      if (want_output)
        detail::position_rows(Op, j, b).noalias() =
            L_j.transpose() * detail::position_rows(std::as_const(Y), j, b);     // eq. (4)
      if (trace) factors.L[j] = L_j;
    }

    if (trace) {
      round->alpha_L = alpha_L;
      round->c_L = c_L;
      round->A = factors;
      round->Y = Y;
      round->O = unpad(Op, g);
      round->F_after_L = objective_monarch(factors, ph.Qp, ph.Kp, ph.valid, tau);
    }
  }
  return unpad(Op, g);
}

template <class S>
Matrix<S> exact_head(const S* Q, const S* K, const S* V, int N, int d, int dv,
                     std::span<const std::uint8_t> keep, S tau) {
  constexpr int kChunk = 256;  // query rows per score block: memory O(kChunk * N), not O(N^2)
  validate_score_range(Q, K, static_cast<std::size_t>(N) * d, d, tau);
  const ConstMatrixMap<S> Qm(Q, N, d), Km(K, N, d), Vm(V, N, dv);
  Matrix<S> O(N, dv);
  for (int r0 = 0; r0 < N; r0 += kChunk) {
    const int rows = std::min(kChunk, N - r0);
    Matrix<S> P = tau * (Qm.middleRows(r0, rows) * Km.transpose());  // (rows, N): S = tau Q K^T
    if (!keep.empty())
      for (int n = 0; n < N; ++n)
        if (!keep[n]) P.col(n).setConstant(-std::numeric_limits<S>::infinity());
    detail::softmax_rows(P);                                          // P* = softmax(S) over valid keys
    O.middleRows(r0, rows).noalias() = P * Vm;                        // (rows, N)(N, d_v)
  }
  return O;
}

namespace {

// Runs one head function over every (e, h) of validated tensors.
template <class S, class HeadFn>
Tensor4<S> for_each_head(const Tensor4<S>& Q, const Tensor4<S>& V, const KeyMask* mask, HeadFn&& fn) {
  Tensor4<S> O(Q.E, Q.H, Q.N, V.D);
  for (int e = 0; e < Q.E; ++e) {
    std::span<const std::uint8_t> keep;
    if (mask && !mask->empty()) keep = std::span<const std::uint8_t>(mask->row(e), Q.N);
    for (int h = 0; h < Q.H; ++h) {
      const Matrix<S> O_head = fn(e, h, keep);  // (N, d_v)
      MatrixMap<S>(O.head(e, h), Q.N, V.D) = O_head;
    }
  }
  return O;
}

}  // namespace

template <class S>
Tensor4<S> monarch_attention(const Tensor4<S>& Q, const Tensor4<S>& K, const Tensor4<S>& V,
                             const KeyMask* mask, const Options& opt, std::vector<HeadTrace<S>>* traces) {
  validate_options(opt);
  validate_inputs(Q, K, V, mask);
  Geometry::make(Q.N, opt.block, opt.pad);  // reject a bad b before any work
  if (traces) traces->assign(static_cast<std::size_t>(Q.E) * Q.H, HeadTrace<S>());
  return for_each_head(Q, V, mask, [&](int e, int h, std::span<const std::uint8_t> keep) {
    HeadTrace<S>* trace = traces ? &(*traces)[static_cast<std::size_t>(e) * Q.H + h] : nullptr;
    return monarch_head(Q.head(e, h), K.head(e, h), V.head(e, h), Q.N, Q.D, V.D, keep, opt, trace);
  });
}

template <class S>
Tensor4<S> exact_attention(const Tensor4<S>& Q, const Tensor4<S>& K, const Tensor4<S>& V,
                           const KeyMask* mask, const Options& opt) {
  validate_options(opt);
  validate_inputs(Q, K, V, mask);
  const S tau = static_cast<S>(resolve_scale(opt, Q.D));
  return for_each_head(Q, V, mask, [&](int e, int h, std::span<const std::uint8_t> keep) {
    return exact_head(Q.head(e, h), K.head(e, h), V.head(e, h), Q.N, Q.D, V.D, keep, tau);
  });
}

// FLOP counts, eq. (15): a multiply-add is 2 FLOPs, an exp or log is 1; the rest is not counted.
double monarch_flops(int N, int d, int dv, int b, int steps) {
  const double m = std::ceil(static_cast<double>(N) / b), Np = m * b;
  const double r_half = 2 * Np * b * d   // R logits, eq. (12)
                        + Np * b         // their exps
                        + 2 * Np * b * d // alpha_L, eq. (10)
                        + Np * b;        // the logs of c_L
  const double l_half = 2 * Np * m * d   // L logits, eq. (13)
                        + Np * m;        // their exps
  const double stats = 2 * Np * m * (d + 1);          // alpha_R and c_R, eq. (11), rounds 2..T
  const double output = 2 * Np * b * dv + 2 * Np * m * dv;  // Y and o, eq. (4), once
  return steps * (r_half + l_half) + (steps - 1) * stats + output;
}

double exact_flops(int N, int d, int dv) {
  const double n2 = static_cast<double>(N) * N;
  return 2 * n2 * d + n2 + 2 * n2 * dv;  // Q K^T, the exps, P V
}

#define MONARCH_INSTANTIATE(S)                                                                        \
  template PaddedHead<S> pad_head<S>(const S*, const S*, const S*, int, int, int,                     \
                                     std::span<const std::uint8_t>, const Geometry&);                 \
  template Matrix<S> monarch_head<S>(const S*, const S*, const S*, int, int, int,                     \
                                     std::span<const std::uint8_t>, const Options&, HeadTrace<S>*);   \
  template Matrix<S> exact_head<S>(const S*, const S*, const S*, int, int, int,                       \
                                   std::span<const std::uint8_t>, S);                                 \
  template Tensor4<S> monarch_attention<S>(const Tensor4<S>&, const Tensor4<S>&, const Tensor4<S>&,   \
                                           const KeyMask*, const Options&, std::vector<HeadTrace<S>>*); \
  template Tensor4<S> exact_attention<S>(const Tensor4<S>&, const Tensor4<S>&, const Tensor4<S>&,     \
                                         const KeyMask*, const Options&);
MONARCH_INSTANTIATE(double)
MONARCH_INSTANTIATE(float)
#undef MONARCH_INSTANTIATE

}  // namespace monarch
