// Alternating maximisation, docs eqs. (11)-(13): each half-step is the exact maximiser of F over its
// factor, so F never decreases.
#include <doctest/doctest.h>

#include "helpers.hpp"

using namespace monarch;

namespace {
constexpr double kTol = 1e-9;       // F is a sum over N rows; this is far below any real change
constexpr int kMaxSteps = 10;
constexpr double kPeakedScale = 3;  // Q and K scaled by 3: a peaked softmax, the hard case
constexpr int kPerturbations = 40;

Vector<double> random_simplex_point(const std::vector<bool>& allowed, std::mt19937_64& rng) {
  std::exponential_distribution<double> E(1.0);
  Vector<double> p = Vector<double>::Zero(static_cast<int>(allowed.size()));
  for (std::size_t i = 0; i < allowed.size(); ++i)
    if (allowed[i]) p[static_cast<int>(i)] = E(rng);
  return p / p.sum();
}

struct Case {
  int N, d, b;
  Pad pad;
  double sigma;
  bool masked;
};
constexpr Case kCases[] = {
    {50, 8, 7, Pad::Post, 1.0, false}, {50, 8, 7, Pad::Pre, kPeakedScale, true},
    {64, 16, 8, Pad::Post, kPeakedScale, false}, {37, 5, 4, Pad::Pre, 1.0, true},
    {30, 4, 6, Pad::Post, kPeakedScale, true}};
}  // namespace

TEST_CASE("F never decreases, half-step by half-step, for T up to 10") {
  std::mt19937_64 rng(20);
  for (const Case& c : kCases) {
    CAPTURE(c.N);
    CAPTURE(c.sigma);
    const test::Head head(c.N, c.d, c.d, rng, c.sigma);
    const auto keep = c.masked ? test::random_mask(c.N, 0.3, rng) : std::vector<std::uint8_t>{};
    HeadTrace<double> trace;
    head.monarch(Options{.steps = kMaxSteps, .block = c.b, .pad = c.pad}, keep, &trace);
    REQUIRE(trace.rounds.size() == kMaxSteps);
    double previous = -std::numeric_limits<double>::infinity();
    for (const auto& round : trace.rounds) {
      CHECK(round.F_after_R >= previous - kTol);
      CHECK(round.F_after_L >= round.F_after_R - kTol);
      CHECK(trace.F_star - round.F_after_L >= -kTol);  // the KL gap stays non-negative
      previous = round.F_after_L;
    }
  }
}

TEST_CASE("each R-update and each L-update is the exact maximiser given the other factor") {
  std::mt19937_64 rng(21);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  for (const Case& c : kCases) {
    CAPTURE(c.N);
    const test::Head head(c.N, c.d, c.d, rng, c.sigma);
    const auto keep = c.masked ? test::random_mask(c.N, 0.3, rng) : std::vector<std::uint8_t>{};
    const Options opt{.steps = 3, .block = c.b, .pad = c.pad};
    HeadTrace<double> trace;
    head.monarch(opt, keep, &trace);
    const auto ph = head.padded(opt, keep);
    const int m = trace.g.m, b = trace.g.b;
    std::vector<bool> valid_key(b), nonempty_block(m, false);
    for (int t = 0; t < 3; ++t) {
      const auto& round = trace.rounds[t];
      // The R-update of round t was taken with the L of round t-1 (I at t = 0).
      MonarchFactors<double> before = round.A;
      before.L = t == 0 ? std::vector<Matrix<double>>(b, Matrix<double>::Identity(m, m))
                        : trace.rounds[t - 1].A.L;
      for (int trial = 0; trial < kPerturbations; ++trial) {
        MonarchFactors<double> R_moved = before;
        const int k = static_cast<int>(U(rng) * m), j = static_cast<int>(U(rng) * b);
        for (int i = 0; i < b; ++i) valid_key[i] = ph.valid[k * b + i];
        if (std::find(valid_key.begin(), valid_key.end(), true) == valid_key.end()) continue;
        const double eps = U(rng);
        R_moved.R[k].row(j) = (1 - eps) * R_moved.R[k].row(j) + eps * random_simplex_point(valid_key, rng).transpose();
        CHECK(objective_monarch(R_moved, ph.Qp, ph.Kp, ph.valid, trace.tau) <= round.F_after_R + kTol);

        MonarchFactors<double> L_moved = round.A;
        for (int kk = 0; kk < m; ++kk) nonempty_block[kk] = round.c_L[kk * b] < std::numeric_limits<double>::infinity();
        const int l = static_cast<int>(U(rng) * m);
        L_moved.L[j].col(l) = (1 - eps) * L_moved.L[j].col(l) + eps * random_simplex_point(nonempty_block, rng);
        CHECK(objective_monarch(L_moved, ph.Qp, ph.Kp, ph.valid, trace.tau) <= round.F_after_L + kTol);
      }
    }
  }
}
