// Tensor-core tiles for level 2 (and a starting point for the fused levels): WMMA 16x16 fragments,
// shared-memory strips owned by one warp, and the online softmax over a strip of scores.
//
// Conventions. A CTA holds kRows = 16 * kWarps rows ("queries") and walks over tiles of kCols columns
// ("keys"). Warp w owns rows [16w, 16w + 16) of every row-indexed shared array, so the softmax
// statistics and the accumulators of a row are touched by one warp only: inside the key loop warps
// need __syncwarp, and __syncthreads only around the shared key/value tiles.
//
// Precision. fp16 and bf16 tiles multiply on tensor cores with fp32 accumulation (m16n16k16).
// fp32 tiles multiply on CUDA cores (scalar FFMA over the same shared-memory tiles), so fp32 inputs
// keep fp32 accuracy. Why not TF32: its 10-bit mantissa misses the 1e-5 tolerance outright, and the
// error-compensated "3xTF32" split (a b ~ hi hi + hi lo + lo hi) measured 1.2e-5 to 1.4e-5 relative
// on an H200 for a 1000-key block (b = N = 1000), past 1e-5: the tensor cores' fp32 accumulation
// does not round like an FFMA chain. fp32 is the checking dtype, not the fast one.
#pragma once

#include <mma.h>

#include <cmath>
#include <cstddef>
#include <type_traits>

#include "harness.cuh"

namespace monarch::cuda::detail::tiles {

namespace wmma = nvcuda::wmma;

constexpr int kWarps = 4;              // warps per CTA
constexpr int kThreads = 32 * kWarps;  // threads per CTA
constexpr int kFrag = 16;              // WMMA fragment rows and columns
constexpr int kRows = kFrag * kWarps;  // rows per CTA: one 16-row strip per warp
constexpr int kCols = 64;              // columns (keys) per tile
constexpr int kMaxDim = 128;           // largest d, d_v held in a tile; = max_head_dim(Level::TensorCore)
constexpr int kLanesPerRow = 2;        // the online softmax gives each row two lanes...
constexpr int kColsPerLane = kCols / kLanesPerRow;  // ...of 32 columns each
static_assert(kFrag * kLanesPerRow == 32, "two lanes per row: 16 rows fill one warp");
static_assert(kCols % kFrag == 0 && kMaxDim % kFrag == 0, "tiles are whole fragments");

/// True for the 16-bit types that run on tensor cores; fp32 tiles take the FFMA path.
template <class T>
constexpr bool kOnTensorCores = !std::is_same_v<T, float>;

/// The WMMA shape for fp16 and bf16: m16n16k16, fp32 accumulators.
constexpr int kFragK = 16;
using AccFrag = wmma::fragment<wmma::accumulator, kFrag, kFrag, kFragK, float>;

/// Row stride (elements) of a shared tile of T with `cols` columns: a 16-byte skew keeps 16-byte
/// alignment (WMMA's ldm rule) and spreads consecutive rows over banks.
template <class T>
__host__ __device__ constexpr int tile_ld(int cols) {
  return cols + 16 / static_cast<int>(sizeof(T));
}
/// d rounded up to whole fragments: tiles are zero-padded past d.
__host__ __device__ constexpr int padded_dim(int d) { return (d + kFrag - 1) / kFrag * kFrag; }

/// Carves one dynamic shared-memory allocation into 128-byte-aligned arrays (WMMA pointers must be
/// 32-byte aligned). Used identically on the host (sizes) and the device (pointers).
struct Carver {
  std::size_t offset = 0;
  template <class U>
  __host__ __device__ std::size_t take(std::size_t count) {
    offset = (offset + 127) / 128 * 128;
    const std::size_t at = offset;
    offset += count * sizeof(U);
    return at;
  }
};

/// acc (16 x 16) += A (16 x kdim, row-major, lda) * B (kdim x 16), T = __half or __nv_bfloat16.
/// B is either row-major (element (k, n) at B[k*ldb + n]) or col-major, i.e. the transpose of a
/// row-major (16 x kdim) array Bt: element (k, n) at B[n*ldb + k].
/// The scalar loop it equals:  for r, n < 16: for k < kdim: acc[r][n] += A[r][k] * B(k, n).
template <class T, class BLayout>
__device__ __forceinline__ void mma_16x16(AccFrag& acc, const T* A, int lda, const T* B, int ldb, int kdim) {
  static_assert(kOnTensorCores<T>, "fp32 tiles use the FFMA loops of strip_scores/strip_accumulate");
  static_assert(std::is_same_v<BLayout, wmma::row_major> || std::is_same_v<BLayout, wmma::col_major>);
  wmma::fragment<wmma::matrix_a, kFrag, kFrag, kFragK, T, wmma::row_major> a;
  wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFragK, T, BLayout> bf;
  for (int kk = 0; kk < kdim; kk += kFragK) {
    wmma::load_matrix_sync(a, A + kk, lda);
    const T* bp = std::is_same_v<BLayout, wmma::row_major> ? B + static_cast<std::size_t>(kk) * ldb : B + kk;
    wmma::load_matrix_sync(bf, bp, ldb);
    wmma::mma_sync(acc, a, bf, acc);
  }
}

/// Scores of one warp's strip: S (16 x kCols, fp32) = A (16 x kdim) * Bt^T with Bt (kCols x kdim),
/// both row-major tiles of T. Scalar loop: S[r][n] = sum_c A[r][c] * Bt[n][c].
template <class T>
__device__ __forceinline__ void strip_scores(const T* A, int lda, const T* Bt, int ldb, int kdim, float* S,
                                             int lds) {
  if constexpr (kOnTensorCores<T>) {
    for (int n0 = 0; n0 < kCols; n0 += kFrag) {
      AccFrag acc;
      wmma::fill_fragment(acc, 0.0f);
      mma_16x16<T, wmma::col_major>(acc, A, lda, Bt + static_cast<std::size_t>(n0) * ldb, ldb, kdim);
      wmma::store_matrix_sync(S + n0, acc, lds, wmma::mem_row_major);
    }
  } else {  // fp32: the scalar loop itself, one output per lane at a time
    for (int i = threadIdx.x % 32; i < kFrag * kCols; i += 32) {
      const int r = i / kCols, n = i % kCols;
      float acc = 0.0f;
      for (int c = 0; c < kdim; ++c) acc = fmaf(A[r * lda + c], Bt[n * ldb + c], acc);
      S[r * lds + n] = acc;
    }
  }
}

/// Accumulate one warp's strip: Acc (16 x ncols, fp32 in shared) += P (16 x kCols) * X (kCols x ncols),
/// P and X row-major tiles of T. Scalar loop: Acc[r][c] += sum_n P[r][n] * X[n][c].
template <class T>
__device__ __forceinline__ void strip_accumulate(float* Acc, int ld_acc, const T* P, int ldp, const T* X,
                                                 int ldx, int ncols) {
  if constexpr (kOnTensorCores<T>) {
    for (int n0 = 0; n0 < ncols; n0 += kFrag) {
      AccFrag acc;
      wmma::load_matrix_sync(acc, Acc + n0, ld_acc, wmma::mem_row_major);
      mma_16x16<T, wmma::row_major>(acc, P, ldp, X + n0, ldx, kCols);
      wmma::store_matrix_sync(Acc + n0, acc, ld_acc, wmma::mem_row_major);
    }
  } else {  // fp32: the scalar loop itself, one output per lane at a time
    for (int i = threadIdx.x % 32; i < kFrag * ncols; i += 32) {
      const int r = i / ncols, c = i % ncols;
      float acc = Acc[r * ld_acc + c];
      for (int n = 0; n < kCols; ++n) acc = fmaf(P[r * ldp + n], X[n * ldx + c], acc);
      Acc[r * ld_acc + c] = acc;
    }
  }
}

/// The running statistics of one row of an online softmax. With M the running maximum:
/// l = sum_i exp(z_i - M) and ez = sum_i exp(z_i - M) (z_i - M) (only for the entropy of eq. (10)).
struct RowStats {
  float m = -INFINITY;
  float l = 0.0f;
  float ez = 0.0f;
};

/// One step of the online softmax for one warp's 16 rows over one tile of kCols scores:
/// z[r][c] = tau * S[r][c] - bias[c] (bias +inf masks a column). Updates the row statistics, writes
/// the unnormalised weights P[r][c] = exp(z - M_new) as T, and returns the factor exp(M_old - M_new)
/// by which the caller rescales the row's accumulators. Lane 2r + h handles row r, columns
/// [32h, 32h + 32); both lanes of a pair end with the same statistics.
/// The scalar loop it equals: for each row, for c < kCols: the two-pass softmax of the reference
/// (detail::softmax_rows), folded into a running maximum and sum.
template <class T, bool kEntropy>
__device__ __forceinline__ float online_softmax_strip(const float* S, int lds, const float* bias, float tau,
                                                      T* P, int ldp, RowStats& st, int lane) {
  const int r = lane / kLanesPerRow, c0 = (lane % kLanesPerRow) * kColsPerLane;
  const float* srow = S + r * lds + c0;
  float tile_max = -INFINITY;
  for (int c = 0; c < kColsPerLane; ++c) tile_max = fmaxf(tile_max, tau * srow[c] - bias[c0 + c]);
  tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
  const float m_new = fmaxf(st.m, tile_max);
  const bool none = m_new == -INFINITY;  // no valid column yet in this row: every weight is 0
  const float scale = none ? 1.0f : expf(st.m - m_new);  // st.m = -inf gives 0
  float sum = 0.0f, sum_ez = 0.0f;
  T* prow = P + r * ldp + c0;
  for (int c = 0; c < kColsPerLane; ++c) {
    const float zc = tau * srow[c] - bias[c0 + c] - m_new;  // -inf for a masked column
    const float p = none ? 0.0f : expf(zc);
    prow[c] = from_float<T>(p);
    sum += p;
    if (kEntropy && p > 0.0f) sum_ez += p * zc;
  }
  sum += __shfl_xor_sync(0xffffffffu, sum, 1);
  if (kEntropy) {
    sum_ez += __shfl_xor_sync(0xffffffffu, sum_ez, 1);
    // Re-reference the old terms to the new maximum: e' = scale e, (z - M') = (z - M) + (M - M').
    const float old = st.l > 0.0f ? scale * (st.ez + st.l * (st.m - m_new)) : 0.0f;
    st.ez = old + sum_ez;
  }
  st.l = st.l * scale + sum;
  st.m = none ? st.m : m_new;
  return scale;
}

/// Multiplies row r (this lane's row) of a warp's fp32 strip by s; the pair of lanes splits columns.
__device__ __forceinline__ void scale_row(float* strip, int ld, int ncols, float s, int lane) {
  const int r = lane / kLanesPerRow;
  for (int c = lane % kLanesPerRow; c < ncols; c += kLanesPerRow) strip[r * ld + c] *= s;
}

/// Zeroes a warp's (16 x ncols) fp32 strip.
__device__ __forceinline__ void zero_strip(float* strip, int ld, int ncols, int lane) {
  for (int i = lane; i < kFrag * ncols; i += 32) strip[(i / ncols) * ld + i % ncols] = 0.0f;
}

}  // namespace monarch::cuda::detail::tiles
