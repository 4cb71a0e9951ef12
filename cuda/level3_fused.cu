// Level 3: the three steps of level 2, rebuilt so that scores, weights and accumulators never
// leave registers. Each step is one small "block-diagonal attention" over a sequence of rows:
//
//   step      rows r (64 per CTA)          columns c (keys, 64 per stage)   group G   sums (values)
//   r_update  mean query of padded (k,j)   keys of padded index c           b         alpha_L = R K, Y = R V   eq. (12)
//   l_update  q_(l,j), position-major      alpha_L[k, j], position-major    m         o = L Y                  eq. (13)
//   r_stats   alpha_L[k, j], pos.-major    q_(l,j), position-major          m         alpha_R = L (valid q)    eq. (11)
//
// A row only sees the columns of its own group (its block k for r_update, its position j for the
// other two), so a CTA's 64 rows may span several small groups (b = 16: four blocks per CTA), or a
// large group may span several CTAs (b = 256: four CTAs per block). Column chunks stream through a
// two-stage cp.async pipeline; within a chunk each warp computes its 16 x 64 score strip with
// mma.sync, applies the softmax to the fragments in registers (base 2, log2(e) folded into the
// score scale), and feeds the weights straight back into mma.sync as the A operand.
//
// Position-major intermediates. r_update writes alpha_L and Y in the input dtype at row j*m + k
// (not k*b + j), so that the m rows l_update and r_stats need for one position j are contiguous:
// their loads are whole 16-byte pieces, and the intermediates cost 2 bytes per element instead of
// level 2's 4. c_L is fp32, also position-major; lse_L (kept in Problem::lse_L) likewise. Traces
// convert them back to the block-major fp32 layout of the other levels (export_trace below).
//
// fp16 and bf16 only (tensor cores); d and d_v multiples of 8 (16-byte rows) up to kMaxDim.
#include <cfloat>
#include <cmath>

#include "fused_warp.cuh"
#include "harness.cuh"

namespace monarch::cuda::detail {
namespace {

using namespace fused;

constexpr int kWarps = 4;                // warps per CTA
constexpr int kThreads = 32 * kWarps;    // threads per CTA
constexpr int kRows = kM * kWarps;       // rows per CTA: one 16-row strip per warp
constexpr int kStages = 2;               // column chunks in flight: compute one while the next lands
constexpr int kMaxDim = 128;             // = max_head_dim(Level::Fused)

/// Columns per chunk: 32. A warp's score fragments cost kChunk / 2 registers per thread, and at
/// 64 columns the r_update kernel needed 173 registers, which held an SM to two CTAs (8 warps, too
/// few to hide the latency of mma.sync and ex2 chains: Nsight Compute, bench/NOTES.md "Level 3").
template <int D>
constexpr int chunk_cols() { return 32; }
/// CTAs per SM the kernels are compiled for (__launch_bounds__): four at D <= 64 caps registers at
/// 128 per thread, so 16 warps share an SM; two at D = 128, where the accumulators alone need 128.
template <int D>
constexpr int min_ctas() { return D > 64 ? 2 : 4; }


template <class T, int D, bool kVals>
struct Smem {
  static constexpr int kLd = D + kSkew;        // row stride of every tile (elements)
  static constexpr int kChunk = chunk_cols<D>();
  static constexpr std::size_t kRowsOff = 0;                                        // (kRows, D)   T
  static constexpr std::size_t kKeysOff = kRowsOff + sizeof(T) * kRows * kLd;       // (kStages, kChunk, D) T
  static constexpr std::size_t kValsOff = kKeysOff + sizeof(T) * kStages * kChunk * kLd;  // same, if kVals
  static constexpr std::size_t kGroupOff = kValsOff + (kVals ? sizeof(T) * kStages * kChunk * kLd : 0);  // (kStages, kChunk) int
  static constexpr std::size_t kBiasOff = kGroupOff + sizeof(int) * kStages * kChunk;  // (kStages, kChunk) float
  static constexpr std::size_t kBytes = kBiasOff + sizeof(float) * kStages * kChunk;
  static_assert(kKeysOff % kCopyBytes == 0 && kValsOff % kCopyBytes == 0 && kGroupOff % kCopyBytes == 0,
                "cp.async and ldmatrix need 16-byte aligned rows");
};

/// One CTA of one step: rows [r0, r0 + 64) of one head, every column chunk of the groups they touch.
/// kVals: r_update also forms Y (want_Y), l_update also forms o (want_O); r_stats never.
template <class T, Step kStep, int D, bool kVals>
__global__ void __launch_bounds__(kThreads, min_ctas<D>()) level3_kernel(Problem p, int tiles_per_head) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "tensor cores: fp16 or bf16");
  static_assert(D % kK == 0 && D <= kMaxDim, "D is whole k16 steps, at most kMaxDim (validate_session)");
  static_assert(kRows == kM * kWarps && kThreads == 32 * kWarps, "one 16-row strip per warp");
  static_assert(!(kStep == Step::RStats && kVals), "r_stats sums the keys themselves (valid q)");
  using S = Smem<T, D, kVals>;
  constexpr int kChunk = S::kChunk, kLd = S::kLd;

  extern __shared__ __align__(128) unsigned char smem[];
  T* rows_s = reinterpret_cast<T*>(smem + S::kRowsOff);
  T* keys_s = reinterpret_cast<T*>(smem + S::kKeysOff);
  T* vals_s = reinterpret_cast<T*>(smem + S::kValsOff);
  int* group_s = reinterpret_cast<int*>(smem + S::kGroupOff);
  float* bias_s = reinterpret_cast<float*>(smem + S::kBiasOff);

  const int head = blockIdx.x / tiles_per_head;
  const int r0 = (blockIdx.x % tiles_per_head) * kRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int G = kStep == Step::RUpdate ? p.b : p.m;  // rows and columns of one group
  const std::size_t stat0 = static_cast<std::size_t>(head) * p.Np;
  const int r_end = min(r0 + kRows, p.Np);
  const int c_beg = r0 / G * G, c_end = ((r_end - 1) / G + 1) * G;  // columns of the groups touched
  const int n_chunks = (c_end - c_beg + kChunk - 1) / kChunk;
  const T* Qh = static_cast<const T*>(p.Q);
  const std::uint8_t* valid_e = p.valid + static_cast<std::size_t>(head / p.H) * p.Np;  // valid(., .) of this batch element

  // ---- Row tile (kRows, D): the left operand of every score.
  if constexpr (kStep == Step::RUpdate) {
    if (p.round == 1) {  // eq. (14): L = I, so the mean query is q itself (zero at a pad)
      // Tile row r is padded row r0 + r, token r0 + r - off: tokens [0, N) are rows [off - r0, off + N - r0).
      load_rows_async<T, D, kThreads>(rows_s, kRows, p.d, Qh + static_cast<std::size_t>(head) * p.N * p.d,
                                      p.off - r0, p.off + p.N - r0);
    } else {  // eq. (12): mean query alpha_R / max(c_R, tiny), fp32 -> T (c_R = 0: a uniform row)
      for (int i = threadIdx.x; i < kRows * D / 2; i += kThreads) {
        const int r = i / (D / 2), c = i % (D / 2) * 2, row = r0 + r;
        float2 v = make_float2(0.0f, 0.0f);
        if (row < p.Np && c < p.d) {
          const float inv = 1.0f / fmaxf(p.c_R[stat0 + row], FLT_MIN);
          v = *reinterpret_cast<const float2*>(p.alpha_R + padded_row(p, head, row, p.d) + c);
          v.x *= inv, v.y *= inv;
        }
        *reinterpret_cast<std::uint32_t*>(rows_s + r * kLd + c) = pack2<T>(v.x, v.y);
      }
    }
  } else if constexpr (kStep == Step::LUpdate) {  // q_(l,j) at position-major row j*m + l
    load_tile_async<T, D, kThreads>(rows_s, kRows, p.d, Qh, [&](int r) -> const T* {
      const int rr = r0 + r;
      return rr < p.Np ? token_row<T>(p, p.Q, head, rr % p.m * p.b + rr / p.m, p.d) : nullptr;
    });
  } else {  // r_stats: alpha_L[k, j] at position-major row j*m + k
    load_rows_async<T, D, kThreads>(rows_s, kRows, p.d, static_cast<const T*>(p.alpha_L_pm) + (stat0 + r0) * p.d, 0,
                                    p.Np - r0);
  }

  // ---- Column chunk c0 .. c0 + kChunk into stage s: keys, values, and each column's group and bias.
  auto load_chunk = [&](int c0, int s) {
    T* keys = keys_s + s * kChunk * kLd;
    T* vals = vals_s + s * kChunk * kLd;
    auto in = [&](int c) { return c0 + c < c_end; };
    if constexpr (kStep == Step::RUpdate) {  // keys k_(k,i) and values v_(k,i): padded index c
      // Chunk row c is token c0 + c - off, kept while a token and inside the groups (c0 + c < c_end).
      const int lo = p.off - c0, hi = min(p.off + p.N, c_end) - c0;
      load_rows_async<T, D, kThreads>(keys, kChunk, p.d, static_cast<const T*>(p.K) + static_cast<std::size_t>(head) * p.N * p.d,
                                      lo, hi);
      if constexpr (kVals)
        load_rows_async<T, D, kThreads>(vals, kChunk, p.dv,
                                        static_cast<const T*>(p.V) + static_cast<std::size_t>(head) * p.N * p.dv, lo, hi);
    } else if constexpr (kStep == Step::LUpdate) {  // alpha_L[k, j] and Y[k, j]: position-major c
      load_rows_async<T, D, kThreads>(keys, kChunk, p.d, static_cast<const T*>(p.alpha_L_pm) + (stat0 + c0) * p.d, 0,
                                      c_end - c0);
      if constexpr (kVals)
        load_rows_async<T, D, kThreads>(vals, kChunk, p.dv, static_cast<const T*>(p.Y_pm) + (stat0 + c0) * p.dv, 0,
                                        c_end - c0);
    } else {  // r_stats: q_(l,j) at position-major c = j*m + l
      load_tile_async<T, D, kThreads>(keys, kChunk, p.d, Qh, [&](int c) -> const T* {
        const int cc = c0 + c;
        return in(c) ? token_row<T>(p, p.Q, head, cc % p.m * p.b + cc / p.m, p.d) : nullptr;
      });
    }
    for (int c = threadIdx.x; c < kChunk; c += kThreads) {
      const int cc = c0 + c;
      int grp = kNoGroup;
      float bias = INFINITY;  // log2-domain offset subtracted from the column's score; +inf masks it
      if (cc < c_end) {
        grp = cc / G;
        if constexpr (kStep == Step::RUpdate) bias = valid_e[cc] ? 0.0f : INFINITY;
        else if constexpr (kStep == Step::LUpdate) bias = p.c_L_pm[stat0 + cc] * kLog2e;  // +inf: empty block
        else {
          const int padded = cc % p.m * p.b + cc / p.m;
          bias = valid_e[padded] ? p.lse_L[stat0 + cc] * kLog2e : INFINITY;
        }
      }
      group_s[s * kChunk + c] = grp;
      bias_s[s * kChunk + c] = bias;
    }
  };

  load_chunk(c_beg, 0);
  cp_async_commit();

  // This warp's rows and the columns its groups own; this thread's two rows (g and g + 8).
  const int w0 = r0 + warp * kM, w_end = min(w0 + kM, p.Np);
  const int wc_beg = w0 < p.Np ? w0 / G * G : 0, wc_end = w0 < p.Np ? ((w_end - 1) / G + 1) * G : 0;
  WarpRows<D> w;
  for (int h = 0; h < 2; ++h) {
    const int row = w0 + g + 8 * h;
    w.row_group[h] = row < p.Np ? row / G : kNoRow;
    if constexpr (kStep == Step::RStats) w.row_bias[h] = row < p.Np ? p.c_L_pm[stat0 + row] * kLog2e : INFINITY;
  }
  const float scale2 = p.tau * kLog2e;  // scores in base 2: tau s log2(e)

  for (int i = 0; i < n_chunks; ++i) {
    const int c0 = c_beg + i * kChunk, s = i % kStages;
    if (i + 1 < n_chunks) {
      load_chunk(c0 + kChunk, (i + 1) % kStages);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();  // chunk i (and, at i = 0, the row tile) is in shared memory for every thread

    if (i == 0) load_rows<D>(w.qa, [&](int r) { return rows_s + (warp * kM + r) * kLd; }, lane);
    if (w0 < p.Np && c0 < wc_end && c0 + kChunk > wc_beg) {  // this warp has columns in the chunk
      const T* keys = keys_s + s * kChunk * kLd;
      const T* vals = vals_s + s * kChunk * kLd;
      warp_chunk<T, kStep, D, kChunk, kVals>(
          w, [&](int c) { return keys + c * kLd; }, [&](int c) { return vals + c * kLd; }, group_s + s * kChunk,
          bias_s + s * kChunk, scale2, lane);
    }
    __syncthreads();  // every warp is done with stage s before the next iteration refills it
  }

  // ---- Epilogue: this thread's two rows.
  if constexpr (kStep == Step::RStats) finish_row_sums(w);
  for (int h = 0; h < 2; ++h) {
    const int row = w0 + g + 8 * h;
    if (row >= p.Np) continue;
    if constexpr (kStep == Step::RUpdate) {
      // R = w / Z. A block with no valid key (Z = 0) has no R row: alpha_L = Y = 0, c_L = +inf.
      const int k = row / p.b, j = row % p.b;
      const std::size_t pm = stat0 + static_cast<std::size_t>(j) * p.m + k;
      const float inv = w.run_sum[h] == 0.0f ? 0.0f : 1.0f / w.run_sum[h];
      store_row<T, D>(static_cast<T*>(p.alpha_L_pm) + pm * p.d, w.acc_k, h, inv, p.d, lane);
      if constexpr (kVals) store_row<T, D>(static_cast<T*>(p.Y_pm) + pm * p.dv, w.acc_v, h, inv, p.dv, lane);
      if (t == 0) p.c_L_pm[pm] = entropy_term(w, h);
    } else if constexpr (kStep == Step::LUpdate) {
      // Some block of every position has a valid key, so Z > 0.
      if (t == 0) p.lse_L[stat0 + row] = log_normaliser(w, h);
      if constexpr (kVals) {
        const int n = row % p.m * p.b + row / p.m - p.off;  // eq. (1): pads are dropped
        if (n < 0 || n >= p.N) continue;
        T* O = static_cast<T*>(p.O) + (static_cast<std::size_t>(head) * p.N + n) * p.dv;
        store_row<T, D>(O, w.acc_v, h, 1.0f / w.run_sum[h], p.dv, lane);
      }
    } else {
      const int padded = row % p.m * p.b + row / p.m;  // position-major j*m + k -> block-major k*b + j
      float* aR = p.alpha_R + padded_row(p, head, padded, p.d);
      for (int dt = 0; dt < D / kN; ++dt) {
        const int c = dt * kN + 2 * t;
        if (c < p.d) *reinterpret_cast<float2*>(aR + c) = make_float2(w.acc_k[dt][2 * h], w.acc_k[dt][2 * h + 1]);
      }
      if (t == 0) p.c_R[stat0 + padded] = w.run_sum[h];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Launchers.

template <class T, Step kStep, int D, bool kVals>
void launch(const Problem& p) {
  using S = Smem<T, D, kVals>;
  auto kernel = level3_kernel<T, kStep, D, kVals>;
  static const bool raised = [&] {  // once per instantiation: the default limit is 48 KB, and the
    // default carveout may leave less shared memory than min_ctas<D>() CTAs need
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(S::kBytes)));
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
    return true;
  }();
  (void)raised;
  const int tiles = (p.Np + kRows - 1) / kRows;
  const long long ctas = static_cast<long long>(tiles) * p.E * p.H;
  kernel<<<static_cast<unsigned>(ctas), kThreads, S::kBytes>>>(p, tiles);
  CUDA_CHECK_LAUNCH("level3_kernel");
}

template <Step kStep, bool kVals>
void dispatch(const Problem& p) {
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, float>) {
      throw InputError("CUDA level 3 runs fp16 and bf16 only");  // validate_session refuses it first
    } else {
      switch (fused_dim(p.d, p.dv)) {
        case 32: launch<T, kStep, 32, kVals>(p); break;
        case 64: launch<T, kStep, 64, kVals>(p); break;
        default: launch<T, kStep, kMaxDim, kVals>(p); break;
      }
    }
  });
}

void r_stats(const Problem& p) { dispatch<Step::RStats, false>(p); }
void r_update(const Problem& p, bool want_Y) {
  if (want_Y) dispatch<Step::RUpdate, true>(p);
  else dispatch<Step::RUpdate, false>(p);
}
void l_update(const Problem& p, bool want_O) {
  if (want_O) dispatch<Step::LUpdate, true>(p);
  else dispatch<Step::LUpdate, false>(p);
}

/// Traces: position-major dtype alpha_L, Y and fp32 c_L -> the block-major fp32 arrays of Problem.
/// One thread per (head, padded row k*b + j, column).
template <class T>
__global__ void export_kernel(Problem p) {
  const int head = blockIdx.y;
  const int w = p.d + p.dv + 1;  // alpha_L columns, Y columns, c_L
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::size_t>(p.Np) * w) return;
  const int row = static_cast<int>(i / w), c = static_cast<int>(i % w);
  const std::size_t pm = static_cast<std::size_t>(head) * p.Np + static_cast<std::size_t>(row % p.b) * p.m + row / p.b;
  if (c < p.d)
    p.alpha_L[padded_row(p, head, row, p.d) + c] = to_float(static_cast<const T*>(p.alpha_L_pm)[pm * p.d + c]);
  else if (c < p.d + p.dv)
    p.Y[padded_row(p, head, row, p.dv) + c - p.d] = to_float(static_cast<const T*>(p.Y_pm)[pm * p.dv + c - p.d]);
  else
    p.c_L[static_cast<std::size_t>(head) * p.Np + row] = p.c_L_pm[pm];
}

void export_trace(const Problem& p) {
  constexpr int kExportThreads = 256;
  const std::size_t n = static_cast<std::size_t>(p.Np) * (p.d + p.dv + 1);
  const dim3 grid(blocks_for(n, kExportThreads), p.E * p.H);
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    export_kernel<T><<<grid, kExportThreads>>>(p);
    CUDA_CHECK_LAUNCH("level3 export_kernel");
  });
}

}  // namespace

LevelSteps level3_steps() {
  LevelSteps s{&r_stats, &r_update, &l_update};
  s.export_trace = &export_trace;
  s.round1_reads_q = true;
  return s;
}

}  // namespace monarch::cuda::detail
