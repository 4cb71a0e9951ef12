// Level 3: the three steps of level 2, rebuilt so that scores, weights and accumulators never
// leave registers. Each step is one small "block-diagonal attention" over a sequence of rows:
//
//   step      rows r (64 per CTA)          columns c (keys, per stage)      group G   sums (values)
//   r_update  mean query of padded (k,j)   keys of padded index c           b         alpha_L = R K, Y = R V   eq. (12)
//   l_update  q_(l,j), position-major      alpha_L[k, j], position-major    m         o = L Y                  eq. (13)
//   r_stats   alpha_L[k, j], pos.-major    q_(l,j), position-major          m         alpha_R = L (valid q)    eq. (11)
//
// A row only sees the columns of its own group (its block k for r_update, its position j for the
// other two), so a CTA's 64 rows may span several small groups (b = 16: four blocks per CTA), or a
// large group may span several CTAs (b = 256: four CTAs per block). Column chunks stream through a
// two-stage cp.async pipeline (64 columns per chunk, 32 in an R-update without values or at d = 128:
// chunk_cols in fused_tile.cuh); within a chunk each warp computes its 16 x chunk score strip with
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
#include "fused_tile.cuh"

namespace monarch::cuda::detail {
namespace {

using namespace fused;

/// One CTA of one step: tile blockIdx.x % tiles_per_head of head blockIdx.x / tiles_per_head.
template <class T, Step kStep, int D, bool kVals>
__global__ void __launch_bounds__(kThreads, min_ctas<D, kStep, kVals>()) level3_kernel(Problem p, int tiles_per_head) {
  extern __shared__ __align__(128) unsigned char smem[];
  fused_tile<T, kStep, D, kVals>(p, blockIdx.x / tiles_per_head, blockIdx.x % tiles_per_head, p.round, smem,
                                 threadIdx.x);
}

// ---------------------------------------------------------------------------------------------
// Launchers.

template <class T, Step kStep, int D, bool kVals>
void launch(const Problem& p) {
  using S = Smem<T, D, kStep, kVals>;
  auto kernel = level3_kernel<T, kStep, D, kVals>;
  static const bool raised = (allow_shared_bytes(kernel, S::kBytes), true);  // once per instantiation
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
  const std::size_t pm = static_cast<std::size_t>(head) * p.Np + pm_of_padded(p, row);
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
