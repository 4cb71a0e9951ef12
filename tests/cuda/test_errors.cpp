// Bad input gets a clear InputError before any device work, so these run with or without a GPU.
#include <doctest/doctest.h>

#include "monarch_cuda/monarch_cuda.hpp"

using namespace monarch;
using namespace monarch::cuda;

namespace {
Tensor4<float> filled(int E, int H, int N, int D) {
  Tensor4<float> t(E, H, N, D);
  for (std::size_t i = 0; i < t.data.size(); ++i) t.data[i] = 0.25f + 0.001f * static_cast<float>(i % 97);
  return t;
}
}  // namespace

TEST_CASE("level 2 refuses d or d_v beyond its tiles with a message naming the limit") {
  Options opt;
  CHECK_THROWS_WITH_AS(MonarchSession(1, 1, 64, 160, 64, opt, Config{Level::TensorCore, DType::F16}),
                       doctest::Contains("supports d, d_v <= 128"), InputError);
  CHECK_THROWS_AS(MonarchSession(1, 1, 64, 64, 129, opt, Config{Level::TensorCore, DType::F16}), InputError);
  CHECK_THROWS_AS(MonarchSession(1, 1, 64, 300, 64, opt, Config{Level::Scalar, DType::F32}), InputError);
}

TEST_CASE("levels 3 to 8 refuse fp32 and rows that are not whole 16-byte pieces, naming the way out") {
  Options opt;
  CHECK_THROWS_WITH_AS(MonarchSession(1, 1, 64, 64, 64, opt, Config{Level::Fused, DType::F32}),
                       doctest::Contains("fp16 or bf16 only; use level 2 for fp32"), InputError);
  CHECK_THROWS_WITH_AS(MonarchSession(1, 1, 64, 36, 64, opt, Config{Level::Fused, DType::F16}),
                       doctest::Contains("multiples of 8, got d = 36"), InputError);
  CHECK_THROWS_AS(MonarchSession(1, 1, 64, 64, 20, opt, Config{Level::Fused, DType::BF16}), InputError);
  CHECK_THROWS_AS(MonarchSession(1, 1, 64, 136, 64, opt, Config{Level::Fused, DType::F16}), InputError);
  CHECK_THROWS_AS(MonarchSession(1, 1, 64, 64, 64, opt, Config{Level::WholeHead, DType::F32}), InputError);
  CHECK_THROWS_AS(MonarchSession(1, 1, 64, 64, 64, opt, Config{Level::OneLaunch, DType::F32}), InputError);
  CHECK_THROWS_AS(MonarchSession(1, 1, 64, 64, 64, opt, Config{Level::InPlace, DType::F32}), InputError);
  CHECK_THROWS_AS(MonarchSession(1, 1, 64, 64, 64, opt, Config{Level::Warpgroup, DType::F32}), InputError);
  CHECK_THROWS_AS(MonarchSession(1, 1, 64, 64, 20, opt, Config{Level::Warpgroup, DType::F16}), InputError);
  CHECK_THROWS_AS(MonarchSession(1, 1, 64, 64, 12, opt, Config{Level::OneLaunch, DType::F16}), InputError);
  CHECK_THROWS_AS(MonarchSession(1, 1, 64, 64, 64, opt, Config{Level::Cluster, DType::F32}), InputError);
  CHECK(parse_level(8) == Level::Cluster);
  CHECK_THROWS_WITH_AS(parse_level(9), doctest::Contains("8 (a cluster per head"), InputError);
  CHECK_THROWS_AS(parse_level(0), InputError);
}

TEST_CASE("bad options and shapes are InputErrors") {
  Options opt;
  opt.block = 100;
  CHECK_THROWS_WITH_AS(MonarchSession(1, 1, 64, 64, 64, opt, Config{}), doctest::Contains("exceeds"), InputError);
  opt.block = 0;
  opt.steps = 0;
  CHECK_THROWS_AS(MonarchSession(1, 1, 64, 64, 64, opt, Config{}), InputError);
  opt.steps = 1;
  CHECK_THROWS_AS(MonarchSession(1, 1, 0, 64, 64, opt, Config{}), InputError);
  CHECK_THROWS_AS(parse_dtype("fp8"), InputError);
  CHECK_THROWS_AS(parse_level(0), InputError);
  CHECK(parse_dtype("bf16") == DType::BF16);
}

TEST_CASE("non-finite inputs, mismatched shapes and all-masked batches are refused before the device") {
  Options opt;
  Tensor4<float> Q = filled(1, 1, 8, 32), K = filled(1, 1, 8, 32), V = filled(1, 1, 8, 16);
  Q.data[5] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(monarch_attention(Q, K, V, nullptr, opt, Config{}), doctest::Contains("non-finite"),
                       InputError);
  Q = filled(1, 1, 8, 32);
  const Tensor4<float> K2 = filled(1, 1, 9, 32);
  CHECK_THROWS_AS(monarch_attention(Q, K2, V, nullptr, opt, Config{}), InputError);
  KeyMask none;
  none.E = 1;
  none.N = 8;
  none.keep.assign(8, 0);
  CHECK_THROWS_WITH_AS(monarch_attention(Q, K, V, &none, opt, Config{}), doctest::Contains("every key"),
                       InputError);
  CHECK_THROWS_AS(naive_attention(Q, K, V, &none, opt, DType::F16), InputError);
}

TEST_CASE("the device probe never throws and explains a missing device") {
  const DeviceInfo info = device_info();
  if (info.ok) {
    CHECK_FALSE(info.name.empty());
    CHECK(info.major >= 1);
  } else {
    CHECK_FALSE(info.reason.empty());
    MESSAGE("no CUDA device: " << info.reason);
  }
}

TEST_CASE("fp16 refuses finite inputs beyond its range instead of turning them into inf") {
  // The range check runs on the host before any copy; without a device the session cannot be made,
  // so this case needs one.
  if (!device_info().ok) {
    MESSAGE("SKIPPED: no CUDA device (" << device_info().reason << ")");
    return;
  }
  Options opt;
  Tensor4<float> Q = filled(1, 1, 8, 32), K = filled(1, 1, 8, 32), V = filled(1, 1, 8, 16);
  Q.data[3] = 1e6f;
  CHECK_THROWS_WITH_AS(monarch_attention(Q, K, V, nullptr, opt, Config{Level::TensorCore, DType::F16}),
                       doctest::Contains("outside the fp16 range"), InputError);
  CHECK_NOTHROW(monarch_attention(Q, K, V, nullptr, opt, Config{Level::TensorCore, DType::BF16}));
}
