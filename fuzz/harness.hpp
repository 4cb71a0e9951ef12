// What the fuzz targets check, shared with tests/hardening/test_fuzz_regressions.cpp so that every
// saved finding is replayed by ctest with exactly the fuzzer's contract (header-only, no libFuzzer).
//
// Each check_* takes arbitrary bytes and returns Accepted or Rejected (a clean FormatError /
// InputError). A broken contract -- a read that should work throws, a result of the wrong size, a
// NaN in an output -- throws ContractViolation; any other exception simply escapes. In the fuzzer
// both end the run as a crash; in the test both fail a CHECK_NOTHROW.
#pragma once

#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.hpp"
#include "monarch/attention.hpp"

namespace monarch::fuzz {

enum class Outcome { Accepted, Rejected };

struct ContractViolation : std::logic_error {
  using std::logic_error::logic_error;
};

namespace detail {

inline void require(bool ok, const std::string& what) {
  if (!ok) throw ContractViolation(what);
}

inline bool is_float(io::DType t) {
  return t == io::DType::F64 || t == io::DType::F32 || t == io::DType::F16 || t == io::DType::BF16;
}

/// The readers of (E, H, N, D) tensors and (E, N) masks hold dimensions in int.
inline bool fits_int(const io::TensorInfo& t) {
  for (auto d : t.shape)
    if (d > INT_MAX) return false;
  return true;
}

/// Calls fn and requires it to throw FormatError (a read whose dtype or rank does not fit).
template <class Fn>
void expect_format_error(Fn&& fn, const std::string& what) {
  try {
    fn();
  } catch (const io::FormatError&) {
    return;
  }
  throw ContractViolation(what + " did not throw FormatError");
}

inline std::vector<std::byte> to_bytes(std::span<const std::uint8_t> data) {
  std::vector<std::byte> bytes(data.size());
  for (std::size_t i = 0; i < data.size(); ++i) bytes[i] = static_cast<std::byte>(data[i]);
  return bytes;
}

/// Reads every tensor of an accepted file through every reader whose dtype fits, and checks
/// that the readers whose dtype or rank does not fit refuse cleanly.
inline void read_everything(const io::SafetensorsFile& f) {
  for (const io::TensorInfo& t : f.tensors()) {
    const std::string name = "tensor '" + t.name + "'";
    const auto raw = f.raw(t.name);
    require(raw.size() == t.numel() * io::dtype_size(t.dtype), name + ": raw size");
    volatile std::uint8_t sink = 0;  // touch every byte: ASan checks the span is really in bounds
    for (std::byte b : raw) sink = sink ^ static_cast<std::uint8_t>(b);

    if (is_float(t.dtype)) {
      require(f.read_f64(t.name).size() == t.numel(), name + ": read_f64 size");
      require(f.read_f32(t.name).size() == t.numel(), name + ": read_f32 size");
      if (t.shape.size() == 4 && fits_int(t)) {
        const auto x = io::read_tensor4<double>(f, t.name);
        const auto y = io::read_tensor4<float>(f, t.name);
        require(x.data.size() == t.numel() && y.data.size() == t.numel(), name + ": read_tensor4 size");
        require(static_cast<std::size_t>(x.E) * x.H * x.N * x.D == x.data.size(), name + ": Tensor4 shape");
      } else {
        expect_format_error([&] { io::read_tensor4<double>(f, t.name); }, name + ": read_tensor4");
      }
      expect_format_error([&] { f.read_u8(t.name); }, name + ": read_u8 of a float");
    } else {
      expect_format_error([&] { f.read_f64(t.name); }, name + ": read_f64 of " + io::dtype_name(t.dtype));
      expect_format_error([&] { io::read_tensor4<float>(f, t.name); }, name + ": read_tensor4");
      if (t.dtype == io::DType::U8 || t.dtype == io::DType::BOOL) {
        require(f.read_u8(t.name).size() == t.numel(), name + ": read_u8 size");
        if (t.shape.size() == 2 && fits_int(t)) {
          const auto m = io::read_mask(f, t.name);
          require(static_cast<std::size_t>(m.E) * m.N == m.keep.size(), name + ": read_mask size");
        } else {
          expect_format_error([&] { io::read_mask(f, t.name); }, name + ": read_mask");
        }
      } else {
        expect_format_error([&] { f.read_u8(t.name); }, name + ": read_u8 of " + io::dtype_name(t.dtype));
      }
    }
  }
  const std::string absent = "\x01 no tensor has this name";
  if (!f.has(absent)) expect_format_error([&] { f.info(absent); }, "info of an absent tensor");
}

template <class T>
bool all_finite(const Tensor4<T>& t) {
  for (T x : t.data)
    if (!std::isfinite(x)) return false;
  return true;
}

/// MonarchAttention and exact attention in precision S; both validate their inputs (a finite
/// double may overflow float). Either they refuse with InputError or the outputs are finite.
template <class S>
void attend(const Tensor4<double>& q, const Tensor4<double>& k, const Tensor4<double>& v,
            const KeyMask& mask, const Options& opt) {
  // Narrowing a double beyond S's range is undefined in ISO C++: make it +-inf explicitly, which
  // the validation then refuses, as it must refuse any value the precision cannot hold.
  auto narrow = [](const Tensor4<double>& t) {
    Tensor4<S> out(t.E, t.H, t.N, t.D);
    constexpr double kMax = std::numeric_limits<S>::max();
    for (std::size_t i = 0; i < t.data.size(); ++i) {
      const double x = t.data[i];
      out.data[i] = std::abs(x) <= kMax ? static_cast<S>(x) : std::copysign(std::numeric_limits<S>::infinity(), x);
    }
    return out;
  };
  const Tensor4<S> qs = narrow(q), ks = narrow(k), vs = narrow(v);
  Tensor4<S> O, P;
  try {
    O = monarch_attention<S>(qs, ks, vs, &mask, opt);
    P = exact_attention<S>(qs, ks, vs, &mask, opt);
  } catch (const InputError&) {
    return;
  }
  const char* precision = sizeof(S) == 8 ? "double" : "float";
  require(all_finite(O), std::string("MonarchAttention output has NaN or Inf in ") + precision);
  require(all_finite(P), std::string("exact attention output has NaN or Inf in ") + precision);
}

inline int metadata_int(const io::SafetensorsFile& f, const char* key, int fallback) {
  const auto it = f.metadata().find(key);
  if (it == f.metadata().end()) return fallback;
  try {
    return std::stoi(it->second);
  } catch (const std::exception&) {
    return fallback;
  }
}

}  // namespace detail

/// The safetensors reader: parse, then every typed read (fuzz/fuzz_safetensors.cpp).
inline Outcome check_safetensors(std::span<const std::uint8_t> data) {
  try {
    const io::SafetensorsFile f = io::SafetensorsFile::parse(detail::to_bytes(data), "fuzz");
    detail::read_everything(f);
    return Outcome::Accepted;
  } catch (const io::FormatError&) {
    return Outcome::Rejected;
  }
}

/// Limits that keep one fuzz_attention input under a few milliseconds.
constexpr std::size_t kMaxAttentionElements = 1 << 14;
constexpr int kMaxAttentionSteps = 4;

/// `monarch run` from file bytes to outputs (fuzz/fuzz_attention.cpp): q, k, v and the optional
/// mask are read as apps/inputs.cpp reads them, the options come from __metadata__ ("steps",
/// "block", "pad") so the fuzzer can steer them, and both methods run in double and in float.
inline Outcome check_attention(std::span<const std::uint8_t> data) {
  try {
    const io::SafetensorsFile f = io::SafetensorsFile::parse(detail::to_bytes(data), "fuzz");
    for (const char* name : {"q", "k", "v"})
      if (!f.has(name) || f.info(name).numel() > kMaxAttentionElements) return Outcome::Rejected;
    const auto q = io::read_tensor4<double>(f, "q");
    const auto k = io::read_tensor4<double>(f, "k");
    const auto v = io::read_tensor4<double>(f, "v");
    const KeyMask mask = io::read_mask(f, "mask");
    Options opt;
    opt.steps = detail::metadata_int(f, "steps", 1);
    opt.block = detail::metadata_int(f, "block", 0);
    const auto pad = f.metadata().find("pad");
    opt.pad = pad != f.metadata().end() && pad->second == "pre" ? Pad::Pre : Pad::Post;
    if (opt.steps > kMaxAttentionSteps) return Outcome::Rejected;
    validate_options(opt);
    validate_inputs(q, k, v, &mask);
    Geometry::make(q.N, opt.block, opt.pad);
    detail::attend<double>(q, k, v, mask, opt);
    detail::attend<float>(q, k, v, mask, opt);
    return Outcome::Accepted;
  } catch (const InputError&) {  // FormatError derives from InputError
    return Outcome::Rejected;
  }
}

}  // namespace monarch::fuzz
