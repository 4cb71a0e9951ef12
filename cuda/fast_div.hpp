// Division by a divisor that is fixed for a whole call (the block size b or the block count m), as a
// multiply-high, a subtract, an add and two shifts instead of the ~20 instructions of a runtime
// integer `/` on the GPU. The method is Granlund and Montgomery's ("Division by invariant integers
// using multiplication", 1994, fig. 4.1): exact for every 32-bit unsigned dividend and every divisor
// >= 1. Written by hand because neither the CUDA toolkit nor a Debian package offers a device-side
// invariant divider; host and device compute the same quotient, so the host can test it exhaustively.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define MONARCH_HD __host__ __device__ __forceinline__
#else
#define MONARCH_HD inline
#endif

namespace monarch::cuda::detail {

struct FastDiv {
  std::uint32_t mul = 1;  // m' = floor(2^32 (2^l - d) / d) + 1 < 2^32, with l = ceil(log2 d)
  std::uint32_t sh1 = 0;  // min(l, 1)
  std::uint32_t sh2 = 0;  // max(l - 1, 0)
  std::int32_t d = 1;     // the divisor, for the remainder

  FastDiv() = default;
  /// divisor >= 1 (b and m are, validate_options).
  explicit FastDiv(std::int32_t divisor) : d(divisor) {
    std::uint32_t l = 0;
    while ((std::uint64_t{1} << l) < static_cast<std::uint64_t>(divisor)) ++l;
    mul = static_cast<std::uint32_t>(((std::uint64_t{1} << 32) * ((std::uint64_t{1} << l) - divisor)) / divisor + 1);
    sh1 = l < 1 ? l : 1;
    sh2 = l > 1 ? l - 1 : 0;
  }

  /// n / d for n >= 0: q = (t + ((n - t) >> sh1)) >> sh2 with t = the high word of m' n.
  MONARCH_HD std::int32_t div(std::int32_t n) const {
    const std::uint32_t u = static_cast<std::uint32_t>(n);
#ifdef __CUDA_ARCH__
    const std::uint32_t t = __umulhi(mul, u);
#else
    const std::uint32_t t = static_cast<std::uint32_t>((static_cast<std::uint64_t>(mul) * u) >> 32);
#endif
    return static_cast<std::int32_t>((t + ((u - t) >> sh1)) >> sh2);
  }
  /// n % d for n >= 0.
  MONARCH_HD std::int32_t mod(std::int32_t n) const { return n - div(n) * d; }
};

}  // namespace monarch::cuda::detail

#undef MONARCH_HD
