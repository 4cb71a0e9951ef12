/// # Chapter 2: Softmax as an optimisation problem
///
/// Everything in MonarchAttention follows from one fact, eq. (5): softmax is the probability
/// vector that maximises "expected score plus entropy", and the maximum is the logsumexp.
/// This chapter checks it numerically, watches perturbations lose, and then lifts it to whole
/// attention matrices: exact attention maximises the objective $F$ of eq. (6), and any other
/// row-stochastic matrix falls short by exactly a sum of KL divergences, eq. (7).
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "monarch/variational.hpp"
#include "nb.hpp"

using monarch::Matrix;
using monarch::Vector;

namespace {
constexpr std::uint64_t kSeed = 7;
constexpr double kTol = 1e-12;

Vector<double> softmax(const Vector<double>& z) {
  Vector<double> p = (z.array() - z.maxCoeff()).exp();
  return p / p.sum();
}

// A uniformly random point of the simplex (normalised exponential draws).
Vector<double> random_simplex(int n, std::mt19937_64& rng) {
  std::exponential_distribution<double> E(1.0);
  Vector<double> p(n);
  for (int i = 0; i < n; ++i) p[i] = E(rng);
  return p / p.sum();
}

double kl(const Vector<double>& p, const Vector<double>& q) {
  double s = 0;
  for (int i = 0; i < p.size(); ++i)
    if (p[i] > 0) s += p[i] * std::log(p[i] / q[i]);
  return s;
}
}  // namespace

int main(int argc, char** argv) {
  nb::init(argc, argv);
  std::mt19937_64 rng(kSeed);
  std::normal_distribution<double> gauss(0.0, 1.5);

  /// ## The variational form, eq. (5)
  ///
  /// For scores $z$, the value of a probability vector $p$ is $\langle p, z \rangle + H(p)$:
  /// the expected score plus the entropy. `variational_value` computes it. Softmax reaches
  /// exactly $\mathrm{lse}(z)$, the maximum.
  const int n = 8;
  Vector<double> z(n);
  for (int i = 0; i < n; ++i) z[i] = gauss(rng);
  const Vector<double> s = softmax(z);
  const double lse = monarch::logsumexp(z);
  const double best = monarch::variational_value(s, z);
  std::printf("lse(z)                  = %.15f\n", lse);
  std::printf("value of softmax(z)     = %.15f\n", best);
  nb::check(std::abs(best - lse) < kTol, "softmax reaches the value lse(z)");

  /// ## Perturbations never win
  ///
  /// A hundred thousand random probability vectors, and softmax mixed with each of them: not one
  /// does better. By the proof of eq. (5) each falls short by exactly $\mathrm{KL}(p \Vert
  /// \mathrm{softmax}(z))$, which the last column confirms.
  const int trials = 100000;
  double best_other = -1e300, worst_identity = 0;
  for (int t = 0; t < trials; ++t) {
    const Vector<double> u = random_simplex(n, rng);
    const double eps = std::uniform_real_distribution<double>(1e-6, 1.0)(rng);
    for (const Vector<double>& p : {u, Vector<double>((1 - eps) * s + eps * u)}) {
      const double v = monarch::variational_value(p, z);
      best_other = std::max(best_other, v);
      worst_identity = std::max(worst_identity, std::abs((lse - v) - kl(p, s)));
    }
  }
  std::printf("best of %d perturbed vectors = %.15f (lse - best = %.3e)\n", 2 * trials, best_other, lse - best_other);
  std::printf("largest |lse - value - KL(p || softmax)| = %.2e\n", worst_identity);
  nb::check(best_other < lse, "no perturbed probability vector beats softmax");
  nb::check(worst_identity < 1e-10, "each falls short by exactly KL(p || softmax(z))");

  /// Walking from softmax towards a corner of the simplex, $p(t) = (1-t)\,\mathrm{softmax}(z) +
  /// t\, e_i$, the value drops on every path, and faster towards a low-scoring corner. A corner
  /// $e_i$ scores $z_i$ (no entropy), so the paths end at the scores themselves.
  std::vector<nb::Series> paths;
  std::vector<int> corners = {0, 3, 6};
  for (int i : corners) {
    nb::Series ser{nb::fmt("towards e_%d (z_%d = %.2f)", i, i, z[i]), {}, {}, false};
    for (int k = 0; k <= 100; ++k) {
      const double t = k / 100.0;
      Vector<double> p = (1 - t) * s;
      p[i] += t;
      ser.x.push_back(t);
      ser.y.push_back(monarch::variational_value(p, z));
    }
    paths.push_back(ser);
  }
  paths.push_back({"lse(z), the maximum", {0, 1}, {lse, lse}, false});
  bool decreasing = true;
  for (std::size_t k = 0; k + 1 < paths.size(); ++k)
    for (std::size_t q = 1; q < paths[k].y.size(); ++q) decreasing = decreasing && paths[k].y[q] < paths[k].y[q - 1];
  nb::check(decreasing, "along each path the value decreases from its maximum at softmax");
  nb::lineplot("nb2_paths.png", "<p, z> + H(p) along straight paths from softmax(z) to corners of the simplex",
               {"t  (p = (1-t) softmax(z) + t e_i)", "<p, z> + H(p)"}, paths);

  /// ## Attention as one big maximisation, eqs. (6)-(7)
  ///
  /// Apply eq. (5) to every row of the score matrix $S = \tau Q K^{\top}$. The objective
  /// $F(A) = \sum_r \langle A_r, S_r \rangle + H(A_r)$ is maximised by exact attention
  /// $P^\star = \mathrm{softmax}(S)$, with value $F^\star$ = `objective_optimum`. For any other
  /// row-stochastic $A$ the shortfall is $\sum_r \mathrm{KL}(A_r \Vert P^\star_r)$: raising $F$
  /// *is* approaching exact attention. MonarchAttention raises $F$ over Monarch matrices.
  const int N = 24, d = 8;
  const double tau = 1 / std::sqrt(double(d));
  Matrix<double> Q(N, d), K(N, d);
  for (int r = 0; r < N; ++r)
    for (int c = 0; c < d; ++c) Q(r, c) = gauss(rng), K(r, c) = gauss(rng);
  const Matrix<double> S = tau * Q * K.transpose();
  Matrix<double> Pstar(N, N), A(N, N);
  for (int r = 0; r < N; ++r) {
    Pstar.row(r) = softmax(S.row(r).transpose()).transpose();
    A.row(r) = (0.5 * Pstar.row(r).transpose() + 0.5 * random_simplex(N, rng)).transpose();
  }
  const std::vector<std::uint8_t> valid(N, 1);
  const double F_star = monarch::objective_optimum(Q, K, valid, tau);
  const double F_P = monarch::objective_dense(Pstar, S, valid);
  const double F_A = monarch::objective_dense(A, S, valid);
  double sum_kl = 0;
  for (int r = 0; r < N; ++r) sum_kl += kl(A.row(r).transpose(), Pstar.row(r).transpose());
  std::printf("F*            = %.12f\nF(softmax(S)) = %.12f\nF(A)          = %.12f\n", F_star, F_P, F_A);
  std::printf("F* - F(A)     = %.12f\nsum_r KL(A_r || P*_r) = %.12f\n", F_star - F_A, sum_kl);
  nb::check(std::abs(F_P - F_star) < 1e-10, "exact attention reaches F*");
  nb::check(std::abs((F_star - F_A) - sum_kl) < 1e-10, "F* - F(A) is the sum of the rows' KL divergences (7)");
  nb::heatmap("nb2_attention.png", "Exact attention P* = softmax(S) and a perturbed row-stochastic A (F(A) < F*)",
              {{Pstar, "P* = softmax(S)"}, {A, "A: half P*, half noise"}}, 8, 0.5);

  return nb::finish();
}
