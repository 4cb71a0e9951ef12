// Level 1: a direct, readable port of spec §4, one kernel per step, one thread per output row,
// scalar fp32 arithmetic (fp16/bf16 inputs are widened to fp32 as they are read).
//
// Each kernel is the loop nest of the reference step it names (reference/src/steps.hpp) with the
// outer loop over rows replaced by the thread index. Nothing is tiled and nothing is clever: this
// level is the bridge from the reference to the GPU, and the yardstick for the faster levels.
//
// Softmaxes are computed in two passes (max, then sum) exactly like the reference's softmax_rows;
// the L factor of eq. (13) is never stored: r_stats recomputes L_j[k, l] from alpha_L, c_L and the
// normaliser lse_L that l_update wrote.
#include <cfloat>
#include <cmath>

#include "harness.cuh"

namespace monarch::cuda::detail {
namespace {

constexpr int kMaxDim = 256;  // d, d_v per thread-local array; = max_head_dim(Level::Scalar)
constexpr int kThreads = 128;

/// eq. (11), rounds t >= 2: for row (k, j),
///   alpha_R[k, j] = sum_l L_j[k, l] valid(l, j) q_(l,j),   c_R[k, j] = sum_l L_j[k, l] valid(l, j),
/// with L_j[k, l] = exp(tau q_(l,j) . alpha_L[k, j] - c_L[k, j] - lse_L[l, j])  (eq. (13), normalised).
/// Mirrors detail::r_statistics_position. One thread per padded row k*b + j of one head.
template <class T>
__global__ void __launch_bounds__(kThreads) r_stats_kernel(Problem p) {
  static_assert(kIsDeviceDType<T>, "inputs are fp32, fp16 or bf16");
  static_assert(kMaxDim == 256, "= max_head_dim(Level::Scalar): validate_session refuses d, d_v > kMaxDim");
  const int head = blockIdx.y;
  const int row = blockIdx.x * blockDim.x + threadIdx.x;  // k*b + j
  if (row >= p.Np) return;
  const int k = row / p.b, j = row % p.b;
  const float* aL = p.alpha_L + padded_row(p, head, row, p.d);  // (d) alpha_L[k, j]
  const float cL = p.c_L[static_cast<std::size_t>(head) * p.Np + row];

  float acc[kMaxDim];  // (d) alpha_R[k, j]
  for (int c = 0; c < p.d; ++c) acc[c] = 0.0f;
  float c_sum = 0.0f;
  for (int l = 0; l < p.m; ++l) {
    const int ql = l * p.b + j;  // query (l, j)
    if (!is_valid(p, head, ql)) continue;  // valid(l, j) = 0: no weight
    const T* q = token_row<T>(p, p.Q, head, ql, p.d);  // valid implies a token
    float dot = 0.0f;
    for (int c = 0; c < p.d; ++c) dot += to_float(q[c]) * aL[c];
    const float lse = p.lse_L[static_cast<std::size_t>(head) * p.Np + ql];
    const float L_kl = expf(p.tau * dot - cL - lse);  // c_L = +inf gives 0
    for (int c = 0; c < p.d; ++c) acc[c] += L_kl * to_float(q[c]);
    c_sum += L_kl;
  }
  float* aR = p.alpha_R + padded_row(p, head, row, p.d);
  for (int c = 0; c < p.d; ++c) aR[c] = acc[c];
  p.c_R[static_cast<std::size_t>(head) * p.Np + row] = c_sum;
  (void)k;
}

/// eqs. (12), (10), (4) for row (k, j):
///   z_i = tau (alpha_R[k, j] / max(c_R[k, j], tiny)) . k_(k,i) over the valid keys i of block k,
///   R_k[j, i] = softmax_i(z),   alpha_L[k, j] = sum_i R k_(k,i),   c_L[k, j] = sum_i R log R,
///   Y[k, j] = sum_i R v_(k,i).
/// Mirrors detail::r_update_block and detail::block_summaries; R_k[j, :] is never stored.
template <class T>
__global__ void __launch_bounds__(kThreads) r_update_kernel(Problem p, bool want_Y) {
  static_assert(kIsDeviceDType<T>, "inputs are fp32, fp16 or bf16");
  static_assert(kMaxDim == 256, "= max_head_dim(Level::Scalar): validate_session refuses d, d_v > kMaxDim");
  const int head = blockIdx.y;
  const int row = blockIdx.x * blockDim.x + threadIdx.x;  // k*b + j
  if (row >= p.Np) return;
  const int k = row / p.b;
  const std::size_t stat = static_cast<std::size_t>(head) * p.Np + row;

  float mean_q[kMaxDim];  // (d) the L-weighted mean query alpha_R / c_R; c_R = 0 gives 0 (uniform R)
  const float inv_c = 1.0f / fmaxf(p.c_R[stat], FLT_MIN);
  const float* aR = p.alpha_R + padded_row(p, head, row, p.d);
  for (int c = 0; c < p.d; ++c) mean_q[c] = aR[c] * inv_c;

  auto score = [&](int i) {  // z_i for key (k, i), a valid token
    const T* key = token_row<T>(p, p.K, head, k * p.b + i, p.d);
    float dot = 0.0f;
    for (int c = 0; c < p.d; ++c) dot += mean_q[c] * to_float(key[c]);
    return p.tau * dot;
  };
  // Pass 1: the row maximum over valid keys.
  float z_max = -INFINITY;
  for (int i = 0; i < p.b; ++i)
    if (is_valid(p, head, k * p.b + i)) z_max = fmaxf(z_max, score(i));

  float* aL = p.alpha_L + padded_row(p, head, row, p.d);
  float* Y = p.Y + padded_row(p, head, row, p.dv);
  if (z_max == -INFINITY) {  // block k holds no valid key: no R row, alpha_L = Y = 0, c_L = +inf
    for (int c = 0; c < p.d; ++c) aL[c] = 0.0f;
    if (want_Y)
      for (int c = 0; c < p.dv; ++c) Y[c] = 0.0f;
    p.c_L[stat] = INFINITY;
    return;
  }
  // Pass 2: unnormalised weights e_i = exp(z_i - z_max) and the sums they weight.
  float accK[kMaxDim], accV[kMaxDim];  // (d), (d_v)
  for (int c = 0; c < p.d; ++c) accK[c] = 0.0f;
  for (int c = 0; c < p.dv; ++c) accV[c] = 0.0f;
  float sum_e = 0.0f, sum_ez = 0.0f;  // sum e_i and sum e_i (z_i - z_max)
  for (int i = 0; i < p.b; ++i) {
    const int ki = k * p.b + i;
    if (!is_valid(p, head, ki)) continue;
    const float zc = score(i) - z_max;
    const float e = expf(zc);
    sum_e += e;
    sum_ez += e * zc;
    const T* key = token_row<T>(p, p.K, head, ki, p.d);
    for (int c = 0; c < p.d; ++c) accK[c] += e * to_float(key[c]);
    if (want_Y) {
      const T* v = token_row<T>(p, p.V, head, ki, p.dv);
      for (int c = 0; c < p.dv; ++c) accV[c] += e * to_float(v[c]);
    }
  }
  const float inv = 1.0f / sum_e;
  for (int c = 0; c < p.d; ++c) aL[c] = accK[c] * inv;
  if (want_Y)
    for (int c = 0; c < p.dv; ++c) Y[c] = accV[c] * inv;
  // sum_i R log R with log R_i = (z_i - z_max) - log(sum_e): eq. (10)
  p.c_L[stat] = sum_ez * inv - logf(sum_e);
}

/// eqs. (13), (4) for query (l, j):
///   z_k = tau q_(l,j) . alpha_L[k, j] - c_L[k, j],   L_j[:, l] = softmax_k(z),
///   lse_L[l, j] = logsumexp_k(z),   o_(l,j) = sum_k L_j[k, l] Y[k, j].
/// Mirrors detail::l_update_position and the output of monarch_apply. A pad query (q = 0) still gets
/// its lse; only token rows are written to O.
template <class T>
__global__ void __launch_bounds__(kThreads) l_update_kernel(Problem p, bool want_O) {
  static_assert(kIsDeviceDType<T>, "inputs are fp32, fp16 or bf16");
  static_assert(kMaxDim == 256, "= max_head_dim(Level::Scalar): validate_session refuses d, d_v > kMaxDim");
  const int head = blockIdx.y;
  const int row = blockIdx.x * blockDim.x + threadIdx.x;  // l*b + j
  if (row >= p.Np) return;
  const int j = row % p.b;

  float q[kMaxDim];  // (d) q_(l,j), zero at a pad
  const T* qsrc = token_row<T>(p, p.Q, head, row, p.d);
  for (int c = 0; c < p.d; ++c) q[c] = qsrc ? to_float(qsrc[c]) : 0.0f;

  auto score = [&](int k) {
    const int kj = k * p.b + j;
    const float cL = p.c_L[static_cast<std::size_t>(head) * p.Np + kj];
    if (cL == INFINITY) return -INFINITY;  // empty key block: zero weight
    const float* aL = p.alpha_L + padded_row(p, head, kj, p.d);
    float dot = 0.0f;
    for (int c = 0; c < p.d; ++c) dot += q[c] * aL[c];
    return p.tau * dot - cL;
  };
  float z_max = -INFINITY;  // finite: some block holds a valid key (validate_inputs)
  for (int k = 0; k < p.m; ++k) z_max = fmaxf(z_max, score(k));

  float acc[kMaxDim];  // (d_v)
  for (int c = 0; c < p.dv; ++c) acc[c] = 0.0f;
  float sum_e = 0.0f;
  for (int k = 0; k < p.m; ++k) {
    const float e = expf(score(k) - z_max);
    sum_e += e;
    if (want_O && e > 0.0f) {
      const float* Y = p.Y + padded_row(p, head, k * p.b + j, p.dv);
      for (int c = 0; c < p.dv; ++c) acc[c] += e * Y[c];
    }
  }
  p.lse_L[static_cast<std::size_t>(head) * p.Np + row] = z_max + logf(sum_e);
  const int n = row - p.off;  // eq. (1): pads are dropped
  if (!want_O || n < 0 || n >= p.N) return;
  T* O = static_cast<T*>(p.O) + (static_cast<std::size_t>(head) * p.N + n) * p.dv;
  const float inv = 1.0f / sum_e;
  for (int c = 0; c < p.dv; ++c) O[c] = from_float<T>(acc[c] * inv);
}

dim3 row_grid(const Problem& p) { return dim3(blocks_for(p.Np, kThreads), p.E * p.H); }

void r_stats(const Problem& p) {
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    r_stats_kernel<T><<<row_grid(p), kThreads>>>(p);
    CUDA_CHECK_LAUNCH("level1 r_stats_kernel");
  });
}
void r_update(const Problem& p, bool want_Y) {
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    r_update_kernel<T><<<row_grid(p), kThreads>>>(p, want_Y);
    CUDA_CHECK_LAUNCH("level1 r_update_kernel");
  });
}
void l_update(const Problem& p, bool want_O) {
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    l_update_kernel<T><<<row_grid(p), kThreads>>>(p, want_O);
    CUDA_CHECK_LAUNCH("level1 l_update_kernel");
  });
}

}  // namespace

LevelSteps level1_steps() { return {&r_stats, &r_update, &l_update}; }

}  // namespace monarch::cuda::detail
