// Level 6: level 4's whole head per CTA at T = 1, with alpha_L and Y kept in shared memory, in place
// of K and V (bench/NOTES.md, step 11).
//
// Level 4 sends alpha_L and Y through a scratch slot in global memory (L2) and back, because its
// R-update tiles do not own the rows they write: a block of keys may span two warps' tiles, and
// the results are written position-major. When b divides 16, each warp's 16-row R-update tile is
// 16 / b whole blocks, and the keys and values it reads are exactly the rows it writes: no other
// warp touches them, so the results overwrite them with no barrier, and nothing leaves the chip
// between Q, K, V coming in and O going out. They stay in padded order (row k*b + j); the L-update
// gathers its columns alpha_L[k, j], k = 0..m-1, through the padded_of map, as it already gathers
// its queries (ldmatrix takes one address per lane).
//
// Per head: 1. cp.async Q, K, V; 2. R-update, eq. (12): alpha_L, c_L, Y in place; 3. barrier;
// 4. L-update, eq. (13), and o = L Y, eq. (4), to global memory; 5. barrier. Same shape as level 4:
// 8 warps, 112 KB at N' = 256, d = 64, two CTAs per SM.
//
// Anything else (T >= 2, b not dividing 16) runs level 4, which runs level 3 where a head is too
// large. Tried and dropped (step 11): two head buffers in one 16-warp CTA per SM, loading the next
// head while one runs, was 25% slower than this: the loads were never what the warps waited for.
#include <cmath>

#include "fused_warp.cuh"
#include "harness.cuh"
#include "whole_head.cuh"

namespace monarch::cuda::detail {
namespace {

using namespace fused;
using namespace whole_head;

constexpr int kWarps = 8;              // warps per CTA
constexpr int kThreads = 32 * kWarps;  // threads per CTA
constexpr int kMinCtas = 2;            // __launch_bounds__: two CTAs per SM (<= 128 registers)
constexpr int kTiles = 3;              // Q, K (then alpha_L), V (then Y)

/// Shared bytes: Q, K, V as (rows, D + kSkew) tiles of T, then the geometry arrays: level 4's.
template <class T, int D>
std::size_t shared_bytes(int Np) {
  return kTiles * static_cast<std::size_t>(tile_rows(Np)) * (D + kSkew) * sizeof(T) + geometry_bytes(Np);
}

/// T = 1 for heads blockIdx.x, blockIdx.x + gridDim.x, ...; with kDump (traces) alpha_L, Y, c_L
/// (position-major, as level 3 leaves them) and lse_L are also written to global memory.
/// (kDump is a template argument so that the timed kernel carries no trace code: 128 registers.)
template <class T, int D, bool kDump>
__global__ void __launch_bounds__(kThreads, kMinCtas) in_place_kernel(Problem p) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "tensor cores: fp16 or bf16");
  static_assert(D % kK == 0 && D <= 128, "D is whole k16 steps, at most 128 (validate_session)");
  static_assert(kChunk == kM, "an R-update tile is one chunk: its columns are its own rows");
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int kLd = D + kSkew;
  const int rows = tile_rows(p.Np);
  T* const Qs = reinterpret_cast<T*>(smem);  // (rows, D) q, padded order
  T* const KA = Qs + rows * kLd;             // (rows, D) k, then alpha_L; padded order
  T* const VY = KA + rows * kLd;             // (rows, D) v, then Y; padded order
  const Arrays geo = carve(reinterpret_cast<unsigned char*>(VY + rows * kLd), p.Np);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int heads = p.E * p.H, tiles = rows / kM;
  const float scale2 = p.tau * kLog2e;

  init_geometry(geo, p, threadIdx.x, kThreads);  // the same for every head

  for (int head = blockIdx.x; head < heads; head += gridDim.x) {
    const std::size_t head0 = static_cast<std::size_t>(head) * p.Np;
    __syncthreads();  // the previous head's L-update is done with every shared array (and, for the
                      // first head, the geometry arrays above are written)

    // ---- 1. Q, K, V of this head (tokens [0, N) are padded rows [off, off + N); zero at pads and
    // past N').
    const std::size_t h = static_cast<std::size_t>(head) * p.N;
    load_rows_async<T, D, kThreads>(Qs, rows, p.d, static_cast<const T*>(p.Q) + h * p.d, p.off, p.off + p.N,
                                    threadIdx.x);
    load_rows_async<T, D, kThreads>(KA, rows, p.d, static_cast<const T*>(p.K) + h * p.d, p.off, p.off + p.N,
                                    threadIdx.x);
    load_rows_async<T, D, kThreads>(VY, rows, p.dv, static_cast<const T*>(p.V) + h * p.dv, p.off, p.off + p.N,
                                    threadIdx.x);
    cp_async_commit();
    set_bias_R(geo, p, p.valid + static_cast<std::size_t>(head / p.H) * p.Np, threadIdx.x, kThreads);
    cp_async_wait<0>();
    __syncthreads();  // this head's Q, K, V and bias_R are in shared memory for every warp

    // ---- 2. R-update, eq. (12): tile = 16 padded rows = 16 / b whole blocks; its columns are the
    // same 16 rows of K (keys) and V (values), read by this warp only.
    for (int tile = warp; tile < tiles; tile += kWarps) {
      const int r0 = tile * kM;
      WarpRows<D> w;
      for (int h = 0; h < 2; ++h) w.row_group[h] = r0 + g + 8 * h < p.Np ? (r0 + g + 8 * h) / p.b : kNoRow;
      bind_rows<D>(w, [&](int r) { return Qs + (r0 + r) * kLd; }, lane);
      warp_chunk<T, Step::RUpdate, D, kChunk, true>(
          w, [&](int c) { return KA + (r0 + c) * kLd; }, [&](int c) { return VY + (r0 + c) * kLd; },
          geo.grp_b + r0, geo.bias_R + r0, scale2, lane);
      __syncwarp();  // every lane's ldmatrix of these K and V rows is done before any lane overwrites them
      for (int h = 0; h < 2; ++h) {
        const int row = r0 + g + 8 * h;
        if (row >= p.Np) continue;
        const int pm = geo.pm_of[row];  // (k, j) -> j*m + k
        const float inv = w.run_sum[h] == 0.0f ? 0.0f : 1.0f / w.run_sum[h];  // empty block: zeros
        store_row<T, D>(KA + row * kLd, w.acc_k, h, inv, p.d, lane);   // alpha_L[k, j] over k_(k,j)
        store_row<T, D>(VY + row * kLd, w.acc_v, h, inv, p.dv, lane);  // Y[k, j] over v_(k,j)
        const float c_L = entropy_term(w, h);  // eq. (10); +inf for a block with no valid key
        if (t == 0) geo.bias_L[pm] = c_L * kLog2e;
        if constexpr (!kDump) continue;
        store_row<T, D>(static_cast<T*>(p.alpha_L_pm) + (head0 + pm) * p.d, w.acc_k, h, inv, p.d, lane);
        store_row<T, D>(static_cast<T*>(p.Y_pm) + (head0 + pm) * p.dv, w.acc_v, h, inv, p.dv, lane);
        if (t == 0) p.c_L_pm[head0 + pm] = c_L;
      }
    }
    __syncthreads();  // alpha_L, Y and bias_L of every block are in place for every warp

    // ---- 4. L-update, eq. (13), and o = L Y, eq. (4): rows (l, j) position-major; the columns of
    // row (l, j) are alpha_L[k, j] (keys) and Y[k, j] (values), k = 0..m-1, at padded rows k*b + j.
    // Chunks start at multiples of 16 below N', so every column index stays inside the tiles.
    for (int tile = warp; tile < tiles; tile += kWarps) {
      const int r0 = tile * kM, r_last = min(r0 + kM, p.Np) - 1;
      WarpRows<D> w;
      for (int h = 0; h < 2; ++h) w.row_group[h] = r0 + g + 8 * h < p.Np ? (r0 + g + 8 * h) / p.m : kNoRow;
      bind_rows<D>(w, [&](int r) { return Qs + geo.padded_of[r0 + r] * kLd; }, lane);  // q_(l,j)
      for (int c0 = r0 / p.m * p.m / kChunk * kChunk; c0 < (r_last / p.m + 1) * p.m; c0 += kChunk)
        warp_chunk<T, Step::LUpdate, D, kChunk, true>(
            w, [&](int c) { return KA + geo.padded_of[c0 + c] * kLd; },
            [&](int c) { return VY + geo.padded_of[c0 + c] * kLd; }, geo.grp_m + c0, geo.bias_L + c0, scale2, lane);
      for (int h = 0; h < 2; ++h) {
        const int row = r0 + g + 8 * h;
        if (row >= p.Np) continue;
        if (kDump && t == 0) p.lse_L[head0 + row] = log_normaliser(w, h);
        const int n = geo.padded_of[row] - p.off;  // eq. (1): pads are dropped
        if (n < 0 || n >= p.N) continue;
        T* O = static_cast<T*>(p.O) + (static_cast<std::size_t>(head) * p.N + n) * p.dv;
        store_row<T, D>(O, w.acc_v, h, 1.0f / w.run_sum[h], p.dv, lane);  // some block is valid: Z > 0
      }
    }
  }
}

template <class T, int D, bool kDump>
void launch(const Problem& p) {
  auto kernel = in_place_kernel<T, D, kDump>;
  const std::size_t bytes = shared_bytes<T, D>(p.Np);
  static const bool raised = [&] {  // once per instantiation: allow the device's whole opt-in limit
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max_optin_shared()));
    return true;
  }();
  (void)raised;
  int per_sm = 0, dev = 0, sms = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, bytes));
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int grid = std::min(p.E * p.H, std::max(1, per_sm) * sms);  // persistent: one CTA per resident slot
  kernel<<<grid, kThreads, bytes>>>(p);
  CUDA_CHECK_LAUNCH("level6 in_place_kernel");
}

LevelSteps& level4() {
  static LevelSteps s = level4_steps();
  return s;
}

/// Level 6's kernel runs this problem: T = 1, b divides a 16-row tile, and the head fits one CTA
/// (the same shared memory as level 4's).
bool runs_here(const Problem& p, int rounds) {
  return rounds == 1 && kM % p.b == 0 && level4().whole_fits(p, rounds);
}

void whole(const Problem& p, bool dump) {
  if (!runs_here(p, p.round)) {  // p.round = T for a whole call
    level4().whole(p, dump);
    return;
  }
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (!std::is_same_v<T, float>) {  // runs_here refuses fp32
      switch (fused_dim(p.d, p.dv)) {
        case 32: dump ? launch<T, 32, true>(p) : launch<T, 32, false>(p); break;
        case 64: dump ? launch<T, 64, true>(p) : launch<T, 64, false>(p); break;
        default: dump ? launch<T, 128, true>(p) : launch<T, 128, false>(p); break;
      }
    }
  });
}

}  // namespace

LevelSteps level6_steps() {
  LevelSteps s = level4_steps();  // heads this level does not take: level 4, then level 3
  s.whole = &whole;  // whole_fits stays level 4's: level 6 takes a subset of its problems
  return s;
}

}  // namespace monarch::cuda::detail
