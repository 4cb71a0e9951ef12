// The variational form of softmax, docs eqs. (5)-(10).
#include <doctest/doctest.h>

#include <cmath>

#include "helpers.hpp"

using namespace monarch;

namespace {
constexpr double kTol = 1e-10;
constexpr int kRandomPoints = 2000;

Vector<double> softmax(const Vector<double>& z) {
  Vector<double> p = (z.array() - z.maxCoeff()).exp();
  return p / p.sum();
}

// A random point of the simplex (Dirichlet(1) via normalised exponentials), sometimes sparse.
Vector<double> random_simplex_point(int n, std::mt19937_64& rng) {
  std::exponential_distribution<double> E(1.0);
  std::bernoulli_distribution zero(0.2);
  Vector<double> p(n);
  for (int i = 0; i < n; ++i) p[i] = zero(rng) ? 0.0 : E(rng);
  if (p.sum() == 0) p[0] = 1;
  return p / p.sum();
}
}  // namespace

TEST_CASE("softmax maximises <p, z> + H(p) and the maximum is logsumexp") {
  std::mt19937_64 rng(10);
  std::normal_distribution<double> g(0.0, 3.0);
  for (int n : {1, 2, 5, 17}) {
    Vector<double> z(n);
    for (int i = 0; i < n; ++i) z[i] = g(rng);
    const double best = variational_value<double>(softmax(z), z);
    CHECK(best == doctest::Approx(logsumexp<double>(z)).epsilon(kTol));
    for (int t = 0; t < kRandomPoints; ++t)
      CHECK(variational_value<double>(random_simplex_point(n, rng), z) <= best + kTol);
  }
}

TEST_CASE("logsumexp is stable for large scores and skips -inf") {
  Vector<double> z(3);
  z << 1000.0, 1000.0, -std::numeric_limits<double>::infinity();
  CHECK(logsumexp<double>(z) == doctest::Approx(1000.0 + std::log(2.0)));
}

TEST_CASE("the factored F of eqs. (8)-(10) equals the dense F of eq. (6)") {
  std::mt19937_64 rng(11);
  const int m = 4, b = 5, d = 6;
  auto f = random_factors<double>(m, b, rng);
  const Matrix<double> Qp = test::gaussian(m * b, d, rng), Kp = test::gaussian(m * b, d, rng);
  std::vector<std::uint8_t> valid(m * b, 1);
  valid[3] = valid[7] = valid[10] = 0;  // invalid rows do not count in F ...
  // ... and an invalid key carries zero weight: zero its R column and renormalise the rows.
  for (int k = 0; k < m; ++k)
    for (int i = 0; i < b; ++i)
      if (!valid[k * b + i]) f.R[k].col(i).setZero();
  for (auto& R_k : f.R)
    for (int j = 0; j < b; ++j) R_k.row(j) /= R_k.row(j).sum();
  const double tau = 0.4;
  PaddedHead<double> ph;
  ph.g = Geometry{m * b, b, m, m * b, 0};
  ph.Qp = Qp;
  ph.Kp = Kp;
  ph.valid = valid;
  const double dense = objective_dense(dense_from_factors(f), test::dense_scores(ph, tau), valid);
  CHECK(objective_monarch(f, Qp, Kp, valid, tau) == doctest::Approx(dense).epsilon(kTol));
}

TEST_CASE("the KL gap is non-negative and equals F* - F = sum_r KL(A_r || P*_r)") {
  std::mt19937_64 rng(12);
  const int m = 3, b = 4, d = 5;
  const auto f = random_factors<double>(m, b, rng);
  const Matrix<double> Qp = test::gaussian(m * b, d, rng), Kp = test::gaussian(m * b, d, rng);
  const std::vector<std::uint8_t> valid(m * b, 1);
  const double tau = 0.7;
  const double gap = kl_gap(f, Qp, Kp, valid, tau);
  CHECK(gap >= 0.0);
  // sum_r KL(A_r || softmax(S_r)) computed densely, eq. (7).
  const Matrix<double> A = dense_from_factors(f);
  const Matrix<double> Sc = tau * Qp * Kp.transpose();
  double kl = 0;
  for (int r = 0; r < m * b; ++r) {
    const Vector<double> p = softmax(Sc.row(r).transpose());
    for (int c = 0; c < m * b; ++c) kl += A(r, c) * std::log(A(r, c) / p[c]);
  }
  CHECK(gap == doctest::Approx(kl).epsilon(kTol));
}
