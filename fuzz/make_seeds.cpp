// Writes the seed corpus of the fuzz targets: small VALID safetensors files made with the
// project's own writer, one per feature the reader handles (every float dtype, U8 / BOOL masks,
// the integer dtypes it parses but cannot convert, empty and scalar tensors, metadata, options
// for fuzz_attention in __metadata__). Seeds are tiny so that libFuzzer mutates headers, not bulk.
//
//   make_seeds DIR      (fuzz/run.sh regenerates fuzz/corpus/safetensors/ with it)
#include <cstdio>
#include <exception>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.hpp"

namespace io = monarch::io;

namespace {

std::vector<double> values(std::size_t n, std::mt19937_64& rng, double scale = 1.0) {
  std::uniform_real_distribution<double> u(-scale, scale);
  std::vector<double> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

std::vector<double> keep_mask(std::size_t n, std::size_t dropped_every) {
  std::vector<double> m(n, 1.0);
  for (std::size_t i = 1; i < n; i += dropped_every) m[i] = 0.0;
  return m;
}

/// q, k (E, H, N, d), v (E, H, N, dv) of one dtype, optionally a mask (E, N) and options.
std::vector<io::OutTensor> attention_inputs(io::DType t, int E, int H, int N, int d, int dv,
                                            std::mt19937_64& rng, bool with_mask,
                                            io::DType mask_type = io::DType::U8) {
  const std::size_t nq = static_cast<std::size_t>(E) * H * N * d, nv = static_cast<std::size_t>(E) * H * N * dv;
  std::vector<io::OutTensor> out{io::make_tensor("q", t, {E, H, N, d}, values(nq, rng)),
                                 io::make_tensor("k", t, {E, H, N, d}, values(nq, rng)),
                                 io::make_tensor("v", t, {E, H, N, dv}, values(nv, rng))};
  if (with_mask)
    out.push_back(io::make_tensor("mask", mask_type, {E, N}, keep_mask(static_cast<std::size_t>(E) * N, 3)));
  return out;
}

/// An integer tensor the reader parses but no typed read accepts; make_tensor packs only
/// floats and U8/BOOL, so the bytes are laid out here.
io::OutTensor raw_tensor(const std::string& name, io::DType t, std::vector<std::int64_t> shape) {
  std::size_t n = 1;
  for (auto s : shape) n *= static_cast<std::size_t>(s);
  io::OutTensor out{name, t, std::move(shape), {}};
  out.bytes.resize(n * io::dtype_size(t));
  for (std::size_t i = 0; i < out.bytes.size(); ++i) out.bytes[i] = static_cast<std::byte>(i * 37 + 11);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::mt19937_64 rng(6);
  auto write = [&](const char* name, const std::vector<io::OutTensor>& t,
                   const std::map<std::string, std::string>& meta = {}) {
    io::write_safetensors(dir + "/" + name + ".safetensors", t, meta);
  };
  try {
    write("f64_qkv", attention_inputs(io::DType::F64, 1, 1, 4, 3, 3, rng, false));
    write("f64_qkv_mask_u8", attention_inputs(io::DType::F64, 1, 2, 5, 2, 3, rng, true),
          {{"steps", "2"}, {"block", "2"}, {"pad", "pre"}});
    write("f32_qkv_mask_bool", attention_inputs(io::DType::F32, 2, 1, 6, 3, 2, rng, true, io::DType::BOOL),
          {{"steps", "3"}, {"block", "4"}, {"pad", "post"}});
    write("f16_qkv", attention_inputs(io::DType::F16, 1, 1, 7, 2, 2, rng, true), {{"block", "3"}});
    write("bf16_qkv", attention_inputs(io::DType::BF16, 1, 1, 9, 2, 1, rng, false), {{"steps", "4"}});
    write("f32_single_token", attention_inputs(io::DType::F32, 1, 1, 1, 1, 1, rng, true));
    write("integer_dtypes", {raw_tensor("i64", io::DType::I64, {2}), raw_tensor("i32", io::DType::I32, {3}),
                             raw_tensor("i16", io::DType::I16, {2, 2}), raw_tensor("i8", io::DType::I8, {5})});
    write("empty_and_scalar", {io::make_tensor("empty", io::DType::F32, {0, 3}, {}),
                               io::make_tensor("scalar", io::DType::F64, {}, std::vector<double>{2.5}),
                               io::make_tensor("flags", io::DType::BOOL, {4}, keep_mask(4, 2))});
    write("metadata_only", {}, {{"format", "pt"}, {"note", "no tensors"}});
    write("rank4_u8_and_rank2_f16", {io::make_tensor("m", io::DType::F16, {2, 3}, values(6, rng)),
                                     io::make_tensor("x", io::DType::U8, {1, 1, 2, 2}, keep_mask(4, 2))});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
