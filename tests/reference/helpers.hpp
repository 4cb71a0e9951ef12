// Random inputs and small comparisons shared by the reference tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "monarch/attention.hpp"
#include "monarch/variational.hpp"

namespace monarch::test {

/// A (rows, cols) matrix of N(0, sigma^2) entries.
template <class S = double>
Matrix<S> gaussian(int rows, int cols, std::mt19937_64& rng, double sigma = 1.0) {
  std::normal_distribution<double> g(0.0, sigma);
  Matrix<S> M(rows, cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) M(r, c) = static_cast<S>(g(rng));
  return M;
}

/// A random (E, H, N, D) tensor.
template <class S = double>
Tensor4<S> gaussian_tensor(int E, int H, int N, int D, std::mt19937_64& rng, double sigma = 1.0) {
  Tensor4<S> t(E, H, N, D);
  std::normal_distribution<double> g(0.0, sigma);
  for (auto& x : t.data) x = static_cast<S>(g(rng));
  return t;
}

/// One head of random Q, K (N, d) and V (N, dv).
struct Head {
  Matrix<double> Q, K, V;
  int N, d, dv;
  Head(int n, int dd, int ddv, std::mt19937_64& rng, double sigma = 1.0)
      : Q(gaussian(n, dd, rng, sigma)), K(gaussian(n, dd, rng, sigma)), V(gaussian(n, ddv, rng)),
        N(n), d(dd), dv(ddv) {}
  Matrix<double> monarch(const Options& opt, std::span<const std::uint8_t> keep = {},
                         HeadTrace<double>* trace = nullptr) const {
    return monarch_head(Q.data(), K.data(), V.data(), N, d, dv, keep, opt, trace);
  }
  Matrix<double> exact(const Options& opt, std::span<const std::uint8_t> keep = {}) const {
    return exact_head(Q.data(), K.data(), V.data(), N, d, dv, keep, resolve_scale(opt, d));
  }
  PaddedHead<double> padded(const Options& opt, std::span<const std::uint8_t> keep = {}) const {
    return pad_head(Q.data(), K.data(), V.data(), N, d, dv, keep, Geometry::make(N, opt.block, opt.pad));
  }
};

/// A keep-mask of N entries with each key dropped with probability p_drop (at least one kept).
inline std::vector<std::uint8_t> random_mask(int N, double p_drop, std::mt19937_64& rng) {
  std::bernoulli_distribution drop(p_drop);
  std::vector<std::uint8_t> keep(N);
  for (auto& k : keep) k = drop(rng) ? 0 : 1;
  keep[N / 2] = 1;
  return keep;
}

inline double max_abs_diff(const Matrix<double>& A, const Matrix<double>& B) {
  return (A - B).cwiseAbs().maxCoeff();
}

/// Dense scores S = tau Q K^T of the padded head, with -inf on invalid keys (N', N').
inline Matrix<double> dense_scores(const PaddedHead<double>& ph, double tau) {
  Matrix<double> Sc = tau * ph.Qp * ph.Kp.transpose();
  for (int c = 0; c < ph.g.Np; ++c)
    if (!ph.valid[c]) Sc.col(c).setConstant(-std::numeric_limits<double>::infinity());
  return Sc;
}

}  // namespace monarch::test
