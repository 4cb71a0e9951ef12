// Plain (E, H, N, D) tensors and (E, N) key masks: the data model of the public API.
// Eigen-free, so the CUDA host code and the file readers can share it.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "monarch/options.hpp"

namespace monarch {

/// A dense row-major tensor of shape (E, H, N, D): batch, heads, tokens, features.
template <class S>
struct Tensor4 {
  ///@{
  /// The shape: batch E, heads H, tokens N, features D.
  int E = 0, H = 0, N = 0, D = 0;
  ///@}
  std::vector<S> data;  ///< (E, H, N, D) row-major

  Tensor4() = default;
  /// A zero-filled tensor of shape (e, h, n, d).
  Tensor4(int e, int h, int n, int d)
      : E(e), H(h), N(n), D(d), data(static_cast<std::size_t>(e) * h * n * d) {}

  /// Elements of one head, N D.
  std::size_t head_size() const { return static_cast<std::size_t>(N) * D; }
  /// The (N, D) row-major block of batch element e, head h.
  S* head(int e, int h) { return data.data() + (static_cast<std::size_t>(e) * H + h) * head_size(); }
  /// The (N, D) row-major block of batch element e, head h.
  const S* head(int e, int h) const {
    return data.data() + (static_cast<std::size_t>(e) * H + h) * head_size();
  }
  /// "(E, H, N, D)", for error messages.
  std::string shape() const {
    return "(" + std::to_string(E) + ", " + std::to_string(H) + ", " + std::to_string(N) + ", " +
           std::to_string(D) + ")";
  }
};

/// One boolean per batch element and token, true = keep the key. Empty = keep everything.
struct KeyMask {
  ///@{
  /// The shape: batch E, tokens N.
  int E = 0, N = 0;
  ///@}
  std::vector<std::uint8_t> keep;  ///< (E, N), nonzero = keep

  bool empty() const { return keep.empty(); }  ///< no mask: every key is kept
  /// The N flags of batch element e.
  const std::uint8_t* row(int e) const { return keep.data() + static_cast<std::size_t>(e) * N; }
};

/// Validates Q, K, V (and the mask) at the API boundary; throws InputError with one line.
template <class S>
void validate_inputs(const Tensor4<S>& Q, const Tensor4<S>& K, const Tensor4<S>& V,
                     const KeyMask* mask) {
  auto positive = [](const Tensor4<S>& t, const char* name) {
    if (t.E < 1 || t.H < 1 || t.N < 1 || t.D < 1)
      throw InputError(std::string(name) + " has an empty dimension: shape " + t.shape());
    if (t.data.size() != static_cast<std::size_t>(t.E) * t.H * t.N * t.D)
      throw InputError(std::string(name) + " holds " + std::to_string(t.data.size()) +
                       " values but its shape " + t.shape() + " needs more or fewer");
  };
  positive(Q, "q");
  positive(K, "k");
  positive(V, "v");
  if (K.E != Q.E || K.H != Q.H || K.N != Q.N || K.D != Q.D)
    throw InputError("k must have the shape of q " + Q.shape() + ", got " + K.shape());
  if (V.E != Q.E || V.H != Q.H || V.N != Q.N)
    throw InputError("v must be (E, H, N, d_v) with E, H, N of q " + Q.shape() + ", got " + V.shape());
  auto finite = [](const Tensor4<S>& t, const char* name) {
    for (std::size_t i = 0; i < t.data.size(); ++i)
      if (!std::isfinite(static_cast<double>(t.data[i])))
        throw InputError(std::string(name) + " holds a non-finite value at flat index " +
                         std::to_string(i));
  };
  finite(Q, "q");
  finite(K, "k");
  finite(V, "v");
  if (mask && !mask->empty()) {
    if (mask->E != Q.E || mask->N != Q.N ||
        mask->keep.size() != static_cast<std::size_t>(Q.E) * Q.N)
      throw InputError("mask must have shape (E, N) = (" + std::to_string(Q.E) + ", " +
                       std::to_string(Q.N) + "), got (" + std::to_string(mask->E) + ", " +
                       std::to_string(mask->N) + ")");
    for (int e = 0; e < Q.E; ++e) {
      bool any = false;
      for (int n = 0; n < Q.N; ++n) any = any || mask->row(e)[n] != 0;
      if (!any)
        throw InputError("mask hides every key of batch element " + std::to_string(e) +
                         ": attention over an empty set is undefined");
    }
  }
}

/// Rejects finite inputs so large that a score tau q.k could overflow S (then the softmax would
/// turn inf - inf into NaN). The bound |tau q.k| <= |tau| d max|q| max|k| is compared with a quarter
/// of S's largest value in log space, so the check itself cannot overflow. O(N d) per head.
template <class S>
void validate_score_range(const S* Q, const S* K, std::size_t count, int d, double tau) {
  double max_q = 0, max_k = 0;
  for (std::size_t i = 0; i < count; ++i) {
    max_q = std::max(max_q, std::abs(static_cast<double>(Q[i])));
    max_k = std::max(max_k, std::abs(static_cast<double>(K[i])));
  }
  if (max_q == 0 || max_k == 0 || tau == 0) return;
  constexpr double kHeadroom = 4;  // room for the softmax's shift and sums of several scores
  const double log_bound = std::log(std::abs(tau)) + std::log(static_cast<double>(d)) +
                           std::log(max_q) + std::log(max_k);
  if (log_bound > std::log(static_cast<double>(std::numeric_limits<S>::max()) / kHeadroom))
  {
    char sizes[96];
    std::snprintf(sizes, sizeof sizes, "largest q entry %.3g in size, largest k entry %.3g", max_q, max_k);
    throw InputError(std::string("q and k are too large for ") +
                     (sizeof(S) == sizeof(float) ? "float" : "double") +
                     ": the scores tau q.k can overflow (" + sizes + "; rescale q and k)");
  }
}

}  // namespace monarch
