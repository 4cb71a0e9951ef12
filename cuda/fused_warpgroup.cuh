// Level 7's chunk: fused_warp.cuh's warp_chunk with its two products on Hopper's warpgroup
// tensor cores (wgmma_sm90.cuh) instead of mma.sync. The CTA's four warps are one warpgroup and
// its 64 rows one wgmma M tile, so each product of a 64-column chunk is D / 16 = 4 (scores) or
// 64 / 16 = 4 (per summed operand) instructions for the whole CTA, where warp_chunk issued 32 + 64
// mma.sync and 48 ldmatrix per warp (D = 64, R-update with values). The operands are read by the
// tensor cores straight from the swizzled shared tiles, so no ldmatrix and no per-lane address
// arithmetic remain; the softmax between the products (chunk_weights) is warp_chunk's, on the same
// registers, because wgmma's accumulator fragment is mma.sync's (wgmma_sm90.cuh).
//
// The products are issued here and waited for by the caller (fused_tile.cuh), which orders them
// so that one chunk's sums run while the warps compute the next chunk's weights (step 23).
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

/// Issues S (64 x kChunk) = rows (64 x D) keys^T on the warpgroup (all four warps call it
/// together); this warp's 16 rows land in sc once a wgmma::wait covers the batch. rows, keys: shared
/// addresses of the swizzled row tile (64 x D) and of the chunk's keys (kChunk x D). The caller
/// fences before and commits after (the batch may share a fence with issue_sums).
/// Scalar: S[r][c] = sum_f rows[r][f] * keys[c][f]. Mirrors the score of detail::r_update_block /
/// l_update_position / r_statistics_position, as warp_chunk's mma.sync loop does.
template <class T, int D, int kChunk>
__device__ __forceinline__ void issue_scores(float (&sc)[kChunk / kN][4], std::uint32_t rows, std::uint32_t keys) {
  static_assert(D == 64 && kChunk == 64, "one 128-byte swizzled row per tile row, and one m64n64 product per k16 step");
  constexpr std::uint32_t kStepBytes = kK * sizeof(T);  // one k16 step along a K-major row
  const std::uint64_t rows_desc = wgmma::descriptor(rows), keys_desc = wgmma::descriptor(keys);
  #pragma unroll
  for (int kk = 0; kk < D / kK; ++kk)
    wgmma::mma_64x64x16_ss<T>(sc, wgmma::advance(rows_desc, kk * kStepBytes), wgmma::advance(keys_desc, kk * kStepBytes),
                              kk > 0);
}

/// The weights sc (C fragments, fp32) packed to T: the A operand of every k16 step of the sums,
/// held whole because the sums run after the next chunk's scores (warp_chunk packs step by step).
template <class T, int kChunk>
__device__ __forceinline__ void pack_weights(std::uint32_t (&wa)[kChunk / kK][4], const float (&sc)[kChunk / kN][4]) {
  #pragma unroll
  for (int kk = 0; kk < kChunk / kK; ++kk) pack_a_fragment<T>(wa[kk], sc, kk);
}

/// Issues acc (64 x D) += W (64 x kChunk) keys / vals (kChunk x D) on the warpgroup, W the packed
/// weights wa, keys and vals read MN-major from the same swizzled tiles the scores read K-major
/// (k16 step kk is tile rows 16 kk .. 16 kk + 15): acc_k for the R-update and r_stats, acc_v when
/// kVals. The caller fences before and commits after; wa and the accumulators must keep their
/// registers until a wgmma::wait covers the batch.
/// Scalar: acc[r][f] += sum_c W[r][c] * vals[c][f].
template <class T, Step kStep, int D, int kChunk, bool kVals>
__device__ __forceinline__ void issue_sums(WarpRows<D>& w, const std::uint32_t (&wa)[kChunk / kK][4],
                                           std::uint32_t keys, std::uint32_t vals) {
  static_assert(D == 64 && kChunk == 64, "one m64n64 product per k16 step of the chunk");
  constexpr bool kSumKeys = kStep != Step::LUpdate;
  const std::uint64_t keys_desc = wgmma::descriptor(keys), vals_desc = wgmma::descriptor(vals);
  #pragma unroll
  for (int kk = 0; kk < kChunk / kK; ++kk) {
    const std::uint32_t step = kk * kK * wgmma::kRowBytes;
    if constexpr (kSumKeys) wgmma::mma_64x64x16_rs<T>(w.acc_k, wa[kk], wgmma::advance(keys_desc, step));
    if constexpr (kVals) wgmma::mma_64x64x16_rs<T>(w.acc_v, wa[kk], wgmma::advance(vals_desc, step));
  }
}

/// Keeps the accumulators a step sums into, and the weights they are summed with, in their
/// registers across a wgmma fence or wait (wgmma::pin).
template <Step kStep, bool kVals, int D, class Wa>
__device__ __forceinline__ void pin_sums(WarpRows<D>& w, Wa& wa) {
  if constexpr (kStep != Step::LUpdate) wgmma::pin(w.acc_k);
  if constexpr (kVals) wgmma::pin(w.acc_v);
  wgmma::pin(wa);
}

/// Level 7's epilogue, first half (step 26): row h of this warp's accumulators acc, times scale, into
/// row r of a swizzled staging tile (64-element rows) as T pairs. In the swizzle the 8 rows g of one
/// store land in 8 different 16-byte pieces, so the warp's 32 lanes hit 32 different banks.
/// Scalar: tile[r][c] = T(acc row h, column c, times scale), c < D. It is store_row (fused_warp.cuh),
/// which levels 3-6 use to write the same values straight to global memory, 4 bytes per lane, with
/// the swizzle's placement.
template <class T, int D>
__device__ __forceinline__ void stage_row(T* tile, int r, const float (&acc)[D / kN][4], int h, float scale,
                                          int lane) {
  static_assert(D == 64, "one 128-byte swizzled row per tile row");
  store_row_at<T, D>([tile, r](int c8, int c2) { return tile + wgmma::swizzled(r, c8 + c2); }, acc, h, scale, D, lane);
}

/// Second half: the 16-byte piece pc of staged row r to dst (a global row of width elements, width a
/// multiple of 8; pieces at or past width are not written). Eight threads cover one 128-byte row, so
/// each warp store writes four whole rows, 4 full sectors per 128 bytes; store_row's 4-byte stores
/// write 16 bytes of each of 8 rows, 8 half-filled sectors per 128 bytes, with 4x the instructions.
template <class T>
__device__ __forceinline__ void copy_staged_piece(T* dst, const T* tile, int r, int pc, int width) {
  const int c = pc * wgmma::kPieceElems;
  if (c < width) *reinterpret_cast<uint4*>(dst + c) = *reinterpret_cast<const uint4*>(tile + wgmma::swizzled(r, c));
}

}  // namespace monarch::cuda::detail::fused
