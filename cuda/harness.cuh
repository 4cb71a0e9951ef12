// The harness every level shares: the device-side description of one problem, the dtype
// conversions, the padded-index loads of eq. (1), and the entry points each level provides.
// A level is a set of three step launchers (below); harness.cu runs the rounds of spec §4 with
// them, so levels differ only in how each step is computed.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "check.cuh"
#include "fast_div.hpp"
#include "monarch_cuda/monarch_cuda.hpp"

namespace monarch::cuda::detail {

/// One problem on the device, passed by value to every kernel. Heads are numbered h' = e*H + h.
/// All intermediates are fp32 and padded: N' = m b rows per head (spec §1).
struct Problem {
  int E = 0, H = 0, N = 0, d = 0, dv = 0;
  int b = 0, m = 0, Np = 0, off = 0;  // Geometry: token n sits at padded index n + off, eq. (1)
  float tau = 0;
  DType dtype = DType::F32;
  const void* Q = nullptr;  // (E, H, N, d)   dtype
  const void* K = nullptr;  // (E, H, N, d)   dtype
  const void* V = nullptr;  // (E, H, N, d_v) dtype
  const std::uint8_t* valid = nullptr;  // (E, N') valid(l, j): a token whose key is kept
  float* alpha_R = nullptr;  // (E H, N', d)   eq. (11)
  float* c_R = nullptr;      // (E H, N')      eq. (11)
  float* alpha_L = nullptr;  // (E H, N', d)   eq. (10)
  float* c_L = nullptr;      // (E H, N')      eq. (10); +inf for a block with no valid key
  float* lse_L = nullptr;    // (E H, N')      log of the normaliser of eq. (13) for query (l, j)
  float* Y = nullptr;        // (E H, N', d_v) eq. (4)
  void* O = nullptr;         // (E, H, N, d_v) dtype
  // Level 3 keeps its intermediates position-major (row j*m + k of each head) and alpha_L, Y in
  // the input dtype; lse_L above is position-major there too. Traces convert them back
  // (LevelSteps::export_trace) into alpha_L, c_L and Y above.
  void* alpha_L_pm = nullptr;  // (E H, N', d)   dtype  level 3 only
  void* Y_pm = nullptr;        // (E H, N', d_v) dtype  level 3 only
  float* c_L_pm = nullptr;     // (E H, N')      fp32   level 3 only
  unsigned* sync = nullptr;    // level 5 only: its work counter and per (head, step) done counts
  int round = 1;               // t of the round being run, 1..T (set by the harness)
  FastDiv div_b, div_m;        // / b and / m without a runtime division (levels 3, 5, 7: step 20)
};

/// The three steps of one round (spec §4), as a level implements them. Each enqueues on the
/// default stream and checks its launches.
struct LevelSteps {
  /// eq. (11) for rounds t >= 2: alpha_R, c_R from the previous round's L, recomputed on the fly
  /// from alpha_L, c_L and lse_L (L is never stored).
  void (*r_stats)(const Problem&);
  /// eqs. (12), (10), (4): R_k from alpha_R, c_R (R_k lives in shared memory / registers only),
  /// then alpha_L, c_L, and Y when want_Y.
  void (*r_update)(const Problem&, bool want_Y);
  /// eqs. (13), (4): L_j from alpha_L, c_L (never stored); writes lse_L, and O when want_O.
  void (*l_update)(const Problem&, bool want_O);
  /// Levels whose intermediates live in another layout or dtype copy them into the fp32
  /// block-major arrays of Problem before a trace reads them; null when they already are there.
  void (*export_trace)(const Problem&) = nullptr;
  /// True when r_update reads q itself in round 1 (p.round == 1), so the round-1 statistics
  /// kernel (launch_r_stats_init) runs only for traces.
  bool round1_reads_q = false;
  /// Levels with a whole-call kernel (levels 4 and 6): whole_fits(p, T) says whether it runs this problem;
  /// whole(p, dump) then runs all T = p.round rounds in one launch instead of the steps above. With
  /// dump (traces, T = 1 only) it leaves the intermediates where the steps would (for export_trace).
  bool (*whole_fits)(const Problem&, int rounds) = nullptr;
  void (*whole)(const Problem&, bool dump) = nullptr;
  /// Levels that run several rounds in one launch (level 5), where whole does not fit: rounds
  /// first..last of spec §4, every step of each, in one launch; Y and O in every round when
  /// want_all (traces), else in the last one only. Round 1 reads q itself (round1_reads_q).
  void (*rounds)(const Problem&, int first, int last, bool want_all) = nullptr;
  /// Levels whose whole-call kernel takes several shapes (level 8): what it runs for this problem, in
  /// words, or "" where whole_fits holds for another reason (MonarchSession::plan).
  std::string (*describe_whole)(const Problem&, int rounds) = nullptr;
};

LevelSteps level1_steps();  // level1_scalar.cu
LevelSteps level2_steps();  // level2_tensor_core.cu
LevelSteps level3_steps();  // level3_fused.cu
LevelSteps level4_steps();  // level4_whole_head.cu
LevelSteps level5_steps();  // level5_one_launch.cu
LevelSteps level6_steps();  // level6_in_place.cu
LevelSteps level7_steps();  // level7_warpgroup.cu
LevelSteps level8_steps();  // level8_cluster.cu
/// 32-bit words of Problem::sync that level 5 needs for `heads` heads and T = rounds.
std::size_t level5_sync_words(int heads, int rounds);

/// The round-1 statistics of spec §4 "Initialisation" (L = I): alpha_R = q (0 at pads),
/// c_R = 1. Shared by every level (harness.cu).
void launch_r_stats_init(const Problem& p);

// ---------------------------------------------------------------------------------------------
// Device helpers shared by the kernels.

template <class T>
__device__ __forceinline__ float to_float(T x) {
  if constexpr (std::is_same_v<T, float>) return x;
  else if constexpr (std::is_same_v<T, __half>) return __half2float(x);
  else return __bfloat162float(x);
}
template <class T>
__device__ __forceinline__ T from_float(float x) {
  if constexpr (std::is_same_v<T, float>) return x;
  else if constexpr (std::is_same_v<T, __half>) return __float2half_rn(x);
  else return __float2bfloat16_rn(x);
}

/// True for the element types the device path accepts (fp32, fp16, bf16).
template <class T>
constexpr bool kIsDeviceDType =
    std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

/// Head index h' = e*H + h of a kernel's blockIdx.y, and its batch element e.
__device__ __forceinline__ int head_batch(const Problem& p, int head) { return head / p.H; }

/// Pointer to row `p_idx` (a padded index) of head `head` of an unpadded (E, H, N, cols) input,
/// or null for a pad: eq. (1), token n = p_idx - off.
template <class T>
__device__ __forceinline__ const T* token_row(const Problem& p, const void* base, int head, int p_idx,
                                              int cols) {
  const int n = p_idx - p.off;
  if (n < 0 || n >= p.N) return nullptr;
  return static_cast<const T*>(base) + (static_cast<std::size_t>(head) * p.N + n) * cols;
}

/// valid(l, j) at padded index p_idx for head `head`.
__device__ __forceinline__ bool is_valid(const Problem& p, int head, int p_idx) {
  return p.valid[static_cast<std::size_t>(head_batch(p, head)) * p.Np + p_idx] != 0;
}

/// The perfect shuffle P of spec §2 on row indices: position-major row j*m + l is padded row l*b + j,
/// and back.
__host__ __device__ __forceinline__ int padded_of_pm(const Problem& p, int pm) {
  const int j = p.div_m.div(pm);  // pm = j m + l
  return (pm - j * p.m) * p.b + j;
}
__host__ __device__ __forceinline__ int pm_of_padded(const Problem& p, int padded) {
  const int l = p.div_b.div(padded);  // padded = l b + j
  return (padded - l * p.b) * p.m + l;
}

/// Offset of row p_idx of head `head` in a padded (E H, N', cols) intermediate.
__device__ __forceinline__ std::size_t padded_row(const Problem& p, int head, int p_idx, int cols) {
  return (static_cast<std::size_t>(head) * p.Np + p_idx) * cols;
}

/// A type carried as a value, so a generic lambda can receive it: [&](auto tag) { using T = ...::type; }
template <class T>
struct TypeTag {
  using type = T;
};

/// Calls f(TypeTag<T>{}) with T the C++ type of the dtype (float, __half or __nv_bfloat16).
template <class F>
void dispatch_dtype(DType t, F&& f) {
  switch (t) {
    case DType::F32: f(TypeTag<float>{}); return;
    case DType::F16: f(TypeTag<__half>{}); return;
    case DType::BF16: f(TypeTag<__nv_bfloat16>{}); return;
  }
}

/// Blocks of `threads` covering n items.
inline unsigned blocks_for(std::size_t n, int threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

}  // namespace monarch::cuda::detail
