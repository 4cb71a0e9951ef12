// Level 4: one CTA holds a whole head, for any T, whenever q, k and v of a head fit in shared
// memory (N' <= 256 at d = 64: 4096 sequences of 256 tokens, ViT-sized heads). For T = 1 one launch
// reads Q, K, V once and writes O once; everything in between stays on the chip:
//
//   1. cp.async Q, K, V of the head into shared memory (rows in padded order, zero at pads).
//   2. R-update, eq. (12): each warp takes 16 padded rows (k, j) at a time and runs the shared warp
//      core (cuda/fused_warp.cuh) over the keys of its block; it writes alpha_L, Y (dtype) and c_L
//      in position-major order (row j*m + k) to a scratch slot owned by this CTA.
//   3. __syncthreads, then alpha_L and Y come back from the scratch slot into the shared arrays
//      that held K and V (both dead now).
//   4. L-update and output, eqs. (13), (4): each warp takes 16 position-major rows (l, j); its
//      queries are gathered from the Q array (ldmatrix takes one address per lane), its keys are
//      alpha_L[:, j] and its values Y[:, j]. o goes straight to global memory.
//
// Why a scratch slot in global memory rather than shared memory: a warp's R-update results belong
// to rows of other warps' K and V (position-major order scatters them), so writing them in place
// would need every warp to hold two tiles of accumulators until a barrier. The grid is persistent
// (one CTA per resident slot, looping over heads), so each CTA reuses one slot of 2 N' d bytes.
// All slots together are 17 MB at N' = 256, meant to stay in L2, but Nsight Compute shows the
// streaming Q, K, V reads evicting them: at 4096 x 256 2.1 GB of alpha_L and Y reach HBM
// (bench/NOTES.md, step 11). Level 6 keeps them in shared memory (b <= 16).
//
// T >= 2 runs in the same launch, round after round: the L-update of a round that is not the last
// forms only its normaliser lse_L; then 5. r_stats (eq. (11)) takes alpha_L as rows and the gathered
// queries as columns and leaves the mean queries alpha_R / c_R in VY, the rows of the next
// R-update. K comes back from global memory (L2: this CTA read it a moment ago) for every round
// after the first, V only for the last one, into the array Q leaves free until the final L-update
// reloads Q. A traced run with T >= 2 uses level 3's steps (the intermediates of every round).
//
// A head too large for shared memory runs level 3's per-step kernels instead.
#include <cfloat>
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

/// The whole call (T = p.round rounds when kRounds, else T = 1) for heads blockIdx.x,
/// blockIdx.x + gridDim.x, ... dump (T = 1 only): scratch slot = the head's own rows of alpha_L_pm /
/// Y_pm / c_L_pm (traces read them there) and lse_L is written; otherwise slot = blockIdx.x.
template <class T, int D, bool kRounds>
__global__ void __launch_bounds__(kThreads, kMinCtas) whole_head_kernel(Problem p, bool dump) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "tensor cores: fp16 or bf16");
  static_assert(D % kK == 0 && D <= 128, "D is whole k16 steps, at most 128 (validate_session)");
  static_assert(kThreads == 32 * kWarps && kChunk % kK == 0, "whole warps, whole k16 steps");
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int kLd = D + kSkew;
  const int rows = tile_rows(p.Np);
  T* Qs = reinterpret_cast<T*>(smem);  // (rows, D) padded order
  T* KA = Qs + rows * kLd;             // (rows, D) K, padded order; then alpha_L, position-major
  T* VY = KA + rows * kLd;             // (rows, D) V, padded order; then Y, position-major
  const Arrays geo = carve(reinterpret_cast<unsigned char*>(VY + rows * kLd), p.Np);
  float* const bias_R = geo.bias_R;
  float* const bias_L = geo.bias_L;
  const Group *const grp_b = geo.grp_b, *const grp_m = geo.grp_m;
  const Group *const pm_of = geo.pm_of, *const padded_of = geo.padded_of;
  // A chunk's columns past the tiles read the last row instead: finite, and masked by its group.
  auto clamp = [&](int c) { return c < rows ? c : rows - 1; };

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int heads = p.E * p.H, tiles = (p.Np + kM - 1) / kM;
  const float scale2 = p.tau * kLog2e;
  const int rounds = kRounds ? p.round : 1;  // T (the harness sets p.round = T for a whole call)
  T* const aL_pm = static_cast<T*>(p.alpha_L_pm);
  T* const Y_pm = static_cast<T*>(p.Y_pm);

  init_geometry(geo, p, threadIdx.x, kThreads);  // the same for every head

  for (int head = blockIdx.x; head < heads; head += gridDim.x) {
    const std::size_t head0 = static_cast<std::size_t>(head) * p.Np;
    const std::size_t slot = dump ? head0 : static_cast<std::size_t>(blockIdx.x) * p.Np;
    __syncthreads();  // the previous head's L-update is done with every shared array (and, for the
                      // first head, the geometry arrays above are written)

    // Q, K, V of this head (tokens [0, N) are padded rows [off, off + N); zero at pads and past N').
    const T* const Qg = static_cast<const T*>(p.Q) + static_cast<std::size_t>(head) * p.N * p.d;
    const T* const Kg = static_cast<const T*>(p.K) + static_cast<std::size_t>(head) * p.N * p.d;
    const T* const Vg = static_cast<const T*>(p.V) + static_cast<std::size_t>(head) * p.N * p.dv;
    const std::uint8_t* valid_e = p.valid + static_cast<std::size_t>(head / p.H) * p.Np;
    auto load_padded = [&](T* dst, const T* src, int width) {
      load_rows_async<T, D, kThreads>(dst, rows, width, src, p.off, p.off + p.N, threadIdx.x);
    };
    // ---- 1. Q and K, and V if the first round is the last (otherwise V waits for the last round).
    load_padded(Qs, Qg, p.d);
    load_padded(KA, Kg, p.d);
    // With T >= 2 the tile V would use holds the mean queries from r_stats on, which write only
    // columns < d: the rest must be zero (cp.async with no source bytes), not whatever the shared
    // memory held, since the R-update multiplies all D columns (0 x NaN is NaN).
    if (rounds == 1) load_padded(VY, Vg, p.dv);
    else load_rows_async<T, D, kThreads>(VY, rows, 0, Vg, 0, 0, threadIdx.x);
    cp_async_commit();
    set_bias_R(geo, p, valid_e, threadIdx.x, kThreads);
    cp_async_wait<0>();
    __syncthreads();  // Q, K (V) and the column arrays are in shared memory for every warp

    for (int rt = 1; rt <= rounds; ++rt) {  // rt: the round t of spec §4
      const bool last = rt == rounds;
      // Rows of the R-update: q itself in round 1 (L = I, eq. (14)); after that the mean queries
      // alpha_R / c_R, which the r_stats step below left in VY. Its values (last round only): V, in
      // VY in round 1 and in Qs later (Q is read again for the L-update).
      T* const r_rows = rt == 1 ? Qs : VY;
      T* const r_vals = rt == 1 ? VY : Qs;
      if (rt >= 2) {
        load_padded(KA, Kg, p.d);  // KA held alpha_L of the previous round
        if (last) load_padded(Qs, Vg, p.dv);
        cp_async_commit();
        set_bias_R(geo, p, valid_e, threadIdx.x, kThreads);  // it held the r_stats biases
        cp_async_wait<0>();
        __syncthreads();  // K (and V) are in shared memory for every warp
      }

      // ---- 2. R-update, eq. (12): keys of block k; alpha_L, c_L, and Y in the last round.
      for (int tile = warp; tile < tiles; tile += kWarps) {
        const int r0 = tile * kM, r_last = min(r0 + kM, p.Np) - 1;
        WarpRows<D> w;
        for (int h = 0; h < 2; ++h) w.row_group[h] = r0 + g + 8 * h < p.Np ? (r0 + g + 8 * h) / p.b : kNoRow;
        bind_rows<D>(w, [&](int r) { return r_rows + (r0 + r) * kLd; }, lane);
        // The blocks of rows r0..r_last, in chunks starting at a multiple of kChunk (aligned column
        // arrays; columns of other blocks in the first chunk are masked by their group).
        for (int c0 = r0 / p.b * p.b / kChunk * kChunk; c0 < (r_last / p.b + 1) * p.b; c0 += kChunk) {
          auto keys = [&](int c) { return KA + clamp(c0 + c) * kLd; };
          auto vals = [&](int c) { return r_vals + clamp(c0 + c) * kLd; };
          if (last) warp_chunk<T, Step::RUpdate, D, kChunk, true>(w, keys, vals, grp_b + c0, bias_R + c0, scale2, lane);
          else warp_chunk<T, Step::RUpdate, D, kChunk, false>(w, keys, vals, grp_b + c0, bias_R + c0, scale2, lane);
        }
        for (int h = 0; h < 2; ++h) {
          const int row = r0 + g + 8 * h;
          if (row >= p.Np) continue;
          const int pm = pm_of[row];  // (k, j) -> j*m + k
          const float inv = w.run_sum[h] == 0.0f ? 0.0f : 1.0f / w.run_sum[h];  // empty block: zeros
          store_row<T, D>(aL_pm + (slot + pm) * p.d, w.acc_k, h, inv, p.d, lane);
          if (last) store_row<T, D>(Y_pm + (slot + pm) * p.dv, w.acc_v, h, inv, p.dv, lane);
          if (t == 0) {
            const float c_L = entropy_term(w, h);  // eq. (10); +inf for a block with no valid key
            bias_L[pm] = c_L * kLog2e;
            if (dump) p.c_L_pm[head0 + pm] = c_L;
          }
        }
      }
      __syncthreads();  // every warp's alpha_L, Y (global slot) and bias_L are written; K, V are dead

      // ---- 3. alpha_L (and Y) back from the slot (L2), position-major, into KA (and VY); Q again
      // if the R-update's values took its place.
      load_rows_async<T, D, kThreads>(KA, rows, p.d, aL_pm + slot * p.d, 0, p.Np, threadIdx.x);
      if (last) load_rows_async<T, D, kThreads>(VY, rows, p.dv, Y_pm + slot * p.dv, 0, p.Np, threadIdx.x);
      if (last && rt >= 2) load_padded(Qs, Qg, p.d);
      cp_async_commit();
      cp_async_wait<0>();
      __syncthreads();  // alpha_L (and Y, Q) are in shared memory for every warp

      // ---- 4. L-update, eq. (13): rows (l, j) position-major, columns alpha_L[k, j]. The last round
      // forms the output o = L Y (eq. (4)); the others only the normaliser lse_L, which becomes the
      // r_stats column bias in bias_R (the R-update of this round no longer needs it).
      for (int tile = warp; tile < tiles; tile += kWarps) {
        const int r0 = tile * kM, r_last = min(r0 + kM, p.Np) - 1;
        WarpRows<D> w;
        position_rows<Step::LUpdate>(w, p, geo, r0, g, [&](int row) { return row / p.m; });
        // q_(l,j) for position-major row j*m + l: padded row l*b + j (past N': a zero row).
        bind_rows<D>(w, [&](int r) { return Qs + padded_of[r0 + r] * kLd; }, lane);
        for (int c0 = r0 / p.m * p.m / kChunk * kChunk; c0 < (r_last / p.m + 1) * p.m; c0 += kChunk) {
          auto keys = [&](int c) { return KA + clamp(c0 + c) * kLd; };
          auto vals = [&](int c) { return VY + clamp(c0 + c) * kLd; };
          if (last) warp_chunk<T, Step::LUpdate, D, kChunk, true>(w, keys, vals, grp_m + c0, bias_L + c0, scale2, lane);
          else warp_chunk<T, Step::LUpdate, D, kChunk, false>(w, keys, vals, grp_m + c0, bias_L + c0, scale2, lane);
        }
        finish_l_update<T, D>(w, p, geo, valid_e, head, r0, last, dump, lane);
      }
      if (last) break;
      __syncthreads();  // the r_stats biases are in bias_R for every warp

      // ---- 5. r_stats of the next round, eq. (11): rows alpha_L[k, j] (KA, position-major), columns
      // q_(l,j) of position j (gathered from Qs), weights L_j[k, l] valid(l, j) = 2^(z - c_L log2 e)
      // with the column's lse_L in its bias. The mean query alpha_R / max(c_R, tiny) goes to row
      // (k, j) of VY, in the input dtype, as level 3's R-update rounds it.
      for (int tile = warp; tile < tiles; tile += kWarps) {
        const int r0 = tile * kM, r_last = min(r0 + kM, p.Np) - 1;
        WarpRows<D> w;
        position_rows<Step::RStats>(w, p, geo, r0, g, [&](int row) { return row / p.m; });
        bind_rows<D>(w, [&](int r) { return KA + (r0 + r) * kLd; }, lane);
        for (int c0 = r0 / p.m * p.m / kChunk * kChunk; c0 < (r_last / p.m + 1) * p.m; c0 += kChunk)
          warp_chunk<T, Step::RStats, D, kChunk, false>(
              w, [&](int c) { return Qs + padded_of[clamp(c0 + c)] * kLd; }, [&](int c) { return Qs; }, grp_m + c0,
              bias_R + c0, scale2, lane);
        finish_r_stats<T, D>(w, p, geo, r0, [&](int padded) { return VY + padded * kLd; }, lane);
      }
      __syncthreads();  // the mean queries are in VY for every warp; KA and bias_R are free again
    }
  }
}

template <class T, int D, bool kRounds>
void launch(const Problem& p, bool dump) {
  constexpr auto kernel = whole_head_kernel<T, D, kRounds>;
  const std::size_t bytes = head_shared_bytes(p.Np, D + kSkew, sizeof(T));
  const int heads = p.E * p.H;
  // Persistent: one CTA per resident slot (each owns scratch rows [slot N', slot N' + N'), which
  // the session's alpha_L_pm, Y_pm hold since the grid never exceeds the number of heads).
  const int resident = persistent_grid<kernel>(kThreads, bytes, heads);
  const int grid = dump ? heads : resident;
  kernel<<<grid, kThreads, bytes>>>(p, dump);
  CUDA_CHECK_LAUNCH("level4 whole_head_kernel");
}

bool fits(const Problem& p, int /*rounds: any T runs in the one launch*/) {
  static_assert(sizeof(__half) == sizeof(__nv_bfloat16), "one size for both tensor-core dtypes");
  return p.dtype != DType::F32 &&
         head_shared_bytes(p.Np, fused_dim(p.d, p.dv) + kSkew, sizeof(__half)) <= static_cast<std::size_t>(max_optin_shared());
}

void whole(const Problem& p, bool dump) {
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, float>) {
      throw InputError("CUDA level 4 runs fp16 and bf16 only");  // validate_session refuses it first
    } else {
      switch (fused_dim(p.d, p.dv)) {
        case 32: p.round > 1 ? launch<T, 32, true>(p, dump) : launch<T, 32, false>(p, dump); break;
        case 64: p.round > 1 ? launch<T, 64, true>(p, dump) : launch<T, 64, false>(p, dump); break;
        default: p.round > 1 ? launch<T, 128, true>(p, dump) : launch<T, 128, false>(p, dump); break;
      }
    }
  });
}

}  // namespace

LevelSteps level4_steps() {
  LevelSteps s = level3_steps();  // T >= 2 and heads too large for one CTA: level 3's kernels
  s.whole_fits = &fits;
  s.whole = &whole;
  return s;
}

}  // namespace monarch::cuda::detail
