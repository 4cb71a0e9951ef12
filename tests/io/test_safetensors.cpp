// safetensors: every dtype survives write -> read, the 16-bit conversions round correctly, and
// every kind of malformed file is rejected with its own one-line message before data is read.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "io/safetensors.hpp"

using namespace monarch;
using namespace monarch::io;

namespace {

std::string temp_path(const std::string& stem) {
  return (std::filesystem::temp_directory_path() /
          ("monarch_io_" + std::to_string(::getpid()) + "_" + stem + ".safetensors"))
      .string();
}

/// Raw file bytes: the 8-byte length field, the header text verbatim, then data.
std::vector<std::byte> raw_file(const std::string& header, std::size_t data_bytes,
                                std::uint64_t claimed_length = UINT64_MAX) {
  const std::uint64_t n = claimed_length == UINT64_MAX ? header.size() : claimed_length;
  std::vector<std::byte> out(8 + header.size() + data_bytes, std::byte{0x11});
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

std::string rejection(std::vector<std::byte> bytes) {
  try {
    SafetensorsFile::parse(std::move(bytes), "bad.safetensors");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "(accepted)";
}

std::vector<std::byte> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> b(c.size());
  std::memcpy(b.data(), c.data(), c.size());
  return b;
}

const std::string kQ = R"("q":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]})";

}  // namespace

TEST_CASE("every dtype survives a write -> read round trip") {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> gauss;
  // Values exactly representable in each dtype, so the round trip must be bit exact.
  std::vector<double> f64(12), f32(12), f16(12), bf16(12), u8(12), boolean(12);
  for (int i = 0; i < 12; ++i) {
    f64[i] = gauss(rng);
    f32[i] = static_cast<float>(gauss(rng));
    f16[i] = half_to_float(float_to_half(static_cast<float>(gauss(rng))));
    bf16[i] = bf16_to_float(float_to_bf16(static_cast<float>(gauss(rng) * 1e10)));
    u8[i] = static_cast<double>(rng() % 256);
    boolean[i] = static_cast<double>(rng() % 2);
  }
  const std::string path = temp_path("roundtrip");
  write_safetensors(path,
                    {make_tensor("a64", DType::F64, {3, 4}, f64), make_tensor("a32", DType::F32, {12}, f32),
                     make_tensor("a16", DType::F16, {2, 2, 3}, f16),
                     make_tensor("abf", DType::BF16, {1, 12}, bf16), make_tensor("au8", DType::U8, {12}, u8),
                     make_tensor("abool", DType::BOOL, {4, 3}, boolean)},
                    {{"format", "pt"}, {"note", "round trip"}});
  const auto f = SafetensorsFile::open(path);
  CHECK(f.tensors().size() == 6);
  CHECK(f.metadata().at("note") == "round trip");
  CHECK(f.info("a16").shape == std::vector<std::int64_t>{2, 2, 3});
  CHECK(f.info("abool").dtype == DType::BOOL);
  CHECK(f.read_f64("a64") == f64);
  for (const auto& [name, ref] : {std::pair{"a32", &f32}, std::pair{"a16", &f16}, std::pair{"abf", &bf16}}) {
    const auto d = f.read_f64(name);
    const auto s = f.read_f32(name);
    REQUIRE(d.size() == ref->size());
    for (std::size_t i = 0; i < d.size(); ++i) {
      CHECK(d[i] == (*ref)[i]);
      CHECK(s[i] == static_cast<float>((*ref)[i]));
    }
  }
  const auto bytes = f.read_u8("au8");
  const auto flags = f.read_u8("abool");
  for (int i = 0; i < 12; ++i) {
    CHECK(f.raw("au8")[i] == static_cast<std::byte>(u8[i]));
    CHECK(bytes[i] == (u8[i] != 0 ? 1 : 0));
    CHECK(flags[i] == boolean[i]);
  }
  // The data buffer starts 8-byte aligned: the header length is a multiple of 8.
  const auto file = read_all(path);
  std::uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  CHECK(n % 8 == 0);
  CHECK(static_cast<char>(file[8]) == '{');
  std::filesystem::remove(path);
}

TEST_CASE("read_tensor4 and read_mask give the (E, H, N, D) tensor and the (E, N) mask") {
  std::vector<double> q(2 * 3 * 5 * 4), keep(2 * 5, 1.0);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = std::sin(1.0 + i);
  keep[3] = 0;
  const std::string path = temp_path("tensor4");
  write_safetensors(path, {make_tensor("q", DType::F64, {2, 3, 5, 4}, q),
                           make_tensor("mask", DType::BOOL, {2, 5}, keep),
                           make_tensor("flat", DType::F32, {10}, keep)});
  const auto f = SafetensorsFile::open(path);
  const auto t = read_tensor4<double>(f, "q");
  CHECK(t.E == 2);
  CHECK(t.H == 3);
  CHECK(t.N == 5);
  CHECK(t.D == 4);
  CHECK(t.data == q);
  const auto tf = read_tensor4<float>(f, "q");
  CHECK(tf.data[7] == static_cast<float>(q[7]));
  const auto m = read_mask(f, "mask");
  CHECK(m.E == 2);
  CHECK(m.N == 5);
  CHECK(m.keep[3] == 0);
  CHECK(m.keep[4] == 1);
  CHECK(read_mask(f, "absent").empty());
  CHECK_THROWS_WITH_AS(read_tensor4<double>(f, "flat"), doctest::Contains("must have rank 4"), FormatError);
  CHECK_THROWS_WITH_AS(read_mask(f, "q"), doctest::Contains("must have shape (E, N)"), FormatError);
  CHECK_THROWS_WITH_AS(f.read_u8("q"), doctest::Contains("expected U8 or BOOL"), FormatError);
  CHECK_THROWS_WITH_AS(f.read_f64("mask"), doctest::Contains("expected a floating dtype"), FormatError);
  CHECK_THROWS_WITH_AS(f.info("k"), doctest::Contains("no tensor named 'k'"), FormatError);
  std::filesystem::remove(path);
}

TEST_CASE("fp16 conversions round to nearest even and keep inf, nan and subnormals") {
  CHECK(float_to_half(1.0f) == 0x3C00);
  CHECK(float_to_half(-2.0f) == 0xC000);
  CHECK(float_to_half(65504.0f) == 0x7BFF);               // largest finite half
  CHECK(float_to_half(65520.0f) == 0x7C00);               // halfway to 2^16 rounds to inf
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);  // tie between 0 and 1 ulp -> even (0)
  CHECK(float_to_half(std::ldexp(3.0f, -25)) == 0x0002);  // tie between 1 and 2 ulp -> even (2)
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);  // tie -> even mantissa
  CHECK(float_to_half(1.0f + std::ldexp(3.0f, -11)) == 0x3C02);  // tie -> even mantissa
  CHECK(float_to_half(std::numeric_limits<float>::infinity()) == 0x7C00);
  CHECK(float_to_half(-std::numeric_limits<float>::infinity()) == 0xFC00);
  const std::uint16_t hn = float_to_half(std::numeric_limits<float>::quiet_NaN());
  CHECK((hn & 0x7C00) == 0x7C00);
  CHECK((hn & 0x03FF) != 0);
  CHECK(half_to_float(0x3C00) == 1.0f);
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(half_to_float(0x03FF) == std::ldexp(1023.0f, -24));  // largest subnormal
  CHECK(half_to_float(0x7C00) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(half_to_float(0x7E00)));
  CHECK(std::signbit(half_to_float(0x8000)));
  CHECK(half_to_float(0xC000) == -2.0f);
}

TEST_CASE("bf16 conversions round to nearest even and keep inf, nan and subnormals") {
  CHECK(float_to_bf16(1.0f) == 0x3F80);
  CHECK(float_to_bf16(-2.0f) == 0xC000);
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);  // tie -> even
  CHECK(float_to_bf16(1.0f + std::ldexp(3.0f, -8)) == 0x3F82);  // tie -> even
  CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds up to inf
  CHECK(float_to_bf16(std::numeric_limits<float>::infinity()) == 0x7F80);
  const std::uint16_t bn = float_to_bf16(std::numeric_limits<float>::quiet_NaN());
  CHECK((bn & 0x7F80) == 0x7F80);
  CHECK((bn & 0x007F) != 0);
  CHECK(bf16_to_float(0x0001) == std::ldexp(1.0f, -133));  // smallest subnormal
  CHECK(float_to_bf16(std::ldexp(1.0f, -133)) == 0x0001);
  CHECK(bf16_to_float(0x3F80) == 1.0f);
  CHECK(std::isnan(bf16_to_float(0x7FC0)));
  CHECK(bf16_to_float(0xFF80) == -std::numeric_limits<float>::infinity());
}

TEST_CASE("the reader rejects each malformed file with its own one-line message") {
  struct Case {
    const char* what;
    std::vector<std::byte> bytes;
    const char* expect;
  };
  const std::string good = "{" + kQ + "}";
  std::vector<std::byte> truncated = raw_file(good, 24);
  truncated.resize(truncated.size() - 5);
  const std::vector<Case> cases = {
      {"file shorter than 8 bytes", std::vector<std::byte>(5, std::byte{1}), "shorter than the 8-byte"},
      {"header length larger than the file", raw_file(good, 24, 4096), "is larger than the"},
      {"oversized header length", raw_file(good, 24, 200ull << 20), "exceeds the 100 MB cap"},
      {"absurd header length", raw_file(good, 24, UINT64_MAX - 1), "exceeds the 100 MB cap"},
      {"invalid JSON", raw_file(R"({"q":{"dtype":"F32",)", 24), "not valid JSON"},
      {"JSON that is not an object", raw_file("[1,2,3]", 0), "not an object"},
      {"unknown dtype",
       raw_file(R"({"q":{"dtype":"F8_E4M3","shape":[2,3],"data_offsets":[0,6]}})", 24),
       "unknown or unsupported dtype 'F8_E4M3'"},
      {"shape x dtype != byte span",
       raw_file(R"({"q":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 24), "needs 24 bytes"},
      {"offsets out of range",
       raw_file("{" + kQ + R"(,"k":{"dtype":"F32","shape":[2],"data_offsets":[1000,1008]}})", 32),
       "lie outside the"},
      {"empty tensor out of range",
       raw_file("{" + kQ + R"(,"e":{"dtype":"F32","shape":[0],"data_offsets":[900,900]}})", 24),
       "lie outside the"},
      {"begin after end",
       raw_file(R"({"q":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 24), "begin after they end"},
      {"overlapping offsets",
       raw_file("{" + kQ + R"(,"k":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})", 24), "overlap"},
      {"truncated file", truncated, "file is truncated"},
      {"negative dimension",
       raw_file(R"({"q":{"dtype":"F32","shape":[-2,3],"data_offsets":[0,24]}})", 24), "negative dimension"},
      {"overflowing dimensions",
       raw_file(R"({"q":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,24]}})", 24),
       "overflows"},
      {"non-integer dimension",
       raw_file(R"({"q":{"dtype":"F32","shape":[2.5,3],"data_offsets":[0,24]}})", 24), "shape entry 2.5 is not"},
      {"deeply nested shape entry",
       raw_file(R"({"q":{"dtype":"F32","shape":[)" + std::string(100000, '[') + std::string(100000, ']') +
                    R"(],"data_offsets":[0,24]}})", 24),
       "shape entry a JSON array"},
      {"missing data_offsets", raw_file(R"({"q":{"dtype":"F32","shape":[2,3]}})", 24), "lacks \"data_offsets\""},
      {"duplicate tensor name", raw_file("{" + kQ + "," + kQ + "}", 24), "names 'q' twice"},
      {"metadata value not a string",
       raw_file("{" + kQ + R"(,"__metadata__":{"n":3}})", 24), "__metadata__ entry 'n'"},
  };
  std::vector<std::string> messages;
  for (const auto& c : cases) {
    CAPTURE(c.what);
    const std::string msg = rejection(c.bytes);
    CHECK(msg.find(c.expect) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(msg.rfind("bad.safetensors: ", 0) == 0);  // names the file
    messages.push_back(msg);
  }
  // Distinct: no message carries another case's key phrase (same phrase for the two cap cases).
  for (std::size_t i = 0; i < cases.size(); ++i)
    for (std::size_t j = 0; j < cases.size(); ++j)
      if (std::string(cases[i].expect) != cases[j].expect) {
        CAPTURE(cases[i].what);
        CAPTURE(cases[j].what);
        CHECK(messages[i].find(cases[j].expect) == std::string::npos);
      }
  // Messages about one tensor name it.
  CHECK(messages[6].find("tensor 'q'") != std::string::npos);
  CHECK(messages[8].find("tensor 'k'") != std::string::npos);
  CHECK(messages[9].find("tensor 'e' data_offsets [900, 900)") != std::string::npos);
  // The intact file is accepted.
  CHECK(SafetensorsFile::parse(raw_file(good, 24), "good").info("q").numel() == 6);
}

TEST_CASE("a missing file is an InputError naming the path") {
  CHECK_THROWS_WITH_AS(SafetensorsFile::open("/nonexistent/dir/x.safetensors"),
                       doctest::Contains("/nonexistent/dir/x.safetensors: cannot open"), InputError);
}

TEST_CASE("the writer refuses inconsistent tensors") {
  const std::vector<double> six(6, 1.0);
  CHECK_THROWS_AS(make_tensor("q", DType::F32, {2, 2}, six), InputError);
  OutTensor t = make_tensor("q", DType::F32, {2, 3}, six);
  t.bytes.pop_back();
  CHECK_THROWS_WITH_AS(write_safetensors(temp_path("bad"), {t}), doctest::Contains("needs 24"), InputError);
  const OutTensor ok = make_tensor("q", DType::F32, {2, 3}, six);
  CHECK_THROWS_WITH_AS(write_safetensors(temp_path("dup"), {ok, ok}), doctest::Contains("twice"), InputError);
  CHECK_THROWS_AS(write_safetensors("/nonexistent/dir/out.safetensors", {ok}), InputError);
}

TEST_CASE("single-byte corruptions of a header are accepted or rejected, never a crash") {
  const std::string path = temp_path("corrupt");
  std::vector<double> vals(24);
  for (std::size_t i = 0; i < vals.size(); ++i) vals[i] = 0.25 * static_cast<double>(i) - 1.0;
  write_safetensors(path, {make_tensor("q", DType::F16, {2, 3, 4}, vals),
                           make_tensor("mask", DType::U8, {4, 6}, std::vector<double>(24, 1.0))},
                    {{"k", "v"}});
  const auto good = read_all(path);
  std::filesystem::remove(path);
  std::uint64_t n = 0;
  std::memcpy(&n, good.data(), 8);
  std::mt19937_64 rng(11);
  int rejected = 0;
  for (std::size_t pos = 0; pos < 8 + n; ++pos) {
    auto bytes = good;
    bytes[pos] = static_cast<std::byte>(rng() & 0xFF);
    try {
      const auto f = SafetensorsFile::parse(bytes, "corrupt");
      for (const auto& t : f.tensors()) CHECK(f.raw(t.name).size() == t.numel() * dtype_size(t.dtype));
    } catch (const FormatError&) {
      ++rejected;
    }
  }
  CHECK(rejected > 0);
  // Every truncation of the file short of its full length is rejected.
  for (std::size_t len = 0; len < good.size(); ++len) {
    CAPTURE(len);
    CHECK_THROWS_AS(SafetensorsFile::parse({good.begin(), good.begin() + static_cast<long>(len)}, "cut"),
                    FormatError);
  }
}
