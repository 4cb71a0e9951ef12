// Degenerate block sizes, docs eq. (16), and the initial step, eq. (14).
#include <doctest/doctest.h>

#include "helpers.hpp"

using namespace monarch;

namespace {
constexpr double kExactTol = 1e-12;

// Compares the rows of two outputs whose query is valid (keep empty = all rows).
double max_diff_valid_rows(const Matrix<double>& A, const Matrix<double>& B,
                           const std::vector<std::uint8_t>& keep) {
  double worst = 0;
  for (int r = 0; r < A.rows(); ++r)
    if (keep.empty() || keep[r]) worst = std::max(worst, (A.row(r) - B.row(r)).cwiseAbs().maxCoeff());
  return worst;
}
}  // namespace

TEST_CASE("b = N and b = 1 reproduce exact softmax attention") {
  std::mt19937_64 rng(30);
  for (int N : {1, 2, 13, 40}) {
    const test::Head head(N, 6, 9, rng, 1.5);
    for (bool masked : {false, true}) {
      const auto keep = masked ? test::random_mask(N, 0.3, rng) : std::vector<std::uint8_t>{};
      const Matrix<double> exact = head.exact(Options{}, keep);
      for (Pad pad : {Pad::Pre, Pad::Post})
        for (int T : {1, 2, 3}) {
          CAPTURE(N);
          CAPTURE(masked);
          CAPTURE(T);
          // b = 1: m = N and every R_k = [1], so L_0 is the full softmax; every row is exact.
          const Matrix<double> b1 = head.monarch(Options{.steps = T, .block = 1, .pad = pad}, keep);
          CHECK(test::max_abs_diff(b1, exact) < kExactTol);
          // b = N: m = 1 and R_0 is the full softmax of each valid query (a masked query's row is
          // steered by nothing after round 1, so only valid rows are compared for T > 1).
          const Matrix<double> bN = head.monarch(Options{.steps = T, .block = N, .pad = pad}, keep);
          CHECK(max_diff_valid_rows(bN, exact, T == 1 ? std::vector<std::uint8_t>{} : keep) < kExactTol);
        }
    }
  }
}

TEST_CASE("the first R-update is block-diagonal local softmax attention") {
  std::mt19937_64 rng(31);
  const int N = 45, d = 7, b = 6;  // b does not divide N: 3 pads
  const test::Head head(N, d, d, rng, 1.5);
  const auto keep = test::random_mask(N, 0.25, rng);
  for (Pad pad : {Pad::Pre, Pad::Post}) {
    const Options opt{.steps = 1, .block = b, .pad = pad};
    HeadTrace<double> trace;
    head.monarch(opt, keep, &trace);
    const auto ph = head.padded(opt, keep);
    const double tau = resolve_scale(opt, d);
    for (int k = 0; k < trace.g.m; ++k) {
      // Independent local attention inside block k: query (k, j) against the valid keys of block k.
      for (int j = 0; j < b; ++j) {
        Vector<double> z(b);
        for (int i = 0; i < b; ++i)
          z[i] = ph.valid[k * b + i] ? tau * ph.Qp.row(k * b + j).dot(ph.Kp.row(k * b + i))
                                     : -std::numeric_limits<double>::infinity();
        if (z.maxCoeff() == -std::numeric_limits<double>::infinity()) continue;  // empty block
        Vector<double> p = (z.array() - z.maxCoeff()).exp();
        p /= p.sum();
        CHECK((trace.rounds[0].A.R[k].row(j).transpose() - p).cwiseAbs().maxCoeff() < kExactTol);
      }
    }
  }
}
