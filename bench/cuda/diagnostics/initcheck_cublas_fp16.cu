// Diagnostic for compute-sanitizer initcheck: does it see the stores of cuBLAS's fp16 GEMM on sm_90?
// A fp16 GEMM writes every entry of C (n x n); a kernel then reads every entry. Run the program under
// `compute-sanitizer --tool initcheck`: any "Uninitialized __global__ memory read" reported here is
// about memory cuBLAS has provably written (the kernel also checks the values against the CPU), i.e.
// a blind spot of the tool, not of our code. Build: nvcc -gencode arch=compute_90a,code=sm_90a -lcublas
#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <cstdio>
#include <vector>

#define CHECK(x) do { auto e = (x); if (e != 0) { std::printf("error %d at %s:%d\n", (int)e, __FILE__, __LINE__); return 1; } } while (0)

__global__ void sum_all(const __half* C, int count, float* out) {
  float s = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += __half2float(C[i]);
  atomicAdd(out, s);
}

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 256;
  std::vector<__half> ones(n * n, __float2half(1.0f));
  __half *A, *B, *C;
  float* out;
  CHECK(cudaMalloc(&A, n * n * 2)); CHECK(cudaMalloc(&B, n * n * 2)); CHECK(cudaMalloc(&C, n * n * 2));
  CHECK(cudaMalloc(&out, 4)); CHECK(cudaMemset(out, 0, 4));
  CHECK(cudaMemcpy(A, ones.data(), n * n * 2, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(B, ones.data(), n * n * 2, cudaMemcpyHostToDevice));
  cublasHandle_t h;
  CHECK(cublasCreate(&h));
  const float one = 1.0f / n, zero = 0.0f;  // every C entry = 1
  CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, A, CUDA_R_16F, n, B, CUDA_R_16F, n, &zero, C,
                     CUDA_R_16F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  sum_all<<<1, 256>>>(C, n * n, out);
  CHECK(cudaGetLastError());
  float s = 0;
  CHECK(cudaMemcpy(&s, out, 4, cudaMemcpyDeviceToHost));
  std::printf("n = %d: sum of C = %.0f (expected %d): %s\n", n, s, n * n, s == n * n ? "every entry written" : "MISMATCH");
  return s == n * n ? 0 : 1;
}
