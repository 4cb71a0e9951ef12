/// # Chapter 5: CPU against GPU, step by step
///
/// The CUDA path (`cuda/`) computes the same intermediates as the CPU reference, in the same
/// layouts: $\alpha_R, c_R$ (eq. (11)), $\alpha_L, c_L$ (eq. (10)), $Y$ and the output (eq. (4)),
/// round by round. This chapter runs both on one problem and compares every array, for every
/// rung of the GPU ladder and every precision, then times them.
///
/// It needs a GPU. Without one it says so and shows the last results recorded in
/// `bench/results/` instead (and, run as a test, reports itself skipped).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "monarch/attention.hpp"
#include "nb.hpp"
#ifdef NB_HAVE_CUDA
#include <chrono>

#include "monarch_cuda/compare.hpp"
#include "monarch_cuda/monarch_cuda.hpp"
#endif

namespace {
// Shows the recorded GPU results: the head of every bench/results file whose name mentions the GPU
// (up to its raw-output section); the Benchmark results page of the docs has them in full.
constexpr int kMaxLinesPerFile = 45;

void show_recorded_results() {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(MONARCH_SOURCE_DIR) / "bench" / "results";
  std::vector<fs::path> files;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string n = e.path().filename().string(), ext = e.path().extension().string();
      const bool text = ext == ".md" || ext == ".txt";  // plots and CSVs are shown elsewhere
      if (text && (n.find("cuda") != std::string::npos || n.find("gpu") != std::string::npos ||
                   n.find("h100") != std::string::npos || n.find("h200") != std::string::npos))
        files.push_back(e.path());
    }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::cout << "No GPU results are recorded in bench/results/ yet.\n";
    return;
  }
  std::cout << "The recorded GPU results in bench/results/ (the first lines of each file; the Benchmark results\n"
               "page has them in full):\n";
  for (const auto& f : files) {
    std::cout << "\n==> bench/results/" << f.filename().string() << "\n";
    std::ifstream in(f);
    std::string line;
    int shown = 0, rest = 0;
    bool raw = false;
    while (std::getline(in, line)) {
      raw = raw || line.rfind("## Raw", 0) == 0;
      if (!raw && shown < kMaxLinesPerFile) {
        std::cout << line << "\n";
        ++shown;
      } else {
        ++rest;
      }
    }
    if (rest) std::cout << "[... " << rest << " more lines]\n";
  }
}

#ifdef NB_HAVE_CUDA
namespace mc = monarch::cuda;

/// One sequence's inputs: q, k (1, H, N, d), v (1, H, N, d_v) and its key mask.
struct Inputs {
  monarch::Tensor4<float> q, k, v;
  monarch::KeyMask keep;
};

/// Runs every (level, dtype) pair on one problem, traced, against the double reference: prints a
/// table of each intermediate's relative error per round, checks each against the dtype's
/// tolerance, and returns one plot series per pair.
std::vector<nb::Series> compare_levels(const Inputs& in, const monarch::Options& opt,
                                       const std::vector<mc::Level>& levels, const std::vector<mc::DType>& dtypes) {
  constexpr int kArrays = 6;  // alpha_R, c_R, alpha_L, c_L, Y, O of each round
  const int H = in.q.E * in.q.H;
  std::vector<nb::Series> errors;
  for (mc::Level level : levels) {
    for (mc::DType dt : dtypes) {
      if (level >= mc::Level::Fused && dt == mc::DType::F32) continue;  // levels 3-8: tensor cores only
      auto round = [&](const monarch::Tensor4<float>& t) {
        monarch::Tensor4<float> r = t;
        mc::round_to_dtype(r.data, dt);
        monarch::Tensor4<double> out(t.E, t.H, t.N, t.D);
        for (std::size_t i = 0; i < r.data.size(); ++i) out.data[i] = r.data[i];
        return std::pair{r, out};
      };
      const auto [Qr, Qd] = round(in.q);
      const auto [Kr, Kd] = round(in.k);
      const auto [Vr, Vd] = round(in.v);
      std::vector<monarch::HeadTrace<double>> ref;
      monarch::monarch_attention(Qd, Kd, Vd, &in.keep, opt, &ref);
      std::vector<mc::Trace> gpu;
      mc::monarch_attention(Qr, Kr, Vr, &in.keep, opt, mc::Config{level, dt}, &gpu);
      const std::string label = nb::fmt("level %d %s", int(level), mc::to_string(dt));
      std::printf("\n%s\n", label.c_str());
      nb::row({"round", "alpha_R", "c_R", "alpha_L", "c_L", "Y", "O"}, 11);
      bool pass = true;
      nb::Series s{label, {}, {}};
      std::vector<std::vector<mc::ArrayError>> per_head;
      for (int h = 0; h < H; ++h) per_head.push_back(mc::compare_trace(ref[h], gpu[h]));
      for (int t = 0; t < opt.steps; ++t) {
        std::vector<std::string> cells = {std::to_string(t + 1)};
        for (int a = 0; a < kArrays; ++a) {
          mc::ArrayError worst = per_head[0][t * kArrays + a];
          for (int h = 1; h < H; ++h) mc::merge_into(worst, per_head[h][t * kArrays + a]);
          pass = pass && worst.pass(mc::tolerance(dt));
          cells.push_back(nb::fmt("%.1e", worst.rel));
          s.x.push_back(t * kArrays + a + 1);
          s.y.push_back(std::max(worst.rel, 1e-12));
        }
        nb::row(cells, 11);
      }
      errors.push_back(s);
      nb::check(pass, label + ": every intermediate of every round is within tolerance of the reference");
    }
  }
  return errors;
}

/// Uploads q, k, v, runs once to warm up, and returns the best of kRuns host-timed runs (seconds).
template <class Session>
double best_time(Session& s, const monarch::Tensor4<float>& q, const monarch::Tensor4<float>& k,
                 const monarch::Tensor4<float>& v) {
  constexpr int kRuns = 10;
  s.upload(q, k, v, nullptr);
  s.run();
  mc::synchronize();
  double best = 1e300;
  for (int r = 0; r < kRuns; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    s.run();
    mc::synchronize();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

/// Random normal (E, H, N, D) inputs.
monarch::Tensor4<float> normal_tensor(int E, int H, int N, int D, std::mt19937_64& rng) {
  std::normal_distribution<float> g;
  monarch::Tensor4<float> t(E, H, N, D);
  for (auto& x : t.data) x = g(rng);
  return t;
}

/// Random normal inputs of one sequence (q, k, v drawn in that order), with keys first, first + step,
/// ... masked out.
Inputs masked_inputs(int H, int N, int d, int dv, int first, int step, std::mt19937_64& rng) {
  Inputs in{normal_tensor(1, H, N, d, rng), normal_tensor(1, H, N, d, rng), normal_tensor(1, H, N, dv, rng),
            monarch::KeyMask{1, N, std::vector<std::uint8_t>(N, 1)}};
  for (int n = first; n < N; n += step) in.keep.keep[n] = 0;
  return in;
}
#endif
}  // namespace

int main(int argc, char** argv) {
  nb::init(argc, argv);

  /// ## Is there a GPU?
#ifndef NB_HAVE_CUDA
  std::cout << "This build has no CUDA path (nvcc was not found when the project was configured).\n";
  show_recorded_results();
  return nb::under_test() ? nb::kSkipExit : nb::finish();
#else
  const mc::DeviceInfo dev = mc::device_info();
  if (!dev.ok) {
    std::cout << "No usable GPU here (" << dev.reason << "), so nothing runs on a device.\n";
    show_recorded_results();
    return nb::under_test() ? nb::kSkipExit : nb::finish();
  }
  std::printf("%s, compute capability %d.%d, %.0f GB/s peak memory bandwidth\n", dev.name.c_str(), dev.major,
              dev.minor, dev.mem_bandwidth_GBs);

  /// ## One problem, every intermediate
  ///
  /// Two heads of $N = 300$ tokens (ragged: $b = 18$ gives $m = 17$, $N' = 306$), $d = d_v = 64$,
  /// $T = 2$ rounds, pre-padding and a key mask. The inputs are rounded to each precision first,
  /// so the double reference sees exactly the numbers the device sees; the table gives
  /// $\lVert \mathrm{gpu} - \mathrm{ref} \rVert / \lVert \mathrm{ref} \rVert$ for every array of
  /// every round. The tolerance is $10^{-5}$ for fp32 and $10^{-2}$ for fp16 and bf16
  /// (statistics and accumulators stay fp32 on the device).
  constexpr int H = 2, N = 300, d = 64, dv = 64;
  monarch::Options opt;
  opt.steps = 2;
  opt.block = 18;
  opt.pad = monarch::Pad::Pre;
  std::mt19937_64 rng(5);
  const std::vector<nb::Series> errors =
      compare_levels(masked_inputs(H, N, d, dv, 0, 7, rng), opt,
                     {mc::Level::Scalar, mc::Level::TensorCore, mc::Level::Fused, mc::Level::Warpgroup},
                     {mc::DType::F32, mc::DType::F16, mc::DType::BF16});
  nb::lineplot("nb5_errors.png", "Relative error of each intermediate (1-6: alpha_R, c_R, alpha_L, c_L, Y, O of round 1; 7-12: round 2)",
               {"array (round 1: 1-6, round 2: 7-12)", "relative error vs double reference", false, true}, errors);

  /// ## The whole-head rungs: levels 4 to 6
  ///
  /// Levels 4 and 6 hold a whole head in one CTA's shared memory when it fits ($N' \le 256$ at
  /// $d = 64$; the head above, $N' = 306$, runs level 3 there), and level 6 writes $\alpha_L$ and $Y$
  /// over $K$ and $V$ in place. Their traces of $T \ge 2$ rounds take level 3's steps, so this
  /// problem has $T = 1$, where each traces its own kernel: ViT-B/16's $N = 197$ tokens with
  /// $b = 14$ and pre-padding (13 pads, then one block per row of patches), a key mask, three heads.
  /// Level 5 runs level 4's kernel on heads that fit. Round 1's $\alpha_R$ and $c_R$ are the queries
  /// and ones of eq. (14).
  {
    constexpr int kH = 3, kN = 197;
    monarch::Options vit;
    vit.block = 14;
    vit.pad = monarch::Pad::Pre;
    compare_levels(masked_inputs(kH, kN, d, dv, 3, 11, rng), vit,
                   {mc::Level::Fused, mc::Level::WholeHead, mc::Level::OneLaunch, mc::Level::InPlace},
                   {mc::DType::F16, mc::DType::BF16});
  }

  /// ## A head per cluster: level 8
  ///
  /// At $T = 1$ level 8 runs a head too long for one CTA on a thread-block cluster: each CTA computes
  /// some of the R-update's rows and sends $\alpha_L$, $c_L$ and $Y$ into the shared memory of the CTA
  /// whose L-update reads them, so they never reach global memory (here they do, because a traced
  /// run asks for them). $N = 1000$ with $b = 32$ and pre-padding gives $N' = 1024$, $m = 32$: one
  /// cluster of 16 CTAs per head. Its tiles are level 7's, so the two levels' errors agree.
  {
    constexpr int kH = 2, kN = 1000;
    monarch::Options one;
    one.block = 32;
    one.pad = monarch::Pad::Pre;
    const std::string plan = mc::MonarchSession(1, kH, kN, d, dv, one, {mc::Level::Cluster, mc::DType::F16}).plan();
    nb::check(plan == "a cluster of 16 CTAs per head", "level 8 runs this problem on its cluster kernel", plan);
    compare_levels(masked_inputs(kH, kN, d, dv, 5, 13, rng), one, {mc::Level::Warpgroup, mc::Level::Cluster},
                   {mc::DType::F16, mc::DType::BF16});
  }

  /// ## Time
  ///
  /// One layer of attention for one sequence, $E = 1$, $H = 12$, $d = d_v = 64$, fp16, $T = 1$: each level
  /// against the naive cuBLAS baseline (scores materialised), best of 10 runs after a warm-up.
  /// `floor_bytes` is the least traffic of a call; floor / time is the achieved fraction of
  /// peak bandwidth, the number a fused kernel has to push towards 1. Level 7 is level 3's steps on
  /// the warpgroup tensor cores (`wgmma`); levels 4 to 6 would run level 3 here (these heads are too
  /// long for one CTA). Host-timed, so short calls include launch latency.
  nb::row({"N", "naive [ms]", "level 1 [ms]", "level 2 [ms]", "level 3 [ms]", "level 7 [ms]", "L7 % floor BW"}, 14);
  for (int n : {1024, 4096, 16384}) {
    monarch::Options o;
    const monarch::Tensor4<float> q = normal_tensor(1, 12, n, 64, rng), k = normal_tensor(1, 12, n, 64, rng),
                                  v = normal_tensor(1, 12, n, 64, rng);
    mc::NaiveSession naive(1, 12, n, 64, 64, o, mc::DType::F16);
    mc::MonarchSession l1(1, 12, n, 64, 64, o, {mc::Level::Scalar, mc::DType::F16});
    mc::MonarchSession l2(1, 12, n, 64, 64, o, {mc::Level::TensorCore, mc::DType::F16});
    mc::MonarchSession l3(1, 12, n, 64, 64, o, {mc::Level::Fused, mc::DType::F16});
    mc::MonarchSession l7(1, 12, n, 64, 64, o, {mc::Level::Warpgroup, mc::DType::F16});
    const double tn = best_time(naive, q, k, v), t1 = best_time(l1, q, k, v), t2 = best_time(l2, q, k, v),
                 t3 = best_time(l3, q, k, v), t7 = best_time(l7, q, k, v);
    const double frac = l7.floor_bytes() / t7 / (dev.mem_bandwidth_GBs * 1e9);
    nb::row({std::to_string(n), nb::fmt("%.3f", tn * 1e3), nb::fmt("%.3f", t1 * 1e3), nb::fmt("%.3f", t2 * 1e3),
             nb::fmt("%.3f", t3 * 1e3), nb::fmt("%.3f", t7 * 1e3), nb::fmt("%.1f%%", 100 * frac)},
            14);
  }

  /// Short sequences in large batches are where the whole-head rungs differ from level 3: 256
  /// sequences of 256 tokens, 12 heads, fp16, $T = 1$ ($b = 16$), timed the same way.
  nb::row({"E x N", "level 3 [ms]", "level 4 [ms]", "level 6 [ms]", "L6 % floor BW"}, 15);
  {
    constexpr int kE = 256, kN = 256;
    const monarch::Tensor4<float> q = normal_tensor(kE, 12, kN, 64, rng), k = normal_tensor(kE, 12, kN, 64, rng),
                                  v = normal_tensor(kE, 12, kN, 64, rng);
    monarch::Options o;
    std::vector<double> t;
    double floor_bytes = 0;
    for (mc::Level level : {mc::Level::Fused, mc::Level::WholeHead, mc::Level::InPlace}) {
      mc::MonarchSession s(kE, 12, kN, 64, 64, o, {level, mc::DType::F16});
      t.push_back(best_time(s, q, k, v));
      floor_bytes = s.floor_bytes();
    }
    nb::row({nb::fmt("%dx%d", kE, kN), nb::fmt("%.3f", t[0] * 1e3), nb::fmt("%.3f", t[1] * 1e3),
             nb::fmt("%.3f", t[2] * 1e3), nb::fmt("%.1f%%", 100 * floor_bytes / t[2] / (dev.mem_bandwidth_GBs * 1e9))},
            15);
  }

  /// How far levels 3 to 7 are from the floor, and why (instruction issue, not bandwidth), is on
  /// the GPU page of these docs and in `bench/NOTES.md`; the comparison with PyTorch's
  /// FlashAttention-2 and cuDNN kernels is `bench/compare_sdpa.py`.
  return nb::finish();
#endif
}
