// Checking every CUDA runtime call, every kernel launch and every cuBLAS call.
// A failure throws monarch::cuda::CudaError("file:line: call: error string").
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "monarch_cuda/monarch_cuda.hpp"

namespace monarch::cuda::detail {

[[noreturn]] inline void cuda_fail(const char* file, int line, const char* call, const std::string& what) {
  throw CudaError(std::string(file) + ":" + std::to_string(line) + ": " + call + ": " + what);
}

}  // namespace monarch::cuda::detail

/// Wrap every runtime call: CUDA_CHECK(cudaMalloc(&p, n));
#define CUDA_CHECK(call)                                                                    \
  do {                                                                                      \
    const cudaError_t err_ = (call);                                                        \
    if (err_ != cudaSuccess)                                                                \
      ::monarch::cuda::detail::cuda_fail(__FILE__, __LINE__, #call, cudaGetErrorString(err_)); \
  } while (0)

/// After every launch: catches bad configurations now and, with MONARCH_CUDA_SYNC_CHECK=1 in the
/// environment, faults inside the kernel at the launch that caused them.
#define CUDA_CHECK_LAUNCH(name)                                                      \
  do {                                                                               \
    CUDA_CHECK(cudaGetLastError());                                                  \
    if (::monarch::cuda::detail::sync_after_launch()) CUDA_CHECK(cudaDeviceSynchronize()); \
  } while (0)

namespace monarch::cuda::detail {
bool sync_after_launch();  // reads MONARCH_CUDA_SYNC_CHECK once
}
