// The CUDA path of MonarchAttention: the host API. Mirrors reference/include/monarch/attention.hpp:
// the same Options (T, b, pad, tau), the same (E, H, N, d) tensors and (E, N) key mask, d_v != d,
// ragged N. Inputs are given as float on the host and run on the device in fp32, fp16 or bf16.
//
// Deliberately free of Eigen and of CUDA headers, so any C++ file can include it.
//
// Layout of every intermediate returned in a Trace (identical to the reference's HeadTrace):
//   alpha_R, alpha_L : (m, b, d)   row k*b + j is the d-vector for block k, position j
//   c_R, c_L         : (m, b)      entry k*b + j; c_L = +inf for a block with no valid key
//   Y                : (m, b, d_v) row k*b + j
//   O                : (N, d_v)    unpadded output rows, token order
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "monarch/options.hpp"
#include "monarch/tensor.hpp"

namespace monarch::cuda {

/// A CUDA runtime or cuBLAS failure: "file:line: call: error string". Not an input error.
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The element type of Q, K, V and O on the device. Statistics and accumulators are always fp32.
enum class DType { F32, F16, BF16 };

/// The rung of the ladder (cuda/README.md).
enum class Level : int {
  Scalar = 1,      ///< cuda/level1_scalar.cu: one kernel per spec step, one thread per row, fp32 FMAs
  TensorCore = 2,  ///< cuda/level2_tensor_core.cu: per-step tiled kernels, WMMA tensor cores
  Fused = 3,       ///< cuda/level3_fused.cu: register-resident mma.sync, cp.async, fp16/bf16 only
  WholeHead = 4,   ///< cuda/level4_whole_head.cu: any T in one launch, a head per CTA where it fits; else level 3
  OneLaunch = 5,   ///< cuda/level5_one_launch.cu: any N and T in one persistent launch (level 4 where it fits)
  InPlace = 6,     ///< cuda/level6_in_place.cu: level 4 with alpha_L, Y in place of K, V when b divides 16
  Warpgroup = 7,   ///< cuda/level7_warpgroup.cu: level 6, with level 3's steps on Hopper's wgmma (d, d_v <= 64)
  Cluster = 8,     ///< cuda/level8_cluster.cu: level 7, with a T = 1 head per thread-block cluster, alpha_L, Y on chip
};

const char* to_string(DType t);
/// "fp32", "fp16" or "bf16"; anything else throws InputError.
DType parse_dtype(const std::string& s);
/// 1 to 8; anything else throws InputError naming the levels that exist.
Level parse_level(int level);
/// The relative-error tolerance of a dtype against the double reference: 1e-5 fp32, 1e-2 fp16/bf16.
double tolerance(DType t);
/// The largest head dimension (d and d_v) a level's kernels hold in their tiles.
int max_head_dim(Level level);

/// What the device looks like; never throws. ok = false with a reason when no usable GPU exists.
struct DeviceInfo {
  bool ok = false;
  std::string reason;  ///< why not ok, e.g. "cudaGetDeviceCount: no CUDA-capable device is detected"
  std::string name;    ///< e.g. "NVIDIA H100 80GB HBM3"
  int major = 0, minor = 0;
  double mem_bandwidth_GBs = 0;  ///< from the memory clock and bus width (theoretical peak)
  std::size_t total_mem = 0;
};
DeviceInfo device_info();

/// Rounds host values to the nearest value of the dtype (round-to-nearest-even), in place, so a
/// reference can be fed exactly the numbers the device sees.
void round_to_dtype(std::vector<float>& x, DType t);

/// Which level and which dtype.
struct Config {
  Level level = Level::TensorCore;
  DType dtype = DType::F32;
};

/// Every intermediate of one round t for one head, copied to the host as float.
struct RoundArrays {
  std::vector<float> alpha_R;  // (m*b, d)   eq. (11)
  std::vector<float> c_R;      // (m*b)      eq. (11)
  std::vector<float> alpha_L;  // (m*b, d)   eq. (10)
  std::vector<float> c_L;      // (m*b)      eq. (10)
  std::vector<float> Y;        // (m*b, d_v) eq. (4) with this round's R
  std::vector<float> O;        // (N, d_v)   eq. (4) with this round's R and L
};

/// The trace of one head: geometry and every round (compare with monarch::HeadTrace).
struct Trace {
  Geometry g;
  float tau = 0;
  std::vector<RoundArrays> rounds;
};

/// Checks a problem against the options and the level's limits without touching the device;
/// throws InputError with one line (MonarchSession's constructor calls it first).
void validate_session(int E, int H, int N, int d, int dv, const Options& opt, Config cfg);

/// Device buffers for one problem shape. Upload inputs once, run many times (benchmarks), read O.
/// Device memory is O(E H N (d + d_v)): L, R and A are never stored.
class MonarchSession {
 public:
  /// Validates the shape, options and level limits (InputError) and allocates (CudaError).
  MonarchSession(int E, int H, int N, int d, int dv, const Options& opt, Config cfg);
  ~MonarchSession();
  MonarchSession(const MonarchSession&) = delete;
  MonarchSession& operator=(const MonarchSession&) = delete;

  /// Validates (validate_inputs) and uploads Q, K, V (E, H, N, d|d_v) and the key mask (or null),
  /// converting to the session's dtype on the device.
  void upload(const Tensor4<float>& Q, const Tensor4<float>& K, const Tensor4<float>& V,
              const KeyMask* mask);
  /// Reads Q, K, V from and writes O to caller-owned device memory instead of the session's own
  /// buffers (zero-copy, e.g. PyTorch tensors through the C API of cuda/c_api.cpp). Each pointer
  /// holds contiguous (E, H, N, d|d_v) elements of the session's dtype and must stay alive while
  /// run() uses it. The values are not checked for finiteness (they never reach the host); the key
  /// mask stays as uploaded (none unless upload() gave one). Null pointers throw InputError.
  void bind_device(const void* Q, const void* K, const void* V, void* O);
  /// Fills the output, every intermediate and every SM's shared memory with NaN (tests: nothing
  /// stale can pass, and a kernel that reads shared memory it never wrote computes with NaN).
  void poison();
  /// Enqueues all rounds on the default stream. With traces, computes Y and O every round,
  /// synchronises, and returns one Trace per (e, h) in row-major order.
  void run(std::vector<Trace>* traces = nullptr);
  /// Waits for the device and copies O (E, H, N, d_v) to the host as float.
  Tensor4<float> output() const;

  const Geometry& geometry() const;
  Config config() const;
  /// Bytes of the memory floor: read Q, K, V once and write O once, in the session's dtype.
  double floor_bytes() const;
  /// How an untraced run() computes this problem, in words: "step kernels" (three per round),
  /// "one launch for every round" (level 5), "one whole-head kernel" (levels 4 and 6), or what a
  /// level says of its own kernel ("a cluster of 16 CTAs per head" at level 8).
  std::string plan() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// One-shot convenience: allocate, upload, run, read back.
Tensor4<float> monarch_attention(const Tensor4<float>& Q, const Tensor4<float>& K,
                                 const Tensor4<float>& V, const KeyMask* mask, const Options& opt,
                                 Config cfg, std::vector<Trace>* traces = nullptr);

/// Naive softmax attention with materialised scores (the baseline): cuBLAS S = tau Q K^T, a masked
/// row softmax, cuBLAS O = P V. Needs E H N^2 scores of device memory.
class NaiveSession {
 public:
  NaiveSession(int E, int H, int N, int d, int dv, const Options& opt, DType dtype);
  ~NaiveSession();
  NaiveSession(const NaiveSession&) = delete;
  NaiveSession& operator=(const NaiveSession&) = delete;

  void upload(const Tensor4<float>& Q, const Tensor4<float>& K, const Tensor4<float>& V,
              const KeyMask* mask);
  void poison();
  void run();
  Tensor4<float> output() const;
  double floor_bytes() const;
  /// Device bytes the scores need: E H N^2 elements of the dtype.
  static double score_bytes(int E, int H, int N, DType dtype);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Tensor4<float> naive_attention(const Tensor4<float>& Q, const Tensor4<float>& K,
                               const Tensor4<float>& V, const KeyMask* mask, const Options& opt,
                               DType dtype);

/// cudaDeviceSynchronize, checked.
void synchronize();

}  // namespace monarch::cuda
