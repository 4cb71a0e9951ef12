// Reading and writing safetensors files (an 8-byte little-endian header length, a JSON header,
// then one byte buffer). The header is parsed with nlohmann-json; everything else here is the
// validation that no library does for us: every violation is a one-line FormatError before any
// tensor data is touched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "monarch/options.hpp"
#include "monarch/tensor.hpp"

namespace monarch::io {

/// A malformed or lying file. Derives from InputError so callers catch both the same way.
class FormatError : public InputError {
 public:
  using InputError::InputError;
};

/// The element types a safetensors header may name (the integer ones are read only as masks).
enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType t);          ///< "F64", "F32", ... as in the safetensors header
std::size_t dtype_size(DType t);          ///< bytes per element
bool parse_dtype(const std::string& s, DType* out);  ///< false for a dtype we cannot read

/// One tensor entry of the header. Offsets are relative to the start of the data buffer.
struct TensorInfo {
  std::string name;                 ///< the tensor's key in the header
  DType dtype = DType::F32;         ///< its element type
  std::vector<std::int64_t> shape;  ///< its dimensions, outermost first
  ///@{
  /// The byte range [begin, end) of its data, relative to the start of the data buffer.
  std::size_t begin = 0, end = 0;
  ///@}
  std::size_t numel() const;        ///< the product of the dimensions (1 for a scalar)
};

/// A validated safetensors file held in memory.
class SafetensorsFile {
 public:
  /// Reads and validates a file: header length vs file size, JSON, dtypes, shape x dtype size
  /// = byte span, offsets in bounds, no overlap. Throws FormatError (or InputError if unreadable).
  static SafetensorsFile open(const std::string& path);
  /// The same validation on bytes already in memory (used by the fuzzer). origin names them in errors.
  static SafetensorsFile parse(std::vector<std::byte> bytes, const std::string& origin);

  /// Every tensor of the header, in file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  /// The header's optional "__metadata__" string map.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& origin() const { return origin_; }  ///< the path (or name) given to open/parse
  bool has(const std::string& name) const;  ///< true when the header names this tensor
  const TensorInfo& info(const std::string& name) const;  ///< FormatError if missing

  /// The raw little-endian bytes of a tensor.
  std::span<const std::byte> raw(const std::string& name) const;
  /// Any floating dtype (F64, F32, F16, BF16) converted to double / float; FormatError otherwise.
  std::vector<double> read_f64(const std::string& name) const;
  /// As read_f64(), converted to float.
  std::vector<float> read_f32(const std::string& name) const;
  /// U8 or BOOL as bytes (nonzero = true); FormatError otherwise.
  std::vector<std::uint8_t> read_u8(const std::string& name) const;

 private:
  std::string origin_;
  std::vector<std::byte> bytes_;
  std::size_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// A tensor to write.
struct OutTensor {
  std::string name;                 ///< the key to write it under
  DType dtype = DType::F32;         ///< its element type
  std::vector<std::int64_t> shape;  ///< its dimensions, outermost first
  std::vector<std::byte> bytes;     ///< numel * dtype_size bytes, little-endian
};

/// Writes a safetensors file; throws InputError on I/O failure or inconsistent sizes.
void write_safetensors(const std::string& path, const std::vector<OutTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// Convenience: pack a host array as an OutTensor of dtype F64 / F32 / F16 / BF16 / U8.
OutTensor make_tensor(const std::string& name, DType dtype, std::vector<std::int64_t> shape,
                      std::span<const double> values);

/// Reads a rank-4 (E, H, N, D) floating tensor into a `Tensor4<S>`; FormatError on wrong rank.
template <class S>
Tensor4<S> read_tensor4(const SafetensorsFile& f, const std::string& name);
/// Reads an optional (E, N) U8/BOOL mask; an empty KeyMask when absent.
KeyMask read_mask(const SafetensorsFile& f, const std::string& name);

/// fp16 / bf16 conversions (IEEE binary16 and bfloat16, round to nearest even).
float half_to_float(std::uint16_t h);
std::uint16_t float_to_half(float f);  ///< float to IEEE binary16, round to nearest even
float bf16_to_float(std::uint16_t h);  ///< bfloat16 to float (exact)
std::uint16_t float_to_bf16(float f);  ///< float to bfloat16, round to nearest even

}  // namespace monarch::io
