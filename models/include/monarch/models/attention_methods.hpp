// The attention of one head, as a pluggable choice for the encoder: exact softmax,
// MonarchAttention (T, b, pad), block-local softmax, Nystrom. Also their FLOP counts and the
// KL gap of block-local attention, for the zero-shot study.
//
// FLOPs, one formula for every method (the convention of monarch_flops in
// reference/include/monarch/attention.hpp, docs eq. (15)): a multiply-add counts 2, an exp or a
// log 1, an addition inside a mean 1; normalisations (sums and divisions of a softmax) are not
// counted. For one head with N tokens (the padded batch length), head size d = d_v:
//   exact        2 N^2 d + N^2 + 2 N^2 d_v                    (Q K^T, exps, P V)
//   monarch      monarch_flops(N, d, d_v, b, T)              (spec §5 / docs eq. (15))
//   block-local  2 N' b d + N' b + 2 N' b d_v, N' = ceil(N/b) b  (the first R-update and Y of eq. (4))
//   nystrom      2 N d                                       (segment means of Q and K)
//              + 2 N c d + N c + 2 c^2 d + c^2 + 2 c N d + c N  (the three softmax kernels)
//              + 48 c^3                                      (pinv: 6 Newton-Schulz steps of 4
//                                                             c x c products, as Xiong et al.)
//              + 2 c N d_v + 2 c^2 d_v + 2 N c d_v           (B V, pinv (B V), F (...))
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "monarch/eigen_types.hpp"
#include "monarch/options.hpp"

namespace monarch::models {

enum class Method { Exact, Monarch, BlockLocal, Nystrom };

/// One attention method with its knobs. Parameters that depend on the sequence length N are
/// resolved per call by resolve().
struct AttentionChoice {
  static constexpr int kWholeSequence = -1;  ///< block = N: Monarch reduces to exact softmax

  Method method = Method::Exact;
  int steps = 1;          ///< Monarch: T rounds
  int block = 0;          ///< Monarch, block-local: b; 0 = ceil(sqrt(N)); kWholeSequence = N
  Pad pad = Pad::Post;    ///< Monarch, block-local
  int landmarks = 0;      ///< Nystrom: c (0 only with match_steps)
  int match_steps = 0;    ///< block-local, Nystrom: > 0 picks b or c, the smallest whose FLOPs
                          ///< reach Monarch's with T = match_steps and b = ceil(sqrt(N))

  /// "exact", "monarch T=2", "local", "local=monarch T=2", "nystrom c=8", ...
  std::string label() const;
  /// Parses the CLI form: exact | monarch[:T=2][,b=16|b=N][,pad=pre] | local[:b=16|match=2]
  /// | nystrom[:c=8|match=2]. Throws InputError.
  static AttentionChoice parse(const std::string& spec);
};

/// The concrete knobs for a sequence of N tokens: b (Monarch, local) or c (Nystrom).
struct Resolved {
  int block = 0, landmarks = 0;
};
Resolved resolve(const AttentionChoice& a, int N, int d);
/// The reference's Options for a Monarch choice on N tokens: T, the resolved b, padding, tau.
Options monarch_options(const AttentionChoice& a, int N, int d, double tau);

/// FLOPs of one head of N tokens with the resolved knobs (see the formula above).
double attention_flops(const AttentionChoice& a, int N, int d, int dv);
double block_local_flops(int N, int d, int dv, int b);
double nystrom_flops(int N, int d, int dv, int c);

/// Block-diagonal softmax (the first R-update of MonarchAttention alone, spec §4): query n
/// attends to the valid keys of its own block. A query whose block holds no valid key gets 0.
/// Q, K: (N, d); V: (N, d_v) row-major; keep: N entries or empty. Returns (N, d_v).
Matrix<double> block_local_head(const double* Q, const double* K, const double* V, int N, int d,
                                int dv, std::span<const std::uint8_t> keep, int b, Pad pad,
                                double tau);

/// Nystrom attention (Xiong et al. 2021) with c landmarks: the segment means of the valid
/// queries and keys, O = softmax(Q K~^T) pinv(softmax(Q~ K~^T)) softmax(Q~ K^T) V, the
/// pseudo-inverse approximated by 6 Newton-Schulz steps as in the paper.
constexpr int kNystromPinvSteps = 6;  ///< Newton-Schulz steps, as in Nystromformer
Matrix<double> nystrom_head(const double* Q, const double* K, const double* V, int N, int d,
                            int dv, std::span<const std::uint8_t> keep, int c, double tau,
                            int pinv_steps = kNystromPinvSteps);

/// One head with any method. Returns (N, d_v).
Matrix<double> attend_head(const AttentionChoice& a, const double* Q, const double* K,
                           const double* V, int N, int d, int dv,
                           std::span<const std::uint8_t> keep, double tau);

/// Sum over valid query rows of KL(block-local row || softmax row) = lse(all valid keys) -
/// lse(valid keys of the row's block), docs eq. (7). Q, K: (N, d).
double block_local_kl(const double* Q, const double* K, int N, int d,
                      std::span<const std::uint8_t> keep, int b, Pad pad, double tau);

}  // namespace monarch::models
