// Every level of the CUDA path (levels 3 to 8: fp16 and bf16 only), for every dtype, against the reference in double: every
// intermediate of every round (alpha_R, c_R, alpha_L, c_L, Y, O) and the output, on fresh random
// inputs, with the device buffers poisoned (NaN) before each run.
#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>
#include <vector>

#include "gpu_helpers.hpp"

using namespace monarch;
using namespace monarch::cuda;
using namespace monarch::cuda::test;

namespace {

struct Case {
  const char* what;
  int E, H, N, d, dv, b, T;
  Pad pad;
  MaskKind mask;
  bool quick;  // small enough for compute-sanitizer
};

// N = 1, 7, 50, 60, 64, 197, 256, 1000, 4096; b = 1, b = N, b not dividing N; pre/post padding; masks with
// an empty key block; T = 1, 2, 3; d = 32, 64, 128 and d_v != d; E x H > 1.
const std::vector<Case> kCases = {
    {"N = 1 (b = 1 = N)", 1, 1, 1, 32, 32, 1, 1, Pad::Post, MaskKind::None, true},
    {"N = 7, b = 3 post, d_v = 40", 1, 1, 7, 32, 40, 3, 2, Pad::Post, MaskKind::None, true},
    {"N = 7, b = 3 pre, random mask, T = 3", 1, 2, 7, 32, 32, 3, 3, Pad::Pre, MaskKind::Random, true},
    {"N = 64, E x H = 2 x 3, random mask", 2, 3, 64, 64, 64, 8, 2, Pad::Post, MaskKind::Random, true},
    {"N = 64, b = N", 1, 1, 64, 64, 64, 64, 2, Pad::Post, MaskKind::None, true},
    {"N = 64, b = 1", 1, 1, 64, 32, 48, 1, 2, Pad::Post, MaskKind::Random, true},
    {"N = 197, b = 14 pre (ViT), empty key block, T = 3, d_v = 32", 2, 1, 197, 64, 32, 14, 3, Pad::Pre,
     MaskKind::EmptyBlock, true},
    {"N = 256, d = 128", 1, 2, 256, 128, 128, 16, 2, Pad::Post, MaskKind::None, false},
    {"N = 1000, b = 32 post, empty key block", 1, 2, 1000, 64, 64, 32, 2, Pad::Post, MaskKind::EmptyBlock,
     false},
    {"N = 1000, b = N (exact softmax)", 1, 1, 1000, 32, 64, 1000, 1, Pad::Post, MaskKind::Random, false},
    {"N = 4096, b = 60 pre (m = 69 > one tile)", 1, 1, 4096, 64, 64, 60, 2, Pad::Pre, MaskKind::Random,
     false},
    // Larger groups on the step kernels: m = 256 (each L-update and r_stats tile streams four chunks
    // of one group) and b = 150, which no chunk width divides (R-update), with an empty key block.
    {"N = 4096, b = 16 pre (m = 256), T = 2", 1, 2, 4096, 64, 64, 16, 2, Pad::Pre, MaskKind::Random, false},
    {"N = 3000, b = 150 post, d_v = 32, empty key block, T = 2", 1, 1, 3000, 64, 32, 150, 2, Pad::Post,
     MaskKind::EmptyBlock, false},
    // More work items than level 5 has resident CTAs (5 steps x 8 heads x 64 tiles = 2560), so each
    // CTA runs tiles of several steps and heads, waiting on other heads' counters.
    {"N = 4096, E x H = 2 x 4, b = 64, T = 2", 2, 4, 4096, 64, 64, 64, 2, Pad::Post, MaskKind::Random, false},
    // b = 8 divides level 7's 64-row tiles, so its R-update with values runs the one-chunk kernel
    // (step 31); N' = 1000 leaves the last tile 40 rows, and d, d_v < 64 are zero-padded.
    {"T = 1: N = 1000, b = 8 pre, d = 32, d_v = 48, empty key block (one-chunk R-update)", 1, 2, 1000, 32, 48, 8, 1,
     Pad::Pre, MaskKind::EmptyBlock, false},
    // Level 8 (a cluster per head, T = 1): N' = 4096, b = 64 (clusters of 16, one-chunk R-update
    // tiles); N' = 1024 with pads and d < 64; b = 128 (R-update tiles of two chunks); m = 40, where a
    // CTA's last L-update chunk reads past its own rows (clusters of 4); an empty key block.
    {"T = 1: N = 4096, b = 64, E x H = 1 x 3 (level 8: clusters of 16)", 1, 3, 4096, 64, 64, 64, 1, Pad::Post,
     MaskKind::Random, false},
    {"T = 1: N = 1000, b = 32 pre, d = 32, d_v = 48, empty key block (level 8: N' = 1024)", 2, 1, 1000, 32, 48, 32, 1,
     Pad::Pre, MaskKind::EmptyBlock, false},
    {"T = 1: N = 4000, b = 128 post, empty key block (level 8: two-chunk R-update tiles)", 1, 2, 4000, 64, 64, 128, 1,
     Pad::Post, MaskKind::EmptyBlock, false},
    {"T = 1: N = 1250, b = 32 pre, d_v = 32 (level 8: m = 40, clusters of 4)", 1, 2, 1250, 64, 32, 32, 1, Pad::Pre,
     MaskKind::Random, false},
    // T = 1 on heads small enough for level 4's one-CTA-per-head kernel. (Its T >= 2 path runs in the
    // untraced runs of the small cases above: a trace of T >= 2 rounds takes level 3's steps.)
    {"T = 1: N = 7, b = 3 pre, random mask", 1, 2, 7, 32, 32, 3, 1, Pad::Pre, MaskKind::Random, true},
    {"T = 1: N = 64, E x H = 2 x 3, random mask, d_v = 48", 2, 3, 64, 64, 48, 8, 1, Pad::Post, MaskKind::Random,
     true},
    {"T = 1: N = 197, b = 14 pre (ViT), empty key block", 2, 1, 197, 64, 64, 14, 1, Pad::Pre, MaskKind::EmptyBlock,
     true},
    {"T = 1: N = 256, b = 16, E x H = 3 x 4 (more heads than one wave)", 3, 4, 256, 64, 64, 16, 1, Pad::Post,
     MaskKind::Random, false},
    {"T = 1: N = 200, b = N (exact softmax), d = 128", 1, 2, 200, 128, 128, 200, 1, Pad::Post, MaskKind::None,
     false},
    {"T = 1: N = 256, b = 1 (m = N)", 1, 1, 256, 32, 32, 1, 1, Pad::Post, MaskKind::Random, false},
    // Level 6 (alpha_L, Y in place): more heads than resident CTAs, so every CTA runs several heads
    // in its shared memory; b = 8 divides its 16-row tiles, pre-padding, an empty block.
    {"T = 1: N = 60, b = 8 pre, E x H = 25 x 12 (several heads per CTA)", 25, 12, 60, 64, 64, 8, 1, Pad::Pre,
     MaskKind::EmptyBlock, true},
    // Level 6 with b not dividing 16: R-update tiles of whole blocks (15 rows) that start at odd
    // rows, the rest of each 16-row tile aliased and masked; several heads per CTA.
    {"T = 1: N = 50, b = 5 pre, d_v = 32, E x H = 25 x 12 (15-row R-update tiles)", 25, 12, 50, 32, 32, 5, 1,
     Pad::Pre, MaskKind::EmptyBlock, true},
    {"N = 197, b = 15 post, E x H = 25 x 12, T = 2 (15-row R-update tiles)", 25, 12, 197, 64, 64, 15, 2, Pad::Post,
     MaskKind::Random, false},
};

std::string describe(const ArrayError& e) {
  std::ostringstream s;
  s << e.name << (e.round ? " round " + std::to_string(e.round) : std::string()) << ": rel " << e.rel
    << ", max abs " << e.max_abs << ", NaN " << e.nan << ", inf mismatches " << e.inf_mismatch
    << (e.size_mismatch ? ", SIZE MISMATCH" : "");
  return s.str();
}

void check_dtype(DType dtype) {
  const double tol = tolerance(dtype);
  const std::uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  for (const Case& c : kCases) {
    if (quick() && !c.quick) continue;
    CAPTURE(seed);
    INFO("case: " << std::string(c.what) << ", dtype " << std::string(to_string(dtype)));
    Options opt;
    opt.steps = c.T;
    opt.block = c.b;
    opt.pad = c.pad;
    const Geometry g = Geometry::make(c.N, c.b, c.pad);
    const Tensor4<float> Q = random_tensor(c.E, c.H, c.N, c.d, dtype, rng);
    const Tensor4<float> K = random_tensor(c.E, c.H, c.N, c.d, dtype, rng);
    const Tensor4<float> V = random_tensor(c.E, c.H, c.N, c.dv, dtype, rng);
    const KeyMask mask = make_mask(c.mask, c.E, g, rng);
    // The reference sees exactly the values the device sees (already rounded to the dtype).
    std::vector<HeadTrace<double>> ref_traces;
    const Tensor4<double> ref =
        monarch_attention(to_double(Q), to_double(K), to_double(V), &mask, opt, &ref_traces);

    std::vector<Level> levels = {Level::Scalar, Level::TensorCore};
    if (dtype != DType::F32) {  // levels 3 to 8: tensor cores only
      levels.push_back(Level::Fused);
      levels.push_back(Level::WholeHead);
      levels.push_back(Level::OneLaunch);
      levels.push_back(Level::InPlace);
      levels.push_back(Level::Warpgroup);
      levels.push_back(Level::Cluster);
    }
    for (Level level : levels) {
      INFO("level " << static_cast<int>(level));
      MonarchSession s(c.E, c.H, c.N, c.d, c.dv, opt, Config{level, dtype});
      s.upload(Q, K, V, &mask);
      // 1. Traced run: every intermediate of every round of every head.
      s.poison();
      std::vector<Trace> traces;
      s.run(&traces);
      REQUIRE(traces.size() == ref_traces.size());
      for (std::size_t h = 0; h < traces.size(); ++h) {
        INFO("head " << h);
        for (const ArrayError& e : compare_trace(ref_traces[h], traces[h]))
          CHECK_MESSAGE(e.pass(tol), describe(e));
      }
      // 2. Untraced run (Y and O only in the last round, as benchmarked): the output.
      s.poison();
      s.run();
      const ArrayError e = compare_output(ref, s.output());
      CHECK_MESSAGE(e.pass(tol), describe(e));
    }
  }
}

/// The two levels' outputs agree in every bit, and the second has no NaN (the buffers were poisoned).
void check_bit_identical(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  std::size_t differ = 0, nan = 0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    differ += std::memcmp(&a[k], &b[k], sizeof(float)) != 0;
    nan += std::isnan(b[k]);
  }
  CHECK(nan == 0);
  CHECK_MESSAGE(differ == 0, differ << " of " << a.size() << " outputs differ");
}

/// Levels a and b on the same fresh random inputs (d = d_v, a random key mask): each session is
/// poisoned, run `runs` times (a second run must find nothing left over from the first), and its
/// output must agree with the other's in every bit. look(session, level) sees each session first.
void check_levels_bit_identical(Level a, Level b, DType dtype, int E, int H, int N, int d, const Options& opt,
                                std::mt19937_64& rng, int runs = 1,
                                const std::function<void(const MonarchSession&, Level)>& look = {}) {
  const Geometry g = Geometry::make(N, opt.block, opt.pad);
  const Tensor4<float> Q = random_tensor(E, H, N, d, dtype, rng);
  const Tensor4<float> K = random_tensor(E, H, N, d, dtype, rng);
  const Tensor4<float> V = random_tensor(E, H, N, d, dtype, rng);
  const KeyMask mask = make_mask(MaskKind::Random, E, g, rng);
  std::vector<float> out[2];
  int i = 0;
  for (Level level : {a, b}) {
    MonarchSession s(E, H, N, d, d, opt, Config{level, dtype});
    if (look) look(s, level);
    s.upload(Q, K, V, &mask);
    s.poison();
    for (int r = 0; r < runs; ++r) s.run();
    out[i++] = s.output().data;
  }
  check_bit_identical(out[0], out[1]);
}

}  // namespace

TEST_CASE("fp32: levels 1 and 2 match the double reference in every intermediate of every round (1e-5)") {
  MONARCH_REQUIRE_GPU_OR_SKIP();
  check_dtype(DType::F32);
}

TEST_CASE("fp16: levels 1 to 8 match the double reference in every intermediate of every round (1e-2)") {
  MONARCH_REQUIRE_GPU_OR_SKIP();
  check_dtype(DType::F16);
}

TEST_CASE("bf16: levels 1 to 8 match the double reference in every intermediate of every round (1e-2)") {
  MONARCH_REQUIRE_GPU_OR_SKIP();
  check_dtype(DType::BF16);
}

TEST_CASE("poisoned buffers are NaN: a comparison against them fails") {
  // The guard of every test above: if run() wrote nothing, poison would be seen as NaN, not pass.
  MONARCH_REQUIRE_GPU_OR_SKIP();
  Options opt;
  opt.block = 4;
  MonarchSession s(1, 1, 16, 32, 32, opt, Config{Level::TensorCore, DType::F16});
  std::mt19937_64 rng(fresh_seed());
  s.upload(random_tensor(1, 1, 16, 32, DType::F16, rng), random_tensor(1, 1, 16, 32, DType::F16, rng),
           random_tensor(1, 1, 16, 32, DType::F16, rng), nullptr);
  s.poison();
  const Tensor4<float> O = s.output();
  const Tensor4<double> zeros(1, 1, 16, 32);
  const ArrayError e = compare_output(zeros, O);
  CHECK(e.nan == O.data.size());
  CHECK_FALSE(e.pass(1.0));
}

TEST_CASE("level 5 gives bit-identical output to level 3, whose tiles it runs in one launch") {
  // Level 5 runs level 3's tile code, in the same order within each tile, with no atomics in the
  // arithmetic: any difference in any bit means a tile read an intermediate before its producer
  // step had finished (a broken dependency wait) or a stale copy of it.
  MONARCH_REQUIRE_GPU_OR_SKIP();
  struct Run {
    const char* what;
    int E, H, N, b, T;
  };
  // Shapes whose heads do not fit level 4's whole-head kernel (N' > ~500 at d = 64), which level 5
  // would hand them to.
  const Run runs[] = {{"T = 1, N = 4096, E x H = 2 x 6", 2, 6, 4096, 64, 1},
                      {"T = 2, N = 1000, E x H = 3 x 4, b = 32", 3, 4, 1000, 32, 2},
                      {"T = 3, N = 1000, E x H = 4 x 8, b = 32 (more items than CTAs)", 4, 8, 1000, 32, 3},
                      // 96 heads x 31 tiles x 5 steps: each CTA runs ~28 tiles of many heads and steps.
                      {"T = 2, N = 1950, E x H = 8 x 12, b = 45 (28 tiles per CTA)", 8, 12, 1950, 45, 2}};
  std::mt19937_64 rng(fresh_seed());
  for (DType dtype : {DType::F16, DType::BF16}) {
    for (const Run& r : runs) {
      INFO(r.what << ", " << to_string(dtype));
      Options opt;
      opt.block = r.b;
      opt.steps = r.T;
      opt.pad = Pad::Pre;
      // Run twice: the second launch must find level 5's counters reset, not left at the first's totals.
      check_levels_bit_identical(Level::Fused, Level::OneLaunch, dtype, r.E, r.H, r.N, 64, opt, rng, 2);
    }
  }
}

TEST_CASE("level 6 gives bit-identical output to level 4, whose arithmetic it keeps with alpha_L and Y in place") {
  // Level 6 computes every tile of every round as level 4 does, in the same column order, and
  // rounds alpha_L and Y to the dtype as level 4's scratch slot does; only where they live differs. A bit that differs
  // means a warp read K, V, alpha_L or Y while another warp was overwriting them, or too early.
  MONARCH_REQUIRE_GPU_OR_SKIP();
  struct Run {
    const char* what;
    int E, H, N, d, b, T;
    Pad pad;
  };
  // Every b below divides 16, where level 6's R-update tiles are level 4's 16-row tiles. For other b
  // its tiles are whole blocks and the column order differs from level 4's, so those cases are
  // checked against the reference in the suite above instead.
  const Run runs[] = {
      {"T = 1, N = 256, b = 16, E x H = 64 x 12 (768 heads, ~3 per CTA)", 64, 12, 256, 64, 16, 1, Pad::Post},
      {"T = 1, N = 120, b = 8 pre, d = 32, E x H = 40 x 12", 40, 12, 120, 32, 8, 1, Pad::Pre},
      {"T = 1, N = 100, b = 4, d = 128, E x H = 20 x 16", 20, 16, 100, 128, 4, 1, Pad::Post},
      {"T = 2, N = 256, b = 16, E x H = 64 x 12", 64, 12, 256, 64, 16, 2, Pad::Post},
      {"T = 3, N = 120, b = 8 pre, d = 64, E x H = 40 x 12 (rows past N' in the last tile)", 40, 12, 120, 64, 8, 3,
       Pad::Pre}};
  std::mt19937_64 rng(fresh_seed());
  for (DType dtype : {DType::F16, DType::BF16}) {
    for (const Run& r : runs) {
      INFO(r.what << ", " << to_string(dtype));
      Options opt;
      opt.block = r.b;
      opt.steps = r.T;
      opt.pad = r.pad;
      check_levels_bit_identical(Level::WholeHead, Level::InPlace, dtype, r.E, r.H, r.N, r.d, opt, rng);
    }
  }
}

TEST_CASE("level 8 gives bit-identical output to level 7, whose tiles it runs with alpha_L, c_L and Y on chip") {
  // Level 8 runs level 7's R-update and L-update tiles, in the same order within each tile; only
  // where alpha_L, c_L and Y go between the two changes (another CTA's shared memory instead of
  // global memory). A bit that differs means an L-update read a row before it had landed, from the
  // wrong place, or while it was being overwritten. plan() shows that the cluster kernel really ran.
  MONARCH_REQUIRE_GPU_OR_SKIP();
  struct Run {
    const char* what;
    int E, H, N, d, b;
    Pad pad;
    const char* plan;
    bool quick;  // small enough for compute-sanitizer
  };
  const Run runs[] = {
      {"N = 4096, b = 64, E x H = 8 x 12 (96 clusters: more than fit at once)", 8, 12, 4096, 64, 64, Pad::Post,
       "a cluster of 16 CTAs per head", false},
      {"N = 1024, b = 32, E x H = 4 x 12", 4, 12, 1024, 64, 32, Pad::Post,
       "a cluster of 16 CTAs per head", false},
      {"N = 4000, b = 128 pre, d = 32 (two-chunk R-update tiles)", 2, 3, 4000, 32, 128, Pad::Pre,
       "a cluster of 16 CTAs per head", false},
      {"N = 1250, b = 32 pre (m = 40)", 2, 3, 1250, 64, 32, Pad::Pre, "a cluster of 4 CTAs per head",
       true},
      {"N = 1000, b = 32 pre, E x H = 1 x 2", 1, 2, 1000, 64, 32, Pad::Pre,
       "a cluster of 16 CTAs per head", true}};
  std::mt19937_64 rng(fresh_seed());
  for (DType dtype : {DType::F16, DType::BF16}) {
    for (const Run& r : runs) {
      if (quick() && !r.quick) continue;
      INFO(r.what << ", " << to_string(dtype));
      Options opt;
      opt.block = r.b;
      opt.steps = 1;
      opt.pad = r.pad;
      check_levels_bit_identical(Level::Warpgroup, Level::Cluster, dtype, r.E, r.H, r.N, r.d, opt, rng, 1,
                                 [&](const MonarchSession& s, Level level) {
                                   CHECK(s.plan() == (level == Level::Cluster ? r.plan : "step kernels"));
                                 });
    }
  }
}

TEST_CASE("level 8 still launches a larger shape after a smaller one was planned") {
  // plan() raises the kernel's shared-memory limit for each new shape's occupancy query. It once set
  // the limit to that shape's bytes even below what a shape launched earlier needs, and the next
  // launch of the larger shape failed with "invalid argument" (bench/NOTES.md step 33). N = 2048,
  // b = 32 (128 rows per CTA of 16; too large for one CTA's whole-head kernel, which would take it
  // before plan() is asked) is planned nowhere else in this binary, so its query is always a new one,
  // made between two launches of N = 4096 (256 rows per CTA). fp16 only: plan() queries the fp16
  // kernel.
  MONARCH_REQUIRE_GPU_OR_SKIP();
  struct Run {
    int N, b;
  };
  const Run runs[] = {{4096, 64}, {2048, 32}, {4096, 64}};
  std::mt19937_64 rng(fresh_seed());
  for (const Run& r : runs) {
    INFO("N = " << r.N << ", b = " << r.b);
    Options opt;
    opt.block = r.b;
    opt.steps = 1;
    check_levels_bit_identical(Level::Warpgroup, Level::Cluster, DType::F16, 1, 2, r.N, 64, opt, rng, 1,
                               [&](const MonarchSession& s, Level level) {
                                 CHECK(s.plan() == (level == Level::Cluster ? "a cluster of 16 CTAs per head"
                                                                            : "step kernels"));
                               });
  }
}

TEST_CASE("level 8 hands T >= 2, and shapes no cluster takes, to level 7") {
  MONARCH_REQUIRE_GPU_OR_SKIP();
  Options opt;
  opt.block = 64;
  opt.steps = 2;
  CHECK(MonarchSession(1, 2, 4096, 64, 64, opt, Config{Level::Cluster, DType::F16}).plan() == "step kernels");
  opt.steps = 1;
  opt.block = 60;  // m = 69: not a multiple of 8
  CHECK(MonarchSession(1, 2, 4096, 64, 64, opt, Config{Level::Cluster, DType::F16}).plan() == "step kernels");
  opt.block = 64;  // d = 128: level 3's steps
  CHECK(MonarchSession(1, 2, 4096, 128, 128, opt, Config{Level::Cluster, DType::F16}).plan() == "step kernels");
  opt.block = 16;  // N' = 256: level 6's whole head per CTA
  CHECK(MonarchSession(1, 2, 256, 64, 64, opt, Config{Level::Cluster, DType::F16}).plan() == "one whole-head kernel");
}
