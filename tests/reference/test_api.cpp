// The tensor-level API: batching, d_v != d, precision, and input validation.
#include <doctest/doctest.h>

#include <cmath>

#include "helpers.hpp"

using namespace monarch;

namespace {
constexpr double kTol = 1e-12;
constexpr double kFloatRelTol = 1e-5;

double head_diff(const Tensor4<double>& A, const Tensor4<double>& B, int e, int h) {
  return test::max_abs_diff(ConstMatrixMap<double>(A.head(e, h), A.N, A.D),
                            ConstMatrixMap<double>(B.head(e, h), B.N, B.D));
}
}  // namespace

TEST_CASE("batch elements and heads are independent, and d_v != d works") {
  std::mt19937_64 rng(50);
  const int E = 2, H = 3, N = 31, d = 6, dv = 11;
  auto Q = test::gaussian_tensor(E, H, N, d, rng), K = test::gaussian_tensor(E, H, N, d, rng);
  auto V = test::gaussian_tensor(E, H, N, dv, rng);
  KeyMask mask{E, N, std::vector<std::uint8_t>(E * N, 1)};
  mask.keep[3] = mask.keep[N + 10] = 0;
  const Options opt{.steps = 2, .block = 5, .pad = Pad::Pre};
  const auto O = monarch_attention(Q, K, V, &mask, opt);
  CHECK(O.D == dv);
  for (int e = 0; e < E; ++e)
    for (int h = 0; h < H; ++h) {
      const auto single = monarch_head(Q.head(e, h), K.head(e, h), V.head(e, h), N, d, dv,
                                       std::span<const std::uint8_t>(mask.row(e), N), opt);
      CHECK(test::max_abs_diff(ConstMatrixMap<double>(O.head(e, h), N, dv), single) < kTol);
    }
  // Disturbing head (1, 2) leaves every other head untouched.
  for (int n = 0; n < N * d; ++n) Q.head(1, 2)[n] *= 3;
  const auto O2 = monarch_attention(Q, K, V, &mask, opt);
  for (int e = 0; e < E; ++e)
    for (int h = 0; h < H; ++h) {
      if (e == 1 && h == 2) CHECK(head_diff(O, O2, e, h) > 1e-6);
      else CHECK(head_diff(O, O2, e, h) == 0.0);
    }
}

TEST_CASE("float agrees with double to float rounding") {
  std::mt19937_64 rng(51);
  const auto Q = test::gaussian_tensor(1, 2, 100, 16, rng), K = test::gaussian_tensor(1, 2, 100, 16, rng);
  const auto V = test::gaussian_tensor(1, 2, 100, 8, rng);
  auto to_float = [](const Tensor4<double>& t) {
    Tensor4<float> f(t.E, t.H, t.N, t.D);
    for (std::size_t i = 0; i < t.data.size(); ++i) f.data[i] = static_cast<float>(t.data[i]);
    return f;
  };
  const Options opt{.steps = 3};
  const auto Od = monarch_attention(Q, K, V, nullptr, opt);
  const auto Of = monarch_attention(to_float(Q), to_float(K), to_float(V), nullptr, opt);
  double num = 0, den = 0;
  for (std::size_t i = 0; i < Od.data.size(); ++i) {
    num += std::pow(Od.data[i] - Of.data[i], 2);
    den += std::pow(Od.data[i], 2);
  }
  CHECK(std::sqrt(num / den) < kFloatRelTol);
}

TEST_CASE("the default block is ceil(sqrt(N))") {
  for (auto [N, b] : {std::pair{1, 1}, {2, 2}, {4, 2}, {5, 3}, {196, 14}, {197, 15}, {4096, 64}})
    CHECK(default_block(N) == b);
}

TEST_CASE("bad inputs are rejected with a one-line message") {
  std::mt19937_64 rng(52);
  const auto Q = test::gaussian_tensor(1, 1, 10, 4, rng), K = test::gaussian_tensor(1, 1, 10, 4, rng);
  const auto V = test::gaussian_tensor(1, 1, 10, 4, rng);
  auto rejects = [&](const Tensor4<double>& q, const Tensor4<double>& k, const Tensor4<double>& v,
                     const KeyMask* mask, const Options& opt, const char* words) {
    CAPTURE(words);
    try {
      monarch_attention(q, k, v, mask, opt);
      FAIL("accepted");
    } catch (const InputError& e) {
      CHECK(std::string(e.what()).find(words) != std::string::npos);
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
  };
  rejects(Q, K, V, nullptr, Options{.steps = 0}, "steps T must be >= 1");
  rejects(Q, K, V, nullptr, Options{.block = -2}, "block size b must be >= 1");
  rejects(Q, K, V, nullptr, Options{.block = 11}, "exceeds the sequence length");
  auto Qnan = Q;
  Qnan.data[7] = std::nan("");
  rejects(Qnan, K, V, nullptr, Options{}, "non-finite");
  auto Kinf = K;
  Kinf.data[0] = INFINITY;
  rejects(Q, Kinf, V, nullptr, Options{}, "non-finite");
  rejects(Q, test::gaussian_tensor(1, 1, 10, 5, rng), V, nullptr, Options{}, "k must have the shape");
  rejects(Q, K, test::gaussian_tensor(1, 2, 10, 4, rng), nullptr, Options{}, "v must be");
  KeyMask wrong{1, 9, std::vector<std::uint8_t>(9, 1)};
  rejects(Q, K, V, &wrong, Options{}, "mask must have shape");
  KeyMask none{1, 10, std::vector<std::uint8_t>(10, 0)};
  rejects(Q, K, V, &none, Options{}, "hides every key");
  rejects(Q, K, V, nullptr, Options{.scale = INFINITY}, "scale tau must be finite");
}

TEST_CASE("exact attention ignores masked keys entirely") {
  std::mt19937_64 rng(53);
  const test::Head head(20, 4, 3, rng);
  auto keep = test::random_mask(20, 0.4, rng);
  test::Head changed = head;
  for (int n = 0; n < 20; ++n)
    if (!keep[n]) changed.V.row(n).setConstant(50.0);
  CHECK(test::max_abs_diff(head.exact(Options{}, keep), changed.exact(Options{}, keep)) < kTol);
}
