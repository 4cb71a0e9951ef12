// safetensors reading and writing. nlohmann-json parses the header; Eigen::half and
// Eigen::bfloat16 do the 16-bit float conversions (round to nearest even, inf/nan/subnormals).
// What no library does for us is the validation: every field of the header is checked against
// the file before any tensor byte is read, and each violation gets its own one-line FormatError
// "<file>: <what is wrong>".
#include "safetensors.hpp"

#include <Eigen/Core>  // Eigen::half, Eigen::bfloat16
#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

namespace monarch::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader copies bytes as they are");

namespace {

using json = nlohmann::json;

constexpr std::size_t kLengthFieldBytes = 8;             // u64 little-endian header length
constexpr std::uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MB: no real header comes close
constexpr std::size_t kHeaderAlignment = 8;              // data buffer starts 8-byte aligned
constexpr const char* kMetadataKey = "__metadata__";

struct DTypeRow {
  DType type;
  const char* name;
  std::size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1}};

const DTypeRow& row_of(DType t) {
  for (const auto& r : kDTypes)
    if (r.type == t) return r;
  throw InputError("internal: unknown DType value " + std::to_string(static_cast<int>(t)));
}

bool is_float(DType t) {
  return t == DType::F64 || t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string span_str(std::size_t b, std::size_t e) {
  return "[" + std::to_string(b) + ", " + std::to_string(e) + ")";
}

/// Element count of a shape, or false when a dimension is negative or the product overflows.
bool checked_numel(const std::vector<std::int64_t>& shape, std::size_t elem_size, std::size_t* numel,
                   std::size_t* bytes) {
  std::size_t n = 1;
  for (auto dim : shape) {
    if (dim < 0) return false;
    if (__builtin_mul_overflow(n, static_cast<std::size_t>(dim), &n)) return false;
  }
  std::size_t total = 0;
  if (__builtin_mul_overflow(n, elem_size, &total)) return false;
  *numel = n;
  *bytes = total;
  return true;
}

/// A short description of a JSON value for an error message. Never dumps arrays or objects:
/// dump() recurses, and a hostile header can nest a million levels deep.
std::string describe(const json& j) {
  constexpr std::size_t kMaxShown = 40, kMaxFlatEntries = 4;
  const bool flat_short = j.is_array() && j.size() <= kMaxFlatEntries &&
                          std::none_of(j.begin(), j.end(), [](const json& e) { return e.is_structured(); });
  if (j.is_structured() && !flat_short) return std::string("a JSON ") + j.type_name();
  std::string s = j.dump();  // a primitive or a flat short array: bounded depth
  if (s.size() > kMaxShown) s = s.substr(0, kMaxShown) + "...";
  return s;
}

/// Reads a JSON integer as int64 / size_t; false for floats, strings, or out-of-range values.
bool json_int64(const json& j, std::int64_t* out) {
  if (j.is_number_unsigned()) {
    const auto u = j.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
    *out = static_cast<std::int64_t>(u);
    return true;
  }
  if (j.is_number_integer()) {
    *out = j.get<std::int64_t>();
    return true;
  }
  return false;
}

/// One header entry, checked field by field. Throws FormatError naming file and tensor.
TensorInfo parse_entry(const std::string& origin, const std::string& name, const json& e) {
  const std::string where = origin + ": tensor '" + name + "'";
  if (!e.is_object()) throw FormatError(where + ": header entry is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) throw FormatError(where + ": header entry lacks \"" + key + "\"");

  TensorInfo t;
  t.name = name;
  const json& dt = e["dtype"];
  if (!dt.is_string()) throw FormatError(where + ": dtype is not a string");
  if (!parse_dtype(dt.get<std::string>(), &t.dtype))
    throw FormatError(where + ": unknown or unsupported dtype '" + dt.get<std::string>() + "'");

  const json& sh = e["shape"];
  if (!sh.is_array()) throw FormatError(where + ": shape is not a list");
  for (const json& d : sh) {
    std::int64_t v = 0;
    if (!json_int64(d, &v))
      throw FormatError(where + ": shape entry " + describe(d) + " is not an integer in int64 range");
    t.shape.push_back(v);
  }
  for (auto d : t.shape)
    if (d < 0) throw FormatError(where + ": negative dimension in shape " + shape_str(t.shape));
  std::size_t numel = 0, nbytes = 0;
  if (!checked_numel(t.shape, dtype_size(t.dtype), &numel, &nbytes))
    throw FormatError(where + ": shape " + shape_str(t.shape) + " overflows the byte count");

  const json& off = e["data_offsets"];
  std::int64_t b = 0, en = 0;
  if (!off.is_array() || off.size() != 2 || !json_int64(off[0], &b) || !json_int64(off[1], &en) ||
      b < 0 || en < 0)
    throw FormatError(where + ": data_offsets must be two non-negative integers, got " +
                      describe(off));
  t.begin = static_cast<std::size_t>(b);
  t.end = static_cast<std::size_t>(en);
  if (t.begin > t.end)
    throw FormatError(where + ": data_offsets " + span_str(t.begin, t.end) + " begin after they end");
  if (t.end - t.begin != nbytes)
    throw FormatError(where + ": shape " + shape_str(t.shape) + " x " + dtype_name(t.dtype) + " (" +
                      std::to_string(dtype_size(t.dtype)) + " bytes) needs " + std::to_string(nbytes) +
                      " bytes but data_offsets " + span_str(t.begin, t.end) + " span " +
                      std::to_string(t.end - t.begin));
  return t;
}

/// No two non-empty tensors share a byte; all lie inside the data buffer.
void check_layout(const std::string& origin, const std::vector<TensorInfo>& tensors,
                  std::size_t buffer) {
  std::vector<const TensorInfo*> order;
  for (const auto& t : tensors)
    if (t.end > t.begin) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (std::size_t i = 1; i < order.size(); ++i)
    if (order[i]->begin < order[i - 1]->end)
      throw FormatError(origin + ": tensors '" + order[i - 1]->name + "' " +
                        span_str(order[i - 1]->begin, order[i - 1]->end) + " and '" +
                        order[i]->name + "' " + span_str(order[i]->begin, order[i]->end) +
                        " overlap in the data buffer");
  // A file whose tensors tile [0, end) without gaps but stops early was cut short; a tensor
  // placed past the end of an otherwise consistent buffer has lying offsets. Say which.
  bool contiguous = true;
  std::size_t cursor = 0;
  for (const auto* t : order) {
    contiguous = contiguous && t->begin == cursor;
    cursor = t->end;
  }
  for (const auto& t : tensors) {  // empty tensors too: their offsets must still be in bounds
    if (t.end <= buffer) continue;
    if (contiguous && t.end > t.begin)
      throw FormatError(origin + ": file is truncated: tensor '" + t.name + "' ends at data byte " +
                        std::to_string(t.end) + " but only " + std::to_string(buffer) +
                        " data bytes follow the header");
    throw FormatError(origin + ": tensor '" + t.name + "' data_offsets " + span_str(t.begin, t.end) +
                      " lie outside the " + std::to_string(buffer) + "-byte data buffer");
  }
}

template <class T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <class Out>
std::vector<Out> convert_floats(const TensorInfo& t, std::span<const std::byte> raw,
                                const std::string& origin) {
  if (!is_float(t.dtype))
    throw FormatError(origin + ": tensor '" + t.name + "' has dtype " + dtype_name(t.dtype) +
                      ", expected a floating dtype (F64, F32, F16, BF16)");
  const std::size_t n = t.numel(), w = dtype_size(t.dtype);
  std::vector<Out> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::byte* p = raw.data() + i * w;
    switch (t.dtype) {
      case DType::F64: out[i] = static_cast<Out>(load<double>(p)); break;
      case DType::F32: out[i] = static_cast<Out>(load<float>(p)); break;
      case DType::F16: out[i] = static_cast<Out>(half_to_float(load<std::uint16_t>(p))); break;
      default: out[i] = static_cast<Out>(bf16_to_float(load<std::uint16_t>(p))); break;
    }
  }
  return out;
}

template <class T>
void append(std::vector<std::byte>& out, T v) {
  const auto* p = reinterpret_cast<const std::byte*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

}  // namespace

const char* dtype_name(DType t) { return row_of(t).name; }
std::size_t dtype_size(DType t) { return row_of(t).size; }

bool parse_dtype(const std::string& s, DType* out) {
  for (const auto& r : kDTypes)
    if (s == r.name) {
      *out = r.type;
      return true;
    }
  return false;
}

std::size_t TensorInfo::numel() const {
  std::size_t n = 1;
  for (auto d : shape) n *= static_cast<std::size_t>(d);
  return n;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw InputError(path + ": cannot open file for reading");
  const std::streamoff size = in.tellg();
  if (size < 0) throw InputError(path + ": cannot determine the file size");
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw InputError(path + ": read error");
  return parse(std::move(bytes), path);
}

SafetensorsFile SafetensorsFile::parse(std::vector<std::byte> bytes, const std::string& origin) {
  if (bytes.size() < kLengthFieldBytes)
    throw FormatError(origin + ": file is " + std::to_string(bytes.size()) +
                      " bytes, shorter than the 8-byte header length field");
  const auto n = load<std::uint64_t>(bytes.data());
  if (n > kMaxHeaderBytes)
    throw FormatError(origin + ": header length " + std::to_string(n) +
                      " exceeds the 100 MB cap (corrupt or not a safetensors file)");
  if (n > bytes.size() - kLengthFieldBytes)
    throw FormatError(origin + ": header length " + std::to_string(n) + " is larger than the " +
                      std::to_string(bytes.size() - kLengthFieldBytes) +
                      " bytes that follow the length field");

  const char* text = reinterpret_cast<const char*>(bytes.data() + kLengthFieldBytes);
  // nlohmann keeps the last of two equal keys silently; a header naming a tensor twice is lying
  // about one of them, so the parser callback records top-level keys and we refuse repeats.
  std::string duplicate;
  std::unordered_set<std::string> seen;
  const json::parser_callback_t watch_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && parsed.is_string()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  // The JSON reader stops at a NUL as at the end of a C string, so "{...}\0anything" would parse as
  // its prefix and the rest of the header would go unread; JSON text never holds a NUL.
  if (std::memchr(text, '\0', n) != nullptr) throw FormatError(origin + ": header contains a NUL byte (JSON text cannot)");
  json header = json::parse(text, text + n, watch_keys, /*allow_exceptions=*/false);
  if (header.is_discarded()) throw FormatError(origin + ": header is not valid JSON");
  if (!duplicate.empty()) throw FormatError(origin + ": header names '" + duplicate + "' twice");
  if (!header.is_object()) throw FormatError(origin + ": header JSON is not an object");

  SafetensorsFile f;
  f.origin_ = origin;
  f.data_start_ = kLengthFieldBytes + static_cast<std::size_t>(n);
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object())
        throw FormatError(origin + ": __metadata__ is not a JSON object of strings");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          throw FormatError(origin + ": __metadata__ entry '" + mk + "' is not a string");
        f.metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    f.tensors_.push_back(parse_entry(origin, key, value));
  }
  check_layout(origin, f.tensors_, bytes.size() - f.data_start_);
  f.bytes_ = std::move(bytes);
  return f;
}

bool SafetensorsFile::has(const std::string& name) const {
  return std::any_of(tensors_.begin(), tensors_.end(), [&](const TensorInfo& t) { return t.name == name; });
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return t;
  throw FormatError(origin_ + ": no tensor named '" + name + "'");
}

std::span<const std::byte> SafetensorsFile::raw(const std::string& name) const {
  const TensorInfo& t = info(name);
  return {bytes_.data() + data_start_ + t.begin, t.end - t.begin};
}

std::vector<double> SafetensorsFile::read_f64(const std::string& name) const {
  return convert_floats<double>(info(name), raw(name), origin_);
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name) const {
  return convert_floats<float>(info(name), raw(name), origin_);
}

std::vector<std::uint8_t> SafetensorsFile::read_u8(const std::string& name) const {
  const TensorInfo& t = info(name);
  if (t.dtype != DType::U8 && t.dtype != DType::BOOL)
    throw FormatError(origin_ + ": tensor '" + name + "' has dtype " + dtype_name(t.dtype) +
                      ", expected U8 or BOOL");
  auto r = raw(name);
  std::vector<std::uint8_t> out(r.size());
  for (std::size_t i = 0; i < r.size(); ++i) out[i] = r[i] != std::byte{0} ? 1 : 0;
  return out;
}

void write_safetensors(const std::string& path, const std::vector<OutTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  std::size_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name.empty() || t.name == kMetadataKey)
      throw InputError(path + ": cannot write a tensor named '" + t.name + "'");
    if (header.contains(t.name)) throw InputError(path + ": tensor '" + t.name + "' given twice");
    std::size_t numel = 0, nbytes = 0;
    if (!checked_numel(t.shape, dtype_size(t.dtype), &numel, &nbytes))
      throw InputError(path + ": tensor '" + t.name + "' has a bad shape " + shape_str(t.shape));
    if (nbytes != t.bytes.size())
      throw InputError(path + ": tensor '" + t.name + "' has " + std::to_string(t.bytes.size()) +
                       " bytes but shape " + shape_str(t.shape) + " x " + dtype_name(t.dtype) +
                       " needs " + std::to_string(nbytes));
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  if (!metadata.empty()) header[kMetadataKey] = metadata;

  std::string text = header.dump();
  // Pad with spaces so the data buffer starts at an 8-byte boundary (length field is 8 bytes).
  text.append((kHeaderAlignment - text.size() % kHeaderAlignment) % kHeaderAlignment, ' ');

  const std::uint64_t header_length = text.size();
  char length_field[kLengthFieldBytes];
  std::memcpy(length_field, &header_length, sizeof length_field);  // little-endian (static_assert)
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw InputError(path + ": cannot open file for writing");
  out.write(length_field, sizeof length_field);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : tensors)
    out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
  out.flush();
  if (!out) throw InputError(path + ": write error");
}

OutTensor make_tensor(const std::string& name, DType dtype, std::vector<std::int64_t> shape,
                      std::span<const double> values) {
  std::size_t numel = 0, nbytes = 0;
  if (!checked_numel(shape, dtype_size(dtype), &numel, &nbytes))
    throw InputError("tensor '" + name + "': bad shape " + shape_str(shape));
  if (numel != values.size())
    throw InputError("tensor '" + name + "': shape " + shape_str(shape) + " holds " +
                     std::to_string(numel) + " values, got " + std::to_string(values.size()));
  OutTensor t{name, dtype, std::move(shape), {}};
  t.bytes.reserve(nbytes);
  for (double v : values) {
    switch (dtype) {
      case DType::F64: append<double>(t.bytes, v); break;
      case DType::F32: append<float>(t.bytes, static_cast<float>(v)); break;
      case DType::F16: append<std::uint16_t>(t.bytes, float_to_half(static_cast<float>(v))); break;
      case DType::BF16: append<std::uint16_t>(t.bytes, float_to_bf16(static_cast<float>(v))); break;
      case DType::U8:
        if (!(v >= 0 && v <= 255)) throw InputError("tensor '" + name + "': value out of U8 range");
        append<std::uint8_t>(t.bytes, static_cast<std::uint8_t>(v));
        break;
      case DType::BOOL: append<std::uint8_t>(t.bytes, v != 0 ? 1 : 0); break;
      default:
        throw InputError(std::string("make_tensor: cannot pack dtype ") + dtype_name(dtype));
    }
  }
  return t;
}

template <class S>
Tensor4<S> read_tensor4(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo& t = f.info(name);
  if (t.shape.size() != 4)
    throw FormatError(f.origin() + ": tensor '" + name + "' must have rank 4 (E, H, N, D), got shape " +
                      shape_str(t.shape));
  for (auto d : t.shape)
    if (d > INT_MAX)
      throw FormatError(f.origin() + ": tensor '" + name + "' has a dimension too large: " + shape_str(t.shape));
  Tensor4<S> out;
  out.E = static_cast<int>(t.shape[0]);
  out.H = static_cast<int>(t.shape[1]);
  out.N = static_cast<int>(t.shape[2]);
  out.D = static_cast<int>(t.shape[3]);
  if constexpr (std::is_same_v<S, float>)
    out.data = f.read_f32(name);
  else
    out.data = f.read_f64(name);
  return out;
}

template Tensor4<double> read_tensor4<double>(const SafetensorsFile&, const std::string&);
template Tensor4<float> read_tensor4<float>(const SafetensorsFile&, const std::string&);

KeyMask read_mask(const SafetensorsFile& f, const std::string& name) {
  KeyMask m;
  if (!f.has(name)) return m;
  const TensorInfo& t = f.info(name);
  if (t.shape.size() != 2 || t.shape[0] > INT_MAX || t.shape[1] > INT_MAX)
    throw FormatError(f.origin() + ": tensor '" + name + "' must have shape (E, N), got " + shape_str(t.shape));
  m.E = static_cast<int>(t.shape[0]);
  m.N = static_cast<int>(t.shape[1]);
  m.keep = f.read_u8(name);
  return m;
}

float half_to_float(std::uint16_t h) {
  return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(h));
}
std::uint16_t float_to_half(float f) {
  return Eigen::numext::bit_cast<std::uint16_t>(Eigen::half(f));
}
float bf16_to_float(std::uint16_t h) {
  return static_cast<float>(Eigen::numext::bit_cast<Eigen::bfloat16>(h));
}
std::uint16_t float_to_bf16(float f) {
  return Eigen::numext::bit_cast<std::uint16_t>(Eigen::bfloat16(f));
}

}  // namespace monarch::io
