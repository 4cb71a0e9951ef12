// Randomised invariants of the CPU reference (issue 6): hundreds of random configurations from a
// fixed seed list -- N in [1, 600], any b in [1, N], T in [1, 4], pre or post padding, random key
// masks (never all-masked), d and d_v in [1, 130] -- and for each:
//   - no NaN or Inf anywhere in the output or the trace;
//   - every row of every round's A sums to 1 (dense A from eq. (2) while N' is small, otherwise
//     the factor sums: columns of L_j and rows of R_k), and masked keys get zero weight;
//   - F of eq. (6) never decreases, half-step by half-step, and never passes F* (eq. (7));
//   - b = N (and b = 1) reproduce exact softmax attention, eq. (16);
//   - changing the keys and values of masked tokens changes no output bit.
// Sized to run in seconds in Release and well under a minute under ASan/UBSan on 2 cores: most N
// are small, one in twenty is long (see random_config.hpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "monarch/attention.hpp"
#include "monarch/monarch_matrix.hpp"
#include "monarch/variational.hpp"
#include "random_config.hpp"

using namespace monarch;
using monarch::hardening::Config;

namespace {

constexpr std::uint64_t kSeeds[] = {101, 202, 303, 404, 505, 606, 707, 808};
constexpr int kConfigsPerSeed = 40;       // 320 configurations in all
constexpr int kDenseMaxNp = 96;           // build dense A (N' x N') only up to this size
constexpr double kSumTol = 1e-12;         // a row sum of at most N' products of probabilities
constexpr double kExactTol = 1e-11;       // b = N / b = 1 against exact_head, O(1) values
constexpr double kHullTol = 1e-12;        // output rows are convex combinations of value rows
constexpr double kApplyTol = 1e-12;       // the returned O against A V from the traced factors
constexpr double kMonotoneRelTol = 1e-10; // F may drop by at most 1e-10 (1 + |F|) per half-step
constexpr int kMaxNForB1 = 200;          // the b = 1 exactness check runs up to this N
constexpr int kFloatEvery = 3;            // the float instantiation runs on every third config
constexpr double kFloatHullTol = 1e-4;

/// Calls fn(index, config) for every configuration; each has its own generator, seeded from
/// (seed, index), so one failing configuration can be regenerated alone.
template <class Fn>
void for_each_config(Fn&& fn) {
  for (std::uint64_t seed : kSeeds)
    for (int i = 0; i < kConfigsPerSeed; ++i) {
      std::seed_seq seq{seed, static_cast<std::uint64_t>(i)};
      std::mt19937_64 rng(seq);
      const Config c = hardening::draw_config(rng);
      CAPTURE(seed);
      CAPTURE(i);
      const std::string config = c.describe();
      CAPTURE(config);
      fn(c, rng);
    }
}

template <class S>
Matrix<S> run(const Config& c, const Options& opt, HeadTrace<S>* trace = nullptr) {
  if constexpr (std::is_same_v<S, double>)
    return monarch_head<double>(c.Q.data(), c.K.data(), c.V.data(), c.N, c.d, c.dv, c.keep, opt, trace);
  else {
    const Matrix<float> Q = c.Q.cast<float>(), K = c.K.cast<float>(), V = c.V.cast<float>();
    return monarch_head<float>(Q.data(), K.data(), V.data(), c.N, c.d, c.dv, c.keep, opt, trace);
  }
}

Matrix<double> exact(const Config& c) {
  return exact_head<double>(c.Q.data(), c.K.data(), c.V.data(), c.N, c.d, c.dv, c.keep,
                            resolve_scale(c.opt, c.d));
}

bool kept(const Config& c, int n) { return c.keep.empty() || c.keep[n] != 0; }

template <class M>
bool all_finite(const M& x) {
  return x.size() == 0 || x.array().isFinite().all();
}

/// Largest violation of "every output row lies in the box spanned by the valid value rows":
/// true of any convex combination of those rows, so of any row-stochastic A with zero weight on
/// masked keys.
template <class S>
double hull_violation(const Config& c, const Matrix<S>& O) {
  Vector<double> lo = Vector<double>::Constant(c.dv, std::numeric_limits<double>::infinity());
  Vector<double> hi = -lo;
  for (int n = 0; n < c.N; ++n)
    if (kept(c, n)) {
      lo = lo.cwiseMin(c.V.row(n).transpose());
      hi = hi.cwiseMax(c.V.row(n).transpose());
    }
  double worst = 0;
  for (int n = 0; n < c.N; ++n)
    for (int v = 0; v < c.dv; ++v) {
      const double x = static_cast<double>(O(n, v));
      worst = std::max({worst, lo[v] - x, x - hi[v]});
    }
  return worst;
}

/// Whether padded index p holds a valid key (a token whose key the mask keeps).
std::vector<std::uint8_t> valid_keys(const Config& c, const Geometry& g) {
  std::vector<std::uint8_t> valid(g.Np, 0);
  for (int n = 0; n < c.N; ++n) valid[n + g.off] = kept(c, n) ? 1 : 0;  // eq. (1)
  return valid;
}

/// Largest deviation from "every row of A sums to 1 and masked or pad keys get weight 0".
/// Small N': dense A from eq. (2). Large N': the same from the factors without forming A.
double row_sum_violation(const MonarchFactors<double>& f, const std::vector<std::uint8_t>& valid) {
  const int m = f.m, b = f.b;
  double worst = 0;
  if (m * b <= kDenseMaxNp) {
    const Matrix<double> A = dense_from_factors(f);  // (N', N')
    worst = std::max(worst, (A.rowwise().sum().array() - 1).abs().maxCoeff());
    worst = std::max(worst, -A.minCoeff());
    for (int col = 0; col < m * b; ++col)
      if (!valid[col]) worst = std::max(worst, A.col(col).cwiseAbs().maxCoeff());
    return worst;
  }
  // Row (l, j) of A sums to sum_k L_j[k, l] sum_i R_k[j, i]: 1 when every column of L_j is a
  // probability vector and every row of R_k is one -- except for a block k with no valid key,
  // whose R_k is zero and whose weight L_j[k, l] must then be zero too.
  for (int k = 0; k < m; ++k) {
    bool block_valid = false;
    for (int i = 0; i < b; ++i) block_valid = block_valid || valid[k * b + i];
    const Matrix<double>& R = f.R[k];  // (b, b)
    worst = std::max(worst, -R.minCoeff());
    for (int i = 0; i < b; ++i)
      if (!valid[k * b + i]) worst = std::max(worst, R.col(i).cwiseAbs().maxCoeff());
    const double target = block_valid ? 1.0 : 0.0;
    worst = std::max(worst, (R.rowwise().sum().array() - target).abs().maxCoeff());
    if (!block_valid)
      for (int j = 0; j < b; ++j) worst = std::max(worst, f.L[j].row(k).cwiseAbs().maxCoeff());
  }
  for (int j = 0; j < b; ++j) {
    worst = std::max(worst, (f.L[j].colwise().sum().array() - 1).abs().maxCoeff());
    worst = std::max(worst, -f.L[j].minCoeff());
  }
  return worst;
}

/// Largest |a - b| over the rows n whose query is kept (all rows when rows_all).
double max_diff_rows(const Config& c, const Matrix<double>& a, const Matrix<double>& b, bool rows_all) {
  double worst = 0;
  for (int n = 0; n < c.N; ++n)
    if (rows_all || kept(c, n)) worst = std::max(worst, (a.row(n) - b.row(n)).cwiseAbs().maxCoeff());
  return worst;
}

}  // namespace

TEST_CASE("random configurations: no NaN or Inf, rows of A sum to 1, F never decreases") {
  int configs = 0, dense_checked = 0, large_N = 0;
  for_each_config([&](const Config& c, std::mt19937_64&) {
    ++configs;
    HeadTrace<double> trace;
    const Matrix<double> O = run<double>(c, c.opt, &trace);
    const Geometry& g = trace.g;
    large_N += c.N > 200;
    dense_checked += g.Np <= kDenseMaxNp;

    REQUIRE(O.rows() == c.N);
    REQUIRE(O.cols() == c.dv);
    REQUIRE(trace.rounds.size() == static_cast<std::size_t>(c.opt.steps));
    CHECK(all_finite(O));
    CHECK(hull_violation(c, O) < kHullTol);
    CHECK(std::isfinite(trace.F_star));

    const std::vector<std::uint8_t> valid = valid_keys(c, g);
    Matrix<double> Vp = Matrix<double>::Zero(g.Np, c.dv);  // (N', d_v), eq. (1)
    for (int n = 0; n < c.N; ++n) Vp.row(n + g.off) = c.V.row(n);

    const double tol_F = kMonotoneRelTol * (1 + std::abs(trace.F_star));
    double previous = -std::numeric_limits<double>::infinity();
    for (const Round<double>& r : trace.rounds) {
      CHECK(all_finite(r.alpha_R));
      CHECK(all_finite(r.c_R));
      CHECK(all_finite(r.alpha_L));
      CHECK(all_finite(r.Y));
      CHECK(all_finite(r.O));
      // c_L is finite except +inf on a block with no valid key (zero weight in eq. (13)).
      CHECK_FALSE(r.c_L.array().isNaN().any());
      CHECK_FALSE((r.c_L.array() == -std::numeric_limits<double>::infinity()).any());
      CHECK(row_sum_violation(r.A, valid) < kSumTol);
      // The output of the round is A V with this round's factors, eq. (4).
      const Matrix<double> AV = monarch_apply(r.A, Vp).middleRows(g.off, c.N);
      CHECK((AV - r.O).cwiseAbs().maxCoeff() < kApplyTol);
      // F never decreases half-step by half-step, and stays below the optimum, eq. (7).
      CHECK(std::isfinite(r.F_after_R));
      CHECK(std::isfinite(r.F_after_L));
      CHECK(r.F_after_R >= previous - tol_F);
      CHECK(r.F_after_L >= r.F_after_R - tol_F);
      CHECK(r.F_after_L <= trace.F_star + tol_F);
      previous = r.F_after_L;
    }
    CHECK((trace.rounds.back().O - O).cwiseAbs().maxCoeff() == 0.0);
  });
  // The draw must really cover the ranges it claims: many dense checks and some long sequences.
  CHECK(configs == static_cast<int>(std::size(kSeeds)) * kConfigsPerSeed);
  CHECK(dense_checked > configs / 3);
  CHECK(large_N >= 10);
}

TEST_CASE("random configurations: b = N and b = 1 reproduce exact softmax attention") {
  for_each_config([&](const Config& c, std::mt19937_64&) {
    const Matrix<double> P = exact(c);
    REQUIRE(all_finite(P));
    Options opt = c.opt;
    // b = N: m = 1, R_0 is the softmax of each query over all valid keys. For T > 1 a masked
    // query's R row is steered by nothing (c_R = 0: uniform), so only kept rows are exact.
    opt.block = c.N;
    const Matrix<double> bN = run<double>(c, opt);
    CHECK(all_finite(bN));
    CHECK(max_diff_rows(c, bN, P, c.opt.steps == 1) < kExactTol);
    // b = 1: every R_k = [1] and L_0 is the softmax over all keys, in every round. (Checked up
    // to kMaxNForB1 only: with m = N each round costs O(N^2 d), as much as exact attention.)
    if (c.N > kMaxNForB1) return;
    opt.block = 1;
    const Matrix<double> b1 = run<double>(c, opt);
    CHECK(all_finite(b1));
    CHECK(max_diff_rows(c, b1, P, true) < kExactTol);
  });
}

TEST_CASE("random configurations: keys and values of masked tokens have no influence") {
  int perturbed = 0;
  for_each_config([&](const Config& c, std::mt19937_64& rng) {
    if (c.keep.empty() || std::count(c.keep.begin(), c.keep.end(), 0) == 0) return;
    ++perturbed;
    const Matrix<double> O = run<double>(c, c.opt);
    Config changed = c;
    std::normal_distribution<double> big(0.0, 50.0);  // far outside the data: any leak shows
    for (int n = 0; n < c.N; ++n)
      if (!kept(c, n)) {
        for (int x = 0; x < c.d; ++x) changed.K(n, x) = big(rng);
        for (int x = 0; x < c.dv; ++x) changed.V(n, x) = big(rng);
      }
    const Matrix<double> O2 = run<double>(changed, c.opt);
    // Masked keys get weight exactly 0, so the outputs agree to the bit (0 * v adds 0).
    CHECK((O - O2).cwiseAbs().maxCoeff() == 0.0);
  });
  CHECK(perturbed > 100);
}

TEST_CASE("random configurations in float: no NaN or Inf, outputs inside the hull of the values") {
  int index = 0;
  for_each_config([&](const Config& c, std::mt19937_64&) {
    if (index++ % kFloatEvery != 0) return;
    const Matrix<float> O = run<float>(c, c.opt);
    CHECK(all_finite(O));
    CHECK(hull_violation(c, O) < kFloatHullTol);
  });
}
