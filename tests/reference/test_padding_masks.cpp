// Padding (docs eq. (1)), key masks and the degenerate cases of spec §4.
#include <doctest/doctest.h>

#include <algorithm>

#include "helpers.hpp"

using namespace monarch;

namespace {
constexpr double kTol = 1e-12;

Matrix<double> reversed_rows(const Matrix<double>& M) { return M.colwise().reverse(); }
}  // namespace

TEST_CASE("pre-padding equals post-padding of the reversed sequence, reversed back") {
  // Reversing the tokens maps padded index p to N'-1-p: block l -> m-1-l and position j -> b-1-j.
  // The method is equivariant under relabelling blocks and positions, and pre- and post-padding
  // are exactly each other's mirror image, so this pins down where pre-padding puts its pads.
  std::mt19937_64 rng(40);
  for (auto [N, b] : {std::pair{23, 5}, std::pair{50, 7}, std::pair{10, 4}}) {
    const test::Head head(N, 6, 5, rng, 1.5);
    auto keep = test::random_mask(N, 0.2, rng);
    test::Head mirrored = head;
    mirrored.Q = reversed_rows(head.Q);
    mirrored.K = reversed_rows(head.K);
    mirrored.V = reversed_rows(head.V);
    std::vector<std::uint8_t> keep_mirrored(keep.rbegin(), keep.rend());
    for (int T : {1, 3}) {
      const auto pre = head.monarch(Options{.steps = T, .block = b, .pad = Pad::Pre}, keep);
      const auto post = mirrored.monarch(Options{.steps = T, .block = b, .pad = Pad::Post}, keep_mirrored);
      CHECK(test::max_abs_diff(pre, reversed_rows(post)) < kTol);
      // ... and on a ragged length the two paddings really are different computations.
      const auto post_same = head.monarch(Options{.steps = T, .block = b, .pad = Pad::Post}, keep);
      CHECK(test::max_abs_diff(pre, post_same) > 1e-6);
    }
  }
}

TEST_CASE("pre-padding puts the N' - N pads first and post-padding puts them last") {
  std::mt19937_64 rng(41);
  const int N = 22, b = 5;  // m = 5, N' = 25: 3 pads
  const test::Head head(N, 4, 4, rng);
  for (Pad pad : {Pad::Pre, Pad::Post}) {
    HeadTrace<double> trace;
    const auto O = head.monarch(Options{.steps = 1, .block = b, .pad = pad}, {}, &trace);
    CHECK(O.rows() == N);
    const int first_pad = pad == Pad::Pre ? 0 : N;
    CHECK(trace.g.off == (pad == Pad::Pre ? 3 : 0));
    for (int p = first_pad; p < first_pad + 3; ++p)  // eq. (14): alpha_R = 0 at a pad
      CHECK(trace.rounds[0].alpha_R.row(p).cwiseAbs().maxCoeff() == 0.0);
  }
}

TEST_CASE("changing a masked key or its value changes no output row") {
  std::mt19937_64 rng(42);
  const int N = 40, d = 5;
  const test::Head head(N, d, d, rng, 1.5);
  auto keep = test::random_mask(N, 0.3, rng);
  for (int T : {1, 2, 3})
    for (Pad pad : {Pad::Pre, Pad::Post}) {
      const Options opt{.steps = T, .block = 6, .pad = pad};
      const auto O = head.monarch(opt, keep);
      test::Head changed = head;
      for (int n = 0; n < N; ++n)
        if (!keep[n]) {
          changed.K.row(n) *= -7.0;
          changed.V.row(n).setConstant(1e3);
        }
      CHECK(test::max_abs_diff(O, changed.monarch(opt, keep)) < kTol);
    }
}

TEST_CASE("a key block with no valid key gets zero weight") {
  std::mt19937_64 rng(43);
  const int N = 30, b = 5, empty_block = 2;
  const test::Head head(N, 4, 3, rng);
  std::vector<std::uint8_t> keep(N, 1);
  for (int i = 0; i < b; ++i) keep[empty_block * b + i] = 0;
  HeadTrace<double> trace;
  const auto O = head.monarch(Options{.steps = 2, .block = b}, keep, &trace);
  CHECK(O.allFinite());
  for (const auto& round : trace.rounds) {
    for (int j = 0; j < b; ++j) {
      CHECK(round.c_L[empty_block * b + j] == std::numeric_limits<double>::infinity());
      CHECK(round.A.L[j].row(empty_block).cwiseAbs().maxCoeff() == 0.0);  // L_j[k_empty, :] = 0
      CHECK((round.A.L[j].colwise().sum().array() - 1.0).abs().maxCoeff() < kTol);
    }
    CHECK(round.A.R[empty_block].cwiseAbs().maxCoeff() == 0.0);
  }
  // Removing the empty block's tokens from the picture changes nothing for the other blocks' keys:
  // its values never reach the output.
  test::Head changed = head;
  changed.V.middleRows(empty_block * b, b).setConstant(1e6);
  CHECK(test::max_abs_diff(O, changed.monarch(Options{.steps = 2, .block = b}, keep)) < kTol);
}

TEST_CASE("c_R = 0 gives a uniform R row over the valid keys") {
  std::mt19937_64 rng(44);
  const int N = 24, b = 4, j_dead = 1;
  const test::Head head(N, 3, 3, rng);
  std::vector<std::uint8_t> keep(N, 1);
  for (int l = 0; l < N / b; ++l) keep[l * b + j_dead] = 0;  // position 1 masked in every block
  HeadTrace<double> trace;
  head.monarch(Options{.steps = 2, .block = b}, keep, &trace);
  const auto& round2 = trace.rounds[1];
  for (int k = 0; k < N / b; ++k) {
    CHECK(round2.c_R[k * b + j_dead] == 0.0);
    for (int i = 0; i < b; ++i)
      CHECK(round2.A.R[k](j_dead, i) == doctest::Approx(i == j_dead ? 0.0 : 1.0 / (b - 1)).epsilon(kTol));
  }
}

TEST_CASE("a sequence whose every key is masked is rejected") {
  std::mt19937_64 rng(45);
  const test::Head head(9, 3, 3, rng);
  const std::vector<std::uint8_t> none(9, 0);
  CHECK_THROWS_WITH_AS(head.monarch(Options{}, none), doctest::Contains("every key"), InputError);
}
