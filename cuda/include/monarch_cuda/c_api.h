/* A plain C ABI over monarch::cuda::MonarchSession, for callers that are not C++: Python ctypes
 * (bench/compare_sdpa.py times it against PyTorch SDPA on PyTorch's own tensors), C programs, or
 * any FFI. Built as the shared library libmonarch_cuda_c (cuda/CMakeLists.txt).
 *
 * Valid C89 and C++: no C++ types cross this boundary, and no C++ exception escapes it. Every
 * failure is a non-zero return code plus a one-line message from monarch_cuda_last_error().
 *
 * Python ctypes example:
 *   lib = ctypes.CDLL("libmonarch_cuda_c.so")
 *   lib.monarch_cuda_attention.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int] * 8 +
 *                                         [ctypes.c_float, ctypes.c_int, ctypes.c_int]
 *   lib.monarch_cuda_last_error.restype = ctypes.c_char_p
 *   rc = lib.monarch_cuda_attention(q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(),
 *                                   E, H, N, d, dv, 0, 1, 0, 0.0, 1, 4)
 */
#ifndef MONARCH_CUDA_C_API_H
#define MONARCH_CUDA_C_API_H

#ifdef __cplusplus
extern "C" {
#endif

/* Values of the dtype argument: the element type of q, k, v and o on the device. */
#define MONARCH_CUDA_FP32 0
#define MONARCH_CUDA_FP16 1
#define MONARCH_CUDA_BF16 2

/* Return codes. */
#define MONARCH_CUDA_OK 0
#define MONARCH_CUDA_INPUT_ERROR 1 /* bad argument or shape, refused before touching the device */
#define MONARCH_CUDA_DEVICE_ERROR 2 /* a CUDA runtime or cuBLAS failure */
#define MONARCH_CUDA_OTHER_ERROR 3  /* any other exception (e.g. out of host memory) */

/* MonarchAttention (spec section 4) of one batch, without a key mask.
 *
 * q, k, v, o: DEVICE pointers (e.g. torch.Tensor.data_ptr() of CUDA tensors) to contiguous
 *   row-major arrays of shape (E, H, N, d) for q and k, (E, H, N, dv) for v and o, all of the
 *   element type given by dtype, each 16-byte aligned, on the current CUDA device. o must not
 *   overlap q, k or v.
 * block: block size b; <= 0 selects ceil(sqrt(N)).
 * steps: T >= 1 rounds of (R-update, L-update).
 * pre_pad: non-zero puts the N' - N pads first (pre-padding), 0 puts them last (post-padding).
 * scale: tau; <= 0 selects 1/sqrt(d).
 * dtype: MONARCH_CUDA_FP32, _FP16 or _BF16.
 * level: the CUDA ladder rung (cuda/README.md): 1 scalar, 2 tensor cores, 3 fused steps, 4 whole
 *   head per CTA, 5 one launch, 6 intermediates in place, 7 warpgroup (wgmma) steps (3 to 7:
 *   fp16/bf16 only; 7 is the fastest); an unknown level is refused with the list of those that exist.
 *
 * Enqueues the work on the legacy default stream (stream 0) and returns without synchronising: the
 * caller synchronises (or records events) as it would around any kernel. The device buffers of
 * each distinct (E, H, N, d, dv, block, steps, pre_pad, scale, dtype, level) are allocated on first
 * use and cached (at most 8 shapes, least recently used dropped first), so repeated calls allocate
 * nothing. Calls from several host threads are serialised by a lock, and their kernels by the
 * default stream, so the cached intermediates are never shared by two calls at once.
 *
 * Returns MONARCH_CUDA_OK, or one of the error codes above with the message kept for
 * monarch_cuda_last_error(). An asynchronous kernel fault may surface only at a later CUDA call. */
int monarch_cuda_attention(const void* q, const void* k, const void* v, void* o, int E, int H, int N,
                           int d, int dv, int block, int steps, int pre_pad, float scale, int dtype,
                           int level);

/* The one-line message of this thread's most recent monarch_cuda_attention() call if it failed, ""
 * if it succeeded (or none was made). The pointer stays valid until this thread's next call into
 * this library. */
const char* monarch_cuda_last_error(void);

/* Frees every cached session and its device memory (synchronises the device). Call it between
 * problem sizes when device memory is tight. */
void monarch_cuda_clear_cache(void);

#ifdef __cplusplus
}
#endif

#endif /* MONARCH_CUDA_C_API_H */
