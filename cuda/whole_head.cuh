// What the whole-head kernels (levels 4 and 6) share: a head of N' <= a few hundred rows held in one
// CTA's shared memory, and the per-column and per-row arrays that describe its geometry.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "check.cuh"
#include "fused_warp.cuh"
#include "harness.cuh"

namespace monarch::cuda::detail::whole_head {

using fused::kNoGroup;
using mma::kM;

constexpr int kChunk = 16;      // columns per warp step: b = 16 blocks are one step
using Group = std::int16_t;     // a column's block or position (< N' <= a few hundred here)

/// Rows of the Q, K, V tiles: N' rounded up to whole 16-row tiles (zero past N').
__host__ __device__ inline int tile_rows(int Np) { return (Np + kM - 1) / kM * kM; }
/// Entries of the per-column arrays: one chunk more, since a chunk may start at any column < N'.
__host__ __device__ inline int column_slots(int Np) { return tile_rows(Np) + kChunk; }

/// Bytes of the arrays below: per column its R-update and L-update biases and its group under b and
/// under m, then per row the position-major index of a padded row and back. The 16-bit index arrays
/// are what let level 4's second CTA fit on an SM at N' = 256.
inline std::size_t geometry_bytes(int Np) {
  return static_cast<std::size_t>(column_slots(Np)) * (2 * sizeof(Group) + 2 * sizeof(float)) +
         static_cast<std::size_t>(tile_rows(Np)) * 2 * sizeof(Group);
}

/// The geometry arrays, carved from shared memory at `at` (4-byte aligned).
struct Arrays {
  float* bias_R;     // (cols) 0, or +inf for an invalid key (set per head)
  float* bias_L;     // (cols) c_L log2(e), position-major (written by each head's R-update)
  Group* grp_b;      // (cols) column c's block c / b
  Group* grp_m;      // (cols) position-major c's position c / m
  Group* pm_of;      // (rows) padded row k*b + j -> position-major row j*m + k
  Group* padded_of;  // (rows) position-major row j*m + l -> padded row l*b + j
};

__device__ inline Arrays carve(unsigned char* at, int Np) {
  const int cols = column_slots(Np);
  Arrays a;
  a.bias_R = reinterpret_cast<float*>(at);
  a.bias_L = a.bias_R + cols;
  a.grp_b = reinterpret_cast<Group*>(a.bias_L + cols);
  a.grp_m = a.grp_b + cols;
  a.pm_of = a.grp_m + cols;
  a.padded_of = a.pm_of + tile_rows(Np);
  return a;
}

/// Fills the arrays that are the same for every head (everything but bias_R, and bias_L below N').
/// The caller's barrier publishes them.
__device__ inline void init_geometry(const Arrays& a, const Problem& p, int tid, int threads) {
  const int rows = tile_rows(p.Np), cols = column_slots(p.Np);
  for (int c = tid; c < cols; c += threads) {
    const bool in = c < p.Np;
    a.grp_b[c] = static_cast<Group>(in ? c / p.b : kNoGroup);
    a.grp_m[c] = static_cast<Group>(in ? c / p.m : kNoGroup);
    if (!in) a.bias_L[c] = INFINITY;  // past N': no column
    if (c < rows) {
      a.pm_of[c] = static_cast<Group>(in ? c % p.b * p.m + c / p.b : c);  // past N': itself, a zero row
      a.padded_of[c] = static_cast<Group>(in ? c % p.m * p.b + c / p.m : c);
    }
  }
}

/// R-update column biases of one head: 0 for a valid key, +inf otherwise (also past N').
__device__ inline void set_bias_R(const Arrays& a, const Problem& p, const std::uint8_t* valid_e, int tid,
                                  int threads) {
  for (int c = tid; c < column_slots(p.Np); c += threads) a.bias_R[c] = c < p.Np && valid_e[c] ? 0.0f : INFINITY;
}

/// Shared bytes of one resident head: Q, K, V (then alpha_L, Y or the mean queries) as three
/// (rows, D + kSkew) tiles of T, then the geometry arrays. At N' = 256, d = 64 this is 112 KB: two CTAs
/// share an SM's 228 KB. Levels 4 and 6 use the same layout, so one fit test serves both.
template <class T, int D>
std::size_t head_shared_bytes(int Np) {
  constexpr int kHeadTiles = 3;
  return kHeadTiles * static_cast<std::size_t>(tile_rows(Np)) * (D + fused::kSkew) * sizeof(T) +
         geometry_bytes(Np);
}

/// The device's opt-in limit of shared memory per CTA (227 KB on H100 and H200).
inline int max_optin_shared() {
  static const int bytes = [] {
    int dev = 0, v = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    return v;
  }();
  return bytes;
}

/// For a persistent whole-head kernel: raises its dynamic shared-memory limit to the device's opt-in
/// maximum (once per kernel) and returns its grid, one CTA per resident slot and at most `heads`.
template <auto kKernel>
int persistent_grid(int threads, std::size_t bytes, int heads) {
  static const bool raised = [] {
    CUDA_CHECK(cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max_optin_shared()));
    return true;
  }();
  (void)raised;
  int per_sm = 0, dev = 0, sms = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kKernel, threads, bytes));
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return std::min(heads, std::max(1, per_sm) * sms);
}

}  // namespace monarch::cuda::detail::whole_head
