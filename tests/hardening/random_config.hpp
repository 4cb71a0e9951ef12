// Random problem configurations for the randomised invariant tests: shapes, block size, steps,
// padding side, key mask and scale, drawn from one seed so that a failure is reproducible from
// the (seed, index) pair that CAPTURE prints.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "monarch/eigen_types.hpp"
#include "monarch/options.hpp"

namespace monarch::hardening {

constexpr int kMaxN = 600;     // longest sequence drawn
constexpr int kMaxDim = 130;   // d and d_v are drawn from [1, kMaxDim]
constexpr int kMaxSteps = 4;   // T is drawn from [1, kMaxSteps]

/// One head's problem: sizes, options, mask and data.
struct Config {
  int N = 1, d = 1, dv = 1;
  Options opt;
  double sigma = 1;                 // standard deviation of Q and K: larger = more peaked softmax
  std::vector<std::uint8_t> keep;   // (N) or empty = keep every key
  Matrix<double> Q, K, V;           // (N, d), (N, d), (N, d_v)

  std::string describe() const {
    std::ostringstream s;
    s << "N=" << N << " b=" << opt.block << " T=" << opt.steps << " d=" << d << " dv=" << dv
      << " pad=" << (opt.pad == Pad::Pre ? "pre" : "post") << " sigma=" << sigma
      << " tau=" << (opt.scale ? std::to_string(*opt.scale) : "1/sqrt(d)") << " masked="
      << (keep.empty() ? 0 : static_cast<int>(std::count(keep.begin(), keep.end(), 0)));
    return s.str();
  }
};

inline Matrix<double> gaussian(int rows, int cols, double sigma, std::mt19937_64& rng) {
  std::normal_distribution<double> g(0.0, sigma);
  Matrix<double> M(rows, cols);
  for (Eigen::Index i = 0; i < M.size(); ++i) M.data()[i] = g(rng);
  return M;
}

/// Most N are small (the trace costs O(N^2 d) for F*, exact attention as much); one in twenty
/// goes up to kMaxN so the large geometries are still exercised in every run.
inline int draw_N(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  const double x = u(rng);
  if (x < 0.65) return std::uniform_int_distribution<int>(1, 40)(rng);
  if (x < 0.95) return std::uniform_int_distribution<int>(41, 200)(rng);
  return std::uniform_int_distribution<int>(201, kMaxN)(rng);
}

/// b anywhere in [1, N], with the interesting values over-represented: the edges 1 and N (the
/// exact cases of eq. (16)) and the neighbourhood of sqrt(N) (the default, b = m).
inline int draw_b(int N, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  const double x = u(rng);
  if (x < 0.1) return 1;
  if (x < 0.2) return N;
  if (x < 0.55) {
    const int centre = default_block(N);
    const int b = centre + std::uniform_int_distribution<int>(-2, 2)(rng);
    return std::clamp(b, 1, N);
  }
  return std::uniform_int_distribution<int>(1, N)(rng);
}

/// A key mask that drops each key with a random probability (up to nearly all of them), keeping
/// at least one; empty (no mask) a quarter of the time.
inline std::vector<std::uint8_t> draw_mask(int N, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  if (u(rng) < 0.25) return {};
  const double p_drop = 0.95 * u(rng);
  std::vector<std::uint8_t> keep(N);
  for (auto& k : keep) k = u(rng) < p_drop ? 0 : 1;
  keep[std::uniform_int_distribution<int>(0, N - 1)(rng)] = 1;  // never all-masked
  return keep;
}

inline Config draw_config(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  Config c;
  c.N = draw_N(rng);
  c.d = std::uniform_int_distribution<int>(1, kMaxDim)(rng);
  c.dv = std::uniform_int_distribution<int>(1, kMaxDim)(rng);
  c.opt.block = draw_b(c.N, rng);
  c.opt.steps = std::uniform_int_distribution<int>(1, kMaxSteps)(rng);
  c.opt.pad = u(rng) < 0.5 ? Pad::Pre : Pad::Post;
  if (u(rng) < 0.2) c.opt.scale = std::exp(std::uniform_real_distribution<double>(-4, 1)(rng));
  c.sigma = std::exp(std::uniform_real_distribution<double>(std::log(0.2), std::log(3.0))(rng));
  c.keep = draw_mask(c.N, rng);
  c.Q = gaussian(c.N, c.d, c.sigma, rng);
  c.K = gaussian(c.N, c.d, c.sigma, rng);
  c.V = gaussian(c.N, c.dv, 1.0, rng);
  return c;
}

}  // namespace monarch::hardening
