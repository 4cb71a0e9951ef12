// Block-local and Nystrom attention, their FLOP counts, and the method parser.
#include <doctest/doctest.h>

#include <limits>

#include "helpers.hpp"
#include "monarch/attention.hpp"

using namespace monarch::models;
using monarch::Matrix;
using monarch::models::test::gaussian;

TEST_CASE("block-local attention is MonarchAttention's first R-update alone (Y of round 1)") {
  std::mt19937_64 rng(11);
  for (auto pad : {monarch::Pad::Post, monarch::Pad::Pre}) {
    const int N = 23, d = 8, b = 5;
    const auto Q = gaussian(N, d, rng), K = gaussian(N, d, rng), V = gaussian(N, d, rng);
    std::vector<std::uint8_t> keep(N, 1);
    keep[3] = keep[17] = 0;  // masked keys inside blocks
    const double tau = 0.4;
    monarch::Options opt;
    opt.block = b;
    opt.pad = pad;
    opt.scale = tau;
    monarch::HeadTrace<double> trace;
    monarch::monarch_head(Q.data(), K.data(), V.data(), N, d, d, keep, opt, &trace);
    Matrix<double> O(N, d);
    O.setConstant(std::numeric_limits<double>::quiet_NaN());  // poisoned
    O = block_local_head(Q.data(), K.data(), V.data(), N, d, d, keep, b, pad, tau);
    const auto& g = trace.g;
    for (int n = 0; n < N; ++n)
      CHECK((O.row(n) - trace.rounds[0].Y.row(n + g.off)).cwiseAbs().maxCoeff() < 1e-12);
    // Its KL gap is F* - F after that R-update, docs eq. (7).
    const double kl = block_local_kl(Q.data(), K.data(), N, d, keep, b, pad, tau);
    CHECK(kl == doctest::Approx(trace.F_star - trace.rounds[0].F_after_R).epsilon(1e-10));
    CHECK(kl > 0);
  }
}

TEST_CASE("Nystrom with one landmark per token and a converged pseudo-inverse is exact attention") {
  std::mt19937_64 rng(12);
  const int N = 12, d = 6;
  const auto Q = gaussian(N, d, rng, 0.5), K = gaussian(N, d, rng, 0.5), V = gaussian(N, d, rng);
  std::vector<std::uint8_t> keep(N, 1);
  keep[4] = 0;
  const auto exact = monarch::exact_head(Q.data(), K.data(), V.data(), N, d, d, keep, 0.5);
  constexpr int kConverged = 60;  // Newton-Schulz steps; the method itself uses 6
  const auto ny = nystrom_head(Q.data(), K.data(), V.data(), N, d, d, keep, N, 0.5, kConverged);
  // Landmark = valid token, so F pinv(A) B = P P^+ P = P on the valid columns.
  for (int n = 0; n < N; ++n)
    if (keep[n]) CHECK((ny.row(n) - exact.row(n)).cwiseAbs().maxCoeff() < 1e-8);
  const auto ny2 = nystrom_head(Q.data(), K.data(), V.data(), N, d, d, keep, 3, 0.5);
  CHECK(ny2.allFinite());
  CHECK((ny2 - exact).norm() > 1e-6);
}

TEST_CASE("FLOP-matched baselines cost at least Monarch's FLOPs, and the smallest such knob") {
  for (int N : {10, 64, 200, 256}) {
    const int d = 32;
    const double target = monarch::monarch_flops(N, d, d, monarch::default_block(N), 2);
    const auto local = AttentionChoice::parse("local:match=2");
    const auto ny = AttentionChoice::parse("nystrom:match=2");
    const Resolved rl = resolve(local, N, d), rn = resolve(ny, N, d);
    CHECK((attention_flops(local, N, d, d) >= target || rl.block == N));
    CHECK((attention_flops(ny, N, d, d) >= target || rn.landmarks == N));
    if (rl.block > 1) CHECK(block_local_flops(N, d, d, rl.block - 1) < target);
    if (rn.landmarks > 1) CHECK(nystrom_flops(N, d, d, rn.landmarks - 1) < target);
  }
  CHECK(attention_flops(AttentionChoice{}, 100, 32, 32) == monarch::exact_flops(100, 32, 32));
}

TEST_CASE("attention methods parse from the CLI form and reject nonsense in one line") {
  CHECK(AttentionChoice::parse("monarch:T=3,b=N").label() == "monarch T=3 b=N");
  CHECK(AttentionChoice::parse("nystrom:c=8").label() == "nystrom c=8");
  CHECK(AttentionChoice::parse("local:match=2").label() == "local =flops(T=2)");
  for (const char* bad : {"softmax", "monarch:T=0", "monarch:c=3", "nystrom", "local:b=x", "monarch:T"})
    CHECK_THROWS_AS(AttentionChoice::parse(bad), monarch::InputError);
}
