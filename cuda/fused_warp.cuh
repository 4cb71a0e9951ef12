// The warp-level core shared by the fused levels (3 and 4): one warp's 16 rows against a chunk of
// columns, with scores, softmax weights and sums held in mma.sync fragments (cuda/mma_sm80.cuh).
//
// Every step of spec §4 is a small attention problem whose columns are grouped: a row sees only
// the columns of its own group (its block k in the R-update, its position j otherwise).
//
//   step      rows r                         columns c                 group G   sums
//   RUpdate   mean query of (k, j)           k_(k,i), i in block k      b         alpha_L = R K, Y = R V   eq. (12)
//   LUpdate   q_(l,j)                        alpha_L[k, j], all k       m         o = L Y                  eq. (13)
//   RStats    alpha_L[k, j]                  q_(l,j), all l             m         alpha_R = L (valid q)    eq. (11)
//
// The caller says where things are in shared memory through address functors, so the same code
// serves level 3 (columns staged chunk by chunk) and level 4 (a whole head resident, rows and
// columns gathered in any order: ldmatrix takes one row address per lane).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "mma_sm80.cuh"

namespace monarch::cuda::detail::fused {

using namespace mma;

enum class Step { RUpdate, LUpdate, RStats };

constexpr int kSkew = 8;      // elements after each shared row: 16 bytes, so the 8 rows of one
                              // ldmatrix start in 8 different bank quads
constexpr int kNoGroup = -1;  // a column past the last group: matches no row
constexpr int kNoRow = -2;    // a row past the end: matches no column
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr float kMinExp2 = -128.0f;  // ex2.approx.ftz(x) = 0 for x < -126 (2^x is subnormal, flushed)
constexpr float kRescaleSlack = 8.0f;  // the online softmax keeps its reference max until a chunk's
                                       // maximum exceeds it by this much (base 2): weights stay <= 2^8 = 256

/// The padded head dimension D of a problem: d and d_v are both zero-padded to D in shared memory,
/// D in {32, 64, 128} (one kernel instantiation each).
inline int fused_dim(int d, int dv) {
  const int w = d > dv ? d : dv;
  return w <= 32 ? 32 : w <= 64 ? 64 : 128;
}

/// The state of one warp's 16 rows; this thread holds rows g = lane / 4 (h = 0) and g + 8 (h = 1),
/// columns 2t, 2t + 1 (t = lane % 4) of each 8-column accumulator tile.
template <int D>
struct WarpRows {
  std::uint32_t row_s = 0;      // shared address of this lane's ldmatrix row of the 16 x D row strip:
                                // the A fragments are re-read each chunk rather than held (16
                                // registers at D = 64 that the R-update with values cannot spare)
  float acc_k[D / kN][4] = {};  // sum_c w_c keys_c: alpha_L (RUpdate) or alpha_R (RStats), fp32
  float acc_v[D / kN][4] = {};  // sum_c w_c vals_c: Y (RUpdate) or o (LUpdate), fp32
  float run_max[2] = {-INFINITY, -INFINITY};  // online softmax: running max M (base 2)
  float run_sum[2] = {0.0f, 0.0f};            // Z = sum 2^(z - M) (RStats: sum of weights = c_R)
  float run_ent[2] = {0.0f, 0.0f};            // W = sum 2^(z - M) (z - M), for c_L (RUpdate)
  int row_group[2] = {kNoRow, kNoRow};        // the group of each of this thread's rows
  float row_bias[2] = {0.0f, 0.0f};           // RStats: c_L[k, j] log2(e) of the row (+inf: empty block)
};

/// Where 16-byte piece pc of row r starts in a tile: rows of D + kSkew elements, for ldmatrix
/// (levels 3 to 6). Level 7's swizzled tiles place pieces differently (SwizzledRows).
template <class T, int D>
struct SkewedRows {
  __device__ __forceinline__ T* operator()(T* tile, int r, int pc) const {
    return tile + r * (D + kSkew) + pc * (kCopyBytes / static_cast<int>(sizeof(T)));
  }
};

/// Copies `rows` rows of `width` elements (width % 8 == 0) into a shared tile with cp.async (piece pc
/// of row r at place(tile, r, pc)), kThreads threads sharing the pieces (tid: this thread's index
/// in the CTA); row r comes from src(r), or is zero when src(r) is null. Columns [width, D) are zero,
/// so padded features add nothing to any product.
template <class T, int D, int kThreads, class Src, class Place = SkewedRows<T, D>>
__device__ __forceinline__ void load_tile_async(T* tile, int rows, int width, const void* any_global, Src src,
                                                int tid, Place place = {}) {
  constexpr int kPieces = D * static_cast<int>(sizeof(T)) / kCopyBytes;  // 16-byte pieces per row
  constexpr int kPerPiece = kCopyBytes / static_cast<int>(sizeof(T));
  for (int i = tid; i < rows * kPieces; i += kThreads) {
    const int r = i / kPieces, pc = i % kPieces;
    const T* row = src(r);
    const bool copy = row != nullptr && pc * kPerPiece < width;
    cp_async_16(place(tile, r, pc), copy ? row + pc * kPerPiece : any_global, copy ? kCopyBytes : 0);
  }
}

/// The same for rows that are contiguous in global memory: tile row r < rows comes from
/// base + (r - lo) * width for lo <= r < hi and is zero otherwise, and starts at element slot(r) of
/// the tile (level 6 pads after each block of rows), or piece pc of it at slot(tile, r, pc) when slot
/// places whole pieces (level 7's swizzled tiles). Each thread keeps one 16-byte column piece and
/// walks down the rows with a pointer increment, so a piece costs a compare and an add instead of a
/// row lookup (Nsight Compute: the row lookups were half of level 4's instructions).
template <class T, int D, int kThreads, class Slot>
__device__ __forceinline__ void load_rows_async(T* tile, Slot slot, int rows, int width, const T* base, int lo,
                                                int hi, int tid) {
  constexpr int kPerPiece = kCopyBytes / static_cast<int>(sizeof(T));
  constexpr int kPieces = D / kPerPiece;             // 16-byte pieces per row
  constexpr int kRowsPerPass = kThreads / kPieces;   // rows the CTA covers in one pass
  static_assert(kThreads % kPieces == 0, "every thread keeps one column piece");
  const int pc = tid % kPieces;
  const bool col_in = pc * kPerPiece < width;
  int r = tid / kPieces;
  const T* src = base + static_cast<std::ptrdiff_t>(r - lo) * width + pc * kPerPiece;  // row r, piece pc
  for (; r < rows; r += kRowsPerPass, src += static_cast<std::ptrdiff_t>(kRowsPerPass) * width) {
    const bool copy = col_in && r >= lo && r < hi;
    T* dst;  // piece pc of row r
    if constexpr (std::is_invocable_v<Slot, T*, int, int>) dst = slot(tile, r, pc);
    else dst = tile + slot(r) + pc * kPerPiece;
    cp_async_16(dst, copy ? src : base, copy ? kCopyBytes : 0);
  }
}

/// The same, for a tile of evenly spaced rows: row r at element r (D + kSkew).
template <class T, int D, int kThreads>
__device__ __forceinline__ void load_rows_async(T* tile, int rows, int width, const T* base, int lo, int hi,
                                                int tid) {
  load_rows_async<T, D, kThreads>(tile, SkewedRows<T, D>{}, rows, width, base, lo, hi, tid);
}

/// How ldmatrix finds the 16-byte pieces of a shared row from the row's address (the address that
/// row_addr, col_addr and val_addr below return), as at<T>(row, elems): the address `elems` 16-bit
/// elements on (a multiple of 8: whole pieces), from a generic pointer or a 32-bit shared address.
/// PiecesInOrder: the pieces follow each other (the skewed rows of levels 3 to 6), so this is plain
/// pointer arithmetic. PiecesXor (level 6's twisted rows, step 29): a row's address is that of its
/// piece 0, which lies at piece tw (its twist, 0..7) of a 128-byte-aligned line, and piece p lies
/// at piece p ^ tw of its line: (line + 16 tw) ^ 16 p for p < 8, one XOR that stays in the line;
/// pieces 8..15 of a 256-byte row are one line on. Steps compose: at(at(row, a), b) = at(row, a + b).
struct PiecesInOrder {
  template <class T>
  __device__ __forceinline__ static const T* at(const T* row, int elems) { return row + elems; }
  template <class T>
  __device__ __forceinline__ static std::uint32_t at(std::uint32_t row, int elems) {
    return row + elems * static_cast<std::uint32_t>(sizeof(T));
  }
};
struct PiecesXor {
  static constexpr std::uint32_t kLineBytes = 128;                   // the XOR stays inside one line
  static constexpr std::uint32_t kInLine = kLineBytes - kCopyBytes;  // bits 4-6: the piece within it
  template <class T>
  __device__ __forceinline__ static std::uint32_t at(const T* row, int elems) { return at<T>(smem_addr(row), elems); }
  template <class T>
  __device__ __forceinline__ static std::uint32_t at(std::uint32_t row, int elems) {
    const std::uint32_t bytes = elems * static_cast<std::uint32_t>(sizeof(T));
    return (row ^ (bytes & kInLine)) + (bytes & ~(kLineBytes - 1));  // the add: an ldmatrix immediate
  }
};

/// A 32-bit shared address, from either form PiecesInOrder / PiecesXor give.
__device__ __forceinline__ std::uint32_t shared_addr(std::uint32_t saddr) { return saddr; }
__device__ __forceinline__ std::uint32_t shared_addr(const void* p) { return smem_addr(p); }

/// Points the warp at its row strip; row_addr(r) is the shared address of row r < 16 (any rows, in
/// any order: ldmatrix takes one row address per lane). Lanes 16-31 address the upper 8 columns of
/// each k16 step. The rows must stay in shared memory while the warp's chunks run.
template <int D, class Pieces = PiecesInOrder, class RowAddr>
__device__ __forceinline__ void bind_rows(WarpRows<D>& w, RowAddr row_addr, int lane) {
  w.row_s = shared_addr(Pieces::at(row_addr(lane & 15), (lane >> 4) * 8));
}

/// The softmax part of one chunk but the accumulators' rescale, on this warp's 16 rows of scores sc
/// (the C fragments of S = rows keys^T, 16 x kChunk, however they were multiplied): masks them by
/// group, turns them into weights in place (the online softmax of eqs. (12)/(13), or r_stats' fixed
/// normalisers of eq. (11)) and updates the row statistics. corr[h] is the factor by which row h's
/// accumulators must be rescaled (1 unless its reference moved): level 7 applies it only once the
/// previous chunk's sums, still running on the tensor cores, have landed (step 23).
/// grp[c] is column c's group, bias[c] the base-2 offset subtracted from its score (+inf masks it).
template <Step kStep, int D, int kChunk, class Group>
__device__ __forceinline__ void chunk_weights(WarpRows<D>& w, float (&sc)[kChunk / kN][4], const Group* grp,
                                              const float* bias, float scale2, int lane, float (&corr)[2]) {
  constexpr int kNT = kChunk / kN;  // 8-column score tiles
  const int t = lane % 4;
  corr[0] = corr[1] = 1.0f;

  // z = tau s log2(e) - bias, -inf outside the row's group. Element e of tile nt is row
  // g + 8 (e / 2), column nt*8 + 2t + e % 2. When the chunk lies inside the one group of all the
  // warp's rows (the common case for b, m >= 32) the group test is skipped.
  const bool one_group = __all_sync(0xffffffffu, grp[0] == w.row_group[0] && grp[kChunk - 1] == w.row_group[0] &&
                                                     w.row_group[1] == w.row_group[0]);
  #pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
    const int c = nt * kN + 2 * t;  // even: the pair (c, c + 1) is one 8-byte load
    const float2 bc = *reinterpret_cast<const float2*>(bias + c);
    if (one_group) {
      sc[nt][0] = sc[nt][0] * scale2 - bc.x, sc[nt][1] = sc[nt][1] * scale2 - bc.y;
      sc[nt][2] = sc[nt][2] * scale2 - bc.x, sc[nt][3] = sc[nt][3] * scale2 - bc.y;
    } else {
      const int g0 = grp[c], g1 = grp[c + 1];
      sc[nt][0] = g0 == w.row_group[0] ? sc[nt][0] * scale2 - bc.x : -INFINITY;
      sc[nt][1] = g1 == w.row_group[0] ? sc[nt][1] * scale2 - bc.y : -INFINITY;
      sc[nt][2] = g0 == w.row_group[1] ? sc[nt][2] * scale2 - bc.x : -INFINITY;
      sc[nt][3] = g1 == w.row_group[1] ? sc[nt][3] * scale2 - bc.y : -INFINITY;
    }
  }

  if constexpr (kStep != Step::RStats) {
    // Online softmax of eqs. (12)/(13): reference max M, sum Z = sum 2^(z - M) and, for c_L,
    // W = sum 2^(z - M) (z - M). A new M' rescales: Z' = a Z, W' = a (W + (M - M') Z), a = 2^(M - M').
    // Z, W and the epilogues' c_L = ln 2 (W / Z - log2 Z) and lse_L = ln 2 (M + log2 Z) hold for any
    // M, not only the maximum, so M moves only when a chunk's maximum passes it by more than
    // kRescaleSlack: then every weight is at most 2^kRescaleSlack (no overflow in fp16 or bf16, no
    // loss of relative precision), and after the first chunk the accumulators' rescale is rare (step
    // 20: with M the exact maximum it ran in nearly every chunk, 2 D multiplications per thread).
    #pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
      #pragma unroll
      for (int nt = 0; nt < kNT; ++nt) mx = fmaxf(mx, fmaxf(sc[nt][2 * h], sc[nt][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));  // the 4 lanes of a quad share a row
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const bool raise = mx > w.run_max[h] + kRescaleSlack;  // always at the first valid column
      const float m_new = raise ? mx : w.run_max[h];
      const bool none = m_new == -INFINITY;  // no valid column yet: every weight is 0
      // Before the first valid column Z, W and the accumulators are all 0, so they need no
      // rescale: a = 1 there lets the first chunk skip the 2 D multiplications below.
      corr[h] = raise && w.run_max[h] != -INFINITY ? exp2_approx(w.run_max[h] - m_new) : 1.0f;
      float sum = 0.0f, ent = 0.0f;
      #pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
        #pragma unroll
        for (int e = 2 * h; e < 2 * h + 2; ++e) {
          const float z = sc[nt][e] - m_new;
          const float p = none ? 0.0f : exp2_approx(z);
          // p z with 0 (-inf) taken as 0: below kMinExp2 the flushed ex2 already gives p = 0, so
          // clamping z there changes no product and costs 2 instructions instead of a test.
          if constexpr (kStep == Step::RUpdate) ent = fmaf(p, fmaxf(z, kMinExp2), ent);
          sc[nt][e] = p;
          sum += p;
        }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      if constexpr (kStep == Step::RUpdate) {
        ent += __shfl_xor_sync(0xffffffffu, ent, 1);
        ent += __shfl_xor_sync(0xffffffffu, ent, 2);
        const float old = w.run_sum[h] > 0.0f ? corr[h] * (w.run_ent[h] + (w.run_max[h] - m_new) * w.run_sum[h]) : 0.0f;
        w.run_ent[h] = old + ent;
      }
      w.run_sum[h] = w.run_sum[h] * corr[h] + sum;
      if (!none) w.run_max[h] = m_new;
    }
  } else {
    // RStats, eq. (11): L_j[k, l] valid(l, j) = 2^(z - c_L[k] log2 e), the column's lse_L already in
    // its bias; c_R[k, j] is the row sum of these weights (quad-reduced by the caller at the end).
    #pragma unroll
    for (int nt = 0; nt < kNT; ++nt)
      #pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = exp2_approx(sc[nt][e] - w.row_bias[e / 2]);
        sc[nt][e] = p;
        w.run_sum[e / 2] += p;
      }
  }
}

/// acc *= corr row by row (the online softmax's a = 2^(M - M') of chunk_weights), for the
/// accumulators the step keeps. Only when some row's reference moved (a warp-uniform test): after
/// the first chunk that is rare, so most chunks skip these 2 D / 2 multiplications per thread.
template <Step kStep, int D, bool kVals>
__device__ __forceinline__ void rescale_accumulators(WarpRows<D>& w, const float (&corr)[2]) {
  constexpr int kDT = D / kN;  // 8-column accumulator tiles
  constexpr bool kSumKeys = kStep != Step::LUpdate;
  if constexpr (kStep != Step::RStats) {  // r_stats' weights have fixed normalisers: never rescaled
    if (__any_sync(0xffffffffu, corr[0] != 1.0f || corr[1] != 1.0f))
      #pragma unroll
      for (int dt = 0; dt < kDT; ++dt)
        #pragma unroll
        for (int e = 0; e < 4; ++e) {
          if constexpr (kSumKeys) w.acc_k[dt][e] *= corr[e / 2];
          if constexpr (kVals) w.acc_v[dt][e] *= corr[e / 2];
        }
  }
}

/// The whole softmax part of one chunk: chunk_weights, then the accumulators' rescale at once.
template <Step kStep, int D, int kChunk, bool kVals, class Group>
__device__ __forceinline__ void chunk_softmax(WarpRows<D>& w, float (&sc)[kChunk / kN][4], const Group* grp,
                                              const float* bias, float scale2, int lane) {
  float corr[2];
  chunk_weights<kStep, D, kChunk>(w, sc, grp, bias, scale2, lane, corr);
  rescale_accumulators<kStep, D, kVals>(w, corr);
}

/// The weights of k16 step kk of a chunk, packed to T as one A fragment: the C fragments (fp32) of
/// the 8-column tiles 2 kk and 2 kk + 1 are, pair by pair, the A fragment of their 16 columns.
template <class T, int kNT>
__device__ __forceinline__ void pack_a_fragment(std::uint32_t (&a)[4], const float (&sc)[kNT][4], int kk) {
  a[0] = pack2<T>(sc[2 * kk][0], sc[2 * kk][1]);
  a[1] = pack2<T>(sc[2 * kk][2], sc[2 * kk][3]);
  a[2] = pack2<T>(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
  a[3] = pack2<T>(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
}

/// One chunk of kChunk columns for one warp. col_addr(c) is the shared address of column c's keys
/// (and, for RUpdate/RStats, of the vectors it sums); val_addr(c) that of its values (Y or v); the
/// rows' pieces are found as Pieces says (bind_rows must have used the same).
/// grp[c] is column c's group, bias[c] the base-2 offset subtracted from its score (+inf masks it).
template <class T, Step kStep, int D, int kChunk, bool kVals, class Pieces = PiecesInOrder, class ColAddr,
          class ValAddr, class Group>
__device__ __forceinline__ void warp_chunk(WarpRows<D>& w, ColAddr col_addr, ValAddr val_addr, const Group* grp,
                                           const float* bias, float scale2, int lane) {
  constexpr int kNT = kChunk / kN;  // 8-column score tiles
  constexpr int kDT = D / kN;       // 8-column accumulator tiles
  constexpr bool kSumKeys = kStep != Step::LUpdate;
  static_assert(kChunk % kK == 0, "weights are fed back as whole k16 A fragments");

  // S (16 x kChunk) = rows (16 x D) keys^T. Scalar: S[r][c] = sum_f rows[r][f] * keys[c][f].
  // Mirrors the score of detail::r_update_block / l_update_position / r_statistics_position.
  float sc[kNT][4] = {};
  #pragma unroll
  for (int kk = 0; kk < D / kK; ++kk) {
    std::uint32_t a[4];  // rows[0..16)[16 kk .. 16 kk + 16) as an A fragment
    ldmatrix_x4<false>(a, Pieces::template at<T>(w.row_s, kk * kK));
    #pragma unroll
    for (int nt = 0; nt < kNT; nt += 2) {
      const auto key = Pieces::at(col_addr(nt * kN + (lane & 7) + ((lane >> 4) << 3)), ((lane >> 3) & 1) * 8);
      std::uint32_t b[4];
      ldmatrix_x4<false>(b, Pieces::template at<T>(key, kk * kK));
      mma_16816<T>(sc[nt], a, b[0], b[1]);
      mma_16816<T>(sc[nt + 1], a, b[2], b[3]);
    }
  }

  chunk_softmax<kStep, D, kChunk, kVals>(w, sc, grp, bias, scale2, lane);

  // acc (16 x D) += W (16 x kChunk) vals (kChunk x D): the weights' C fragments, packed to T,
  // are the A fragments. Scalar: acc[r][f] += sum_c W[r][c] * vals[c][f].
  #pragma unroll
  for (int kk = 0; kk < kChunk / kK; ++kk) {
    std::uint32_t wa[4];
    pack_a_fragment<T>(wa, sc, kk);
    const int c = kk * kK + (lane & 7) + ((lane >> 3) & 1) * 8, f = (lane >> 4) * 8;
    #pragma unroll
    for (int dt = 0; dt < kDT; dt += 2) {
      std::uint32_t b[4];
      if constexpr (kSumKeys) {
        ldmatrix_x4<true>(b, Pieces::template at<T>(Pieces::at(col_addr(c), dt * kN), f));
        mma_16816<T>(w.acc_k[dt], wa, b[0], b[1]);
        mma_16816<T>(w.acc_k[dt + 1], wa, b[2], b[3]);
      }
      if constexpr (kVals) {
        ldmatrix_x4<true>(b, Pieces::template at<T>(Pieces::at(val_addr(c), dt * kN), f));
        mma_16816<T>(w.acc_v[dt], wa, b[0], b[1]);
        mma_16816<T>(w.acc_v[dt + 1], wa, b[2], b[3]);
      }
    }
  }
}

/// Quad-sums the RStats weight sums (c_R) after the last chunk.
template <int D>
__device__ __forceinline__ void finish_row_sums(WarpRows<D>& w) {
  #pragma unroll
  for (int h = 0; h < 2; ++h) {
    w.run_sum[h] += __shfl_xor_sync(0xffffffffu, w.run_sum[h], 1);
    w.run_sum[h] += __shfl_xor_sync(0xffffffffu, w.run_sum[h], 2);
  }
}

/// c_L of row h after an RUpdate: sum_i R log R = ln 2 (W / Z - log2 Z), eq. (10); +inf when the
/// block has no valid key (Z = 0). The SFU's reciprocal and log2 (a few ulp, on Z in [1, columns]:
/// the row's maximum contributes 1) replace IEEE division and log2f, which cost ~40 instructions
/// per row in every R-update epilogue (step 14).
template <int D>
__device__ __forceinline__ float entropy_term(const WarpRows<D>& w, int h) {
  return w.run_sum[h] == 0.0f ? INFINITY
                              : kLn2 * (__fdividef(w.run_ent[h], w.run_sum[h]) - __log2f(w.run_sum[h]));
}

/// lse_L of row h after an LUpdate: ln sum_k exp(tau q . alpha_L - c_L) = ln 2 (M + log2 Z).
template <int D>
__device__ __forceinline__ float log_normaliser(const WarpRows<D>& w, int h) {
  return kLn2 * (w.run_max[h] + log2f(w.run_sum[h]));
}

/// Writes columns 2t, 2t + 1 of every 8-column tile of row h of acc, times scale, as T pairs: column
/// c = c8 + 2t (c8 the tile's first column) to at(c8, 2t), for c < width (a multiple of 8). at places
/// the row (global or shared, plain or swizzled: level 7's stage_row); it gets the two terms apart so
/// that a plain row can add them to its pointer one by one, as the address arithmetic always did.
template <class T, int D, class ColumnAt>
__device__ __forceinline__ void store_row_at(ColumnAt at, const float (&acc)[D / kN][4], int h, float scale,
                                             int width, int lane) {
  const int t = lane % 4;
  auto store = [&](int dt) {
    *reinterpret_cast<std::uint32_t*>(at(dt * kN, 2 * t)) = pack2<T>(acc[dt][2 * h] * scale, acc[dt][2 * h + 1] * scale);
  };
  if (width == D) {  // the common case: every tile, with no per-store test (step 14)
    #pragma unroll
    for (int dt = 0; dt < D / kN; ++dt) store(dt);
    return;
  }
  #pragma unroll
  for (int dt = 0; dt < D / kN; ++dt)
    if (dt * kN + 2 * t < width) store(dt);
}

/// The same, to the contiguous row dst[0..width).
template <class T, int D>
__device__ __forceinline__ void store_row(T* dst, const float (&acc)[D / kN][4], int h, float scale, int width,
                                          int lane) {
  store_row_at<T, D>([dst](int c8, int c2) { return dst + c8 + c2; }, acc, h, scale, width, lane);
}

/// All 16 of the warp's rows of acc, row h of this thread times scale[h], as T to the shared rows
/// row_addr(i), i < 16 (pieces found as Pieces says), with D / 16 stmatrix: each writes two 8-column
/// tiles of all 16 rows, where store_row takes one 4-byte store per tile and row (level 6, step 29:
/// 4 instructions instead of 16 per row pair at D = 64). Every column is written, so columns past
/// the caller's width must hold zeros in acc (they do where the summed vectors' columns are zero).
/// Scalar: row_addr(r)[c] = T(acc row r, column c, times its scale), r < 16, c < D.
template <class T, int D, class Pieces, class RowAddr>
__device__ __forceinline__ void store_rows_shared(RowAddr row_addr, const float (&acc)[D / kN][4],
                                                  const float (&scale)[2], int lane) {
  // Lane i addresses row i % 16, piece i / 16 of each pair of tiles: bind_rows' ldmatrix addresses.
  const std::uint32_t row_s = shared_addr(Pieces::at(row_addr(lane & 15), (lane >> 4) * kN));
  #pragma unroll
  for (int kk = 0; kk < D / kK; ++kk) {
    // Matrices: rows 0-7 and 8-15 of tile 2 kk, then of tile 2 kk + 1 (an A fragment's order).
    const std::uint32_t r[4] = {pack2<T>(acc[2 * kk][0] * scale[0], acc[2 * kk][1] * scale[0]),
                                pack2<T>(acc[2 * kk][2] * scale[1], acc[2 * kk][3] * scale[1]),
                                pack2<T>(acc[2 * kk + 1][0] * scale[0], acc[2 * kk + 1][1] * scale[0]),
                                pack2<T>(acc[2 * kk + 1][2] * scale[1], acc[2 * kk + 1][3] * scale[1])};
    stmatrix_x4(Pieces::template at<T>(row_s, kk * kK), r);
  }
}

}  // namespace monarch::cuda::detail::fused
