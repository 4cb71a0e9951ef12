// Level 6: level 4's whole head per CTA, any T, with alpha_L and Y kept in shared memory, in place
// of K and V (bench/NOTES.md, step 11).
//
// Level 4 sends alpha_L and Y through a scratch slot in global memory (L2) and back, because its
// R-update tiles do not own the rows they write: a block of keys may span two warps' tiles, and
// the results are written position-major. Level 6's R-update tiles are whole blocks instead: for
// b <= 16 a warp's tile is the 16 / b (rounded down) blocks that fit its 16 rows, span = (16 / b) b
// rows, and the keys and values it reads are exactly the rows it writes. No other warp touches
// them, so the results overwrite them with no barrier, and nothing leaves the chip between Q, K, V
// coming in and O going out. When b does not divide 16 the tile's other 16 - span rows and columns
// are not read from a neighbour (that would race with its in-place writes): their ldmatrix
// addresses alias the tile's first row, their columns belong to other groups (masked, weight 0),
// and their output rows go to the warp's scratch rows (stmatrix writes all 16). alpha_L and Y stay
// in padded order (row k*b + j); the L-update and r_stats gather their columns or rows
// alpha_L[k, j], k = 0..m-1, through the padded_of map, as they already gather queries (ldmatrix
// takes one address per lane).
//
// Per head and round: 1. cp.async Q, K, V (round 1), K and, in the last round, V (later rounds: L2,
// this CTA read them moments ago); 2. R-update, eq. (12): alpha_L, c_L (and Y in the last round) in
// place; 3. barrier (the last of several rounds brings q back, into the mean queries' tile);
// 4. L-update, eq. (13): o = L Y, eq. (4), to global memory in the last round, lse_L otherwise;
// 5. (not the last round) r_stats, eq. (11): the mean queries of the next round. Same shape as
// level 4: 8 warps, two CTAs per SM (100 KB at N' = 256, d = 64: rows of whole 128-byte lines, see
// Layout, where level 4's are 16 bytes longer).
//
// Anything else (b > 16, which b = ceil(sqrt(N)) never gives at N' <= 256) runs level 4, which runs
// level 3 where a head is too large.
// Tried and dropped (step 11): two head buffers in one 16-warp CTA per SM, loading the next head
// while one runs, was slower even than level 4 (4.04 against 3.90 ms at 4096 x 256): the loads were
// never what the warps waited for.
#include <cfloat>
#include <cmath>

#include "fused_warp.cuh"
#include "harness.cuh"
#include "whole_head.cuh"

namespace monarch::cuda::detail {
namespace {

using namespace fused;
using namespace whole_head;

constexpr int kDivShift = 20;  // divide() below: r / n as (r inverse(n)) >> 20

/// r / n for 0 <= r < kMaxRows and n <= kMaxRows, as a multiply and a shift by inv = ceil(2^20 / n): the
/// error r (inv - 2^20 / n) / 2^20 stays below 1 / n, so the floor is exact. Step 14: the runtime
/// divisions by b and m were ~15 instructions each, several per tile. Not FastDiv (fast_div.hpp),
/// which levels 3, 5 and 7 use: that one is exact for every 32-bit dividend at the price of a
/// multiply-high, two adds and two shifts, while a head that fits one CTA bounds r, so one multiply
/// and one shift suffice here.
constexpr int kMaxRows = 1024;  // more than N' of any head that fits one CTA (~590 at D <= 64)
static_assert(kMaxRows * kMaxRows <= (1 << kDivShift), "r / n exact for r, n <= kMaxRows");
__host__ __device__ inline unsigned inverse(int n) { return ((1u << kDivShift) + n - 1) / n; }
__device__ inline int divide(int r, unsigned inv) { return static_cast<int>((static_cast<unsigned>(r) * inv) >> kDivShift); }

/// Level 6's head tiles (step 29): row r is kLd elements, whole 128-byte lines, at element r kLd of
/// its tile, and its 16-byte piece p lies at piece p ^ twist(r) of its line (fused::PiecesXor).
/// Why the twist: the 8 rows of one ldmatrix matrix must lie in 8 different bank quads, that is at
/// 8 different piece positions of their lines. The L-update and r_stats gather rows k*b + j,
/// k = k0..k0+7 (step 12 found the 8-way conflicts that plain rows give there), and the R-update
/// reads consecutive rows. twist(r) = (r + [b even] (r / b)) % 8 is distinct for both: for k*b + j
/// it is k b + j (b odd) or k (b + 1) + j (b even), and b or b + 1 is odd; 8 consecutive rows differ
/// by 1 each, except where they cross the end of a block of an even b other than 8 and 16, where
/// two of them may share a quad (a 2-way conflict, as with step 12's pads, whose quads these are).
/// Why whole lines: step 12 had the same bank quads from rows of D + 8 elements plus 16 bytes after
/// each block of an even b, but then rows start anywhere in a line, and a cp.async of the head load
/// splits them: 10.5 shared-memory wavefronts where 4 would do, and 50% more L2 sectors than the
/// bytes it loads (step 27's profile).
template <int D>
struct Layout {
  static constexpr int kLineElems = PiecesXor::kLineBytes / sizeof(__half);
  static constexpr int kLd = D < kLineElems ? kLineElems : D;          // elements per row (D = 32: half unused)
  static constexpr int kPerPiece = kCopyBytes / sizeof(__half);       // elements per 16-byte piece
  unsigned inv_b;  // inverse(b)
  unsigned inv_m;  // inverse(m)
  int by_block;    // 1 for even b, 0 for odd b
  __device__ int twist(int r) const { return (r + divide(r, inv_b) * by_block) & 7; }
  /// Row r: the address of its piece 0, as PiecesXor reads rows.
  template <class T>
  __device__ T* row(T* tile, int r) const { return tile + r * kLd + twist(r) * kPerPiece; }
  /// Columns c8..c8+7 of row r (c8 a multiple of 8): its piece c8 / 8.
  template <class T>
  __device__ T* at(T* tile, int r, int c8) const { return tile + r * kLd + (((c8 / kPerPiece) ^ twist(r)) * kPerPiece); }
};

template <int D>
__host__ __device__ inline Layout<D> layout(int b, int m) {
  return {inverse(b), inverse(m), b % 2 == 0 ? 1 : 0};
}

constexpr int kWarps = 8;              // warps per CTA
constexpr int kThreads = 32 * kWarps;  // threads per CTA
constexpr int kMinCtas = 2;            // __launch_bounds__: two CTAs per SM (<= 128 registers)

/// Whether some warp tile has rows that are not its own: an R-update tile when b does not divide 16
/// (its whole blocks span fewer than 16 rows), an L-update or r_stats tile when N' is not a multiple
/// of 16 (the last one). stmatrix writes all 16 rows of a tile at once (step 29), so those rows go
/// to a scratch tile of 16 rows per warp instead, which nothing reads.
__host__ __device__ inline bool has_foreign_rows(int Np, int b) { return kM % b != 0 || Np % kM != 0; }

/// Elements of the warps' scratch tiles (none when every tile owns its 16 rows: N' = 256, b = 16).
template <int D>
__host__ __device__ inline int scratch_elems(int Np, int b) {
  return has_foreign_rows(Np, b) ? kWarps * kM * Layout<D>::kLd : 0;
}

/// Shared bytes of level 6's kernel at head dimension D: 100 KB at N' = 256, b = 16, d = 64 (level
/// 4's 112 KB has 16 bytes more per row), 112 KB at N' = 225, b = 15 (with the scratch tiles): two
/// CTAs share an SM.
template <int D>
std::size_t in_place_bytes(int Np, int b) {
  static_assert(sizeof(__half) == sizeof(__nv_bfloat16), "one size for both tensor-core dtypes");
  return head_shared_bytes(Np, Layout<D>::kLd, sizeof(__half)) + scratch_elems<D>(Np, b) * sizeof(__half);
}
inline std::size_t in_place_bytes(const Problem& p) {
  switch (fused_dim(p.d, p.dv)) {
    case 32: return in_place_bytes<32>(p.Np, p.b);
    case 64: return in_place_bytes<64>(p.Np, p.b);
    default: return in_place_bytes<128>(p.Np, p.b);
  }
}

/// The whole call (T = p.round rounds when kRounds, else T = 1) for heads blockIdx.x,
/// blockIdx.x + gridDim.x, ... With kDump (traces, T = 1) alpha_L, Y, c_L (position-major, as
/// level 3 leaves them) and lse_L are also written to global memory. (kDump and kRounds are template
/// arguments so that the timed T = 1 kernel carries neither: no spills at D = 64.)
template <class T, int D, bool kDump, bool kRounds>
__global__ void __launch_bounds__(kThreads, kMinCtas) in_place_kernel(Problem p) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "tensor cores: fp16 or bf16");
  static_assert(D % kK == 0 && D <= 128, "D is whole k16 steps, at most 128 (validate_session)");
  static_assert(kChunk == kM, "an R-update tile is one chunk: its columns are its own rows");
  static_assert(!(kDump && kRounds), "traces of T >= 2 rounds run level 3's steps");
  using Rows = Layout<D>;
  extern __shared__ __align__(PiecesXor::kLineBytes) unsigned char smem[];
  const int rows = tile_rows(p.Np);
  const Rows L = layout<D>(p.b, p.m);
  // Three (rows, kLd) tiles in padded order, twisted (Layout). Round 1: q, k -> alpha_L, v -> Y (T = 1)
  // or free. A later round: q (v -> Y in the last), k -> alpha_L, the mean queries (then q again).
  const int tile_n = head_tile_elems<int>(p.Np, Rows::kLd);
  T* const Qs = reinterpret_cast<T*>(smem);
  T* const KA = Qs + tile_n;
  T* const VY = KA + tile_n;
  T* const scratch = VY + tile_n;  // (kWarps, 16, kLd) or nothing: rows a tile writes but does not own
  const Arrays geo = carve(reinterpret_cast<unsigned char*>(scratch + scratch_elems<D>(p.Np, p.b)), p.Np);
  // PiecesXor keeps a piece in its row only if the row starts a line: rows are whole lines from the
  // start of smem, which the launch must therefore place on a line (one test per thread).
  if (smem_addr(smem) % PiecesXor::kLineBytes != 0) __trap();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  T* const foreign = scratch + warp * kM * Rows::kLd;  // (16, kLd): this warp's scratch rows, never read
  // Row i of a position-major tile from r0 (the L-update's staged o, r_stats' mean queries): padded
  // row padded_of[r0 + i] of `tile`, or past N' a scratch row, for stmatrix.
  auto position_row = [&](T* tile, int r0, int i) {
    return r0 + i < p.Np ? L.row(tile, geo.padded_of[r0 + i]) : foreign + i * Rows::kLd;
  };
  const int heads = p.E * p.H, tiles = rows / kM;  // L-update and r_stats: 16-row tiles of N'
  // R-update: tiles of whole blocks, span rows each (16 when b divides 16).
  const int blocks_per_tile = kM / p.b, span = blocks_per_tile * p.b;
  const int r_tiles = (p.m + blocks_per_tile - 1) / blocks_per_tile;
  const float scale2 = p.tau * kLog2e;
  const int rounds = kRounds ? p.round : 1;  // T (the harness sets p.round = T for a whole call)

  init_geometry(geo, p, threadIdx.x, kThreads);  // the same for every head

  for (int head = blockIdx.x; head < heads; head += gridDim.x) {
    const std::size_t head0 = static_cast<std::size_t>(head) * p.Np;
    const std::uint8_t* const valid_e = p.valid + static_cast<std::size_t>(head / p.H) * p.Np;
    const std::size_t tok0 = static_cast<std::size_t>(head) * p.N;
    // Rows of this head's q, k or v into a tile (tokens [0, N) are padded rows [off, off + N); zero
    // at pads and past N').
    auto load = [&](T* dst, const void* src, int width) {
      load_rows_async<T, D, kThreads>(dst, [&](T* tile, int r, int pc) { return L.at(tile, r, pc * Rows::kPerPiece); }, rows, width,
                                      static_cast<const T*>(src) + tok0 * width, p.off, p.off + p.N, threadIdx.x);
    };
    __syncthreads();  // the previous head's L-update is done with every shared array (and, for the
                      // first head, the geometry arrays above are written)

    // ---- 1. Q and K, and V if the first round is the last (otherwise V waits for the last round).
    load(Qs, p.Q, p.d);
    load(KA, p.K, p.d);
    // With T >= 2 the tile V would use holds the mean queries from r_stats on, which write only
    // columns < d: the rest must be zero (cp.async with no source bytes), not whatever the shared
    // memory held, since the R-update multiplies all D columns (0 x NaN is NaN).
    if (rounds == 1) load(VY, p.V, p.dv);
    else load(VY, p.V, 0);
    cp_async_commit();
    set_bias_R(geo, p, valid_e, threadIdx.x, kThreads);
    cp_async_wait<0>();
    __syncthreads();  // Q, K (V) and bias_R are in shared memory for every warp

    for (int rt = 1; rt <= rounds; ++rt) {  // rt: the round t of spec §4
      const bool last = rt == rounds;
      // R-update rows: q in round 1 (L = I, eq. (14)), the mean queries alpha_R / c_R (left in VY by
      // r_stats) after that. Its values, in the last round: v, in VY in round 1 and in Qs later.
      T* const r_rows = rt == 1 ? Qs : VY;
      T* const vals = rt == 1 ? VY : Qs;
      if (rt >= 2) {
        load(KA, p.K, p.d);  // KA held alpha_L of the previous round; this CTA read K moments ago (L2)
        if (last) load(Qs, p.V, p.dv);  // q comes back after the R-update, into VY
        cp_async_commit();
        set_bias_R(geo, p, valid_e, threadIdx.x, kThreads);  // it held the r_stats biases
        cp_async_wait<0>();
        __syncthreads();  // K (and V) are in shared memory for every warp
      }

      // ---- 2. R-update, eq. (12): tile = padded rows [r0, r_end), the 16 / b whole blocks that fit
      // 16 rows; its columns are the same rows of K (keys) and V (values), read by this warp only.
      // alpha_L, Y overwrite them. Tile row and column i is padded row c0 + i, c0 = r0 rounded down
      // to even (the column biases are read in 8-byte pairs); one outside [r0, r_end) aliases row r0.
      for (int tile = warp; tile < r_tiles; tile += kWarps) {
        const int r0 = tile * span, r_end = min(r0 + span, p.Np), c0 = r0 & ~1;
        auto row_of = [&](int i) { return c0 + i >= r0 && c0 + i < r_end ? c0 + i : r0; };
        WarpRows<D> w;
        for (int h = 0; h < 2; ++h) {
          const int row = c0 + g + 8 * h;
          w.row_group[h] = row >= r0 && row < r_end ? divide(row, L.inv_b) : kNoRow;
        }
        bind_rows<D, PiecesXor>(w, [&](int i) { return L.row(r_rows, row_of(i)); }, lane);
        auto keys = [&](int i) { return L.row(KA, row_of(i)); };
        auto values = [&](int i) { return L.row(vals, row_of(i)); };
        // Columns outside [r0, r_end) belong to other blocks (or none: past N'), so grp_b masks them.
        if (last) warp_chunk<T, Step::RUpdate, D, kChunk, true, PiecesXor>(w, keys, values, geo.grp_b + c0, geo.bias_R + c0, scale2, lane);
        else warp_chunk<T, Step::RUpdate, D, kChunk, false, PiecesXor>(w, keys, values, geo.grp_b + c0, geo.bias_R + c0, scale2, lane);
        __syncwarp();  // every lane's ldmatrix of these K and V rows is done before any lane overwrites them
        float inv[2];  // 1 / Z of rows g and g + 8
        for (int h = 0; h < 2; ++h) inv[h] = w.run_sum[h] == 0.0f ? 0.0f : 1.0f / w.run_sum[h];  // empty block: zeros
        // alpha_L[k, j] over k_(k,j) and Y[k, j] over v_(k,j), all 16 rows by stmatrix (step 29); a row
        // outside [r0, r_end) goes to this warp's scratch, with the twist of the row it stands for, so
        // that the 8 rows of each matrix still lie in 8 bank quads. Columns past d (d_v) are zero in
        // acc, as in the keys (values).
        auto out_row = [&](T* tile, int i) {
          return row_of(i) == c0 + i ? L.row(tile, c0 + i) : foreign + i * Rows::kLd + L.twist(c0 + i) * Rows::kPerPiece;
        };
        store_rows_shared<T, D, PiecesXor>([&](int i) { return out_row(KA, i); }, w.acc_k, inv, lane);
        if (last) store_rows_shared<T, D, PiecesXor>([&](int i) { return out_row(vals, i); }, w.acc_v, inv, lane);
        for (int h = 0; h < 2; ++h) {
          const int row = c0 + g + 8 * h;
          if (row < r0 || row >= r_end) continue;  // another tile's row, or past N'
          const int pm = geo.pm_of[row];  // (k, j) -> j*m + k
          const float c_L = entropy_term(w, h);  // eq. (10); +inf for a block with no valid key
          if (t == 0) geo.bias_L[pm] = c_L * kLog2e;
          if constexpr (!kDump) continue;
          store_row<T, D>(static_cast<T*>(p.alpha_L_pm) + (head0 + pm) * p.d, w.acc_k, h, inv[h], p.d, lane);
          store_row<T, D>(static_cast<T*>(p.Y_pm) + (head0 + pm) * p.dv, w.acc_v, h, inv[h], p.dv, lane);
          if (t == 0) p.c_L_pm[head0 + pm] = c_L;
        }
      }
      __syncthreads();  // alpha_L, Y and bias_L of every block are in place for every warp; the mean
                        // queries in VY are dead

      // ---- 3. The last of several rounds: q again, into VY.
      T* const queries = last && rt >= 2 ? VY : Qs;
      if (last && rt >= 2) {
        load(VY, p.Q, p.d);
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();  // q is in shared memory for every warp
      }

      // ---- 4. L-update, eq. (13): rows (l, j) position-major; the columns of row (l, j) are
      // alpha_L[k, j] (keys) and Y[k, j] (values), k = 0..m-1, at padded rows k*b + j. Chunks start
      // at multiples of 16 below N', so every column index stays inside the tiles. The last round
      // forms o = L Y, eq. (4); the others only lse_L, the column bias of r_stats (in bias_R, free now).
      for (int tile = warp; tile < tiles; tile += kWarps) {
        const int r0 = tile * kM, r_last = min(r0 + kM, p.Np) - 1;
        WarpRows<D> w;
        position_rows<Step::LUpdate>(w, p, geo, r0, g, [&](int row) { return divide(row, L.inv_m); });
        bind_rows<D, PiecesXor>(w, [&](int r) { return L.row(queries, geo.padded_of[r0 + r]); }, lane);  // q_(l,j)
        for (int c0 = divide(r0, L.inv_m) * p.m / kChunk * kChunk; c0 < (divide(r_last, L.inv_m) + 1) * p.m; c0 += kChunk) {
          auto keys = [&](int c) { return L.row(KA, geo.padded_of[c0 + c]); };
          auto values = [&](int c) { return L.row(vals, geo.padded_of[c0 + c]); };
          if (last) warp_chunk<T, Step::LUpdate, D, kChunk, true, PiecesXor>(w, keys, values, geo.grp_m + c0, geo.bias_L + c0, scale2, lane);
          else warp_chunk<T, Step::LUpdate, D, kChunk, false, PiecesXor>(w, keys, values, geo.grp_m + c0, geo.bias_L + c0, scale2, lane);
        }
        // o leaves through the tile's query rows (step 27): this warp alone read them, and is done.
        finish_l_update_staged<T, D, PiecesXor>(
            w, p, geo, valid_e, head, r0, last, kDump,
            [&](int i) { return position_row(queries, r0, i); },
            [&](int padded, int c8) { return L.at(queries, padded, c8); }, lane);
      }
      if (last) break;
      __syncthreads();  // the r_stats biases are in bias_R for every warp

      // ---- 5. r_stats of the next round, eq. (11): rows alpha_L[k, j] in position-major order (row
      // j*m + k gathered from padded row k*b + j), columns q_(l,j) of position j, weights
      // L_j[k, l] valid(l, j) = 2^(z - c_L log2 e) with the column's lse_L in its bias. The mean
      // query alpha_R / max(c_R, tiny) goes to padded row k*b + j of VY, in the input dtype.
      for (int tile = warp; tile < tiles; tile += kWarps) {
        const int r0 = tile * kM, r_last = min(r0 + kM, p.Np) - 1;
        WarpRows<D> w;
        position_rows<Step::RStats>(w, p, geo, r0, g, [&](int row) { return divide(row, L.inv_m); });
        bind_rows<D, PiecesXor>(w, [&](int r) { return L.row(KA, geo.padded_of[r0 + r]); }, lane);
        for (int c0 = divide(r0, L.inv_m) * p.m / kChunk * kChunk; c0 < (divide(r_last, L.inv_m) + 1) * p.m; c0 += kChunk)
          warp_chunk<T, Step::RStats, D, kChunk, false, PiecesXor>(
              w, [&](int c) { return L.row(Qs, geo.padded_of[c0 + c]); }, [&](int c) { return Qs; }, geo.grp_m + c0,
              geo.bias_R + c0, scale2, lane);
        // The mean queries alpha_R / max(c_R, tiny), eq. (11), by stmatrix (step 29; finish_r_stats
        // of whole_head.cuh writes them row by row); rows past N' go to this warp's scratch.
        finish_row_sums(w);
        const float inv[2] = {1.0f / fmaxf(w.run_sum[0], FLT_MIN), 1.0f / fmaxf(w.run_sum[1], FLT_MIN)};
        store_rows_shared<T, D, PiecesXor>([&](int i) { return position_row(VY, r0, i); }, w.acc_k, inv, lane);
      }
      __syncthreads();  // the mean queries are in VY for every warp; KA and bias_R are free again
    }
  }
}

template <class T, int D, bool kDump, bool kRounds>
void launch(const Problem& p) {
  constexpr auto kernel = in_place_kernel<T, D, kDump, kRounds>;
  const std::size_t bytes = in_place_bytes(p);
  kernel<<<persistent_grid<kernel>(kThreads, bytes, p.E * p.H), kThreads, bytes>>>(p);
  CUDA_CHECK_LAUNCH("level6 in_place_kernel");
}

/// A trace (T = 1), a timed T = 1 call, or a timed call of T >= 2 rounds.
template <class T, int D>
void dispatch_variant(const Problem& p, bool dump) {
  if (dump) launch<T, D, true, false>(p);
  else if (p.round > 1) launch<T, D, false, true>(p);
  else launch<T, D, false, false>(p);
}

LevelSteps& level4() {
  static LevelSteps s = level4_steps();
  return s;
}

/// Level 6's kernel runs this problem: a block fits a 16-row tile, and the head fits one CTA (level
/// 4's test, which also refuses fp32, and room for level 6's own layout and scratch rows).
bool runs_here(const Problem& p, int rounds) {
  return p.b <= kM && p.Np <= kMaxRows && level4().whole_fits(p, rounds) &&
         in_place_bytes(p) <= static_cast<std::size_t>(max_optin_shared());
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
        case 32: dispatch_variant<T, 32>(p, dump); break;
        case 64: dispatch_variant<T, 64>(p, dump); break;
        default: dispatch_variant<T, 128>(p, dump); break;
      }
    }
  });
}

}  // namespace

LevelSteps level6_steps() {
  LevelSteps s = level4_steps();  // heads this level does not take, and traces of T >= 2: level 4, then 3
  s.whole = &whole;  // whole_fits stays level 4's: level 6 takes a subset of its problems
  return s;
}

}  // namespace monarch::cuda::detail
