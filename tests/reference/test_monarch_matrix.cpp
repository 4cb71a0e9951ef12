// Monarch matrices, docs eqs. (2)-(4).
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "monarch/monarch_matrix.hpp"

using namespace monarch;

namespace {
constexpr double kTol = 1e-12;
struct Shape { int m, b; };
constexpr Shape kShapes[] = {{1, 1}, {1, 5}, {5, 1}, {3, 4}, {4, 3}, {6, 6}, {2, 9}};
}  // namespace

TEST_CASE("the dense A of eq. (2) equals the shuffle form of eq. (3)") {
  std::mt19937_64 rng(1);
  for (auto [m, b] : kShapes) {
    const auto f = random_factors<double>(m, b, rng);
    CHECK(test::max_abs_diff(dense_from_factors(f), dense_from_matrix_form(f)) < kTol);
  }
}

TEST_CASE("the perfect shuffle is a permutation taking (k, j) to (j, k)") {
  const int m = 3, b = 4;
  const auto P = perfect_shuffle<double>(m, b);
  CHECK(test::max_abs_diff(P * P.transpose(), Matrix<double>::Identity(m * b, m * b)) == 0.0);
  Vector<double> x(m * b);
  for (int i = 0; i < m * b; ++i) x[i] = i;  // x[k*b + j] = k*b + j
  const Vector<double> y = P * x;
  for (int k = 0; k < m; ++k)
    for (int j = 0; j < b; ++j) CHECK(y[j * m + k] == k * b + j);
}

TEST_CASE("every row of a Monarch matrix sums to one") {
  std::mt19937_64 rng(2);
  for (auto [m, b] : kShapes) {
    const auto A = dense_from_factors(random_factors<double>(m, b, rng));
    CHECK((A.rowwise().sum().array() - 1.0).abs().maxCoeff() < kTol);
    CHECK(A.minCoeff() >= 0.0);
  }
}

TEST_CASE("the fast product of eq. (4) equals the dense product A V") {
  std::mt19937_64 rng(3);
  for (auto [m, b] : kShapes) {
    const auto f = random_factors<double>(m, b, rng);
    const Matrix<double> V = test::gaussian(m * b, 7, rng);
    CHECK(test::max_abs_diff(monarch_apply(f, V), dense_from_factors(f) * V) < kTol);
  }
}
