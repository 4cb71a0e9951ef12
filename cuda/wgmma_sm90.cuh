// Hopper's warpgroup tensor-core instruction (wgmma.mma_async, sm_90a) as thin inline-PTX wrappers,
// for level 7. Written by hand for the same reason as mma_sm80.cuh: CUTLASS/CuTe is neither in Debian
// 12 nor in the CUDA toolkit. Layouts are those of the PTX ISA manual, "Asynchronous Warpgroup Level
// Matrix Multiply-Accumulate" (register fragments, shared memory matrix layout, matrix descriptor).
//
// One wgmma is issued by the 4 warps of a warpgroup together and multiplies a 64 x 16 A by a 16 x N
// B into a 64 x N fp32 accumulator. Warp w of the group holds rows 16 w .. 16 w + 15, and within a
// warp the accumulator of every 8 columns is laid out exactly like mma.sync m16n8's C fragment
// (mma_sm80.cuh), and a register A operand like its A fragment. So a warp's 16 rows of wgmma scores
// are, register for register, the `sc[nt][4]` of fused_warp.cuh, and the softmax code runs unchanged.
//
// B always comes from shared memory (A may too), described by a 64-bit matrix descriptor instead of
// per-lane addresses. The tiles here use the 128-byte swizzle with rows of exactly 128 bytes (64
// 16-bit elements, D = 64): the 16-byte piece pc of row r is stored at piece pc ^ (r % 8) of that
// row, and each 8-row group (1024 bytes) starts 1024-byte aligned. The same tile serves as a
// "K-major" operand (rows are the M or N index, the 64 elements the reduction index: the keys of
// S = Q K^T) and as an "MN-major" one (rows are the reduction index: the keys of alpha_L = R K,
// Y = R V), so keys and values are loaded once and read both ways.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "wgmma needs the sm_90a target: build with CMAKE_CUDA_ARCHITECTURES=90a (the top-level default)"
#endif

namespace monarch::cuda::detail::wgmma {

constexpr int kRowBytes = 128;             // one swizzled row: 64 16-bit elements
constexpr int kAtomBytes = 8 * kRowBytes;  // 8 rows: one repeat of the swizzle pattern
constexpr int kPieceElems = 8;             // 16-byte pieces hold 8 16-bit elements (the 3-bit shifts below)

/// Element offset of element c of row r (both >= 0) in a swizzled tile of 64-element rows. Shifts
/// and masks, not / and %: on a signed int those cost a sign fix-up each, ~10 instructions per
/// 16-byte piece in the loaders (step 18).
__host__ __device__ constexpr int swizzled(int r, int c) {
  return r * (kRowBytes / 2) + (((c >> 3) ^ (r & 7)) << 3) + (c & 7);
}

/// The matrix descriptor of a swizzled tile whose first row is at shared address `saddr` (the
/// tile's 8-row groups 1024-byte aligned; saddr itself may be offset by whole 16-byte pieces along a
/// row, which is how a K-major operand steps through k: +32 bytes per k16 step). Fields (PTX ISA,
/// "Matrix Descriptor Format"): start address >> 4 in bits 0-13, leading byte offset >> 4 in 16-29,
/// stride byte offset >> 4 in 32-45, base offset 0 in 49-51, swizzle mode in 62-63 (1: 128 bytes).
/// Stride = 1024: the distance between 8-row groups, along M/N for a K-major operand and along K for
/// an MN-major one. Leading = 1024 too: a K-major swizzled operand ignores it, and an MN-major one
/// with N = 64 (one 128-byte row) never steps to a second 64-column group, so the value is never used.
__device__ __forceinline__ std::uint64_t descriptor(std::uint32_t saddr) {
  constexpr std::uint64_t kOffset = kAtomBytes >> 4, kSwizzle128 = 1;
  return static_cast<std::uint64_t>((saddr & 0x3FFFF) >> 4) | kOffset << 16 | kOffset << 32 | kSwizzle128 << 62;
}

/// The descriptor of the operand `bytes` (a multiple of 16) further on in the same tile: only the
/// start-address field moves, and it cannot carry into the next field, since every shared address
/// fits its 14 bits (>> 4). So a chunk builds one descriptor per tile and steps it with one add per
/// wgmma, instead of masking and shifting each address anew (step 20: those were ~100 uniform-datapath
/// instructions per warp and chunk).
__device__ __forceinline__ std::uint64_t advance(std::uint64_t desc, std::uint32_t bytes) { return desc + (bytes >> 4); }

/// Orders this thread's earlier register writes (accumulators, register A operands) before the
/// wgmma that reads them; required before the first wgmma of a batch.
__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
/// Closes the batch of wgmma issued since the last commit.
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
/// Waits until at most kPending committed batches are in flight; their accumulators are then readable.
template <int kPending>
__device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
/// Makes this thread's earlier generic-proxy writes to shared memory (st.shared, cp.async) visible to
/// the async proxy that wgmma reads through; a barrier must follow before other threads' wgmma.
__device__ __forceinline__ void fence_shared_for_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
/// Keeps the compiler from moving reads or writes of a wgmma operand register (an fp32 accumulator,
/// a packed register A operand) across the fence or wait that orders it.
__device__ __forceinline__ void pin(float& x) { asm volatile("" : "+f"(x)::"memory"); }
__device__ __forceinline__ void pin(std::uint32_t& x) { asm volatile("" : "+r"(x)::"memory"); }
template <class X, int kTiles>
__device__ __forceinline__ void pin(X (&d)[kTiles][4]) {
  #pragma unroll
  for (int i = 0; i < kTiles; ++i)
    #pragma unroll
    for (int e = 0; e < 4; ++e) pin(d[i][e]);
}

#define MONARCH_WGMMA_D32(d)                                                                                   \
  "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),    \
      "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), \
      "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), \
      "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), \
      "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
#define MONARCH_WGMMA_REGS32                                                                              \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, " \
  "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"

/// d (64 x 64, fp32) (+)= A (64 x 16) B^T with A (64 x 16) and B (64 x 16) both K-major in shared
/// memory (descriptors da, db); accumulate = false overwrites d. This thread's part of d: d[nt][e],
/// rows 16 warp + g (+ 8 for e >= 2), columns 8 nt + 2 t + e % 2. Asynchronous: wait() before reading d.
/// The scalar loop it equals: for r < 64, n < 64: d[r][n] = (accumulate ? d[r][n] : 0) + sum_k A[r][k] B[n][k].
template <class T>
__device__ __forceinline__ void mma_64x64x16_ss(float (&d)[8][4], std::uint64_t da, std::uint64_t db, bool accumulate) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "fp16 or bf16 operands");
  if constexpr (std::is_same_v<T, __half>)
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " MONARCH_WGMMA_REGS32 ", %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : MONARCH_WGMMA_D32(d)
                 : "l"(da), "l"(db), "r"(static_cast<int>(accumulate)));
  else
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " MONARCH_WGMMA_REGS32 ", %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : MONARCH_WGMMA_D32(d)
                 : "l"(da), "l"(db), "r"(static_cast<int>(accumulate)));
}

/// d (64 x 64, fp32) += A (64 x 16) B, A in registers (this warp's 16 rows as an mma.sync A fragment,
/// a[0..3]), B (16 x 64) MN-major in shared memory (descriptor db: 16 rows of 64 elements).
/// The scalar loop it equals: for r < 64, n < 64: d[r][n] += sum_k A[r][k] B[k][n].
template <class T>
__device__ __forceinline__ void mma_64x64x16_rs(float (&d)[8][4], const std::uint32_t (&a)[4], std::uint64_t db) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "fp16 or bf16 operands");
  if constexpr (std::is_same_v<T, __half>)
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " MONARCH_WGMMA_REGS32
                 ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : MONARCH_WGMMA_D32(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
  else
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " MONARCH_WGMMA_REGS32
                 ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : MONARCH_WGMMA_D32(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

#undef MONARCH_WGMMA_D32
#undef MONARCH_WGMMA_REGS32

}  // namespace monarch::cuda::detail::wgmma
