// The baseline users asked for: softmax attention with the scores materialised in device memory.
//   1. cuBLAS (batched, strided):  S = tau Q K^T                (E H, N, N)  dtype, fp32 accumulation
//   2. a masked row softmax, in place:  P = softmax(S) over kept keys  (fp32 arithmetic)
//   3. cuBLAS (batched, strided):  O = P V                      (E H, N, d_v)
// Same scale tau and key mask as MonarchAttention and reference::exact_attention. fp32 runs the
// GEMMs in full fp32 (CUBLAS_COMPUTE_32F, default math mode: no TF32).
#include <cublas_v2.h>

#include <cmath>
#include <string>

#include "device_buffer.cuh"
#include "harness.cuh"

#define CUBLAS_CHECK(call)                                                                         \
  do {                                                                                             \
    const cublasStatus_t st_ = (call);                                                             \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                              \
      ::monarch::cuda::detail::cuda_fail(__FILE__, __LINE__, #call, cublasGetStatusString(st_));   \
  } while (0)

namespace monarch::cuda {
namespace {

using detail::DeviceBuffer;
constexpr int kSoftmaxThreads = 256;

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

/// Block-wide reduction of one float per thread (op = max or sum, identity its neutral element);
/// every thread gets the result.
template <class Op>
__device__ float block_reduce(float x, float* scratch, Op op, float identity) {
  static_assert(kSoftmaxThreads % 32 == 0 && kSoftmaxThreads / 32 <= 32, "one warp reduces the warps");
  for (int o = 16; o > 0; o /= 2) x = op(x, __shfl_xor_sync(0xffffffffu, x, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = x;
  __syncthreads();  // every warp's partial is in scratch before warp 0 combines them
  if (warp == 0) {
    x = lane < kSoftmaxThreads / 32 ? scratch[lane] : identity;  // lanes past the warps add nothing
    for (int o = 16; o > 0; o /= 2) x = op(x, __shfl_xor_sync(0xffffffffu, x, o));
    if (lane == 0) scratch[0] = x;
  }
  __syncthreads();  // the result is in scratch[0] before anyone reads it
  x = scratch[0];
  __syncthreads();  // everyone has read scratch[0] before a later reduction reuses scratch
  return x;
}

/// One CTA per score row (head, query n): P[n, :] = softmax over kept keys of S[n, :], in place.
/// Masked keys get weight exactly 0. Two passes over the row, like reference softmax_rows.
template <class T>
__global__ void __launch_bounds__(kSoftmaxThreads)
    masked_softmax_kernel(T* S, const std::uint8_t* keep, int H, int N) {
  static_assert(kSoftmaxThreads >= 32, "at least one warp");
  __shared__ float scratch[32];
  const std::size_t row = blockIdx.x;  // head * N + n
  const int e = static_cast<int>(row / N / H);
  T* s = S + row * N;
  const std::uint8_t* kp = keep + static_cast<std::size_t>(e) * N;
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < N; i += kSoftmaxThreads)
    if (kp[i]) mx = fmaxf(mx, detail::to_float(s[i]));
  mx = block_reduce(mx, scratch, [](float a, float b) { return fmaxf(a, b); }, -INFINITY);
  float sum = 0.0f;
  for (int i = threadIdx.x; i < N; i += kSoftmaxThreads)
    if (kp[i]) sum += expf(detail::to_float(s[i]) - mx);
  sum = block_reduce(sum, scratch, [](float a, float b) { return a + b; }, 0.0f);
  const float inv = 1.0f / sum;  // sum >= 1: validate_inputs guarantees a kept key
  for (int i = threadIdx.x; i < N; i += kSoftmaxThreads)
    s[i] = detail::from_float<T>(kp[i] ? expf(detail::to_float(s[i]) - mx) * inv : 0.0f);
}

}  // namespace

struct NaiveSession::Impl {
  int E = 0, H = 0, N = 0, d = 0, dv = 0;
  float tau = 0;
  DType dtype = DType::F32;
  DeviceBuffer Q, K, V, S, O, keep;
  cublasHandle_t handle = nullptr;
  ~Impl() {
    if (handle) cublasDestroy(handle);
  }
};

double NaiveSession::score_bytes(int E, int H, int N, DType dtype) {
  return static_cast<double>(E) * H * N * static_cast<double>(N) * static_cast<double>(detail::dtype_size(dtype));
}

NaiveSession::NaiveSession(int E, int H, int N, int d, int dv, const Options& opt, DType dtype)
    : impl_(std::make_unique<Impl>()) {
  validate_options(opt);
  if (E < 1 || H < 1 || N < 1 || d < 1 || dv < 1)
    throw InputError("naive attention needs E, H, N, d, d_v >= 1");
  std::size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const double need = score_bytes(E, H, N, dtype);
  constexpr double kHeadroom = 0.9;  // leave room for Q, K, V, O and cuBLAS workspace
  if (need > kHeadroom * static_cast<double>(free_b))
    throw InputError("naive attention needs " + std::to_string(need / 1e9) + " GB for its scores, " +
                     std::to_string(free_b / 1e9) + " GB are free on the device");
  Impl& s = *impl_;
  s.E = E, s.H = H, s.N = N, s.d = d, s.dv = dv, s.dtype = dtype;
  s.tau = static_cast<float>(resolve_scale(opt, d));
  const std::size_t heads = static_cast<std::size_t>(E) * H, es = detail::dtype_size(dtype);
  s.Q = DeviceBuffer(heads * N * d * es);
  s.K = DeviceBuffer(heads * N * d * es);
  s.V = DeviceBuffer(heads * N * dv * es);
  s.S = DeviceBuffer(heads * N * static_cast<std::size_t>(N) * es);
  s.O = DeviceBuffer(heads * N * dv * es);
  s.keep = DeviceBuffer(static_cast<std::size_t>(E) * N);
  CUBLAS_CHECK(cublasCreate(&s.handle));
}

NaiveSession::~NaiveSession() = default;

void NaiveSession::upload(const Tensor4<float>& Q, const Tensor4<float>& K, const Tensor4<float>& V,
                          const KeyMask* mask) {
  validate_inputs(Q, K, V, mask);
  Impl& s = *impl_;
  detail::upload_tensor(Q, "q", s.E, s.H, s.N, s.d, s.dtype, s.Q);
  detail::upload_tensor(K, "k", s.E, s.H, s.N, s.d, s.dtype, s.K);
  detail::upload_tensor(V, "v", s.E, s.H, s.N, s.dv, s.dtype, s.V);
  std::vector<std::uint8_t> keep(static_cast<std::size_t>(s.E) * s.N, 1);
  if (mask && !mask->empty())
    for (std::size_t i = 0; i < keep.size(); ++i) keep[i] = mask->keep[i] ? 1 : 0;
  CUDA_CHECK(cudaMemcpy(s.keep.get(), keep.data(), keep.size(), cudaMemcpyHostToDevice));
}

void NaiveSession::poison() {
  impl_->S.poison();
  impl_->O.poison();
}

void NaiveSession::run() {
  Impl& s = *impl_;
  const int batch = s.E * s.H;
  const cudaDataType_t t = cuda_type(s.dtype);
  const float tau = s.tau, one = 1.0f, zero = 0.0f;
  const long long sN = static_cast<long long>(s.N);
  // Row-major X (r x c) is column-major X^T. S (row-major N x N) = column-major S^T = K Q^T:
  // C[i + n N] = sum_c K[i][c] Q[n][c] = S[n][i].
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(s.handle, CUBLAS_OP_T, CUBLAS_OP_N, s.N, s.N, s.d, &tau,
                                          s.K.get(), t, s.d, sN * s.d, s.Q.get(), t, s.d, sN * s.d, &zero,
                                          s.S.get(), t, s.N, sN * s.N, batch, CUBLAS_COMPUTE_32F,
                                          CUBLAS_GEMM_DEFAULT));
  detail::dispatch_dtype(s.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    masked_softmax_kernel<T><<<static_cast<unsigned>(batch) * s.N, kSoftmaxThreads>>>(
        s.S.get<T>(), s.keep.get<std::uint8_t>(), s.H, s.N);
    CUDA_CHECK_LAUNCH("masked_softmax_kernel");
  });
  // O (row-major N x d_v) = column-major O^T = V^T P^T: C[c + n d_v] = sum_i V[i][c] P[n][i].
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(s.handle, CUBLAS_OP_N, CUBLAS_OP_N, s.dv, s.N, s.N, &one,
                                          s.V.get(), t, s.dv, sN * s.dv, s.S.get(), t, s.N, sN * s.N, &zero,
                                          s.O.get(), t, s.dv, sN * s.dv, batch, CUBLAS_COMPUTE_32F,
                                          CUBLAS_GEMM_DEFAULT));
}

Tensor4<float> NaiveSession::output() const {
  const Impl& s = *impl_;
  return detail::download_tensor(s.O.get(), s.E, s.H, s.N, s.dv, s.dtype);
}

double NaiveSession::floor_bytes() const {
  const Impl& s = *impl_;
  return static_cast<double>(s.E) * s.H * s.N * (2.0 * s.d + 2.0 * s.dv) *
         static_cast<double>(detail::dtype_size(s.dtype));
}

Tensor4<float> naive_attention(const Tensor4<float>& Q, const Tensor4<float>& K, const Tensor4<float>& V,
                               const KeyMask* mask, const Options& opt, DType dtype) {
  validate_inputs(Q, K, V, mask);
  NaiveSession s(Q.E, Q.H, Q.N, Q.D, V.D, opt, dtype);
  s.upload(Q, K, V, mask);
  s.run();
  return s.output();
}

}  // namespace monarch::cuda
