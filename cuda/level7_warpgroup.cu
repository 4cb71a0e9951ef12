// Level 7: level 6, with level 3's step kernels moved onto Hopper's warpgroup tensor cores.
//
// Heads that fit one CTA still run level 6's whole-head kernel. Every other head runs level 3's three
// steps (r_update, l_update, r_stats: the table in level3_fused.cu), tile for tile and chunk for
// chunk, but each CTA's four warps issue their products together as one warpgroup: the scores of a
// 64-row tile against a 64-column chunk are D / 16 wgmma.m64n64k16 reading both operands from shared
// memory, and the sums alpha_L = R K, Y = R V (or o = L Y, alpha_R = L q) are 64 / 16 more per summed
// operand, their A operand the softmax weights in registers (fused_warpgroup.cuh). The softmax itself,
// the masks, the groups, the two-stage cp.async pipeline and the epilogues are level 3's code
// (fused_tile.cuh with kWg = true); only the tiles' layout changes, to the 128-byte swizzle wgmma
// reads (wgmma_sm90.cuh). Level 3 issued 96 mma.sync and 48 ldmatrix per warp for one chunk of the
// R-update with values; here the warpgroup issues 12 wgmma. Chunk i - 1's sums are issued after
// chunk i's scores and run while the warps compute chunk i's weights, so the tiles the sums read
// keep a third stage (step 23).
//
// Where b divides the 64-row tile (b = 64 at N = 4096), every R-update tile is one chunk; the R-update
// with values then runs a one-chunk instantiation with one stage of each tile, whose registers allow
// four CTAs per SM instead of three (step 31).
//
// The step kernels launch with programmatic dependent launch: each waits for its predecessor inside
// the kernel (griddepcontrol.wait), so launches and the last wave's tail overlap (step 19).
//
// d and d_v up to 64 (the tiles' rows are one 128-byte swizzle row; smaller d is zero-padded to 64);
// d or d_v above 64 runs level 3's steps. Sums run in a different order from level 3's, so the two
// levels agree to rounding, not bit for bit; the equivalence suite checks level 7 against the reference.
#include "fused_tile.cuh"

namespace monarch::cuda::detail {
namespace {

using namespace fused;

constexpr int kDim = 64;  // the one head dimension of level 7's tiles (D)

/// CTAs per SM each kernel is compiled for: the R-update with values holds three D-wide fp32
/// accumulator sets (scores, alpha_L, Y) and, across the next chunk's scores, the packed weights,
/// like level 3's (three CTAs); the others hold two (four CTAs, 128 registers). A one-chunk
/// R-update (step 31) has no next chunk: the scores die into the packed weights before the sums
/// start, so it fits four CTAs too.
template <Step kStep, bool kVals, bool kOneChunk>
constexpr int wg_ctas() { return kStep == Step::RUpdate && kVals && !kOneChunk ? 3 : 4; }

template <class T, Step kStep, bool kVals, bool kOneChunk>
constexpr std::size_t wg_bytes() {  // the tiles, and the slack that aligns them to 1024 bytes
  return Smem<T, kDim, kStep, kVals, true, kOneChunk>::kBytes + wgmma::kAtomBytes;
}

/// One CTA of one step: tile blockIdx.x % tiles_per_head of head blockIdx.x / tiles_per_head.
template <class T, Step kStep, bool kVals, bool kOneChunk>
__global__ void __launch_bounds__(kThreads, wg_ctas<kStep, kVals, kOneChunk>())
    level7_kernel(Problem p, int tiles_per_head) {
  extern __shared__ __align__(128) unsigned char smem[];
  // The swizzle is a function of address bits 4-9, so every tile starts 1024-byte aligned; the
  // dynamic shared window itself is only guaranteed 16.
  unsigned char* tiles = smem + (wgmma::kAtomBytes - smem_addr(smem) % wgmma::kAtomBytes) % wgmma::kAtomBytes;
  // Launched with programmatic stream serialisation (launch below): this grid's CTAs may start while
  // the previous kernel's last wave finishes. Wait until that kernel has completed and its writes
  // are visible before reading anything it may have written (fused_tile calls this first, except
  // that the L-update issues its query rows before: step 28); then let the next kernel of the call
  // start early likewise.
  auto wait_for_predecessor = [] {
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  };
  fused_tile<T, kStep, kDim, kVals, true, kOneChunk>(p, blockIdx.x / tiles_per_head, blockIdx.x % tiles_per_head,
                                                     p.round, tiles, threadIdx.x, wait_for_predecessor);
}

template <class T, Step kStep, bool kVals, bool kOneChunk = false>
void launch(const Problem& p) {
  constexpr std::size_t kBytes = wg_bytes<T, kStep, kVals, kOneChunk>();
  auto kernel = level7_kernel<T, kStep, kVals, kOneChunk>;
  static const bool raised = (allow_shared_bytes(kernel, kBytes), true);  // once per instantiation
  (void)raised;
  const int tiles = (p.Np + kRows - 1) / kRows;
  const long long ctas = static_cast<long long>(tiles) * p.E * p.H;
  // Programmatic dependent launch: the step kernels of a call run back to back in one stream, and
  // each waits for its predecessor inside the kernel (griddepcontrol.wait) instead of at the launch,
  // so the launch latency and the first CTAs' start overlap the previous kernel's tail.
  cudaLaunchAttribute overlap{};
  overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(ctas));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = kBytes;
  cfg.stream = nullptr;  // the default stream, like every launch of the harness
  cfg.attrs = &overlap;
  cfg.numAttrs = 1;
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, p, tiles));
  CUDA_CHECK_LAUNCH("level7_kernel");
}

/// True when the warpgroup tiles take this problem (d, d_v <= 64); otherwise level 3's steps run.
bool warpgroup_fits(const Problem& p) { return fused_dim(p.d, p.dv) <= kDim; }

/// True when every R-update tile spans exactly one chunk: b divides the kRows-row tile, so each tile
/// is whole blocks whose kRows keys are one kChunk-column chunk (kRows = kChunk = 64).
bool r_update_one_chunk(const Problem& p) {
  static_assert(kRows == Smem<__half, kDim, Step::RUpdate, true, true>::kChunk, "a tile's keys are one chunk");
  return kRows % p.b == 0;
}

template <Step kStep, bool kVals, bool kOneChunk = false>
void dispatch(const Problem& p) {
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, float>) throw InputError("CUDA level 7 runs fp16 and bf16 only");
    else launch<T, kStep, kVals, kOneChunk>(p);
  });
}

void r_stats(const Problem& p) {
  if (!warpgroup_fits(p)) return level3_steps().r_stats(p);
  dispatch<Step::RStats, false>(p);
}
void r_update(const Problem& p, bool want_Y) {
  if (!warpgroup_fits(p)) return level3_steps().r_update(p, want_Y);
  // Only the R-update with values gains from one chunk: it is the step held to three CTAs per SM.
  if (want_Y && r_update_one_chunk(p)) dispatch<Step::RUpdate, true, true>(p);
  else if (want_Y) dispatch<Step::RUpdate, true>(p);
  else dispatch<Step::RUpdate, false>(p);
}
void l_update(const Problem& p, bool want_O) {
  if (!warpgroup_fits(p)) return level3_steps().l_update(p, want_O);
  if (want_O) dispatch<Step::LUpdate, true>(p);
  else dispatch<Step::LUpdate, false>(p);
}

}  // namespace

LevelSteps level7_steps() {
  LevelSteps s = level6_steps();  // whole heads (level 6, else 4) and the trace export (level 3's layouts)
  s.r_stats = &r_stats;
  s.r_update = &r_update;
  s.l_update = &l_update;
  return s;
}

}  // namespace monarch::cuda::detail
