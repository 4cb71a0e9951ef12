// The tile that levels 3, 5 and 7 share: one CTA's 64 rows of one step (r_update, l_update or r_stats)
// of one head, as a device function. Level 3 launches it once per CTA and step; level 5 calls it in
// a persistent loop over every step of every round; level 7 launches it like level 3, with its
// products on the warpgroup (kWg). The algorithm is described in level3_fused.cu.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "fused_warp.cuh"
#include "fused_warpgroup.cuh"
#include "harness.cuh"

namespace monarch::cuda::detail::fused {


constexpr int kWarps = 4;                // warps per CTA
constexpr int kThreads = 32 * kWarps;    // threads per CTA
constexpr int kRows = kM * kWarps;       // rows per CTA: one 16-row strip per warp
constexpr int kStages = 2;               // column chunks in flight: compute one while the next lands
constexpr int kMaxDim = 128;             // = max_head_dim(Level::Fused)

/// Columns per chunk. A warp's score fragments cost kChunk / 2 registers per thread; each chunk also
/// costs two barriers, the softmax's quad reductions and a rescale vote, whatever its width. 64
/// columns (step 15: -5 to -9% against 32 at N >= 4096), except where 64 would not fit the
/// registers: the R-update without values (level 3 compiles it for four CTAs per SM, below) and
/// any R-update at D = 128. (Step 4: at 173 registers a 64-column R-update held an SM to two CTAs,
/// too few warps to hide the mma.sync and ex2 chains.) Levels 3 and 5 use the same widths, so their
/// sums run in the same order and their outputs are bit-identical.
template <int D, Step kStep, bool kVals>
constexpr int chunk_cols() { return kStep != Step::RUpdate || (kVals && D <= 64) ? 64 : 32; }
/// CTAs per SM a level-3 kernel is compiled for (__launch_bounds__), which caps its registers: four
/// at D <= 64 (128 registers, 16 warps per SM), except the R-update with values, whose two D-wide
/// accumulators and 64 columns of scores need ~166 (three CTAs); two at D = 128, where the
/// accumulators alone need 128.
template <int D, Step kStep, bool kVals>
constexpr int min_ctas() { return D > 64 ? 2 : kStep == Step::RUpdate && kVals ? 3 : 4; }

/// The CTA's shared tiles. kWg (level 7): rows of exactly D = 64 elements in the 128-byte swizzle
/// that wgmma reads (wgmma_sm90.cuh), every tile 1024-byte aligned, 64-column chunks throughout (the
/// warpgroup products hold no B fragments, so the registers that kept level 3's R-update without
/// values at 32 columns are free; 128 columns measured slower, with fewer CTAs per SM: bench/NOTES.md
/// step 17 (b)); otherwise skewed rows for ldmatrix.
/// Level 7 keeps a third stage of every tile its sums read: chunk i - 1's sums still run on the
/// tensor cores while chunk i + 1 lands (step 23), so the stage the copies refill must be neither.
/// kOneChunk (level 7, step 31): every tile of the launch has exactly one chunk, so one stage of each.
/// kResident (level 8's L-update): the keys and values already lie in shared memory (the cluster's
/// R-update put them there), so no stage of keys, and one of values, where the epilogue stages o.
template <class T, int D, Step kStep, bool kVals, bool kWg = false, bool kOneChunk = false, bool kResident = false>
struct Smem {
  static constexpr int kLd = kWg ? D : D + kSkew;  // row stride of every tile (elements)
  static constexpr int kChunk = kWg ? 64 : chunk_cols<D, kStep, kVals>();
  static constexpr int kColStages = kOneChunk ? 1 : kStages;  // groups and biases
  static constexpr int kKeyStages = kResident ? 0 : kOneChunk ? 1 : kWg && kStep != Step::LUpdate ? kStages + 1 : kStages;  // keys are summed
  static constexpr int kValStages = kResident || kOneChunk ? 1 : kWg ? kStages + 1 : kStages;  // values always are
  static constexpr std::size_t kRowsOff = 0;                                        // (kRows, D)   T
  static constexpr std::size_t kKeysOff = kRowsOff + sizeof(T) * kRows * kLd;       // (kKeyStages, kChunk, D) T
  static constexpr std::size_t kValsOff = kKeysOff + sizeof(T) * kKeyStages * kChunk * kLd;  // (kValStages, kChunk, D), if kVals
  static constexpr std::size_t kGroupOff = kValsOff + (kVals ? sizeof(T) * kValStages * kChunk * kLd : 0);  // (kColStages, kChunk) int
  static constexpr std::size_t kBiasOff = kGroupOff + sizeof(int) * kColStages * kChunk;  // (kColStages, kChunk) float
  static constexpr std::size_t kBytes = kBiasOff + sizeof(float) * kColStages * kChunk;
  static_assert(!kOneChunk || kWg, "only level 7 launches one-chunk tiles");
  static_assert(!kResident || (kWg && kStep == Step::LUpdate && kVals), "only level 8's L-update reads resident tiles");
  static_assert(!kWg || ((kResident || kKeyStages * kChunk >= kRows) && kValStages * kChunk >= kRows),
                "level 7 stages its output rows (kRows, D) in the key and value stages (the L-update: values only)");
  static_assert(kKeysOff % kCopyBytes == 0 && kValsOff % kCopyBytes == 0 && kGroupOff % kCopyBytes == 0,
                "cp.async and ldmatrix need 16-byte aligned rows");
  static_assert(!kWg || (D == 64 && kKeysOff % wgmma::kAtomBytes == 0 && kValsOff % wgmma::kAtomBytes == 0 &&
                         kChunk * kLd * sizeof(T) % wgmma::kAtomBytes == 0),
                "wgmma's swizzled tiles: 128-byte rows, every tile and stage 1024-byte aligned");
};

/// Lets `kernel` take `bytes` of dynamic shared memory (the default limit is 48 KB) and asks for the
/// largest shared-memory carveout, which the default may not give: without it fewer CTAs than
/// __launch_bounds__ promised would fit an SM. The launchers of levels 3, 5 and 7 call it once per
/// kernel instantiation.
template <class Kernel>
void allow_shared_bytes(Kernel kernel, std::size_t bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
}

/// Shared bytes that hold any step's tile (level 5 runs every step in one kernel).
template <class T, int D>
constexpr std::size_t any_step_bytes() {
  return std::max({Smem<T, D, Step::RUpdate, true>::kBytes, Smem<T, D, Step::LUpdate, true>::kBytes,
                   Smem<T, D, Step::RStats, false>::kBytes});
}

/// One CTA's work in one step: rows [r0, r0 + kRows) (r0 = tile kRows) of one head, every column
/// chunk of the groups they touch, in round `round` (1: the R-update reads q itself, eq. (14)).
/// kVals: r_update also forms Y (want_Y), l_update also forms o (want_O); r_stats never.
/// Every thread of the CTA calls it, tid = threadIdx.x (level 5 passes a copy the compiler cannot
/// hoist out of its loop); smem holds Smem<T, D, kVals>::kBytes. It ends with a barrier
/// after its last use of shared memory, so the caller may refill smem at once (level 5 does).
/// Intermediates written by other CTAs are read through L2 (__ldcg, cp.async.cg), never a possibly
/// stale L1 line: level 5 reads them in the same launch that wrote them.
/// kWg (level 7): the products run on the warpgroup (issue_scores, issue_sums) from swizzled tiles,
/// and smem must be 1024-byte aligned. Its epilogue stages the rows it writes in shared memory and
/// reads them back after its last barrier: level 7 runs one tile per CTA, so nothing refills it (level
/// 8 runs several in a row, with a barrier between them).
/// wait_for_inputs: level 7 passes its wait for the previous kernel (programmatic dependent launch),
/// called before the tile reads anything a kernel of the call writes; the L-update issues its query
/// rows first (step 28). Levels 3 and 5 pass nothing.
/// kOneChunk (level 7's R-update where b divides kRows, step 31): the caller promises that every tile
/// spans exactly one chunk, so the tile keeps one stage of everything (Smem) and no chunk loop.
/// cluster (level 8): where alpha_L, c_L and Y live when one thread-block cluster runs the whole head
/// (cluster_head.cuh). Its R-update sends them to the shared memory of the CTA whose L-update reads
/// them, and its L-update reads them there instead of copying chunks in; with cluster.to_global
/// (traces) they also go to global memory, as for the other levels. Every other level passes NoCluster.
struct NoWait {
  __device__ void operator()() const {}
};
struct NoCluster {
  static constexpr bool kOn = false;
  static constexpr bool to_global = true;  // the intermediates go to global memory (level 8: for traces only)
};
template <class T, Step kStep, int D, bool kVals, bool kWg = false, bool kOneChunk = false, class WaitForInputs = NoWait,
          class Cluster = NoCluster>
__device__ __forceinline__ void fused_tile(const Problem& p, int head, int tile, int round, unsigned char* smem,
                                           int tid, WaitForInputs wait_for_inputs = {}, Cluster cluster = {}) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "tensor cores: fp16 or bf16");
  static_assert(D % kK == 0 && D <= kMaxDim, "D is whole k16 steps, at most kMaxDim (validate_session)");
  static_assert(kRows == kM * kWarps && kThreads == 32 * kWarps, "one 16-row strip per warp");
  static_assert(!(kStep == Step::RStats && kVals), "r_stats sums the keys themselves (valid q)");
  static_assert(!Cluster::kOn || (kWg && kVals && kStep != Step::RStats), "level 8 runs T = 1: both updates, with values");
  constexpr bool kResident = Cluster::kOn && kStep == Step::LUpdate;  // keys and values already in shared memory
  using S = Smem<T, D, kStep, kVals, kWg, kOneChunk, kResident>;
  constexpr int kChunk = S::kChunk, kLd = S::kLd;

  T* rows_s = reinterpret_cast<T*>(smem + S::kRowsOff);
  T* keys_s = reinterpret_cast<T*>(smem + S::kKeysOff);
  T* vals_s = reinterpret_cast<T*>(smem + S::kValsOff);
  int* group_s = reinterpret_cast<int*>(smem + S::kGroupOff);
  float* bias_s = reinterpret_cast<float*>(smem + S::kBiasOff);

  const int r0 = tile * kRows;
  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int G = kStep == Step::RUpdate ? p.b : p.m;  // rows and columns of one group
  const FastDiv& group_of = kStep == Step::RUpdate ? p.div_b : p.div_m;  // x / G (step 20)
  const std::size_t stat0 = static_cast<std::size_t>(head) * p.Np;
  const int r_end = min(r0 + kRows, p.Np);
  const int c_beg = group_of.div(r0) * G, c_end = (group_of.div(r_end - 1) + 1) * G;  // columns of the groups touched
  const int n_chunks = (c_end - c_beg + kChunk - 1) / kChunk;
  if (kOneChunk && n_chunks != 1) __trap();  // the launcher chose the one-chunk tile wrongly: one stage would be overrun
  const T* Qh = static_cast<const T*>(p.Q);
  const std::uint8_t* valid_e = p.valid + static_cast<std::size_t>(head / p.H) * p.Np;  // valid(., .) of this batch element
  // Element c of row r of a tile, and where the loaders put each 16-byte piece.
  auto at = [](T* tile, int r, int c) { return kWg ? tile + wgmma::swizzled(r, c) : tile + r * kLd + c; };
  using Place = std::conditional_t<kWg, SwizzledRows, SkewedRows<T, D>>;
  auto load_rows = [&](T* dst, int rows, int width, const T* base, int lo, int hi) {
    load_rows_async<T, D, kThreads>(dst, Place{}, rows, width, base, lo, hi, tid);
  };
  auto load_tile = [&](T* dst, int rows, int width, auto src) {
    load_tile_async<T, D, kThreads>(dst, rows, width, Qh, src, tid, Place{});
  };

  // Chunk i's stages: its keys, its values, and its groups and biases (columns). Level 8's L-update
  // reads its keys and values where they already are: rows c_beg + i kChunk.. of the resident tiles.
  auto keys_of = [&](int i) -> T* {  // (kChunk, D)
    if constexpr (kResident) return cluster.template alpha_L_row<T>(c_beg + i * kChunk);
    else return keys_s + i % S::kKeyStages * kChunk * kLd;
  };
  auto vals_of = [&](int i) -> T* {  // (kChunk, D)
    if constexpr (kResident) return cluster.template Y_row<T>(c_beg + i * kChunk);
    else return vals_s + i % S::kValStages * kChunk * kLd;
  };

  // ---- Column chunk c0 .. c0 + kChunk, chunk i: keys and values (cp.async).
  auto copy_chunk = [&](int c0, int i) {
    T* keys = keys_of(i);
    T* vals = vals_of(i);
    auto in = [&](int c) { return c0 + c < c_end; };
    if constexpr (kStep == Step::RUpdate) {  // keys k_(k,i) and values v_(k,i): padded index c
      // Chunk row c is token c0 + c - off, kept while a token and inside the groups (c0 + c < c_end).
      const int lo = p.off - c0, hi = min(p.off + p.N, c_end) - c0;
      load_rows(keys, kChunk, p.d, static_cast<const T*>(p.K) + static_cast<std::size_t>(head) * p.N * p.d, lo, hi);
      if constexpr (kVals)
        load_rows(vals, kChunk, p.dv, static_cast<const T*>(p.V) + static_cast<std::size_t>(head) * p.N * p.dv, lo, hi);
    } else if constexpr (kStep == Step::LUpdate) {  // alpha_L[k, j] and Y[k, j]: position-major c
      if constexpr (!kResident) {
        load_rows(keys, kChunk, p.d, static_cast<const T*>(p.alpha_L_pm) + (stat0 + c0) * p.d, 0, c_end - c0);
        if constexpr (kVals) load_rows(vals, kChunk, p.dv, static_cast<const T*>(p.Y_pm) + (stat0 + c0) * p.dv, 0, c_end - c0);
      }
    } else {  // r_stats: q_(l,j) at position-major c = j*m + l
      load_tile(keys, kChunk, p.d, [&](int c) -> const T* {
        const int cc = c0 + c;
        return in(c) ? token_row<T>(p, p.Q, head, padded_of_pm(p, cc), p.d) : nullptr;
      });
    }
  };

  // ---- Column c0 + tid's group and bias, for threads tid < kChunk: read from global memory when the
  // chunk's copies are issued, published to shared memory a chunk of work later, so that the loads'
  // latency passes under that work. (Step 16: published at once, they stalled the warps that read
  // them, and the barrier made every warp wait for those.)
  struct Column {
    int grp = kNoGroup;     // kNoGroup past the groups, or for a thread past the chunk: masked
    std::uint8_t valid = 0; // valid(.): a valid key (R-update), a valid query (r_stats); 1 in the L-update,
                            // where an empty block has c_L = +inf
    float raw = 0.0f;       // c_L (L-update) or lse_L (r_stats) of the column
  };
  static_assert(kChunk <= kThreads, "one column per thread");
  // The loads are unconditional (a thread past the chunk's columns reads column c0's entries again)
  // and their results stay raw until publish_column: no instruction here uses them, so the warps
  // do not wait for them before the barrier (step 24: a load in a branch, or turned into a bool at
  // once, made every CTA wait one global-memory latency per chunk at the top of the loop).
  auto read_column = [&](int c0) {
    Column col;
    const int cc = c0 + tid;
    const bool in = tid < kChunk && cc < c_end;
    const int at = in ? cc : c0;  // c0 < c_end: a chunk starts inside the groups
    col.grp = in ? group_of.div(at) : kNoGroup;
    if constexpr (kStep == Step::RUpdate) {
      col.valid = valid_e[at];
    } else if constexpr (kStep == Step::LUpdate) {
      col.valid = 1;
      if constexpr (kResident) col.raw = cluster.c_L_at(at);
      else col.raw = __ldcg(p.c_L_pm + stat0 + at);
    } else {
      col.valid = valid_e[padded_of_pm(p, at)];
      col.raw = __ldcg(p.lse_L + stat0 + at);
    }
    return col;
  };
  // The bias is the log2-domain offset subtracted from the column's score; +inf masks the column.
  auto publish_column = [&](const Column& col, int s) {
    if (tid < kChunk) {
      group_s[s * kChunk + tid] = col.grp;
      bias_s[s * kChunk + tid] = col.grp != kNoGroup && col.valid != 0 ? col.raw * kLog2e : INFINITY;
    }
  };

  // The L-update's row tile: q_(l,j) at position-major row j*m + l.
  auto load_queries = [&] {
    load_tile(rows_s, kRows, p.d, [&](int r) -> const T* {
      const int rr = r0 + r;
      return rr < p.Np ? token_row<T>(p, p.Q, head, padded_of_pm(p, rr), p.d) : nullptr;
    });
  };
  // Level 7's L-update (step 28) issues its query rows before it waits for the R-update: q is an input
  // of the call, which no kernel writes, and every kernel before the R-update had completed when the
  // R-update let this kernel start. So a CTA that starts early, during the R-update's last wave,
  // finds only alpha_L, Y and c_L, fresh in L2, left to wait for.
  constexpr bool kRowsFirst = kWg && kStep == Step::LUpdate;
  if constexpr (kRowsFirst) load_queries();
  wait_for_inputs();
  copy_chunk(c_beg, 0);
  const Column first = read_column(c_beg);
  // ---- Row tile (kRows, D): the left operand of every score, after chunk 0 is on its way.
  if constexpr (kStep == Step::RUpdate) {
    if (round == 1) {  // eq. (14): L = I, so the mean query is q itself (zero at a pad)
      // Tile row r is padded row r0 + r, token r0 + r - off: tokens [0, N) are rows [off - r0, off + N - r0).
      load_rows(rows_s, kRows, p.d, Qh + static_cast<std::size_t>(head) * p.N * p.d, p.off - r0, p.off + p.N - r0);
    } else {  // eq. (12): mean query alpha_R / max(c_R, tiny), fp32 -> T (c_R = 0: a uniform row)
      // Every load is issued before the first is used, so their latencies overlap each other and
      // chunk 0's cp.async: a load-use loop here left the warps idle once the R-update with values
      // ran three CTAs per SM instead of four (step 15: T = 2 got 4-8% slower until this).
      constexpr int kPairs = kRows * D / 2 / kThreads;  // (row, column pair) items per thread
      static_assert(kRows * D / 2 % kThreads == 0, "whole items per thread");
      float2 v[kPairs];
      float c_R[kPairs];
      #pragma unroll
      for (int k = 0; k < kPairs; ++k) {
        const int i = tid + k * kThreads, r = i / (D / 2), c = i % (D / 2) * 2, row = r0 + r;
        v[k] = make_float2(0.0f, 0.0f);
        c_R[k] = 1.0f;
        if (row < p.Np && c < p.d) {
          c_R[k] = __ldcg(p.c_R + stat0 + row);
          v[k] = __ldcg(reinterpret_cast<const float2*>(p.alpha_R + padded_row(p, head, row, p.d) + c));
        }
      }
      #pragma unroll
      for (int k = 0; k < kPairs; ++k) {
        const int i = tid + k * kThreads, r = i / (D / 2), c = i % (D / 2) * 2;
        const float inv = 1.0f / fmaxf(c_R[k], FLT_MIN);
        *reinterpret_cast<std::uint32_t*>(at(rows_s, r, c)) = pack2<T>(v[k].x * inv, v[k].y * inv);
      }
    }
  } else if constexpr (kStep == Step::LUpdate) {
    if constexpr (!kRowsFirst) load_queries();
  } else {  // r_stats: alpha_L[k, j] at position-major row j*m + k
    load_rows(rows_s, kRows, p.d, static_cast<const T*>(p.alpha_L_pm) + (stat0 + r0) * p.d, 0, p.Np - r0);
  }

  cp_async_commit();  // chunk 0 and the row tile: the first wait below covers both
  publish_column(first, 0);

  // This warp's rows and the columns its groups own; this thread's two rows (g and g + 8).
  const int w0 = r0 + warp * kM, w_end = min(w0 + kM, p.Np);
  const int wc_beg = w0 < p.Np ? group_of.div(w0) * G : 0, wc_end = w0 < p.Np ? (group_of.div(w_end - 1) + 1) * G : 0;
  WarpRows<D> w;
  #pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = w0 + g + 8 * h;
    w.row_group[h] = row < p.Np ? group_of.div(row) : kNoRow;
    if constexpr (kStep == Step::RStats) w.row_bias[h] = row < p.Np ? __ldcg(p.c_L_pm + stat0 + row) * kLog2e : INFINITY;
  }
  const float scale2 = p.tau * kLog2e;  // scores in base 2: tau s log2(e)
  if constexpr (!kWg) bind_rows<D>(w, [&](int r) { return rows_s + (warp * kM + r) * kLd; }, lane);

  // Level 7 (step 23): chunk i - 1's sums are issued right after chunk i's scores, so they run on
  // the tensor cores while the warps turn chunk i's scores into weights (FlashAttention-3's
  // intra-warpgroup overlap); wa holds chunk i - 1's packed weights until they have landed.
  constexpr bool kSums = kStep != Step::LUpdate || kVals;  // (an L-update of an early round: lse_L only)
  std::uint32_t wa[kChunk / kK][4];                        // (16, kChunk) T pairs: chunk i - 1's weights

  // Chunk i; first: i == 0, a compile-time flag so that level 7 peels it (below).
  auto chunk = [&](int i, auto first) {
    const int c0 = c_beg + i * kChunk, s = i % S::kColStages;
    const bool more = !kOneChunk && i + 1 < n_chunks;
    Column next;
    if constexpr (kWg) {
      // wgmma reads shared memory through the async proxy: this thread's cp.async pieces of chunk i
      // (and, at i = 0, its stores of mean queries) are made visible to it before the barrier. The
      // fence is a memory barrier that waits for this thread's outstanding loads, so chunk i + 1's
      // column loads are issued after it, not before (step 18); its copies land during chunk i's work.
      // They refill the stages chunk i - 2 used: its sums landed before the last barrier.
      cp_async_wait<0>();
      wgmma::fence_shared_for_async();
      if (more) {
        copy_chunk(c0 + kChunk, i + 1);
        next = read_column(c0 + kChunk);
        cp_async_commit();
      }
    } else if (more) {
      copy_chunk(c0 + kChunk, i + 1);
      next = read_column(c0 + kChunk);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();  // chunk i (and, at i = 0, the row tile) is in shared memory for every thread

    if constexpr (kWg) {  // the whole warpgroup: rows outside the chunk's groups are masked to weight 0
      float sc[kChunk / kN][4];  // (16, kChunk) this warp's scores of chunk i, then its weights
      wgmma::fence();  // wa and the accumulators, written last iteration, are in place before wgmma reads them
      issue_scores<T, D, kChunk>(sc, smem_addr(rows_s), smem_addr(keys_of(i)));
      wgmma::commit();
      // No wgmma may sit in a runtime branch: ptxas closes a batch at the end of the branch and adds
      // an empty one after it, and a wait then covers chunk i - 1's sums too; and it serialises every
      // wgmma of a kernel when a path it cannot rule out reads an accumulator between issue and wait.
      constexpr bool kOverlap = kSums && !decltype(first)::value;
      if constexpr (kOverlap) {
        issue_sums<T, kStep, D, kChunk, kVals>(w, wa, smem_addr(keys_of(i - 1)), smem_addr(vals_of(i - 1)));
        wgmma::commit();
      }
      wgmma::wait<kOverlap ? 1 : 0>();  // the scores have landed; chunk i - 1's sums may still run
      wgmma::pin(sc);
      float corr[2];
      chunk_weights<kStep, D, kChunk>(w, sc, group_s + s * kChunk, bias_s + s * kChunk, scale2, lane, corr);
      if constexpr (kSums) {
        if constexpr (kOverlap) {
          wgmma::wait<0>();  // chunk i - 1's sums have landed: the accumulators may be rescaled, wa refilled
          pin_sums<kStep, kVals>(w, wa);
        }
        rescale_accumulators<kStep, D, kVals>(w, corr);
        pack_weights<T, kChunk>(wa, sc);
        pin_sums<kStep, kVals>(w, wa);  // rescaled and packed before the next iteration's fence
      }
    } else if (w0 < p.Np && c0 < wc_end && c0 + kChunk > wc_beg) {  // this warp has columns in the chunk
      const T* keys = keys_of(i);
      const T* vals = vals_of(i);
      warp_chunk<T, kStep, D, kChunk, kVals>(
          w, [&](int c) { return keys + c * kLd; }, [&](int c) { return vals + c * kLd; }, group_s + s * kChunk,
          bias_s + s * kChunk, scale2, lane);
    }
    // Stage i + 1 was last read in iteration i - 1, before its closing barrier.
    if (more) publish_column(next, (i + 1) % S::kColStages);
    __syncthreads();  // every warp is done with the stages the next iteration refills, and chunk
                      // i + 1's groups and biases are in shared memory
  };
  if constexpr (kWg) {  // chunk 0 has no earlier sums to overlap: peeled, so no wgmma sits in a branch
    chunk(0, std::true_type{});
    if constexpr (!kOneChunk)
      for (int i = 1; i < n_chunks; ++i) chunk(i, std::false_type{});
  } else {
    for (int i = 0; i < n_chunks; ++i) chunk(i, std::false_type{});
  }
  if constexpr (kWg && kSums) {  // the last chunk's sums, alone
    wgmma::fence();  // wa and the accumulators are in place
    issue_sums<T, kStep, D, kChunk, kVals>(w, wa, smem_addr(keys_of(n_chunks - 1)), smem_addr(vals_of(n_chunks - 1)));
    wgmma::commit();
    wgmma::wait<0>();  // the accumulators are readable
    pin_sums<kStep, kVals>(w, wa);
  }

  // ---- Epilogue: this thread's two rows.
  // Level 7 (step 26) stages the T rows it writes (alpha_L and Y, or o) in shared memory, in the
  // stages its last products read, and copies them out in whole 16-byte pieces below.
  constexpr bool kStaged = kWg && (kStep == Step::RUpdate || (kStep == Step::LUpdate && kVals));
  T* const out_k = keys_s;  // (kRows, D) swizzled: alpha_L rows (R-update)
  T* const out_v = vals_s;  // (kRows, D) swizzled: Y rows (R-update) or o rows (L-update), if kVals
  if constexpr (kStaged) __syncthreads();  // every warp is past its last wait, so no product still reads
                                           // the stages the staged rows overwrite
  auto row_of_pm = [&](int row) {  // padded row k b + j -> its position-major row j m + k, eq. (12)'s outputs
    const int k = p.div_b.div(row), j = row - k * p.b;
    return stat0 + static_cast<std::size_t>(j) * p.m + k;
  };
  if constexpr (kStep == Step::RStats) finish_row_sums(w);
  #pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = w0 + g + 8 * h, r = warp * kM + g + 8 * h;  // r: the row in the CTA's tile
    if (row >= p.Np) continue;
    if constexpr (kStep == Step::RUpdate) {
      // R = w / Z. A block with no valid key (Z = 0) has no R row: alpha_L = Y = 0, c_L = +inf.
      const std::size_t pm = row_of_pm(row);
      const float inv = w.run_sum[h] == 0.0f ? 0.0f : 1.0f / w.run_sum[h];
      if constexpr (kStaged) {
        stage_row<T, D>(out_k, r, w.acc_k, h, inv, lane);
        if constexpr (kVals) stage_row<T, D>(out_v, r, w.acc_v, h, inv, lane);
      } else {
        store_row<T, D>(static_cast<T*>(p.alpha_L_pm) + pm * p.d, w.acc_k, h, inv, p.d, lane);
        if constexpr (kVals) store_row<T, D>(static_cast<T*>(p.Y_pm) + pm * p.dv, w.acc_v, h, inv, p.dv, lane);
      }
      if (t == 0) {
        const float c_L = entropy_term(w, h);
        if constexpr (Cluster::kOn) cluster.put_c_L(static_cast<int>(pm - stat0), c_L);
        if (cluster.to_global) p.c_L_pm[pm] = c_L;
      }
    } else if constexpr (kStep == Step::LUpdate) {
      // Some block of every position has a valid key, so Z > 0. (Level 8 needs lse_L for traces only.)
      if (t == 0 && cluster.to_global) p.lse_L[stat0 + row] = log_normaliser(w, h);
      if constexpr (kStaged) {
        stage_row<T, D>(out_v, r, w.acc_v, h, 1.0f / w.run_sum[h], lane);  // a pad's row is dropped below
      } else if constexpr (kVals) {
        const int n = padded_of_pm(p, row) - p.off;  // eq. (1): pads are dropped
        if (n < 0 || n >= p.N) continue;
        T* O = static_cast<T*>(p.O) + (static_cast<std::size_t>(head) * p.N + n) * p.dv;
        store_row<T, D>(O, w.acc_v, h, 1.0f / w.run_sum[h], p.dv, lane);
      }
    } else {
      const int padded = padded_of_pm(p, row);  // position-major j*m + k -> block-major k*b + j
      float* aR = p.alpha_R + padded_row(p, head, padded, p.d);
      #pragma unroll
      for (int dt = 0; dt < D / kN; ++dt) {
        const int c = dt * kN + 2 * t;
        if (c < p.d) *reinterpret_cast<float2*>(aR + c) = make_float2(w.acc_k[dt][2 * h], w.acc_k[dt][2 * h + 1]);
      }
      if (t == 0) p.c_R[stat0 + padded] = w.run_sum[h];
    }
  }
  if constexpr (kStaged) {
    __syncthreads();  // every warp's rows are staged: each thread below copies rows other warps wrote
    // Piece pc of tile row r, r = tid / 8 + 16 i: eight threads per 128-byte row, 16 rows per pass.
    constexpr int kPieces = wgmma::kRowBytes / kCopyBytes, kRowsPerPass = kThreads / kPieces;
    static_assert(kThreads % kPieces == 0, "every thread keeps one piece of each row it copies");
    const int pc = tid % kPieces, rows = min(kRows, p.Np - r0);
    for (int r = tid / kPieces; r < rows; r += kRowsPerPass) {
      const int row = r0 + r;
      if constexpr (kStep == Step::RUpdate) {  // alpha_L[k, j], Y[k, j] at position-major row j m + k
        const std::size_t pm = row_of_pm(row);
        if constexpr (Cluster::kOn) cluster.put_pieces(static_cast<int>(pm - stat0), out_k, out_v, r, pc);
        if (cluster.to_global) {
          copy_staged_piece(static_cast<T*>(p.alpha_L_pm) + pm * p.d, out_k, r, pc, p.d);
          if constexpr (kVals) copy_staged_piece(static_cast<T*>(p.Y_pm) + pm * p.dv, out_v, r, pc, p.dv);
        }
      } else {  // o of token n, eq. (4); pads are dropped, eq. (1)
        const int n = padded_of_pm(p, row) - p.off;
        if (n < 0 || n >= p.N) continue;
        copy_staged_piece(static_cast<T*>(p.O) + (static_cast<std::size_t>(head) * p.N + n) * p.dv, out_v, r, pc, p.dv);
      }
    }
  }
}

}  // namespace monarch::cuda::detail::fused
