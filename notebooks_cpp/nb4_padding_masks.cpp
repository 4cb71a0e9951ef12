/// # Chapter 4: Padding and masks
///
/// Blocks matter: $R_k$ mixes keys *inside* block $k$, while $L_j$ only weighs whole blocks.
/// When $b$ does not divide $N$ the sequence is padded to $N' = m b$, and *where* the pads go
/// decides which tokens share a block (eq. (1)). This chapter shows the two choices on a
/// ViT-like sequence, measures what alignment buys, and then checks what a key mask does.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>
#include <vector>

#include "monarch/attention.hpp"
#include "nb.hpp"

using monarch::Matrix;

namespace {
constexpr int kPatchRows = 14, kPatchCols = 14;      // a 224 x 224 image in 16 x 16 patches
constexpr int kTokens = 1 + kPatchRows * kPatchCols;  // class token + patches = 197
constexpr int kDim = 32;
constexpr double kRowSignal = 3.0;  // how strongly a patch attends to its own image row

// Row-major (N, d) matrix of Gaussian noise.
Matrix<double> noise(int N, int d, double sd, std::mt19937_64& rng) {
  std::normal_distribution<double> g(0.0, sd);
  Matrix<double> M(N, d);
  for (int r = 0; r < N; ++r)
    for (int c = 0; c < d; ++c) M(r, c) = g(rng);
  return M;
}

double rel_error(const Matrix<double>& A, const Matrix<double>& B) { return (A - B).norm() / B.norm(); }
}  // namespace

int main(int argc, char** argv) {
  nb::init(argc, argv);
  std::mt19937_64 rng(197);

  /// ## Where the tokens land, eq. (1)
  ///
  /// A ViT sees $N = 197$ tokens: a class token, then $14 \times 14$ image patches, row by row.
  /// With $b = 14$ there are $m = 15$ blocks, $N' = 210$, and 13 pads. Token $n$ sits at padded
  /// index $n + \mathrm{off}$, with $\mathrm{off} = N' - N$ for pre-padding and 0 for
  /// post-padding. `Geometry::make` computes the layout.
  const auto pre = monarch::Geometry::make(kTokens, kPatchCols, monarch::Pad::Pre);
  const auto post = monarch::Geometry::make(kTokens, kPatchCols, monarch::Pad::Post);
  std::printf("N = %d, b = %d, m = %d, N' = %d; off = %d (pre), %d (post)\n", pre.N, pre.b, pre.m, pre.Np, pre.off,
              post.off);
  bool aligned = true;
  for (int r = 0; r < kPatchRows; ++r)
    for (int c = 0; c < kPatchCols; ++c) aligned = aligned && (1 + r * kPatchCols + c + pre.off) / pre.b == r + 1;
  nb::check(pre.off == 13 && pre.Np == 210, "pre-padding puts 13 pads first");
  nb::check(aligned, "with pre-padding, patch row r is exactly block r + 1");

  /// The picture shows the padded sequence as $m$ rows of $b$ positions (one row per block).
  /// Pads are dark, the class token bright, image rows alternate between two shades. With
  /// pre-padding every block holds exactly one image row; with post-padding every block
  /// straddles two.
  auto layout = [&](const monarch::Geometry& g) {
    Matrix<double> M = Matrix<double>::Zero(g.m, g.b);  // 0 = pad
    for (int n = 0; n < g.N; ++n) {
      const int p = n + g.off;
      M(p / g.b, p % g.b) = n == 0 ? 1.0 : ((n - 1) / kPatchCols % 2 ? 0.45 : 0.7);
    }
    return M;
  };
  nb::heatmap("nb4_layout.png", "The padded ViT sequence, one row per block: pads dark, class token bright, image rows in two shades",
              {{layout(pre), "pre-padding"}, {layout(post), "post-padding"}}, 18, 1.0, 0.0, 1.0);

  /// ## What alignment buys
  ///
  /// A synthetic head in which every patch attends mostly to patches of its own image row (its
  /// query and key share a row embedding, plus noise). Such attention is nearly block-diagonal
  /// when blocks are image rows, so one round of MonarchAttention ($T = 1$) should be close to
  /// exact with pre-padding and worse with post-padding.
  Matrix<double> Q = noise(kTokens, kDim, 0.5, rng), K = noise(kTokens, kDim, 0.5, rng);
  const Matrix<double> V = noise(kTokens, kDim, 1.0, rng);
  for (int n = 1; n < kTokens; ++n) {
    const int r = (n - 1) / kPatchCols;
    Q(n, r) += kRowSignal * 2;  // coordinate r carries image row r (kDim > kPatchRows)
    K(n, r) += kRowSignal * 2;
  }
  const double tau = 1 / std::sqrt(double(kDim));
  const Matrix<double> exact = monarch::exact_head(Q.data(), K.data(), V.data(), kTokens, kDim, kDim, {}, tau);
  std::printf("%6s %14s %14s\n", "T", "error (pre)", "error (post)");
  double pre1 = 0, post1 = 0;
  for (int T : {1, 2, 3}) {
    monarch::Options opt;
    opt.steps = T;
    opt.block = kPatchCols;
    opt.pad = monarch::Pad::Pre;
    const double e_pre = rel_error(monarch::monarch_head(Q.data(), K.data(), V.data(), kTokens, kDim, kDim, {}, opt), exact);
    opt.pad = monarch::Pad::Post;
    const double e_post = rel_error(monarch::monarch_head(Q.data(), K.data(), V.data(), kTokens, kDim, kDim, {}, opt), exact);
    std::printf("%6d %14.4e %14.4e\n", T, e_pre, e_post);
    if (T == 1) pre1 = e_pre, post1 = e_post;
  }
  nb::check(pre1 < 0.5 * post1, "aligned blocks (pre-padding) at least halve the error at T = 1",
            nb::fmt("pre %.3g, post %.3g", pre1, post1));

  /// ## Key masks
  ///
  /// A key mask (one flag per token, nonzero = keep) gives a masked key zero weight everywhere:
  /// its score is $-\infty$ in eq. (6), so $R$ (eq. (12)) puts no mass on it and a block with no
  /// valid key gets $c_L = +\infty$ (eq. (13) gives it weight 0). So changing the *values* of masked
  /// tokens must not change a single output. Here every third token is masked, and a whole
  /// block as well.
  std::vector<std::uint8_t> keep(kTokens, 1);
  for (int n = 0; n < kTokens; n += 3) keep[n] = 0;
  for (int n = 1; n <= kPatchCols; ++n) keep[n] = 0;  // image row 0 = block 1 under pre-padding
  monarch::Options opt;
  opt.steps = 2;
  opt.block = kPatchCols;
  opt.pad = monarch::Pad::Pre;
  Matrix<double> V2 = V;
  for (int n = 0; n < kTokens; ++n)
    if (!keep[n]) V2.row(n).setConstant(1e6);  // poison the values of masked keys
  const Matrix<double> O1 = monarch::monarch_head(Q.data(), K.data(), V.data(), kTokens, kDim, kDim, keep, opt);
  const Matrix<double> O2 = monarch::monarch_head(Q.data(), K.data(), V2.data(), kTokens, kDim, kDim, keep, opt);
  std::printf("max |O(poisoned masked values) - O| = %.3e\n", (O1 - O2).cwiseAbs().maxCoeff());
  nb::check((O1 - O2).cwiseAbs().maxCoeff() == 0.0, "the values of masked keys never reach the output");

  /// With $b = N$ there is a single block, and MonarchAttention is exact softmax attention,
  /// masks included (eq. (16)).
  opt.block = kTokens;
  opt.steps = 1;
  const Matrix<double> full = monarch::monarch_head(Q.data(), K.data(), V.data(), kTokens, kDim, kDim, keep, opt);
  const Matrix<double> exact_masked = monarch::exact_head(Q.data(), K.data(), V.data(), kTokens, kDim, kDim, keep, tau);
  std::printf("b = N with the mask: relative error %.2e\n", rel_error(full, exact_masked));
  nb::check(rel_error(full, exact_masked) < 1e-12, "b = N reproduces masked exact attention");

  /// A sequence whose keys are all masked has no attention at all (a softmax over nothing). The
  /// reference refuses it with one line instead of returning NaN:
  std::vector<std::uint8_t> none(kTokens, 0);
  bool refused = false;
  try {
    monarch::monarch_head(Q.data(), K.data(), V.data(), kTokens, kDim, kDim, none, opt);
  } catch (const monarch::InputError& e) {
    refused = true;
    std::cout << "InputError: " << e.what() << "\n";
  }
  nb::check(refused, "an all-masked sequence is refused with an InputError");

  return nb::finish();
}
