// The invariant-integer divider of the fused kernels (cuda/fast_div.hpp) against the `/` and `%` it
// replaces. Host-only: the device runs the same arithmetic (__umulhi is the host's high word), so
// this runs, and can fail, on machines without a GPU.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>

#include "fast_div.hpp"

using monarch::cuda::detail::FastDiv;

TEST_CASE("fast division equals / and % for every divisor up to 4096 and dividends up to 2^20") {
  constexpr std::int32_t kMaxDivisor = 4096, kMaxDividend = 1 << 20;
  std::int64_t wrong = 0;
  for (std::int32_t d = 1; d <= kMaxDivisor; ++d) {
    const FastDiv f(d);
    for (std::int32_t n = 0; n < kMaxDividend; n += 1 + n / 4096) {  // dense at small n, sparse above
      wrong += f.div(n) != n / d;
      wrong += f.mod(n) != n % d;
    }
  }
  CHECK(wrong == 0);
}

TEST_CASE("fast division is exact at the edges of the 31-bit range, for random and power-of-two divisors") {
  std::mt19937_64 rng(20261129);
  std::uniform_int_distribution<std::int32_t> any(1, INT32_MAX);
  std::int64_t wrong = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::int32_t d = i < 31 ? std::int32_t{1} << i : any(rng);
    const FastDiv f(d);
    for (std::int32_t n : {0, 1, d - 1, d, INT32_MAX - 1, INT32_MAX, any(rng), any(rng)}) {
      if (n < 0) continue;
      wrong += f.div(n) != n / d;
      wrong += f.mod(n) != n % d;
    }
  }
  CHECK(wrong == 0);
}
