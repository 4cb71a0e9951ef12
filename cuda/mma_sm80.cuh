// Register-level tensor-core building blocks for the fused levels (3+): cp.async copies,
// ldmatrix fragment loads and the mma.sync m16n8k16 instruction, as thin inline-PTX wrappers.
//
// Written by hand because no packaged library provides them here: CUTLASS/CuTe is neither in
// Debian 12 nor in the CUDA toolkit, and nvcuda::wmma (level 2) hides the fragment layout that the
// register-resident softmax below depends on. The layouts are those of the PTX ISA manual,
// "Matrix Fragments for mma.m16n8k16"; each wrapper states the scalar loop it equals.
//
// Fragment layout of one warp (lane = 4 g + t, g = lane / 4 in 0..7, t = lane % 4 in 0..3):
//   A (16 x 16, row-major)  a[0] = A[g][2t..2t+1]   a[1] = A[g+8][2t..2t+1]
//                            a[2] = A[g][2t+8..+9]   a[3] = A[g+8][2t+8..+9]
//   B (16 x 8,  k x n)       b[0] = B[2t..2t+1][g]   b[1] = B[2t+8..2t+9][g]
//   C (16 x 8,  fp32)        c[0..1] = C[g][2t..2t+1]  c[2..3] = C[g+8][2t..2t+1]
// Two C tiles side by side (16 x 16) hold exactly an A fragment's elements, which is what lets a
// row of softmax weights go from one product's output to the next product's input without shared
// memory (FlashAttention-2's register trick).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace monarch::cuda::detail::mma {

constexpr int kM = 16, kN = 8, kK = 16;  // the m16n8k16 shape
constexpr int kCopyBytes = 16;           // one cp.async / one ldmatrix row: 16 bytes = 8 halves

/// 32-bit shared-memory address of a generic pointer (what ldmatrix and cp.async take).
__device__ __forceinline__ std::uint32_t smem_addr(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

/// dst[0..16) = src[0..16) bytes, asynchronously (L2 only, bypassing L1: each byte is used once
/// per CTA). With src_bytes = 0 nothing is read and dst is zero-filled (pads, rows past the end).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
/// Waits until at most `kPending` committed groups are still in flight (this thread's copies only:
/// a __syncthreads must follow before other threads read them).
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

/// Four 8 x 8 matrices of 16-bit elements from shared memory; lane i gives the address of row
/// i % 8 of matrix i / 8 (as a generic pointer, or as a 32-bit shared address). Register r of each lane receives matrix r's elements [g][2t..2t+1]
/// (or, with kTrans, [2t..2t+1][g]: the matrix transposed).
template <bool kTrans>
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], std::uint32_t row_saddr) {
  if constexpr (kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(row_saddr));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(row_saddr));
}
template <bool kTrans>
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* row_addr) {
  ldmatrix_x4<kTrans>(r, smem_addr(row_addr));
}

/// ldmatrix_x4 the other way (stmatrix, sm_90): four 8 x 8 matrices of 16-bit elements to shared
/// memory; lane i gives the address of row i % 8 of matrix i / 8, and register r of lane 4 g + t
/// holds matrix r's elements [g][2t..2t+1], the layout of a C fragment's pair packed to 16 bits.
/// Scalar: for r < 4, g < 8, t < 4: M_r[g][2t..2t+1] = register r of lane 4 g + t.
__device__ __forceinline__ void stmatrix_x4(std::uint32_t row_saddr, const std::uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(row_saddr), "r"(r[0]),
               "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}

/// c (16 x 8, fp32) += a (16 x 16) b (16 x 8), T = __half or __nv_bfloat16.
/// The scalar loop it equals: for r < 16, n < 8: for k < 16: c[r][n] += a[r][k] * b[k][n].
template <class T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                          std::uint32_t b1) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "fp16 or bf16 operands");
  if constexpr (std::is_same_v<T, __half>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// Two floats rounded to one 32-bit register of two T (lower address = x), for A fragments.
template <class T>
__device__ __forceinline__ std::uint32_t pack2(float x, float y) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 h = __floats2half2_rn(x, y);
    return *reinterpret_cast<const std::uint32_t*>(&h);
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
    return *reinterpret_cast<const std::uint32_t*>(&h);
  }
}

/// 2^x by the SFU (ex2.approx, relative error ~2^-22; 2^-inf = 0). The softmaxes work in base 2
/// with log2(e) folded into the score scale, so each weight costs one ex2 and one FFMA.
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

}  // namespace monarch::cuda::detail::mma
