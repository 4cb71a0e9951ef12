// An owning device allocation (RAII), so that an exception between cudaMalloc and cudaFree leaks
// nothing. Host-side helper shared by the sessions.
#pragma once

#include <cstddef>
#include <utility>

#include "check.cuh"

namespace monarch::cuda::detail {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0) CUDA_CHECK(cudaMalloc(&ptr_, bytes_));
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);  // destructor: cannot throw; a failure here leaves nothing to fix
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(o.bytes_) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  template <class T = void>
  T* get() const { return static_cast<T*>(ptr_); }
  std::size_t bytes() const { return bytes_; }
  /// Every byte 0xFF: NaN in fp32, fp16 and bf16 alike.
  void poison() const {
    if (ptr_) CUDA_CHECK(cudaMemset(ptr_, 0xFF, bytes_));
  }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

/// Bytes of one element of a dtype.
inline std::size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }

/// Converts n floats on the device into the dtype (round to nearest even), and back.
void convert_from_float(const float* src, void* dst, std::size_t n, DType t);
void convert_to_float(const void* src, float* dst, std::size_t n, DType t);

/// Validates (validate_inputs plus the session's shape) and uploads one input, converted.
void upload_tensor(const Tensor4<float>& x, const char* name, int E, int H, int N, int D, DType t,
                   DeviceBuffer& dst);
/// valid(l, j) for every batch element: (E, N') bytes, true for a token whose key is kept.
DeviceBuffer make_valid(const Geometry& g, int E, const KeyMask* mask);
/// Copies a dtype tensor (E, H, N, D) on the device to a host float Tensor4.
Tensor4<float> download_tensor(const void* src, int E, int H, int N, int D, DType t);

}  // namespace monarch::cuda::detail
