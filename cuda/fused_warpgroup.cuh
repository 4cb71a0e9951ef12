// Level 7's chunk: fused_warp.cuh's warp_chunk with its two products on Hopper's warpgroup
// tensor cores (wgmma_sm90.cuh) instead of mma.sync. The CTA's four warps are one warpgroup and
// its 64 rows one wgmma M tile, so each product of a 64-column chunk is D / 16 = 4 (scores) or
// 64 / 16 = 4 (per summed operand) instructions for the whole CTA, where warp_chunk issued 32 + 64
// mma.sync and 48 ldmatrix per warp (D = 64, R-update with values). The operands are read by the
// tensor cores straight from the swizzled shared tiles, so no ldmatrix and no per-lane address
// arithmetic remain; the softmax between the products (chunk_softmax) is warp_chunk's, on the same
// registers, because wgmma's accumulator fragment is mma.sync's (wgmma_sm90.cuh).
#pragma once

#include <cstdint>

#include "fused_warp.cuh"
#include "wgmma_sm90.cuh"

namespace monarch::cuda::detail::fused {

/// Piece pc of row r of a swizzled tile (64-element rows, 128-byte swizzle): the placement
/// load_rows_async / load_tile_async use for level 7's tiles.
struct SwizzledRows {
  template <class T>
  __device__ __forceinline__ T* operator()(T* tile, int r, int pc) const {
    return tile + wgmma::swizzled(r, pc * wgmma::kPieceElems);
  }
};

/// One chunk of kChunk = 64 columns for the CTA's warpgroup (all four warps call it together).
/// rows, keys, vals: shared addresses of the swizzled row tile (64 x D), and of the chunk's keys and
/// values (64 x D each); grp, bias as for warp_chunk.
template <class T, Step kStep, int D, int kChunk, bool kVals, class Group>
__device__ __forceinline__ void warpgroup_chunk(WarpRows<D>& w, std::uint32_t rows, std::uint32_t keys,
                                                std::uint32_t vals, const Group* grp, const float* bias,
                                                float scale2, int lane) {
  static_assert(D == 64 && kChunk == 64, "one 128-byte swizzled row per tile row, and one m64n64 product per k16 step");
  constexpr int kNT = kChunk / kN;  // 8-column score tiles
  constexpr bool kSumKeys = kStep != Step::LUpdate;
  constexpr std::uint32_t kStepBytes = kK * sizeof(T);  // one k16 step along a K-major row

  // S (64 x kChunk) = rows (64 x D) keys^T on the warpgroup; this warp's 16 rows land in sc.
  // Scalar: S[r][c] = sum_f rows[r][f] * keys[c][f]. Mirrors the score of detail::r_update_block /
  // l_update_position / r_statistics_position, as warp_chunk's mma.sync loop does.
  const std::uint64_t rows_desc = wgmma::descriptor(rows), keys_desc = wgmma::descriptor(keys);
  float sc[kNT][4];
  wgmma::fence();  // the previous chunk's register reads of sc are done before wgmma overwrites it
  #pragma unroll
  for (int kk = 0; kk < D / kK; ++kk)
    wgmma::mma_64x64x16_ss<T>(sc, wgmma::advance(rows_desc, kk * kStepBytes), wgmma::advance(keys_desc, kk * kStepBytes),
                              kk > 0);
  wgmma::commit();
  wgmma::wait<0>();  // the scores are in registers
  wgmma::pin(sc);

  chunk_softmax<kStep, D, kChunk, kVals>(w, sc, grp, bias, scale2, lane);
  if constexpr (kSumKeys || kVals) {  // (not an L-update of a round before the last: lse_L only)
    // The weights, packed to T: the A operand of every k16 step of the products below (the C
    // fragments of two 8-column tiles are one A fragment, as in warp_chunk).
    std::uint32_t wa[kChunk / kK][4];
    #pragma unroll
    for (int kk = 0; kk < kChunk / kK; ++kk) {
      wa[kk][0] = pack2<T>(sc[2 * kk][0], sc[2 * kk][1]);
      wa[kk][1] = pack2<T>(sc[2 * kk][2], sc[2 * kk][3]);
      wa[kk][2] = pack2<T>(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
      wa[kk][3] = pack2<T>(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
    }
    // acc (64 x D) += W (64 x kChunk) keys / vals (kChunk x D), read MN-major from the same tiles the
    // scores read K-major: k16 step kk is tile rows 16 kk .. 16 kk + 15.
    // Scalar: acc[r][f] += sum_c W[r][c] * vals[c][f].
    if constexpr (kSumKeys) wgmma::pin(w.acc_k);  // the rescale above is written before the fence
    if constexpr (kVals) wgmma::pin(w.acc_v);
    wgmma::pin(wa);  // packed before the fence
    wgmma::fence();  // accumulators and weights are in their registers before wgmma reads them
    const std::uint64_t vals_desc = wgmma::descriptor(vals);
    #pragma unroll
    for (int kk = 0; kk < kChunk / kK; ++kk) {
      const std::uint32_t step = kk * kK * wgmma::kRowBytes;
      if constexpr (kSumKeys) wgmma::mma_64x64x16_rs<T>(w.acc_k, wa[kk], wgmma::advance(keys_desc, step));
      if constexpr (kVals) wgmma::mma_64x64x16_rs<T>(w.acc_v, wa[kk], wgmma::advance(vals_desc, step));
    }
    wgmma::commit();
    wgmma::wait<0>();  // the accumulators are readable, and the tiles may be refilled after the barrier
    if constexpr (kSumKeys) wgmma::pin(w.acc_k);
    if constexpr (kVals) wgmma::pin(w.acc_v);
  }
}

}  // namespace monarch::cuda::detail::fused
