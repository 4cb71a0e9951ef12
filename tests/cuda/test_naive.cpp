// The naive GPU baseline (cuBLAS scores, masked softmax, cuBLAS P V) is exact softmax attention.
#include <vector>

#include "gpu_helpers.hpp"

using namespace monarch;
using namespace monarch::cuda;
using namespace monarch::cuda::test;

namespace {

void check_naive(DType dtype, int E, int H, int N, int d, int dv, MaskKind kind) {
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  INFO("dtype " << std::string(to_string(dtype)) << ", E " << E << ", H " << H << ", N " << N);
  std::mt19937_64 rng(seed);
  const Tensor4<float> Q = random_tensor(E, H, N, d, dtype, rng);
  const Tensor4<float> K = random_tensor(E, H, N, d, dtype, rng);
  const Tensor4<float> V = random_tensor(E, H, N, dv, dtype, rng);
  const KeyMask mask = make_mask(kind, E, Geometry::make(N, 0, Pad::Post), rng);
  Options opt;
  const Tensor4<double> ref = exact_attention(to_double(Q), to_double(K), to_double(V), &mask, opt);
  NaiveSession s(E, H, N, d, dv, opt, dtype);
  s.upload(Q, K, V, &mask);
  s.poison();
  s.run();
  const ArrayError e = compare_output(ref, s.output());
  CHECK_MESSAGE(e.pass(tolerance(dtype)), "rel " << e.rel << ", max abs " << e.max_abs << ", NaN " << e.nan);
}

}  // namespace

TEST_CASE("naive cuBLAS attention equals exact softmax attention, with the key mask and scale") {
  MONARCH_REQUIRE_GPU_OR_SKIP();
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    check_naive(t, 2, 3, 197, 64, 48, MaskKind::Random);
    check_naive(t, 1, 1, 1, 32, 32, MaskKind::None);
    if (!quick()) check_naive(t, 1, 2, 1000, 64, 64, MaskKind::EmptyBlock);
  }
}

TEST_CASE("naive attention and level 2 agree at b = N (MonarchAttention is exact there)") {
  MONARCH_REQUIRE_GPU_OR_SKIP();
  std::mt19937_64 rng(fresh_seed());
  const int N = 128, d = 64;
  const Tensor4<float> Q = random_tensor(1, 2, N, d, DType::F16, rng);
  const Tensor4<float> K = random_tensor(1, 2, N, d, DType::F16, rng);
  const Tensor4<float> V = random_tensor(1, 2, N, d, DType::F16, rng);
  Options opt;
  opt.block = N;
  const Tensor4<float> a = naive_attention(Q, K, V, nullptr, opt, DType::F16);
  const Tensor4<float> b = monarch_attention(Q, K, V, nullptr, opt, Config{Level::TensorCore, DType::F16});
  const Tensor4<double> ad = to_double(a);
  const ArrayError e = compare_output(ad, b);
  CHECK_MESSAGE(e.pass(1e-2), "rel " << e.rel);
}
