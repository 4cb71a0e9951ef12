// Level 8: level 7, with each head of a T = 1 call run by one thread-block cluster that keeps alpha_L,
// c_L and Y in its shared memory, so that only Q, K, V come in from HBM and only O goes out
// (bench/NOTES.md, step 32).
//
// Level 7 runs T = 1 as two kernels: the R-update writes alpha_L, c_L and Y to global memory, and
// the L-update reads them back. At d = d_v = 64 that is 1160 bytes per token where the call needs
// 512, and at 8 x 4096 it holds level 7 at ~2.3x the memory floor however fast its tiles are. Here
// the cluster's C CTAs (C = 16 or fewer, on SMs of one GPC, two per SM) run both steps of one head:
//   1. R-update, eqs. (12), (10), (4): CTA `rank` runs R-update tiles rank N'/(64 C) ..; each row of
//      alpha_L, Y and c_L goes, through distributed shared memory, to the CTA whose L-update reads
//      it (cluster_head.cuh: CTA rank owns positions j in [rank b / C, (rank + 1) b / C)).
//   2. cluster barrier: every row has landed in its owner's shared memory.
//   3. L-update, eqs. (13), (4): CTA `rank` runs the L-update tiles of its own positions, its keys
//      and values read by wgmma where they lie; o goes to global memory.
// The tiles are level 7's (fused_tile.cuh, kWg), one after another in each CTA; only where the
// intermediates go and come from changes (fused_tile's `cluster` argument). The sums run in the same
// order as level 7's, so the two levels' outputs agree bit for bit (tests/cuda/test_levels.cpp).
//
// Outcome (step 32, H100): correct, but 7-24% slower than level 7 at 1 x 1024 to 8 x 4096, so not the
// default. The bytes fell by 44%, but a cluster's CTAs work in lockstep (load, compute, send, barrier,
// then the same for the L-update), only 14 clusters of 16 fit at once (112 of 132 SMs), and DRAM
// idles at 28% of peak, where level 7's independent CTAs keep loads in flight all the time. Step 33
// loaded each tile during the one before it, and then ran persistent clusters over several heads:
// 2-6% and 0-2% faster, still 10-21% slower than level 7, so neither was merged (branch
// step33-level8-prefetch).
//
// Where it runs (plan below): T = 1, d, d_v <= 64, m a multiple of 8 (a chunk then starts on a whole
// swizzle atom of the resident tiles), and some C in {16, 8, 4, 2} with b % C == 0 (each CTA owns
// whole positions), N' % (64 C) == 0 (whole tiles per CTA) and the resident rows plus one tile's
// working set within the opt-in shared memory. Anything else runs level 7 (heads that fit one CTA:
// level 6, then 4; T >= 2: level 7's steps).
#include <cstdlib>
#include <map>
#include <string>
#include <utility>

#include "cluster_head.cuh"
#include "fused_tile.cuh"
#include "whole_head.cuh"

namespace monarch::cuda::detail {
namespace {

using namespace fused;

constexpr int kDim = 64;                   // level 7's one tile width (D)
constexpr int kClusterSizes[] = {16, 8, 4, 2};  // tried largest first: more CTAs per head (16 is non-portable)
constexpr int kMinCtas = 2;                // __launch_bounds__: two CTAs per SM where shared memory allows

/// The working set of one tile: the larger of an R-update tile with values (one chunk, or the general
/// three-stage one) and a resident L-update tile, rounded to whole swizzle atoms.
template <class T, bool kOneChunk>
constexpr std::size_t work_bytes() {
  constexpr std::size_t r = Smem<T, kDim, Step::RUpdate, true, true, kOneChunk>::kBytes;
  constexpr std::size_t l = Smem<T, kDim, Step::LUpdate, true, true, false, true>::kBytes;
  constexpr std::size_t w = r > l ? r : l;
  return (w + wgmma::kAtomBytes - 1) / wgmma::kAtomBytes * wgmma::kAtomBytes;
}

/// Dynamic shared bytes of a CTA: the working set, the resident tiles, and slack to align them.
template <class T, bool kOneChunk>
std::size_t cta_bytes(int rows) {
  return work_bytes<T, kOneChunk>() + cluster::Head::bytes(rows) + wgmma::kAtomBytes;
}

struct Args {
  int C;            // CTAs per cluster (per head)
  FastDiv div_rows; // / (N' / C)
  bool to_global;   // traces: also write level 3's global intermediates
};

/// CTA blockIdx.x % C of the cluster that runs head blockIdx.x / C: one warpgroup, which runs the
/// CTA's tiles of each step one after another.
template <class T, bool kOneChunk>
__global__ void __launch_bounds__(kThreads, kMinCtas) level8_kernel(Problem p, Args a) {
  extern __shared__ __align__(128) unsigned char smem[];
  // The swizzle is a function of address bits 4-9: every tile starts 1024-byte aligned.
  unsigned char* work = smem + (wgmma::kAtomBytes - smem_addr(smem) % wgmma::kAtomBytes) % wgmma::kAtomBytes;
  const int rank = cluster::cta_rank(), head = blockIdx.x / a.C, tid = threadIdx.x;
  const int rows = p.Np / a.C, tiles = rows / kRows;  // position-major rows and tiles of each CTA
  cluster::Head cl;
  cl.alpha_L = work + work_bytes<T, kOneChunk>();                            // (rows, 64) T
  cl.Y = cl.alpha_L + static_cast<std::size_t>(rows) * cluster::Head::kRowBytes;  // (rows + kPadRows, 64) T
  cl.c_L = reinterpret_cast<float*>(cl.Y + static_cast<std::size_t>(rows + cluster::kPadRows) * cluster::Head::kRowBytes);
  cl.rows = rows;
  cl.own_beg = rank * rows;
  cl.div_rows = a.div_rows;
  cl.to_global = a.to_global;

  // Y's pad rows are zero: a last chunk that runs past this CTA's rows reads them (Head::Y_row).
  constexpr int kPadPieces = cluster::kPadRows * cluster::Head::kRowBytes / kCopyBytes;
  for (int i = tid; i < kPadPieces; i += kThreads)
    reinterpret_cast<uint4*>(cl.Y + static_cast<std::size_t>(rows) * cluster::Head::kRowBytes)[i] = make_uint4(0, 0, 0, 0);
  // Another CTA may write into this one's shared memory only once this one is running: every CTA of
  // the cluster arrives here before any R-update row is sent.
  cluster::arrive();
  cluster::wait();

  // 1. R-update tiles rank tiles .. (rank + 1) tiles - 1 of the head (block-major rows), round 1: the
  // mean query is q itself, eq. (14). Their rows go to their owners (fused_tile's epilogue).
  for (int i = 0; i < tiles; ++i) {
    fused_tile<T, Step::RUpdate, kDim, true, true, kOneChunk>(p, head, rank * tiles + i, 1, work, tid, NoWait{}, cl);
    __syncthreads();  // the epilogue read its staged rows after its last barrier; the next tile refills them
  }
  // 2. Every row sent is visible to its owner, also to the owner's wgmma (async proxy), once every
  // thread of the cluster has arrived. The first L-update tile waits only after issuing its query rows.
  cluster::fence_for_async();
  cluster::arrive();

  // 3. L-update tiles of this CTA's positions (position-major rows [rank rows, (rank + 1) rows)): o.
  for (int i = 0; i < tiles; ++i) {
    auto wait_for_rows = [i] {
      if (i == 0) cluster::wait();
    };
    fused_tile<T, Step::LUpdate, kDim, true, true>(p, head, rank * tiles + i, 1, work, tid, wait_for_rows, cl);
    __syncthreads();  // as above
  }
  // No CTA reads another's shared memory after step 2, so each may exit on its own.
}

struct Plan {
  int C = 0;               // 0: the cluster kernel does not run this problem
  bool one_chunk = false;  // every R-update tile is one chunk (b divides 64): level 7's step 31
  std::size_t bytes = 0;   // dynamic shared bytes per CTA
};

template <class T, bool kOneChunk>
void* kernel_of() {
  return reinterpret_cast<void*>(level8_kernel<T, kOneChunk>);
}

/// Lets `kernel` take at least `bytes` of dynamic shared memory, and clusters of 16 (sm_90's
/// non-portable size). The limit only ever rises: plan() sets it for each new shape's occupancy query,
/// and lowering it there to a smaller shape's bytes made the next launch of a larger shape, planned
/// earlier, fail with "invalid argument" (bench/NOTES.md step 33). Kept per kernel, so that a launch
/// makes no attribute call (those add host time to calls of ~15 us, 1 x 1024).
void allow(const void* kernel, std::size_t bytes) {
  static std::map<const void*, std::size_t> allowed;
  std::size_t& now = allowed[kernel];
  if (bytes <= now) return;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  now = bytes;
}

/// A launch of `clusters` clusters of C CTAs of `bytes` each on the default stream (like every launch
/// of the harness); attr must outlive the config.
cudaLaunchConfig_t cluster_launch(long long clusters, int C, std::size_t bytes, cudaLaunchAttribute& attr) {
  attr = {};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = static_cast<unsigned>(C), attr.val.clusterDim.y = 1, attr.val.clusterDim.z = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(clusters * C));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = bytes;
  cfg.stream = nullptr;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  return cfg;
}

/// Whether a cluster of C CTAs of `bytes` each can be resident on this device (once per kernel and
/// shape: cudaOccupancyMaxActiveClusters says 0 where no GPC has C SMs free with that much shared memory).
bool launchable(const void* kernel, int C, std::size_t bytes) {
  static std::map<std::pair<const void*, std::pair<int, std::size_t>>, bool> known;
  const auto key = std::make_pair(kernel, std::make_pair(C, bytes));
  if (auto it = known.find(key); it != known.end()) return it->second;
  allow(kernel, bytes);
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t cfg = cluster_launch(1, C, bytes, attr);
  int clusters = 0;
  const cudaError_t e = cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg);
  if (e != cudaSuccess) (void)cudaGetLastError();  // a size the device refuses: not launchable
  return known[key] = e == cudaSuccess && clusters > 0;
}

/// MONARCH_LEVEL8_CLUSTER = 16, 8, 4 or 2 keeps only that cluster size (bench/NOTES.md step 32 times
/// them against each other); unset, every size is tried, largest first.
int forced_cluster() {
  static const int c = [] {
    const char* s = std::getenv("MONARCH_LEVEL8_CLUSTER");
    return s ? std::atoi(s) : 0;
  }();
  return c;
}

Plan plan(const Problem& p, int rounds) {
  Plan none;
  if (rounds != 1 || p.dtype == DType::F32 || fused_dim(p.d, p.dv) > kDim) return none;
  constexpr int kAtomRows = wgmma::kAtomBytes / wgmma::kRowBytes;
  if (p.m % kAtomRows != 0) return none;  // a chunk starts at a multiple of m: whole swizzle atoms
  const bool one_chunk = kRows % p.b == 0;
  for (int C : kClusterSizes) {
    if (forced_cluster() != 0 && C != forced_cluster()) continue;
    if (p.b % C != 0 || p.Np % (kRows * C) != 0) continue;
    const int rows = p.Np / C;
    const std::size_t bytes = one_chunk ? cta_bytes<__half, true>(rows) : cta_bytes<__half, false>(rows);
    static_assert(sizeof(__half) == sizeof(__nv_bfloat16), "one size for both tensor-core dtypes");
    if (bytes > static_cast<std::size_t>(whole_head::max_optin_shared())) continue;
    const void* k = one_chunk ? kernel_of<__half, true>() : kernel_of<__half, false>();
    if (!launchable(k, C, bytes)) continue;
    return Plan{C, one_chunk, bytes};
  }
  return none;
}

template <class T, bool kOneChunk>
void launch(const Problem& p, const Plan& pl, bool dump) {
  auto kernel = level8_kernel<T, kOneChunk>;
  allow(reinterpret_cast<const void*>(kernel), pl.bytes);
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t cfg = cluster_launch(static_cast<long long>(p.E) * p.H, pl.C, pl.bytes, attr);
  const Args a{pl.C, FastDiv(p.Np / pl.C), dump};
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, p, a));
  CUDA_CHECK_LAUNCH("level8_kernel");
}

LevelSteps& level7() {
  static LevelSteps s = level7_steps();
  return s;
}

bool whole_fits(const Problem& p, int rounds) {
  return level7().whole_fits(p, rounds) || plan(p, rounds).C != 0;
}

void whole(const Problem& p, bool dump) {
  if (level7().whole_fits(p, p.round)) return level7().whole(p, dump);  // a head that fits one CTA
  const Plan pl = plan(p, p.round);
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (!std::is_same_v<T, float>) {  // plan refuses fp32
      if (pl.one_chunk) launch<T, true>(p, pl, dump);
      else launch<T, false>(p, pl, dump);
    }
  });
}

std::string describe_whole(const Problem& p, int rounds) {
  if (level7().whole_fits(p, rounds)) return "";
  return "a cluster of " + std::to_string(plan(p, rounds).C) + " CTAs per head";
}

}  // namespace

LevelSteps level8_steps() {
  LevelSteps s = level7_steps();  // every step, for T >= 2 and for heads no cluster takes
  s.whole_fits = &whole_fits;
  s.whole = &whole;
  s.describe_whole = &describe_whole;
  return s;
}

}  // namespace monarch::cuda::detail
