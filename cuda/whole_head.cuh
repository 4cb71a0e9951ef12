// What the whole-head kernels (levels 4 and 6) share: a head of N' <= a few hundred rows held in one
// CTA's shared memory, and the per-column and per-row arrays that describe its geometry.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "check.cuh"
#include "fused_warp.cuh"
#include "harness.cuh"

namespace monarch::cuda::detail::whole_head {

using fused::kNoGroup;
using mma::kM;

constexpr int kChunk = 16;      // columns per warp step: b = 16 blocks are one step
using Group = std::int16_t;     // a column's block or position (< N' <= a few hundred here)

/// Rows of the Q, K, V tiles: N' rounded up to whole 16-row tiles (zero past N').
__host__ __device__ inline int tile_rows(int Np) { return (Np + kM - 1) / kM * kM; }
/// Entries of the per-column arrays: one chunk more, since a chunk may start at any column < N'.
__host__ __device__ inline int column_slots(int Np) { return tile_rows(Np) + kChunk; }

/// Bytes of the arrays below: per column its R-update and L-update biases and its group under b and
/// under m, then per row the position-major index of a padded row and back. The 16-bit index arrays
/// are what let level 4's second CTA fit on an SM at N' = 256.
inline std::size_t geometry_bytes(int Np) {
  return static_cast<std::size_t>(column_slots(Np)) * (2 * sizeof(Group) + 2 * sizeof(float)) +
         static_cast<std::size_t>(tile_rows(Np)) * 2 * sizeof(Group);
}

/// The geometry arrays, carved from shared memory at `at` (4-byte aligned).
struct Arrays {
  float* bias_R;     // (cols) 0, or +inf for an invalid key (set per head)
  float* bias_L;     // (cols) c_L log2(e), position-major (written by each head's R-update)
  Group* grp_b;      // (cols) column c's block c / b
  Group* grp_m;      // (cols) position-major c's position c / m
  Group* pm_of;      // (rows) padded row k*b + j -> position-major row j*m + k
  Group* padded_of;  // (rows) position-major row j*m + l -> padded row l*b + j
};

__device__ inline Arrays carve(unsigned char* at, int Np) {
  const int cols = column_slots(Np);
  Arrays a;
  a.bias_R = reinterpret_cast<float*>(at);
  a.bias_L = a.bias_R + cols;
  a.grp_b = reinterpret_cast<Group*>(a.bias_L + cols);
  a.grp_m = a.grp_b + cols;
  a.pm_of = a.grp_m + cols;
  a.padded_of = a.pm_of + tile_rows(Np);
  return a;
}

/// Fills the arrays that are the same for every head (everything but bias_R, and bias_L below N').
/// The caller's barrier publishes them.
__device__ inline void init_geometry(const Arrays& a, const Problem& p, int tid, int threads) {
  const int rows = tile_rows(p.Np), cols = column_slots(p.Np);
  for (int c = tid; c < cols; c += threads) {
    const bool in = c < p.Np;
    a.grp_b[c] = static_cast<Group>(in ? c / p.b : kNoGroup);
    a.grp_m[c] = static_cast<Group>(in ? c / p.m : kNoGroup);
    if (!in) a.bias_L[c] = INFINITY;  // past N': no column
    if (c < rows) {
      a.pm_of[c] = static_cast<Group>(in ? pm_of_padded(p, c) : c);  // past N': itself, a zero row
      a.padded_of[c] = static_cast<Group>(in ? padded_of_pm(p, c) : c);
    }
  }
}

/// R-update column biases of one head: 0 for a valid key, +inf otherwise (also past N').
__device__ inline void set_bias_R(const Arrays& a, const Problem& p, const std::uint8_t* valid_e, int tid,
                                  int threads) {
  for (int c = tid; c < column_slots(p.Np); c += threads) a.bias_R[c] = c < p.Np && valid_e[c] ? 0.0f : INFINITY;
}

/// This thread's two rows (g, g + 8) of a position-major tile starting at row r0 (the L-update's
/// rows (l, j), or r_stats' rows alpha_L[k, j]): their position j = row / m, given as div_m(row) (level
/// 6 divides by multiplying), and for r_stats the row bias c_L[k, j] log2(e).
template <fused::Step kStep, int D, class DivM>
__device__ __forceinline__ void position_rows(fused::WarpRows<D>& w, const Problem& p, const Arrays& geo, int r0,
                                              int g, DivM div_m) {
  #pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = r0 + g + 8 * h;
    w.row_group[h] = row < p.Np ? div_m(row) : fused::kNoRow;
    if constexpr (kStep == fused::Step::RStats) w.row_bias[h] = row < p.Np ? geo.bias_L[row] : INFINITY;
  }
}

/// The end of an L-update tile (position-major rows r0..r0+15) of head `head`, eq. (13). The last
/// round writes o = L Y, eq. (4), for the rows that are tokens (pads are dropped, eq. (1)), and with
/// `dump` the normaliser lse_L; a round before the last keeps only lse_L log2(e), as the column bias
/// of the next r_stats, in bias_R (+inf for an invalid query).
template <class T, int D>
__device__ __forceinline__ void finish_l_update(const fused::WarpRows<D>& w, const Problem& p, const Arrays& geo,
                                                const std::uint8_t* valid_e, int head, int r0, bool last, bool dump,
                                                int lane) {
  const int g = lane / 4, t = lane % 4;
  #pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = r0 + g + 8 * h;
    if (row >= p.Np) continue;
    if (!last) {
      if (t == 0) geo.bias_R[row] = valid_e[geo.padded_of[row]] ? fused::log_normaliser(w, h) * fused::kLog2e : INFINITY;
      continue;
    }
    if (dump && t == 0) p.lse_L[static_cast<std::size_t>(head) * p.Np + row] = fused::log_normaliser(w, h);
    const int n = geo.padded_of[row] - p.off;
    if (n < 0 || n >= p.N) continue;
    T* O = static_cast<T*>(p.O) + (static_cast<std::size_t>(head) * p.N + n) * p.dv;
    fused::store_row<T, D>(O, w.acc_v, h, 1.0f / w.run_sum[h], p.dv, lane);  // some block is valid: Z > 0
  }
}

/// Level 6's end of an L-update tile (step 27): as finish_l_update, but the last round's o rows go out
/// through shared memory. Each row is staged in the query row it was computed from (place(padded
/// row, c8): columns c8..c8+7 of it), which no other warp reads and this warp no longer needs, and
/// then copied to global memory in whole 16-byte pieces, kPieces lanes per row: a warp store writes
/// whole rows, where store_row's 4-byte stores fill half of each sector they touch and take 4x the
/// instructions. The 16 rows are staged at once with stmatrix (step 29): tile row i to tile_row(i),
/// whose pieces Pieces finds (a row past N' to scratch); the copy reads columns c8..c8+7 of padded
/// row r at place(r, c8).
template <class T, int D, class Pieces, class TileRow, class Place>
__device__ __forceinline__ void finish_l_update_staged(const fused::WarpRows<D>& w, const Problem& p, const Arrays& geo,
                                                       const std::uint8_t* valid_e, int head, int r0, bool last,
                                                       bool dump, TileRow tile_row, Place place, int lane) {
  if (!last) return finish_l_update<T, D>(w, p, geo, valid_e, head, r0, last, dump, lane);
  const int g = lane / 4, t = lane % 4;
  __syncwarp();  // every lane's ldmatrix of the query rows is done before any lane overwrites them
  // o = acc_v / Z; some block is valid, so Z > 0 for every row (a row past N' has Z = 0 and is
  // scratch: its inf or NaN is never read).
  const float inv[2] = {1.0f / w.run_sum[0], 1.0f / w.run_sum[1]};
  fused::store_rows_shared<T, D, Pieces>(tile_row, w.acc_v, inv, lane);
  if (dump && t == 0)
    for (int h = 0; h < 2; ++h) {
      const int row = r0 + g + 8 * h;
      if (row < p.Np) p.lse_L[static_cast<std::size_t>(head) * p.Np + row] = fused::log_normaliser(w, h);
    }
  __syncwarp();  // the staged rows are in shared memory before other lanes copy them out
  // Piece pc of tile row r: lane = (r % kRowsPerStep) kPieces + pc.
  constexpr int kPerPiece = mma::kCopyBytes / static_cast<int>(sizeof(T));
  constexpr int kPieces = D / kPerPiece, kRowsPerStep = 32 / kPieces;
  static_assert(32 % kPieces == 0, "every lane keeps one piece of each row it copies");
  // Unrolled, so that the lane's padded_of reads and then its staged pieces are all in flight together
  // (step 27: a loop with a break chained two shared-memory latencies per row, and 4096 x 197 got slower).
  constexpr int kSteps = kM / kRowsPerStep;
  const int pc = lane % kPieces, c = pc * kPerPiece;
  if (c >= p.dv) return;
  int padded[kSteps];
  #pragma unroll
  for (int i = 0; i < kSteps; ++i) {
    const int row = r0 + lane / kPieces + i * kRowsPerStep;
    padded[i] = row < p.Np ? geo.padded_of[row] : -1;  // past N': no row
  }
  // A row past N' reads nothing: any stand-in row would be another warp's, which may be staging its
  // own o there (racecheck found that in the first unrolled version).
  uint4 piece[kSteps];
  #pragma unroll
  for (int i = 0; i < kSteps; ++i)
    piece[i] = padded[i] >= 0 ? *reinterpret_cast<const uint4*>(place(padded[i], c)) : make_uint4(0, 0, 0, 0);
  #pragma unroll
  for (int i = 0; i < kSteps; ++i) {
    const int n = padded[i] - p.off;
    if (padded[i] < 0 || n < 0 || n >= p.N) continue;  // past N', or a pad: dropped, eq. (1)
    *reinterpret_cast<uint4*>(static_cast<T*>(p.O) + (static_cast<std::size_t>(head) * p.N + n) * p.dv + c) = piece[i];
  }
}

/// The end of an r_stats tile (rows alpha_L[k, j], position-major from r0), eq. (11): the mean query
/// alpha_R / max(c_R, tiny) of (k, j), in the input dtype (as level 3's R-update rounds it), to
/// row_addr(padded row k*b + j). c_R = 0 gives alpha_R = 0: a uniform R row. Level 4's; level 6
/// writes its mean queries with stmatrix into its twisted tiles (step 29).
template <class T, int D, class RowAddr>
__device__ __forceinline__ void finish_r_stats(fused::WarpRows<D>& w, const Problem& p, const Arrays& geo, int r0,
                                               RowAddr row_addr, int lane) {
  fused::finish_row_sums(w);
  #pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = r0 + lane / 4 + 8 * h;
    if (row >= p.Np) continue;
    fused::store_row<T, D>(row_addr(geo.padded_of[row]), w.acc_k, h, 1.0f / fmaxf(w.run_sum[h], FLT_MIN), p.d, lane);
  }
}

/// Elements of one resident head's tile (below): tile_rows(N') rows of row_elems (level 4: D + kSkew,
/// level 6: whole 128-byte lines). Both levels carve their tiles with this too, so the size they
/// allocate and the offsets they use cannot drift apart. Counted in Int: std::size_t for the fit
/// test, which asks it of heads far too large to fit; a kernel, whose head fits one CTA, counts in int.
template <class Int = std::size_t>
__host__ __device__ inline Int head_tile_elems(int Np, int row_elems) {
  return static_cast<Int>(tile_rows(Np)) * row_elems;
}

/// Shared bytes of one resident head: Q, K, V (then alpha_L, Y or the mean queries) as three
/// (rows, row_elems) tiles of elements of elem_bytes, then the geometry arrays. At N' = 256, D = 64
/// this is 112 KB for level 4's skewed rows and 100 KB for level 6's 128-byte ones: two CTAs share
/// an SM's 228 KB either way. Levels 4 and 6 both size their shared memory here.
inline std::size_t head_shared_bytes(int Np, int row_elems, std::size_t elem_bytes) {
  constexpr int kHeadTiles = 3;
  return kHeadTiles * head_tile_elems(Np, row_elems) * elem_bytes + geometry_bytes(Np);
}

/// The device's opt-in limit of shared memory per CTA (227 KB on H100 and H200).
inline int max_optin_shared() {
  static const int bytes = [] {
    int dev = 0, v = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    return v;
  }();
  return bytes;
}

/// For a persistent whole-head kernel: raises its dynamic shared-memory limit to the device's opt-in
/// maximum (once per kernel) and returns its grid, one CTA per resident slot and at most `heads`.
template <auto kKernel>
int persistent_grid(int threads, std::size_t bytes, int heads) {
  static const bool raised = [] {
    CUDA_CHECK(cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max_optin_shared()));
    return true;
  }();
  (void)raised;
  int per_sm = 0, dev = 0, sms = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kKernel, threads, bytes));
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return std::min(heads, std::max(1, per_sm) * sms);
}

}  // namespace monarch::cuda::detail::whole_head
