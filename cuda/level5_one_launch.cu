// Level 5: a whole call in one launch, for any N and any T. Level 3 runs each step of each round as
// its own kernel: 2 launches for T = 1 and 3 more per extra round, each ending in a tail where the
// last wave of CTAs leaves most SMs idle, and each starting only when every head has finished the
// step before. Here one persistent grid runs level 3's tile (cuda/fused_tile.cuh, unchanged) for
// every step of every round:
//
//   work items, in this order     step s of the call (round 1: R, L; round t >= 2: S, R, L)
//                                 x head x tile of 64 rows     item = (s heads + head) tiles + tile
//   each CTA                      takes the next item from a global counter (atomicAdd), waits until
//                                 every tile of step s - 1 of *its own head* is done, runs the tile,
//                                 and counts it done for (head, s).
//
// So a head's L-update starts as soon as that head's R-update is complete, while other heads are
// still in their R-update: no launch gaps and no tails between steps, and a head's alpha_L and Y are
// usually still in L2 when its L-update reads them.
//
// Why this cannot deadlock: items are handed out in increasing order, and an item waits only for
// items of smaller index (an earlier step). A CTA takes its next item while it runs the current one
// (hiding the atomic's latency), but that reserve is always larger than the item it is running. So
// the smallest unfinished item has been taken, is not anyone's reserve, hence is running, and waits
// for nothing unfinished: some CTA always makes progress.
//
// Why the waits are enough (every hazard is within one head): step s reads only what step s - 1 and
// earlier steps of the same head wrote, and overwrites only what step s - 1 and earlier read:
//   S_t reads lse_L, alpha_L, c_L (L_{t-1}, R_{t-1}) and writes alpha_R, c_R (read by R_{t-1}'s
//   tiles only through R_t: done before L_{t-1}, before S_t); R_t overwrites alpha_L, Y, c_L (read by
//   L_{t-1} and S_t, both done); L_t overwrites lse_L (read by S_t, done).
// The tile reads every intermediate through L2 (__ldcg, cp.async.cg), so no SM can see a stale L1 line
// of a value another SM rewrote in an earlier round of this launch.
//
// Heads that fit one CTA still run level 4's whole-head kernel, for any T (level5_steps below).
#include <algorithm>
#include <string>
#include <type_traits>

#include "fused_tile.cuh"

namespace monarch::cuda::detail {
namespace {

using namespace fused;

constexpr unsigned kPollNs = 64;  // back-off between polls of a dependency counter
constexpr int kWorkWords = 1;     // the work counter at the start of Problem::sync
constexpr long long kMaxItems = 1LL << 30;  // items per launch: item + grid stays below 2^31
/// CTAs per SM the one kernel is compiled for: the budget of its largest tile, the R-update with
/// values (three at D <= 64), whose 64-column chunks would spill under level 3's other kernels' four.
template <int D>
constexpr int kCtas = min_ctas<D, Step::RUpdate, true>();

/// Steps of rounds 1..t: two in round 1 (R, L), three in each later one (S, R, L).
__host__ __device__ constexpr int steps_through(int t) { return t < 1 ? 0 : 2 + 3 * (t - 1); }

/// Step s (0-based over the whole call) as (kind, round).
struct StepRef {
  Step step;
  int round;
};
__device__ inline StepRef step_ref(int s) {
  if (s < 2) return {s == 0 ? Step::RUpdate : Step::LUpdate, 1};
  const int r = (s - 2) % 3;
  return {r == 0 ? Step::RStats : r == 1 ? Step::RUpdate : Step::LUpdate, 2 + (s - 2) / 3};
}

/// Loads a counter with acquire semantics at GPU scope: every write that was made visible before
/// the matching release (the producer's fence and atomicAdd) is visible after it.
__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}

/// The schedule of one launch, computed once by thread 0 and read from shared memory, so that none
/// of it has to stay in registers across a tile: the R-update tile with values needs all 128.
struct Schedule {
  int total;         // work items of this launch (< kMaxItems, so every count fits 32 bits)
  int per_step;      // items of one step: heads x tiles
  int heads, tiles;  // E H, and 64-row tiles per head
  int s0;            // steps of earlier launches (a trace runs one round per launch)
};

/// Work item `item` of a launch: step s (-1 past the last item), head, tile, and the step's kind
/// and round. 32-bit arithmetic on purpose: a 64-bit division is a subroutine call, and its
/// calling convention costs the tile registers (ptxas -v showed more spills with it).
struct Item {
  int s, head, tile;
  StepRef ref;
};
__device__ __forceinline__ Item decode(const Schedule& c, int item) {
  if (item >= c.total) return {-1, 0, 0, {Step::RUpdate, 0}};
  const int s = item / c.per_step;
  return {s, item % c.per_step / c.tiles, item % c.tiles, step_ref(c.s0 + s)};
}

/// Rounds first..last of the call in one launch. sync (zeroed by the launcher): word 0 is the work
/// counter, word 1 + s heads + head counts the tiles of step s (relative to this launch) that are
/// done for head. want_all: Y and O in every round (traces);
/// otherwise only in round final_round, the call's last. kAllSteps: the kernel holds all five tile variants
/// (r_stats, and R- and L-updates with and without values); without it only round 1 with values,
/// which is all T = 1 runs, so its code is two tiles' worth instead of five.
template <class T, int D, bool kAllSteps>
__global__ void __launch_bounds__(kThreads, kCtas<D>)
    one_launch_kernel(Problem p, int first_round, int last_round, int final_round, bool want_all, unsigned* sync) {
  static_assert(kThreads == 32 * kWarps, "the tile's CTA shape (cuda/fused_tile.cuh)");
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ Schedule sched;
  __shared__ int item_s;  // the item thread 0 took, for the whole CTA
  unsigned* const work = sync;
  unsigned* const done = sync + kWorkWords;

  if (threadIdx.x == 0) {
    Schedule& c = sched;
    c.heads = p.E * p.H;
    c.tiles = (p.Np + kRows - 1) / kRows;
    c.s0 = steps_through(first_round - 1);
    c.per_step = c.heads * c.tiles;
    c.total = (steps_through(last_round) - c.s0) * c.per_step;
  }

  if (threadIdx.x == 0) item_s = static_cast<int>(atomicAdd(work, 1u));  // the first item
  __syncthreads();  // item_s and sched are written for every thread
  for (;;) {
    unsigned next = 0;  // thread 0: the item after this one
    {
      const Item it = decode(sched, item_s);
      if (it.s < 0) break;
      if (threadIdx.x == 0) {
        // Take the next item now: the atomic's round trip to L2 then overlaps this tile instead of
        // idling the CTA between tiles. Still deadlock-free: this CTA's current item is smaller
        // than the one it holds in reserve, so the smallest unfinished item is always running.
        next = atomicAdd(work, 1u);
        // Wait for every tile of the previous step of this head (none before a launch's first
        // step: stream order covers the launch before).
        if (it.s > 0) {
          const unsigned* dep = done + static_cast<std::size_t>(it.s - 1) * sched.heads + it.head;
          while (load_acquire(dep) < static_cast<unsigned>(sched.tiles)) __nanosleep(kPollNs);
        }
      }
    }
    __syncthreads();  // the dependency is met for every thread

    {
      // The item is decoded again after the barrier, from shared memory, so that none of it has
      // to live in registers through the wait.
      const Item it = decode(sched, item_s);
      const int tile = it.tile;
      const bool want = want_all || it.ref.round == final_round;  // Y for the output, and O
      // threadIdx.x read anew each time round, through an asm the compiler must not move, so that
      // thread-dependent addresses of the tile variants are not hoisted out of the loop and held
      // across it (ptxas -v at D = 64: 120 bytes of spill loads without this, 48 with).
      int tid;
      asm volatile("mov.u32 %0, %%tid.x;\n" : "=r"(tid));
      const int head = it.head, round = it.ref.round;
      if constexpr (!kAllSteps) {
        (void)want;
        if (it.ref.step == Step::RUpdate) fused_tile<T, Step::RUpdate, D, true>(p, head, tile, round, smem, tid);
        else fused_tile<T, Step::LUpdate, D, true>(p, head, tile, round, smem, tid);
      } else {
        switch (it.ref.step) {
          case Step::RStats: fused_tile<T, Step::RStats, D, false>(p, head, tile, round, smem, tid); break;
          case Step::RUpdate:
            if (want) fused_tile<T, Step::RUpdate, D, true>(p, head, tile, round, smem, tid);
            else fused_tile<T, Step::RUpdate, D, false>(p, head, tile, round, smem, tid);
            break;
          case Step::LUpdate:
            if (want) fused_tile<T, Step::LUpdate, D, true>(p, head, tile, round, smem, tid);
            else fused_tile<T, Step::LUpdate, D, false>(p, head, tile, round, smem, tid);
            break;
        }
      }
    }
    __syncthreads();  // every thread's global writes of the tile are issued, and every thread has
                      // read item_s, before thread 0 releases the tile and overwrites item_s
    if (threadIdx.x == 0) {
      const Item it = decode(sched, item_s);
      __threadfence();  // the CTA's writes (ordered before this by the barrier) are visible GPU-wide
      atomicAdd(done + static_cast<std::size_t>(it.s) * sched.heads + it.head, 1u);
      item_s = static_cast<int>(next);
    }
    __syncthreads();  // item_s holds the next item for every thread
  }
}

template <class T, int D, bool kAllSteps>
void launch(const Problem& p, int first, int last, int final_round, bool want_all) {
  constexpr std::size_t kBytes = any_step_bytes<T, D>();
  auto kernel = one_launch_kernel<T, D, kAllSteps>;
  static const bool raised = (allow_shared_bytes(kernel, kBytes), true);  // once per instantiation
  (void)raised;
  int per_sm = 0, dev = 0, sms = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, kBytes));
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int heads = p.E * p.H, tiles = (p.Np + kRows - 1) / kRows;
  const long long items = static_cast<long long>(steps_through(last) - steps_through(first - 1)) * heads * tiles;
  const long long grid = std::min<long long>(items, static_cast<long long>(std::max(1, per_sm)) * sms);
  // The counters start at zero for every launch: one small memset on the same stream.
  const std::size_t words = kWorkWords + static_cast<std::size_t>(steps_through(last) - steps_through(first - 1)) * heads;
  CUDA_CHECK(cudaMemsetAsync(p.sync, 0, words * sizeof(unsigned)));
  kernel<<<static_cast<unsigned>(grid), kThreads, kBytes>>>(p, first, last, final_round, want_all, p.sync);
  CUDA_CHECK_LAUNCH("level5 one_launch_kernel");
}

void rounds(const Problem& p, int first, int last, bool want_all) {
  // Rounds a..b go in one launch while their items stay below kMaxItems (a 32-bit item index); a
  // very large T is split into several launches, each still waiting only where it must.
  const long long per_step = static_cast<long long>(p.E) * p.H * ((p.Np + kRows - 1) / kRows);
  auto items = [&](int a, int b) { return (steps_through(b) - steps_through(a - 1)) * per_step; };
  for (int a = first; a <= last;) {
    int b = a;
    while (b < last && items(a, b + 1) < kMaxItems) ++b;
    if (items(a, b) >= kMaxItems)  // one round of > 2^30 tiles: far beyond any device's memory
      throw InputError("CUDA level 5: one round has " + std::to_string(items(a, b)) + " tiles, more than " +
                       std::to_string(kMaxItems));
    dispatch_dtype(p.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if constexpr (std::is_same_v<T, float>) {
        throw InputError("CUDA level 5 runs fp16 and bf16 only");  // validate_session refuses it first
      } else {
        // Round 1 alone with Y and O (T = 1, or a trace's first round): the two-variant kernel.
        const bool all = !(b == 1 && (want_all || last == 1));
        auto go = [&](auto all_steps) {
          constexpr bool kAll = decltype(all_steps)::value;
          switch (fused_dim(p.d, p.dv)) {
            case 32: launch<T, 32, kAll>(p, a, b, last, want_all); break;
            case 64: launch<T, 64, kAll>(p, a, b, last, want_all); break;
            default: launch<T, kMaxDim, kAll>(p, a, b, last, want_all); break;
          }
        };
        if (all) go(std::true_type{});
        else go(std::false_type{});
      }
    });
    a = b + 1;
  }
}

}  // namespace

std::size_t level5_sync_words(int heads, int rounds) {
  return kWorkWords + static_cast<std::size_t>(steps_through(rounds)) * static_cast<std::size_t>(heads);
}

LevelSteps level5_steps() {
  LevelSteps s = level4_steps();  // heads that fit one CTA: the whole-head kernel
  s.rounds = &rounds;
  return s;
}

}  // namespace monarch::cuda::detail
