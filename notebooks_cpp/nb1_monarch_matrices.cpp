/// # Chapter 1: Monarch matrices
///
/// MonarchAttention replaces the dense $N \times N$ attention matrix by a *Monarch* matrix: a
/// product of two block-diagonal matrices and two fixed permutations. This chapter builds one
/// from its factors, checks the three ways of writing it down against each other (the entry
/// formula eq. (2), the shuffle form eq. (3), the fast product eq. (4)), and draws it.
///
/// The derivation is in [§2 of the derivation](../docs/derivation.md); the code used here is
/// `monarch_matrix.hpp` of the CPU reference.
#include <cstdio>
#include <iostream>
#include <random>

#include "monarch/monarch_matrix.hpp"
#include "nb.hpp"

using monarch::Matrix;
using monarch::MonarchFactors;

namespace {
constexpr std::uint64_t kSeed = 20250501;
constexpr double kExact = 1e-12;  // agreement expected between exact rewritings of one product

void print_matrix(const char* name, const Matrix<double>& M) {
  std::printf("%s =\n", name);
  for (int r = 0; r < M.rows(); ++r) {
    for (int c = 0; c < M.cols(); ++c) std::printf(" %6.3f", M(r, c));
    std::printf("\n");
  }
}
}  // namespace

int main(int argc, char** argv) {
  nb::init(argc, argv);
  std::mt19937_64 rng(kSeed);

  /// ## The factors
  ///
  /// A padded sequence of $N' = m b$ positions is cut into $m$ blocks of $b$ positions; position
  /// $(l, j)$ is row $l b + j$. The Monarch matrix has two families of small factors:
  ///
  /// * $R_k$ ($b \times b$), one per block $k$: every **row** is a probability vector;
  /// * $L_j$ ($m \times m$), one per position $j$: every **column** is a probability vector.
  ///
  /// Here $m = 3$ blocks of $b = 2$ positions, with random positive factors.
  const int m = 3, b = 2;
  const MonarchFactors<double> f = monarch::random_factors<double>(m, b, rng);
  print_matrix("R_0", f.R[0]);
  print_matrix("L_0", f.L[0]);
  bool stochastic = true;
  for (const auto& R : f.R) stochastic = stochastic && (R.rowwise().sum().array() - 1).abs().maxCoeff() < kExact;
  for (const auto& L : f.L) stochastic = stochastic && (L.colwise().sum().array() - 1).abs().maxCoeff() < kExact;
  nb::check(stochastic, "every row of every R_k and every column of every L_j sums to one");

  /// ## The entry formula, eq. (2)
  ///
  /// $A[(l,j),(k,i)] = L_j[k,l]\, R_k[j,i]$: query $(l,j)$ first picks a key block $k$ with
  /// probability $L_j[k,l]$, then a key $i$ inside that block with probability $R_k[j,i]$. Two
  /// probabilities multiplied: every row of $A$ sums to one, so $A$ is an attention matrix.
  const Matrix<double> A = monarch::dense_from_factors(f);  // (N', N')
  print_matrix("A", A);
  nb::check((A.rowwise().sum().array() - 1).abs().maxCoeff() < kExact, "every row of A sums to one");

  /// ## The shuffle form, eq. (3)
  ///
  /// The same matrix is $A = P^{\top} \mathrm{diag}(L_0^{\top}, \dots, L_{b-1}^{\top})\, P\,
  /// \mathrm{diag}(R_0, \dots, R_{m-1})$. $P$ is the *perfect shuffle*: it reorders the
  /// positions from block-major $(k, j)$ to position-major $(j, k)$, like riffling $m$ piles of
  /// $b$ cards. Applied to the positions $0, \dots, 5$ it deals them out as follows.
  const Matrix<double> P = monarch::perfect_shuffle<double>(m, b);
  Matrix<double> positions(m * b, 1);
  for (int p = 0; p < m * b; ++p) positions(p, 0) = p;
  const Matrix<double> dealt = P * positions;
  std::printf("P (0 1 2 3 4 5) = (");
  for (int p = 0; p < m * b; ++p) std::printf("%s%g", p ? " " : "", dealt(p, 0));
  std::printf(")\n");
  nb::check(dealt(1, 0) == b && dealt(m, 0) == 1, "P puts position 0 of every block first, then position 1");

  const Matrix<double> A3 = monarch::dense_from_matrix_form(f);
  const double gap3 = (A3 - A).cwiseAbs().maxCoeff();
  std::printf("max |A(eq. 3) - A(eq. 2)| = %.2e\n", gap3);
  nb::check(gap3 < kExact, "the shuffle form (3) and the entry formula (2) give the same matrix");

  /// ## The fast product, eq. (4)
  ///
  /// Attention needs $A V$, not $A$. Summing over the key position $i$ first gives
  /// $Y[k,j] = \sum_i R_k[j,i]\, v_{(k,i)}$, then $o_{(l,j)} = \sum_k L_j[k,l]\, Y[k,j]$:
  /// $N'(b + m) d_v$ multiply-adds instead of $N'^2 d_v$. At $b = m = \sqrt N$ that is
  /// $N^{1.5}$ against $N^2$.
  const int dv = 5;
  const Matrix<double> V = Matrix<double>::Random(m * b, dv);
  const Matrix<double> fast = monarch::monarch_apply(f, V);  // (N', d_v)
  const double gap4 = (fast - A * V).cwiseAbs().maxCoeff();
  std::printf("max |fast A V - dense A V| = %.2e\n", gap4);
  nb::check(gap4 < kExact, "the fast product (4) equals the dense product");
  for (int n : {64, 256, 1024, 4096, 16384}) {
    const int bb = static_cast<int>(std::lround(std::sqrt(n)));
    std::printf("N = %5d, b = m = %3d: fast %12.0f, dense %14.0f multiply-adds per value column (%.0fx fewer)\n",
                n, bb, double(n) * (2 * bb), double(n) * n, double(n) / (2 * bb));
  }

  /// ## What it looks like
  ///
  /// A bigger example, $m = 6$ blocks of $b = 4$ ($N' = 24$), drawn as heatmaps (bright = large,
  /// white lines = block boundaries). $\mathrm{diag}(R)$ only mixes keys inside a block. The
  /// shuffled $L$ factor, $P^{\top} \mathrm{diag}(L^{\top}) P$, only connects equal positions of
  /// different blocks, so it is a grid of diagonals. Their product $A$ is dense, yet it is
  /// described by $N'(b + m) = 240$ numbers instead of $N'^2 = 576$: every $b \times b$ tile of
  /// $A$ is a copy of a row-scaled $R_k$.
  const MonarchFactors<double> g = monarch::random_factors<double>(6, 4, rng);
  MonarchFactors<double> only_R = g, only_L = g;
  for (auto& L : only_R.L) L.setIdentity();  // L = I leaves diag(R)
  for (auto& R : only_L.R) R.setIdentity();  // R = I leaves P^T diag(L^T) P
  const Matrix<double> G = monarch::dense_from_factors(g);
  nb::heatmap("nb1_structure.png", "The two factors of a Monarch matrix and their product (m = 6, b = 4)",
              {{monarch::dense_from_factors(only_R), "diag(R)", 4},
               {monarch::dense_from_factors(only_L), "P^T diag(L^T) P", 4},
               {G, "A", 4}},
              10, 0.5);
  nb::check((monarch::dense_from_factors(only_L) * monarch::dense_from_factors(only_R) - G).cwiseAbs().maxCoeff() < kExact,
            "A is the product of the two pictured factors");

  return nb::finish();
}
