// One head's alpha_L, c_L and Y spread over the shared memory of a thread-block cluster (level 8),
// and the few sm_90 cluster instructions that move them, as thin inline-PTX wrappers (PTX ISA:
// "mapa", "st" with .shared::cluster, "barrier.cluster", "fence.proxy.async"). Written by hand for
// the reason mma_sm80.cuh gives: CUTLASS/CuTe is neither in Debian 12 nor in the CUDA toolkit.
//
// The L-update of position j reads alpha_L[k, j], c_L[k, j] and Y[k, j] for every block k: its keys
// are position-major rows j m + k (spec §4; level 3's layout, harness.cuh). CTA `rank` of a cluster of
// C owns the positions j in [rank b / C, (rank + 1) b / C), i.e. the position-major rows
// [rank rows, (rank + 1) rows), rows = N' / C. Its shared memory holds them in the layout its
// L-update's wgmma reads: rows of 64 elements in the 128-byte swizzle (wgmma_sm90.cuh), so a chunk of
// 64 keys is a tile at row c - rank rows. Whichever CTA computes an R-update row sends it there.
#pragma once

#include <cstdint>

#include "fast_div.hpp"
#include "mma_sm80.cuh"
#include "wgmma_sm90.cuh"

namespace monarch::cuda::detail::cluster {

/// This CTA's rank in its cluster (0 .. C - 1).
__device__ __forceinline__ int cta_rank() {
  std::uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return static_cast<int>(r);
}

/// The shared address in CTA `rank`'s window that corresponds to this CTA's shared address `saddr`
/// (every CTA of the kernel lays out its shared memory alike).
__device__ __forceinline__ std::uint32_t map_to(std::uint32_t saddr, int rank) {
  std::uint32_t r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(saddr), "r"(rank));
  return r;
}

/// 16 bytes to a cluster shared address. Scalar: *(uint4*)addr = v, in the other CTA's memory.
__device__ __forceinline__ void store_16(std::uint32_t cluster_addr, uint4 v) {
  asm volatile("st.shared::cluster.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"r"(cluster_addr), "r"(v.x), "r"(v.y), "r"(v.z),
               "r"(v.w)
               : "memory");
}
/// One float to a cluster shared address.
__device__ __forceinline__ void store_f32(std::uint32_t cluster_addr, float v) {
  asm volatile("st.shared::cluster.f32 [%0], %1;\n" ::"r"(cluster_addr), "f"(v) : "memory");
}

/// Every thread of every CTA of the cluster: arrive, with this thread's earlier writes (to any CTA's
/// shared memory) released to whoever waits. Then wait() until all have arrived, acquiring them.
__device__ __forceinline__ void arrive() { asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wait() { asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory"); }
/// Orders this thread's earlier generic-proxy writes to cluster shared memory (st.shared::cluster)
/// before async-proxy reads of it (the owner's wgmma), once a barrier has passed between them.
__device__ __forceinline__ void fence_for_async() { asm volatile("fence.proxy.async.shared::cluster;\n" ::: "memory"); }

constexpr int kPadRows = 64;  // zero rows after the resident Y tile: see Head::Y_row

/// The resident intermediates of one head, as fused_tile's `cluster` argument (fused_tile.cuh).
/// Shared memory of every CTA, from `alpha_L` on (1024-byte aligned):
///   alpha_L (rows, 64) T swizzled | Y (rows + kPadRows, 64) T swizzled | c_L (rows) float.
struct Head {
  static constexpr bool kOn = true;
  unsigned char* alpha_L = nullptr;  // (rows, 64) T: alpha_L[k, j] at row j m + k - own_beg
  unsigned char* Y = nullptr;        // (rows + kPadRows, 64) T: Y[k, j] likewise; the pad rows are zero
  float* c_L = nullptr;              // (rows) c_L[k, j] likewise (+inf: a block with no valid key)
  int rows = 0;                      // position-major rows per CTA: N' / C
  int own_beg = 0;                   // this CTA's first: rank rows
  FastDiv div_rows;                  // / rows: the owner of a position-major row
  bool to_global = false;            // traces: fused_tile also writes level 3's global intermediates

  static constexpr int kRowBytes = wgmma::kRowBytes;
  static constexpr int kRowElems = wgmma::kRowBytes / 2;  // 64 16-bit elements

  /// Shared bytes of the resident tiles for `rows` rows (a multiple of 8: whole swizzle atoms).
  static constexpr std::size_t bytes(int rows) {
    return static_cast<std::size_t>(2 * rows + kPadRows) * kRowBytes + static_cast<std::size_t>(rows) * sizeof(float);
  }

  /// Row c (position-major, of the head) of the resident tiles. A chunk that starts at c reads 64 rows
  /// from here; its last rows may lie past this CTA's (masked: other groups, or past the groups), and
  /// they land in Y's first rows (alpha_L) or in the zero pad (Y), never in anything that may be NaN.
  template <class T>
  __device__ __forceinline__ T* alpha_L_row(int c) const {
    return reinterpret_cast<T*>(alpha_L) + (c - own_beg) * kRowElems;
  }
  template <class T>
  __device__ __forceinline__ T* Y_row(int c) const {
    return reinterpret_cast<T*>(Y) + (c - own_beg) * kRowElems;
  }
  __device__ __forceinline__ float c_L_at(int c) const { return c_L[c - own_beg]; }

  /// Piece pc (16 bytes) of row r of the R-update's staged alpha_L and Y tiles (swizzled, this CTA),
  /// the head's position-major row pm, to the CTA that owns pm, at the same place in its tiles.
  /// Scalar: owner's alpha_L[pm - owner rows][8 pc .. 8 pc + 7] = out_k[r][8 pc .. 8 pc + 7], Y alike.
  template <class T>
  __device__ __forceinline__ void put_pieces(int pm, const T* out_k, const T* out_v, int r, int pc) const {
    const int owner = static_cast<int>(div_rows.div(pm));
    const int local = pm - owner * rows, c = pc * wgmma::kPieceElems;
    const std::uint32_t at = static_cast<std::uint32_t>(wgmma::swizzled(local, c) * sizeof(T));
    store_16(map_to(mma::smem_addr(alpha_L) + at, owner),
             *reinterpret_cast<const uint4*>(out_k + wgmma::swizzled(r, c)));
    store_16(map_to(mma::smem_addr(Y) + at, owner), *reinterpret_cast<const uint4*>(out_v + wgmma::swizzled(r, c)));
  }
  /// c_L of position-major row pm, to its owner.
  __device__ __forceinline__ void put_c_L(int pm, float v) const {
    const int owner = static_cast<int>(div_rows.div(pm));
    store_f32(map_to(mma::smem_addr(c_L + (pm - owner * rows)), owner), v);
  }
};

}  // namespace monarch::cuda::detail::cluster
