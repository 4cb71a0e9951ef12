// Level 2: the same three steps as level 1, each as a tiled kernel whose products run on tensor
// cores (WMMA, cuda/wmma_tiles.cuh). Every step of spec §4 is a small attention problem:
//
//   step      rows (CTA tile)          columns (key tiles)      weights                     sums
//   r_update  mean queries of block k  keys i of block k        R_k[j, i]       eq. (12)    alpha_L = R K, Y = R V
//   l_update  queries q_(l,j), pos. j  alpha_L[k, j], blocks k  L_j[k, l]       eq. (13)    O = L Y
//   r_stats   alpha_L[k, j], pos. j    queries q_(l,j)          L_j[k, l]       (transposed) alpha_R = L (valid q)
//
// so each kernel streams column tiles through shared memory, computes a (64 x 64) score strip on
// tensor cores, applies the softmax in fp32 (online for r_update and l_update; r_stats already knows
// each column's normaliser lse_L), and multiplies the weights into fp32 accumulators on tensor cores.
// R_k and L_j exist only as (64 x 64) tiles in shared memory. Statistics, c_R, c_L and
// accumulators are fp32; only the tensor-core operands are T. fp32 inputs run the same tiles with FFMA
// instead of tensor cores, to stay within 1e-5 of the reference (wmma_tiles.cuh says why).
#include <cfloat>
#include <cmath>

#include "harness.cuh"
#include "wmma_tiles.cuh"

namespace monarch::cuda::detail {
namespace {

using namespace tiles;

/// The shared-memory arrays of one CTA (offsets into the dynamic allocation). Every array is
/// row-indexed by the CTA's rows (kRows) or by a column tile's columns (kCols).
template <class T>
struct Layout {
  int Dp = 0, DVp = 0;        // d, d_v rounded up to fragments
  int ldq = 0, ldk = 0, ldv = 0, lds = 0, ldp = 0, lda = 0, ldy = 0;
  std::size_t q = 0, k = 0, v = 0, s = 0, p = 0, bias = 0, acc_a = 0, acc_y = 0, bytes = 0;

  __host__ __device__ Layout(int d, int dv, bool with_v, bool with_acc_a, bool with_acc_y) {
    Dp = padded_dim(d);
    DVp = padded_dim(dv);
    ldq = ldk = tile_ld<T>(Dp);
    ldv = tile_ld<T>(DVp);
    lds = tile_ld<float>(kCols);
    ldp = tile_ld<T>(kCols);
    lda = tile_ld<float>(Dp);
    ldy = tile_ld<float>(DVp);
    Carver c;
    q = c.take<T>(static_cast<std::size_t>(kRows) * ldq);       // (kRows, Dp)  the rows' vectors
    k = c.take<T>(static_cast<std::size_t>(kCols) * ldk);       // (kCols, Dp)  the column tile
    if (with_v) v = c.take<T>(static_cast<std::size_t>(kCols) * ldv);  // (kCols, DVp) values
    s = c.take<float>(static_cast<std::size_t>(kRows) * lds);   // (kRows, kCols) scores
    p = c.take<T>(static_cast<std::size_t>(kRows) * ldp);       // (kRows, kCols) weights
    bias = c.take<float>(kCols);                                // (kCols) per-column offset
    if (with_acc_a) acc_a = c.take<float>(static_cast<std::size_t>(kRows) * lda);  // (kRows, Dp)
    if (with_acc_y) acc_y = c.take<float>(static_cast<std::size_t>(kRows) * ldy);  // (kRows, DVp)
    bytes = c.offset;
  }
};

template <class U>
__device__ __forceinline__ U* at(unsigned char* smem, std::size_t offset) {
  return reinterpret_cast<U*>(smem + offset);
}

/// Loads `rows` rows of `cols` features into a (rows, ld) tile of T, converting; row r comes from
/// src(r) (a pointer to T or float, or null for a zero row) scaled by mul(r). Zero past cols.
template <class T, class Src, class Mul>
__device__ __forceinline__ void load_tile(T* tile, int ld, int rows, int cols, int padded_cols, Src src, Mul mul) {
  constexpr int kLoadsInFlight = 8;  // unrolled so that independent global loads overlap their latency
#pragma unroll kLoadsInFlight
  for (int i = threadIdx.x; i < rows * padded_cols; i += kThreads) {
    const int r = i / padded_cols, c = i % padded_cols;
    const auto* row = src(r);
    tile[r * ld + c] = from_float<T>(row != nullptr && c < cols ? to_float(row[c]) * mul(r) : 0.0f);
  }
}

// ---------------------------------------------------------------------------------------------
/// eqs. (12), (10), (4). CTA = (block k, positions j0 .. j0 + 63); column tiles = keys i of block k.
///   rows:    mean query  alpha_R[k, j] / max(c_R[k, j], tiny)          (kRows, Dp)  T
///   columns: k_(k,i) (keys and the values of alpha_L), v_(k,i)        (kCols, Dp), (kCols, DVp)  T
///   weights: R_k[j, i] = softmax_i(tau mean_q . k_(k,i)) over valid i (kRows, kCols) online
///   sums:    alpha_L[k, j] = sum_i R k_(k,i), Y[k, j] = sum_i R v_(k,i), c_L = sum_i R log R
/// Mirrors detail::r_update_block + detail::block_summaries.
template <class T>
__global__ void __launch_bounds__(kThreads) r_update_kernel(Problem p, bool want_Y) {
  static_assert(kRows == kFrag * kWarps, "one 16-row strip per warp");
  static_assert(kThreads == 32 * kWarps, "the launch uses kThreads threads");
  static_assert(kMaxDim == 128, "= max_head_dim(Level::TensorCore): validate_session refuses d, d_v > kMaxDim");
  extern __shared__ __align__(128) unsigned char smem[];
  const Layout<T> L(p.d, p.dv, true, true, want_Y);
  const int tiles_j = (p.b + kRows - 1) / kRows;
  const int k = blockIdx.x / tiles_j, j0 = (blockIdx.x % tiles_j) * kRows;
  const int head = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  T* Qs = at<T>(smem, L.q);
  T* Ks = at<T>(smem, L.k);
  T* Vs = at<T>(smem, L.v);
  float* Ss = at<float>(smem, L.s);
  T* Ps = at<T>(smem, L.p);
  float* bias = at<float>(smem, L.bias);
  float* AK = at<float>(smem, L.acc_a);  // (kRows, Dp)  sum_i e_i k_(k,i)
  float* AY = at<float>(smem, L.acc_y);  // (kRows, DVp) sum_i e_i v_(k,i)

  const std::size_t stat0 = static_cast<std::size_t>(head) * p.Np + k * p.b;  // c_R, c_L of block k
  load_tile<T>(
      Qs, L.ldq, kRows, p.d, L.Dp,
      [&](int r) -> const float* {
        return j0 + r < p.b ? p.alpha_R + padded_row(p, head, k * p.b + j0 + r, p.d) : nullptr;
      },
      [&](int r) { return 1.0f / fmaxf(p.c_R[stat0 + j0 + r], FLT_MIN); });  // c_R = 0: uniform
  // This warp's strips: rows [16 warp, 16 warp + 16).
  T* Qw = Qs + warp * kFrag * L.ldq;
  float* Sw = Ss + warp * kFrag * L.lds;
  T* Pw = Ps + warp * kFrag * L.ldp;
  float* AKw = AK + warp * kFrag * L.lda;
  float* AYw = AY + warp * kFrag * L.ldy;
  zero_strip(AKw, L.lda, L.Dp, lane);
  if (want_Y) zero_strip(AYw, L.ldy, L.DVp, lane);
  RowStats st;

  for (int i0 = 0; i0 < p.b; i0 += kCols) {
    auto key_row = [&](int c) -> const T* {
      return i0 + c < p.b ? token_row<T>(p, p.K, head, k * p.b + i0 + c, p.d) : nullptr;
    };
    load_tile<T>(Ks, L.ldk, kCols, p.d, L.Dp, key_row, [](int) { return 1.0f; });
    if (want_Y)
      load_tile<T>(
          Vs, L.ldv, kCols, p.dv, L.DVp,
          [&](int c) -> const T* {
            return i0 + c < p.b ? token_row<T>(p, p.V, head, k * p.b + i0 + c, p.dv) : nullptr;
          },
          [](int) { return 1.0f; });
    for (int c = threadIdx.x; c < kCols; c += kThreads)
      bias[c] = i0 + c < p.b && is_valid(p, head, k * p.b + i0 + c) ? 0.0f : INFINITY;  // mask
    __syncthreads();  // the key/value tile and the mask are complete before any warp reads them

    // S (16 x kCols) = mean_q (16 x Dp) K_tile^T. Scalar: S[r][c] = sum_f Qs[r][f] * Ks[c][f].
    strip_scores<T>(Qw, L.ldq, Ks, L.ldk, L.Dp, Sw, L.lds);
    __syncwarp();  // the warp's score strip is in shared memory before its lanes read rows of it
    const float scale = online_softmax_strip<T, true>(Sw, L.lds, bias, p.tau, Pw, L.ldp, st, lane);
    scale_row(AKw, L.lda, L.Dp, scale, lane);
    if (want_Y) scale_row(AYw, L.ldy, L.DVp, scale, lane);
    __syncwarp();  // weights and rescaled accumulators are written before the fragments load them
    // AK += P K_tile, AY += P V_tile. Scalar: AK[r][f] += sum_c Ps[r][c] * Ks[c][f].
    strip_accumulate<T>(AKw, L.lda, Pw, L.ldp, Ks, L.ldk, L.Dp);
    if (want_Y) strip_accumulate<T>(AYw, L.ldy, Pw, L.ldp, Vs, L.ldv, L.DVp);
    __syncthreads();  // every warp is done with the key/value tile before the next one overwrites it
  }
  __syncwarp();  // the last accumulator stores are visible to every lane of the warp

  // Normalise: R = e / l. A block with no valid key (l = 0) has no R row: alpha_L = Y = 0, c_L = +inf.
  const int r = warp * kFrag + lane / kLanesPerRow, j = j0 + r;
  if (j >= p.b) return;
  const bool empty = st.l == 0.0f;
  const float inv = empty ? 0.0f : 1.0f / st.l;
  float* aL = p.alpha_L + padded_row(p, head, k * p.b + j, p.d);
  for (int c = lane % kLanesPerRow; c < p.d; c += kLanesPerRow) aL[c] = AK[r * L.lda + c] * inv;
  if (want_Y) {
    float* Y = p.Y + padded_row(p, head, k * p.b + j, p.dv);
    for (int c = lane % kLanesPerRow; c < p.dv; c += kLanesPerRow) Y[c] = AY[r * L.ldy + c] * inv;
  }
  if (lane % kLanesPerRow == 0) p.c_L[stat0 + j] = empty ? INFINITY : st.ez * inv - logf(st.l);
}

// ---------------------------------------------------------------------------------------------
/// eqs. (13), (4). CTA = (position j, query blocks l0 .. l0 + 63); column tiles = key blocks k.
///   rows:    q_(l,j) (zero at a pad)                                   (kRows, Dp)  T
///   columns: alpha_L[k, j], Y[k, j]                                     (kCols, Dp), (kCols, DVp)  T
///   weights: L_j[k, l] = softmax_k(tau q . alpha_L[k, j] - c_L[k, j])  (kRows, kCols) online
///   sums:    lse_L[l, j] = log sum_k exp(...), o_(l,j) = sum_k L Y[k, j]
/// Mirrors detail::l_update_position and the second half of monarch_apply.
template <class T>
__global__ void __launch_bounds__(kThreads) l_update_kernel(Problem p, bool want_O) {
  static_assert(kRows == kFrag * kWarps, "one 16-row strip per warp");
  static_assert(kThreads == 32 * kWarps, "the launch uses kThreads threads");
  static_assert(kMaxDim == 128, "= max_head_dim(Level::TensorCore): validate_session refuses d, d_v > kMaxDim");
  extern __shared__ __align__(128) unsigned char smem[];
  const Layout<T> L(p.d, p.dv, want_O, false, want_O);
  const int tiles_l = (p.m + kRows - 1) / kRows;
  const int j = blockIdx.x / tiles_l, l0 = (blockIdx.x % tiles_l) * kRows;
  const int head = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  T* Qs = at<T>(smem, L.q);
  T* As = at<T>(smem, L.k);  // alpha_L tile
  T* Ys = at<T>(smem, L.v);  // Y tile
  float* Ss = at<float>(smem, L.s);
  T* Ps = at<T>(smem, L.p);
  float* bias = at<float>(smem, L.bias);
  float* AO = at<float>(smem, L.acc_y);  // (kRows, DVp) sum_k e_k Y[k, j]

  load_tile<T>(
      Qs, L.ldq, kRows, p.d, L.Dp,
      [&](int r) -> const T* { return l0 + r < p.m ? token_row<T>(p, p.Q, head, (l0 + r) * p.b + j, p.d) : nullptr; },
      [](int) { return 1.0f; });
  T* Qw = Qs + warp * kFrag * L.ldq;
  float* Sw = Ss + warp * kFrag * L.lds;
  T* Pw = Ps + warp * kFrag * L.ldp;
  float* AOw = AO + warp * kFrag * L.ldy;
  if (want_O) zero_strip(AOw, L.ldy, L.DVp, lane);
  RowStats st;
  const std::size_t stat0 = static_cast<std::size_t>(head) * p.Np;

  for (int k0 = 0; k0 < p.m; k0 += kCols) {
    load_tile<T>(
        As, L.ldk, kCols, p.d, L.Dp,
        [&](int c) -> const float* {
          return k0 + c < p.m ? p.alpha_L + padded_row(p, head, (k0 + c) * p.b + j, p.d) : nullptr;
        },
        [](int) { return 1.0f; });
    if (want_O)
      load_tile<T>(
          Ys, L.ldv, kCols, p.dv, L.DVp,
          [&](int c) -> const float* {
            return k0 + c < p.m ? p.Y + padded_row(p, head, (k0 + c) * p.b + j, p.dv) : nullptr;
          },
          [](int) { return 1.0f; });
    for (int c = threadIdx.x; c < kCols; c += kThreads)
      bias[c] = k0 + c < p.m ? p.c_L[stat0 + (k0 + c) * p.b + j] : INFINITY;  // c_L = +inf: empty block
    __syncthreads();  // the alpha_L/Y tile and c_L are complete before any warp reads them

    // S (16 x kCols) = Q (16 x Dp) alpha_L_tile^T. Scalar: S[r][c] = sum_f Qs[r][f] * As[c][f].
    strip_scores<T>(Qw, L.ldq, As, L.ldk, L.Dp, Sw, L.lds);
    __syncwarp();  // the warp's score strip is in shared memory before its lanes read rows of it
    const float scale = online_softmax_strip<T, false>(Sw, L.lds, bias, p.tau, Pw, L.ldp, st, lane);
    if (want_O) {
      scale_row(AOw, L.ldy, L.DVp, scale, lane);
      __syncwarp();  // weights and rescaled accumulators are written before the fragments load them
      // AO += P Y_tile. Scalar: AO[r][f] += sum_c Ps[r][c] * Ys[c][f].
      strip_accumulate<T>(AOw, L.ldy, Pw, L.ldp, Ys, L.ldv, L.DVp);
    }
    __syncthreads();  // every warp is done with the tile before the next one overwrites it
  }
  __syncwarp();  // the last accumulator stores are visible to every lane of the warp

  const int r = warp * kFrag + lane / kLanesPerRow, l = l0 + r;
  if (l >= p.m) return;
  const int row = l * p.b + j;
  if (lane % kLanesPerRow == 0) p.lse_L[stat0 + row] = st.m + logf(st.l);  // some block has a valid key
  const int n = row - p.off;  // eq. (1): pads are dropped
  if (!want_O || n < 0 || n >= p.N) return;
  T* O = static_cast<T*>(p.O) + (static_cast<std::size_t>(head) * p.N + n) * p.dv;
  const float inv = 1.0f / st.l;
  for (int c = lane % kLanesPerRow; c < p.dv; c += kLanesPerRow) O[c] = from_float<T>(AO[r * L.ldy + c] * inv);
}

// ---------------------------------------------------------------------------------------------
/// eq. (11), rounds t >= 2. CTA = (position j, key blocks k0 .. k0 + 63); column tiles = queries l.
///   rows:    alpha_L[k, j] (previous round)                            (kRows, Dp)  T
///   columns: q_(l,j) (zero at a pad)                                   (kCols, Dp)  T
///   weights: L_j[k, l] valid(l, j) = exp(tau q . alpha_L - c_L[k, j] - lse_L[l, j]) valid(l, j)
///            (each column's normaliser is known, so no online rescaling)
///   sums:    alpha_R[k, j] = sum_l L valid q_(l,j), c_R[k, j] = sum_l L valid
/// Mirrors detail::r_statistics_position, with L_j^T recomputed tile by tile instead of stored.
template <class T>
__global__ void __launch_bounds__(kThreads) r_stats_kernel(Problem p) {
  static_assert(kRows == kFrag * kWarps, "one 16-row strip per warp");
  static_assert(kThreads == 32 * kWarps, "the launch uses kThreads threads");
  static_assert(kMaxDim == 128, "= max_head_dim(Level::TensorCore): validate_session refuses d, d_v > kMaxDim");
  extern __shared__ __align__(128) unsigned char smem[];
  const Layout<T> L(p.d, p.dv, false, true, false);
  const int tiles_k = (p.m + kRows - 1) / kRows;
  const int j = blockIdx.x / tiles_k, k0 = (blockIdx.x % tiles_k) * kRows;
  const int head = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  T* As = at<T>(smem, L.q);  // alpha_L rows
  T* Qs = at<T>(smem, L.k);  // query tile
  float* Ss = at<float>(smem, L.s);
  T* Ps = at<T>(smem, L.p);
  float* neg_lse = at<float>(smem, L.bias);  // -lse_L[l, j], or -inf for valid(l, j) = 0
  float* AR = at<float>(smem, L.acc_a);      // (kRows, Dp) alpha_R accumulators
  const std::size_t stat0 = static_cast<std::size_t>(head) * p.Np;

  load_tile<T>(
      As, L.ldq, kRows, p.d, L.Dp,
      [&](int r) -> const float* {
        return k0 + r < p.m ? p.alpha_L + padded_row(p, head, (k0 + r) * p.b + j, p.d) : nullptr;
      },
      [](int) { return 1.0f; });
  T* Aw = As + warp * kFrag * L.ldq;
  float* Sw = Ss + warp * kFrag * L.lds;
  T* Pw = Ps + warp * kFrag * L.ldp;
  float* ARw = AR + warp * kFrag * L.lda;
  zero_strip(ARw, L.lda, L.Dp, lane);
  const int r = lane / kLanesPerRow, c0 = (lane % kLanesPerRow) * kColsPerLane;
  const int k = k0 + warp * kFrag + r;
  const float c_L = k < p.m ? p.c_L[stat0 + k * p.b + j] : INFINITY;  // +inf: row weights all 0
  float c_R = 0.0f;

  for (int l0 = 0; l0 < p.m; l0 += kCols) {
    load_tile<T>(
        Qs, L.ldk, kCols, p.d, L.Dp,
        [&](int c) -> const T* { return l0 + c < p.m ? token_row<T>(p, p.Q, head, (l0 + c) * p.b + j, p.d) : nullptr; },
        [](int) { return 1.0f; });
    for (int c = threadIdx.x; c < kCols; c += kThreads) {
      const int row = (l0 + c) * p.b + j;
      neg_lse[c] = l0 + c < p.m && is_valid(p, head, row) ? -p.lse_L[stat0 + row] : -INFINITY;
    }
    __syncthreads();  // the query tile and normalisers are complete before any warp reads them

    // S^T (16 x kCols) = alpha_L (16 x Dp) Q_tile^T. Scalar: S[r][c] = sum_f As[r][f] * Qs[c][f].
    strip_scores<T>(Aw, L.ldq, Qs, L.ldk, L.Dp, Sw, L.lds);
    __syncwarp();  // the warp's score strip is in shared memory before its lanes read rows of it
    // Weights L_j[k, l] valid(l, j): exp(tau S - c_L[k] - lse_L[l]); c_L = +inf or invalid l give 0.
    float sum = 0.0f;
    for (int c = 0; c < kColsPerLane; ++c) {
      const float w = expf(p.tau * Sw[r * L.lds + c0 + c] - c_L + neg_lse[c0 + c]);
      Pw[r * L.ldp + c0 + c] = from_float<T>(w);
      sum += w;
    }
    c_R += sum + __shfl_xor_sync(0xffffffffu, sum, 1);
    __syncwarp();  // the weights are written before the fragments load them
    // AR += P Q_tile. Scalar: AR[r][f] += sum_c Ps[r][c] * Qs[c][f].
    strip_accumulate<T>(ARw, L.lda, Pw, L.ldp, Qs, L.ldk, L.Dp);
    __syncthreads();  // every warp is done with the query tile before the next one overwrites it
  }
  __syncwarp();  // the last accumulator stores are visible to every lane of the warp

  if (k >= p.m) return;
  float* aR = p.alpha_R + padded_row(p, head, k * p.b + j, p.d);
  const int rr = warp * kFrag + r;
  for (int c = lane % kLanesPerRow; c < p.d; c += kLanesPerRow) aR[c] = AR[rr * L.lda + c];
  if (lane % kLanesPerRow == 0) p.c_R[stat0 + k * p.b + j] = c_R;
}

// ---------------------------------------------------------------------------------------------
// Launchers.

/// Raises a kernel's dynamic shared-memory limit to what the largest supported d, d_v need (once).
template <class Kernel>
void allow_smem(Kernel kernel, std::size_t bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

void r_stats(const Problem& p) {
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Layout<T> L(p.d, p.dv, false, true, false);
    allow_smem(r_stats_kernel<T>, L.bytes);
    const dim3 grid(p.b * ((p.m + kRows - 1) / kRows), p.E * p.H);
    r_stats_kernel<T><<<grid, kThreads, L.bytes>>>(p);
    CUDA_CHECK_LAUNCH("level2 r_stats_kernel");
  });
}
void r_update(const Problem& p, bool want_Y) {
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Layout<T> L(p.d, p.dv, true, true, want_Y);
    allow_smem(r_update_kernel<T>, L.bytes);
    const dim3 grid(p.m * ((p.b + kRows - 1) / kRows), p.E * p.H);
    r_update_kernel<T><<<grid, kThreads, L.bytes>>>(p, want_Y);
    CUDA_CHECK_LAUNCH("level2 r_update_kernel");
  });
}
void l_update(const Problem& p, bool want_O) {
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Layout<T> L(p.d, p.dv, want_O, false, want_O);
    allow_smem(l_update_kernel<T>, L.bytes);
    const dim3 grid(p.b * ((p.m + kRows - 1) / kRows), p.E * p.H);
    l_update_kernel<T><<<grid, kThreads, L.bytes>>>(p, want_O);
    CUDA_CHECK_LAUNCH("level2 l_update_kernel");
  });
}

}  // namespace

LevelSteps level2_steps() { return {&r_stats, &r_update, &l_update}; }

}  // namespace monarch::cuda::detail
