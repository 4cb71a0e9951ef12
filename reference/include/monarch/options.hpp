// Options, geometry and input errors shared by the CPU reference and the CUDA path.
// Deliberately free of Eigen so that .cu files can include it.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace monarch {

/// Thrown for every bad input at an API boundary. The message is one line, meant for the user.
class InputError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Where the pads go when b does not divide N (spec §1, docs eq. (1)).
enum class Pad { Pre, Post };

/// The knobs of MonarchAttention (spec §1 and §4).
struct Options {
  int steps = 1;                ///< T >= 1 rounds of (R-update, L-update)
  int block = 0;                ///< b >= 1; 0 selects the default ceil(sqrt(N))
  Pad pad = Pad::Post;          ///< pre-padding puts the N' - N pads first
  std::optional<double> scale;  ///< tau; unset selects 1/sqrt(d)
};

/// ceil(sqrt(N)), the block size that balances the two factors (b = m = sqrt(N)).
inline int default_block(int N) {
  int b = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(N))));
  while (b > 1 && (b - 1) * (b - 1) >= N) --b;  // guard against sqrt rounding up
  while (b * b < N) ++b;                        // ... or down
  return b;
}

/// The padded block layout of one sequence: m blocks of b positions, N' = m b.
struct Geometry {
  int N = 0;    ///< tokens
  int b = 0;    ///< block size
  int m = 0;    ///< number of blocks, ceil(N / b)
  int Np = 0;   ///< padded length N' = m b
  int off = 0;  ///< token n sits at padded index n + off (off = N' - N for pre-padding)

  /// The layout of N tokens in blocks of `block` (0 = default_block(N)) with the given padding,
  /// eq. (1). Throws InputError for N < 1, b < 1 or b > N.
  static Geometry make(int N, int block, Pad pad) {
    if (N < 1) throw InputError("sequence length N must be >= 1, got " + std::to_string(N));
    const int b = block == 0 ? default_block(N) : block;
    if (b < 1) throw InputError("block size b must be >= 1, got " + std::to_string(b));
    if (b > N)
      throw InputError("block size b = " + std::to_string(b) + " exceeds the sequence length N = " +
                       std::to_string(N));
    Geometry g;
    g.N = N;
    g.b = b;
    g.m = (N + b - 1) / b;
    g.Np = g.m * b;
    g.off = pad == Pad::Pre ? g.Np - N : 0;
    return g;
  }
  /// Padded index of block l, position j.
  int index(int l, int j) const { return l * b + j; }
  /// True when padded index p holds a token rather than a pad.
  bool is_token(int p) const { return p >= off && p < off + N; }
};

/// Checks the option values that do not depend on the data; throws InputError.
inline void validate_options(const Options& opt) {
  if (opt.steps < 1) throw InputError("steps T must be >= 1, got " + std::to_string(opt.steps));
  if (opt.block < 0) throw InputError("block size b must be >= 1, got " + std::to_string(opt.block));
  if (opt.scale && !std::isfinite(*opt.scale))
    throw InputError("scale tau must be finite");
}

/// tau: the caller's scale, or 1/sqrt(d).
inline double resolve_scale(const Options& opt, int d) {
  return opt.scale ? *opt.scale : 1.0 / std::sqrt(static_cast<double>(d));
}

}  // namespace monarch
