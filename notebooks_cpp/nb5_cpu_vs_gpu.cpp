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
}  // namespace

int main(int argc, char** argv) {
  nb::init(argc, argv);

  /// ## Is there a GPU?
#ifndef NB_HAVE_CUDA
  std::cout << "This build has no CUDA path (nvcc was not found when the project was configured).\n";
  show_recorded_results();
  return nb::under_test() ? nb::kSkipExit : nb::finish();
#else
  namespace mc = monarch::cuda;
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
  constexpr int E = 1, H = 2, N = 300, d = 64, dv = 64;
  monarch::Options opt;
  opt.steps = 2;
  opt.block = 18;
  opt.pad = monarch::Pad::Pre;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> g;
  monarch::Tensor4<float> Q(E, H, N, d), K(E, H, N, d), V(E, H, N, dv);
  for (auto* t : {&Q, &K, &V})
    for (auto& x : t->data) x = g(rng);
  monarch::KeyMask mask{E, N, std::vector<std::uint8_t>(E * N, 1)};
  for (int n = 0; n < N; n += 7) mask.keep[n] = 0;

  std::vector<nb::Series> errors;
  for (mc::Level level : {mc::Level::Scalar, mc::Level::TensorCore, mc::Level::Fused}) {
    for (mc::DType dt : {mc::DType::F32, mc::DType::F16, mc::DType::BF16}) {
      if (level == mc::Level::Fused && dt == mc::DType::F32) continue;  // level 3: tensor cores only
      auto round = [&](const monarch::Tensor4<float>& t) {
        monarch::Tensor4<float> r = t;
        mc::round_to_dtype(r.data, dt);
        monarch::Tensor4<double> out(t.E, t.H, t.N, t.D);
        for (std::size_t i = 0; i < r.data.size(); ++i) out.data[i] = r.data[i];
        return std::pair{r, out};
      };
      const auto [Qr, Qd] = round(Q);
      const auto [Kr, Kd] = round(K);
      const auto [Vr, Vd] = round(V);
      std::vector<monarch::HeadTrace<double>> ref;
      monarch::monarch_attention(Qd, Kd, Vd, &mask, opt, &ref);
      std::vector<mc::Trace> gpu;
      mc::monarch_attention(Qr, Kr, Vr, &mask, opt, mc::Config{level, dt}, &gpu);
      const std::string label = nb::fmt("level %d %s", int(level), mc::to_string(dt));
      std::printf("\n%s\n", label.c_str());
      nb::row({"round", "alpha_R", "c_R", "alpha_L", "c_L", "Y", "O"}, 11);
      bool pass = true;
      nb::Series s{label, {}, {}};
      std::vector<std::vector<mc::ArrayError>> per_head;
      for (int h = 0; h < H; ++h) per_head.push_back(mc::compare_trace(ref[h], gpu[h]));
      for (int t = 0; t < opt.steps; ++t) {
        std::vector<std::string> cells = {std::to_string(t + 1)};
        for (int a = 0; a < 6; ++a) {
          mc::ArrayError worst = per_head[0][t * 6 + a];
          for (int h = 1; h < H; ++h) mc::merge_into(worst, per_head[h][t * 6 + a]);
          pass = pass && worst.pass(mc::tolerance(dt));
          cells.push_back(nb::fmt("%.1e", worst.rel));
          s.x.push_back(t * 6 + a + 1);
          s.y.push_back(std::max(worst.rel, 1e-12));
        }
        nb::row(cells, 11);
      }
      errors.push_back(s);
      nb::check(pass, label + ": every intermediate of every round is within tolerance of the reference");
    }
  }
  nb::lineplot("nb5_errors.png", "Relative error of each intermediate (1-6: alpha_R, c_R, alpha_L, c_L, Y, O of round 1; 7-12: round 2)",
               {"array (round 1: 1-6, round 2: 7-12)", "relative error vs double reference", false, true}, errors);

  /// ## Time
  ///
  /// One layer of attention for one sequence, $E = 1$, $H = 12$, $d = d_v = 64$, fp16, $T = 1$: each level
  /// against the naive cuBLAS baseline (scores materialised), best of 10 runs after a warm-up.
  /// `floor_bytes` is the least traffic of a call; floor / time is the achieved fraction of
  /// peak bandwidth, the number a fused kernel has to push towards 1. Level 4 is level 3 here
  /// (these heads are too long for one CTA); host-timed, so short calls include launch latency.
  nb::row({"N", "naive [ms]", "level 1 [ms]", "level 2 [ms]", "level 3 [ms]", "L3 % floor BW"}, 15);
  for (int n : {1024, 4096, 16384}) {
    monarch::Options o;
    monarch::Tensor4<float> q(1, 12, n, 64), k(1, 12, n, 64), v(1, 12, n, 64);
    for (auto* t : {&q, &k, &v})
      for (auto& x : t->data) x = g(rng);
    auto time = [&](auto& session) {
      session.upload(q, k, v, nullptr);
      session.run();
      mc::synchronize();
      double best = 1e300;
      for (int r = 0; r < 10; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        session.run();
        mc::synchronize();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      return best;
    };
    mc::NaiveSession naive(1, 12, n, 64, 64, o, mc::DType::F16);
    mc::MonarchSession l1(1, 12, n, 64, 64, o, {mc::Level::Scalar, mc::DType::F16});
    mc::MonarchSession l2(1, 12, n, 64, 64, o, {mc::Level::TensorCore, mc::DType::F16});
    mc::MonarchSession l3(1, 12, n, 64, 64, o, {mc::Level::Fused, mc::DType::F16});
    const double tn = time(naive), t1 = time(l1), t2 = time(l2), t3 = time(l3);
    const double frac = l3.floor_bytes() / t3 / (dev.mem_bandwidth_GBs * 1e9);
    nb::row({std::to_string(n), nb::fmt("%.3f", tn * 1e3), nb::fmt("%.3f", t1 * 1e3), nb::fmt("%.3f", t2 * 1e3),
             nb::fmt("%.3f", t3 * 1e3), nb::fmt("%.1f%%", 100 * frac)},
            15);
  }

  /// How far levels 3 and 4 are from the floor, and why (instruction issue, not bandwidth), is on
  /// the GPU page of these docs and in `bench/NOTES.md`; the comparison with PyTorch's
  /// FlashAttention-2 and cuDNN kernels is `bench/compare_sdpa.py`.
  return nb::finish();
#endif
}
