// Step-by-step comparison of the CUDA path against the double reference: for every intermediate of
// every round and for the output, the relative error ||gpu - ref|| / ||ref|| (Frobenius) and the
// largest absolute error. Host C++ only: it includes the Eigen reference, so no .cu file includes it.
//
// Rules: NaN never passes. An infinity (c_L = +inf for a block with no valid key) must sit at the same
// place with the same sign in both; matched infinities are left out of the norms.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "monarch/attention.hpp"
#include "monarch_cuda/monarch_cuda.hpp"

namespace monarch::cuda {

struct ArrayError {
  std::string name;  ///< "alpha_R", "c_R", "alpha_L", "c_L", "Y", "O" or "output"
  int round = 0;     ///< 1-based round, 0 for the final output
  std::size_t size = 0;
  double rel = 0;      ///< ||gpu - ref||_2 / ||ref||_2 over finite entries (absolute when ref is 0)
  double max_abs = 0;  ///< max |gpu - ref| over finite entries
  std::size_t nan = 0;           ///< NaN entries in gpu (or ref)
  std::size_t inf_mismatch = 0;  ///< entries infinite in one and not equal in the other
  bool size_mismatch = false;

  bool pass(double tol) const { return !size_mismatch && nan == 0 && inf_mismatch == 0 && rel <= tol; }
};

inline ArrayError compare_array(const std::string& name, int round, const double* ref, std::size_t nref,
                                const float* gpu, std::size_t ngpu) {
  ArrayError e;
  e.name = name;
  e.round = round;
  e.size = nref;
  if (nref != ngpu) {
    e.size_mismatch = true;
    return e;
  }
  double diff2 = 0, ref2 = 0;
  for (std::size_t i = 0; i < nref; ++i) {
    const double r = ref[i], g = gpu[i];
    if (std::isnan(r) || std::isnan(g)) {
      ++e.nan;
      continue;
    }
    if (std::isinf(r) || std::isinf(g)) {
      if (r != g) ++e.inf_mismatch;  // +inf == +inf passes; anything else does not
      continue;
    }
    diff2 += (g - r) * (g - r);
    ref2 += r * r;
    e.max_abs = std::max(e.max_abs, std::abs(g - r));
  }
  e.rel = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  return e;
}

template <class Mat>
ArrayError compare_eigen(const std::string& name, int round, const Mat& ref, const std::vector<float>& gpu) {
  return compare_array(name, round, ref.data(), static_cast<std::size_t>(ref.size()), gpu.data(), gpu.size());
}

/// Every intermediate of every round of one head: 6 T entries (alpha_R, c_R, alpha_L, c_L, Y, O).
inline std::vector<ArrayError> compare_trace(const HeadTrace<double>& ref, const Trace& gpu) {
  std::vector<ArrayError> out;
  const std::size_t rounds = std::max(ref.rounds.size(), gpu.rounds.size());
  for (std::size_t t = 0; t < rounds; ++t) {
    const int r = static_cast<int>(t) + 1;
    if (t >= ref.rounds.size() || t >= gpu.rounds.size()) {
      ArrayError e;
      e.name = "round";
      e.round = r;
      e.size_mismatch = true;
      out.push_back(e);
      continue;
    }
    const Round<double>& a = ref.rounds[t];
    const RoundArrays& g = gpu.rounds[t];
    out.push_back(compare_eigen("alpha_R", r, a.alpha_R, g.alpha_R));
    out.push_back(compare_eigen("c_R", r, a.c_R, g.c_R));
    out.push_back(compare_eigen("alpha_L", r, a.alpha_L, g.alpha_L));
    out.push_back(compare_eigen("c_L", r, a.c_L, g.c_L));
    out.push_back(compare_eigen("Y", r, a.Y, g.Y));
    out.push_back(compare_eigen("O", r, a.O, g.O));
  }
  return out;
}

/// The output over all heads.
inline ArrayError compare_output(const Tensor4<double>& ref, const Tensor4<float>& gpu) {
  return compare_array("output", 0, ref.data.data(), ref.data.size(), gpu.data.data(), gpu.data.size());
}

/// Merges the errors of one array name and round over heads (worst of each).
inline void merge_into(ArrayError& acc, const ArrayError& e) {
  acc.size += e.size;
  acc.rel = std::max(acc.rel, e.rel);
  acc.max_abs = std::max(acc.max_abs, e.max_abs);
  acc.nan += e.nan;
  acc.inf_mismatch += e.inf_mismatch;
  acc.size_mismatch = acc.size_mismatch || e.size_mismatch;
}

}  // namespace monarch::cuda
