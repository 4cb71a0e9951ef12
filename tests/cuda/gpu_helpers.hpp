// Shared by the GPU tests: skipping without a device, fresh random inputs rounded to the dtype
// under test, and the double copies the reference runs on.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

#include "monarch/attention.hpp"
#include "monarch_cuda/compare.hpp"
#include "monarch_cuda/monarch_cuda.hpp"

namespace monarch::cuda::test {

/// The device, probed once.
inline const DeviceInfo& device() {
  static const DeviceInfo info = device_info();
  return info;
}

/// Opens every GPU test case: without a device the case reports why and passes.
#define MONARCH_REQUIRE_GPU_OR_SKIP()                                                            \
  do {                                                                                           \
    if (!::monarch::cuda::test::device().ok) {                                                   \
      MESSAGE("SKIPPED: no CUDA device (" << ::monarch::cuda::test::device().reason << ")");     \
      return;                                                                                    \
    }                                                                                            \
  } while (0)

/// True when MONARCH_CUDA_TEST_QUICK=1: only the small cases (compute-sanitizer runs).
inline bool quick() {
  const char* v = std::getenv("MONARCH_CUDA_TEST_QUICK");
  return v != nullptr && std::string(v) == "1";
}

/// A fresh seed per run (MONARCH_TEST_SEED pins it); printed with every failure.
inline std::uint64_t fresh_seed() {
  if (const char* v = std::getenv("MONARCH_TEST_SEED")) return std::stoull(v);
  return std::random_device{}();
}

/// A random (E, H, N, D) tensor of N(0, 1) entries, rounded to the dtype the device will see.
inline Tensor4<float> random_tensor(int E, int H, int N, int D, DType t, std::mt19937_64& rng) {
  Tensor4<float> x(E, H, N, D);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (float& v : x.data) v = g(rng);
  round_to_dtype(x.data, t);
  return x;
}

inline Tensor4<double> to_double(const Tensor4<float>& x) {
  Tensor4<double> y(x.E, x.H, x.N, x.D);
  for (std::size_t i = 0; i < x.data.size(); ++i) y.data[i] = x.data[i];
  return y;
}

enum class MaskKind { None, Random, EmptyBlock };

/// A key mask: Random drops about 20% of the keys; EmptyBlock also drops every key of padded block 1
/// (so that block has no valid key and c_L = +inf). Some key always stays.
inline KeyMask make_mask(MaskKind kind, int E, const Geometry& g, std::mt19937_64& rng) {
  KeyMask mask;
  if (kind == MaskKind::None) return mask;
  mask.E = E;
  mask.N = g.N;
  mask.keep.assign(static_cast<std::size_t>(E) * g.N, 1);
  std::bernoulli_distribution drop(0.2);
  for (int e = 0; e < E; ++e) {
    std::uint8_t* row = mask.keep.data() + static_cast<std::size_t>(e) * g.N;
    for (int n = 0; n < g.N; ++n) row[n] = drop(rng) ? 0 : 1;
    if (kind == MaskKind::EmptyBlock)
      for (int p = g.b; p < 2 * g.b; ++p)
        if (g.is_token(p)) row[p - g.off] = 0;  // eq. (1): padded index p = n + off
    const int keep_one = g.m >= 3 ? 2 * g.b - g.off : g.N - 1;  // a token outside block 1 when one exists
    row[std::clamp(keep_one, 0, g.N - 1)] = 1;
  }
  return mask;
}

}  // namespace monarch::cuda::test
