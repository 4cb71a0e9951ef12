#include "inputs.hpp"

#include <cmath>

#include "io/safetensors.hpp"

namespace monarch::cli {

AttentionInputs read_inputs(const std::string& path) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(path);  // messages already name the file
  for (const char* name : {"q", "k", "v"})
    if (!f.has(name))
      throw InputError(path + ": missing tensor '" + name +
                       "' (a run needs q, k: (E, H, N, d) and v: (E, H, N, d_v), optional mask: (E, N))");
  AttentionInputs in;
  in.path = path;
  in.q = io::read_tensor4<double>(f, "q");
  in.k = io::read_tensor4<double>(f, "k");
  in.v = io::read_tensor4<double>(f, "v");
  in.mask = io::read_mask(f, "mask");
  in.metadata = f.metadata();
  try {
    validate_inputs(in.q, in.k, in.v, &in.mask);
  } catch (const InputError& e) {
    throw InputError(path + ": " + e.what());
  }
  return in;
}

// The last line of defence of "never a NaN": finite inputs whose scores tau q.k overflow the
// precision can still give inf/NaN inside an engine; such a result is refused, not written.
void require_finite_result(const std::vector<double>& x, const std::string& what) {
  for (double v : x)
    if (!std::isfinite(v))
      throw InputError(what + " holds non-finite values: the scores tau q.k overflow this precision "
                       "(rescale q and k)");
}

double relative_frobenius_error(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0, ref = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    ref += b[i] * b[i];
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

}  // namespace monarch::cli
