// Shared by the subcommands: reading q, k, v (and the optional mask) from a safetensors file,
// validated, and small helpers for converting and comparing tensors.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "monarch/tensor.hpp"

namespace monarch::cli {

/// The tensors a run reads. Values are held in double; F32/F16/BF16 inputs convert exactly.
struct AttentionInputs {
  std::string path;
  Tensor4<double> q, k, v;  // (E, H, N, d), (E, H, N, d), (E, H, N, d_v)
  KeyMask mask;             // (E, N) or empty; read from the optional tensor "mask"
  std::map<std::string, std::string> metadata;  // the file's __metadata__
};

/// Opens and validates the file (format, presence and rank of q, k, v, shapes, finiteness, mask).
/// Throws InputError with one line that names the file.
AttentionInputs read_inputs(const std::string& path);

/// Element-wise conversion between precisions.
template <class To, class From>
Tensor4<To> convert(const Tensor4<From>& t) {
  Tensor4<To> out(t.E, t.H, t.N, t.D);
  for (std::size_t i = 0; i < t.data.size(); ++i) out.data[i] = static_cast<To>(t.data[i]);
  return out;
}

/// Throws InputError when a result holds inf or NaN (what names it in the message).
void require_finite_result(const std::vector<double>& x, const std::string& what);

/// ||a - b||_F / ||b||_F over all heads.
double relative_frobenius_error(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace monarch::cli
