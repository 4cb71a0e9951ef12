/// # Chapter 7: Performance: floors, the roofline, and measurements
///
/// How fast *can* MonarchAttention be? This chapter counts its arithmetic (eq. (15)) and the
/// least data a call must move, puts both against a GPU's limits (the roofline), measures the CPU
/// reference on this machine while the docs are built, and plots whatever results have been
/// recorded in `bench/results/`.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "monarch/attention.hpp"
#include "nb.hpp"

using monarch::Matrix;

namespace {
constexpr int kD = 64;  // head dimension d = d_v of the examples
// NVIDIA H100 SXM datasheet numbers (dense, no sparsity); used as the roofline's two limits.
constexpr double kPeakFp16 = 989e12;   // FLOP/s, tensor cores, fp16/bf16 in, fp32 accumulate
constexpr double kHbmBandwidth = 3.35e12;  // bytes/s, HBM3
constexpr double kBytesFp16 = 2;

// Least-squares slope of log y against log x.
double loglog_slope(const std::vector<double>& x, const std::vector<double>& y) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = static_cast<double>(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double a = std::log(x[i]), b = std::log(y[i]);
    sx += a, sy += b, sxx += a * a, sxy += a * b;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

template <class F>
double best_seconds(F&& f, int repeats) {
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Recorded results -> series of (N, seconds per call). Two formats are read:
//  - Google Benchmark console lines "BM_Name/<args>/N[_mean]  <time> <unit> ...";
//  - Markdown table rows "| E1xN4096 | method | 283 us | ..." (bench/cuda's tables; E = 1 rows only).
std::map<std::string, std::vector<std::pair<double, double>>> parse_bench(const std::string& path) {
  std::map<std::string, std::vector<std::pair<double, double>>> out;
  std::ifstream in(path);
  std::string line;
  const std::map<std::string, double> unit = {{"ns", 1e-9}, {"us", 1e-6}, {"ms", 1e-3}, {"s", 1}};
  while (std::getline(in, line)) {
    int e = 0, n = 0, steps = 0;
    char method[64] = {0}, tunit[8] = {0}, dtype[8] = {0};
    double time = 0;
    // bench/compare_sdpa.py's CSV: dtype,T,E,N,method,median_us,... (fp16, T = 1, one sequence).
    if (std::sscanf(line.c_str(), "%7[^,],%d,%d,%d,%63[^,],%lf", dtype, &steps, &e, &n, method, &time) == 6) {
      if (std::string(dtype) == "fp16" && steps == 1 && e == 1)
        out[std::string(method) + " fp16 T = 1 (E = 1)"].push_back({double(n), time * 1e-6});
      continue;
    }
    if (std::sscanf(line.c_str(), "| E%dxN%d | %63s | %lf %7s |", &e, &n, method, &time, tunit) == 5 &&
        unit.count(tunit)) {
      if (e == 1) out[std::string(method) + " (E = 1)"].push_back({double(n), time * unit.at(tunit)});
      continue;
    }
    std::istringstream ls(line);
    std::string name, u;
    double t = 0;
    if (!(ls >> name >> t >> u) || name.rfind("BM_", 0) != 0 || !unit.count(u)) continue;
    for (const char* agg : {"_median", "_stddev", "_cv"})
      if (name.size() > std::string(agg).size() && name.ends_with(agg)) name.clear();
    if (name.empty()) continue;
    if (name.ends_with("_mean")) name.resize(name.size() - 5);
    const auto slash = name.rfind('/');
    if (slash == std::string::npos) continue;
    try {
      out[name.substr(0, slash)].push_back({std::stod(name.substr(slash + 1)), t * unit.at(u)});
    } catch (...) {
    }
  }
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  nb::init(argc, argv);

  /// ## Arithmetic, eq. (15)
  ///
  /// `monarch_flops` and `exact_flops` count a multiply-add as 2 FLOPs and an exp or log as 1,
  /// for one head with $d = d_v = 64$ and the default $b = \lceil \sqrt N \rceil$. Exact attention
  /// grows like $N^2$, MonarchAttention like $T N^{1.5}$: the fitted slopes on log-log axes
  /// should be 2 and 1.5.
  std::vector<double> Ns;
  for (int e = 8; e <= 16; ++e) Ns.push_back(std::pow(2.0, e));
  std::vector<nb::Series> flops;
  flops.push_back({"exact softmax attention", Ns, {}});
  for (double N : Ns) flops[0].y.push_back(monarch::exact_flops(int(N), kD, kD));
  for (int T : {1, 2, 3}) {
    nb::Series s{nb::fmt("MonarchAttention T = %d", T), Ns, {}};
    for (double N : Ns) s.y.push_back(monarch::monarch_flops(int(N), kD, kD, monarch::default_block(int(N)), T));
    flops.push_back(s);
  }
  nb::row({"N", "exact", "Monarch T=1", "T=2", "T=3", "saving T=1"}, 13);
  for (std::size_t i = 0; i < Ns.size(); ++i)
    nb::row({nb::fmt("%.0f", Ns[i]), nb::fmt("%.3g", flops[0].y[i]), nb::fmt("%.3g", flops[1].y[i]),
             nb::fmt("%.3g", flops[2].y[i]), nb::fmt("%.3g", flops[3].y[i]), nb::fmt("%.1fx", flops[0].y[i] / flops[1].y[i])},
            13);
  const double slope_exact = loglog_slope(Ns, flops[0].y), slope_monarch = loglog_slope(Ns, flops[1].y);
  std::printf("log-log slope: exact %.3f, Monarch T=1 %.3f\n", slope_exact, slope_monarch);
  nb::check(std::abs(slope_exact - 2) < 0.01, "exact attention's FLOPs grow like N^2");
  nb::check(std::abs(slope_monarch - 1.5) < 0.05, "MonarchAttention's FLOPs grow like N^1.5");
  nb::lineplot("nb7_flops.png", "Attention FLOPs of one head (d = d_v = 64), eq. (15)",
               {"sequence length N", "FLOPs", true, true}, flops);

  /// ## The floor and the roofline
  ///
  /// Every entry of $Q$, $K$, $V$ can change the output and every output entry must be written,
  /// so one call moves at least $s\, N (2d + 2d_v)$ bytes per head ($s$ bytes per element; fp16
  /// here). Dividing FLOPs by these bytes gives the best possible *arithmetic intensity*. A GPU
  /// is compute-bound above its ridge point, peak FLOP/s divided by memory bandwidth ($\approx 295$
  /// FLOP/byte for an H100 SXM with fp16 tensor cores), and memory-bound below it.
  ///
  /// Exact attention (computed flash-style, also at the floor traffic) has intensity $\approx N/2$ and
  /// becomes compute-bound early. MonarchAttention's intensity grows only like $\sqrt N$: with
  /// $T = 1$ it crosses the ridge only beyond $N \approx 50\,000$ (with $T = 3$ near $N \approx 8000$), so at realistic lengths a
  /// perfect kernel is **memory-bound** and its speed is set by how close it stays to the floor
  /// traffic. That is the design goal of the fused GPU levels.
  const double ridge = kPeakFp16 / kHbmBandwidth;
  const double floor_bytes_per_token = kBytesFp16 * (2 * kD + 2 * kD);
  std::vector<nb::Series> intensity = {{"exact (flash-style, floor traffic)", Ns, {}}, {"MonarchAttention T = 1", Ns, {}},
                                       {"MonarchAttention T = 3", Ns, {}}, {"H100 ridge point", {Ns.front(), Ns.back()}, {ridge, ridge}, false}};
  std::vector<nb::Series> floors = {{"exact: FLOPs / peak", Ns, {}}, {"Monarch T = 1: max(FLOPs / peak, bytes / bandwidth)", Ns, {}},
                                    {"Monarch T = 3", Ns, {}}};
  for (double N : Ns) {
    const double bytes = N * floor_bytes_per_token;
    const double fe = monarch::exact_flops(int(N), kD, kD);
    const double f1 = monarch::monarch_flops(int(N), kD, kD, monarch::default_block(int(N)), 1);
    const double f3 = monarch::monarch_flops(int(N), kD, kD, monarch::default_block(int(N)), 3);
    intensity[0].y.push_back(fe / bytes);
    intensity[1].y.push_back(f1 / bytes);
    intensity[2].y.push_back(f3 / bytes);
    floors[0].y.push_back(std::max(fe / kPeakFp16, bytes / kHbmBandwidth) * 1e6);
    floors[1].y.push_back(std::max(f1 / kPeakFp16, bytes / kHbmBandwidth) * 1e6);
    floors[2].y.push_back(std::max(f3 / kPeakFp16, bytes / kHbmBandwidth) * 1e6);
  }
  nb::row({"N", "I exact", "I Monarch T=1", "floor exact", "floor T=1", "best speed-up"}, 15);
  for (std::size_t i = 0; i < Ns.size(); ++i)
    nb::row({nb::fmt("%.0f", Ns[i]), nb::fmt("%.0f", intensity[0].y[i]), nb::fmt("%.1f", intensity[1].y[i]),
             nb::fmt("%.3g us", floors[0].y[i]), nb::fmt("%.3g us", floors[1].y[i]),
             nb::fmt("%.1fx", floors[0].y[i] / floors[1].y[i])},
            15);
  bool memory_bound = true;
  for (std::size_t i = 0; i < Ns.size(); ++i) memory_bound = memory_bound && (Ns[i] > 32768 || intensity[1].y[i] < ridge);
  nb::check(memory_bound, "up to N = 32768 a perfect MonarchAttention kernel (T = 1) is memory-bound on an H100");
  nb::check(intensity[0].y[2] > ridge, "exact attention is compute-bound from N = 1024 on");
  nb::lineplot("nb7_intensity.png", "Arithmetic intensity at the floor traffic (fp16, one head, d = d_v = 64) against the H100 ridge point",
               {"sequence length N", "FLOP per byte", true, true}, intensity);
  nb::lineplot("nb7_floors.png", "Lower bounds on the time of one head on an H100 SXM (datasheet peaks, not measurements)",
               {"sequence length N", "microseconds", true, true}, floors);

  /// ## Measured here: the CPU reference
  ///
  /// The double-precision reference on the machine that built these pages (one head, $d = 64$,
  /// best of 3; the build machine is shared, so treat these as rough). It is written for clarity,
  /// not speed, but the $N^{1.5}$ against $N^2$ shape shows already.
  std::mt19937_64 rng(1);
  std::normal_distribution<double> g;
  std::vector<nb::Series> measured = {{"exact_head (here)", {}, {}}, {"monarch_head T = 1 (here)", {}, {}}};
  nb::row({"N", "exact [ms]", "Monarch T=1 [ms]", "speed-up"}, 18);
  double speedup_2048 = 0;
  for (int N : {256, 512, 1024, 2048}) {
    Matrix<double> Q(N, kD), K(N, kD), V(N, kD);
    for (auto* M : {&Q, &K, &V})
      for (Eigen::Index i = 0; i < M->size(); ++i) M->data()[i] = g(rng);
    const double tau = 1 / std::sqrt(double(kD));
    const double te = best_seconds([&] { monarch::exact_head(Q.data(), K.data(), V.data(), N, kD, kD, {}, tau); }, 3);
    const double tm = best_seconds([&] { monarch::monarch_head(Q.data(), K.data(), V.data(), N, kD, kD, {}, monarch::Options{}); }, 3);
    measured[0].x.push_back(N), measured[0].y.push_back(te * 1e3);
    measured[1].x.push_back(N), measured[1].y.push_back(tm * 1e3);
    nb::row({nb::fmt("%d", N), nb::fmt("%.3f", te * 1e3), nb::fmt("%.3f", tm * 1e3), nb::fmt("%.1fx", te / tm)}, 18);
    if (N == 2048) speedup_2048 = te / tm;
  }
  nb::check(speedup_2048 > 1, "at N = 2048 the Monarch reference is faster than exact attention on this CPU");

  /// ## Recorded results
  ///
  /// Every file in `bench/results/` (the benchmark page of this site shows them in full). Lines in
  /// Google Benchmark's console format (`BM_Name/.../N  time unit`) and rows of the GPU benchmark
  /// tables (`| E1xN4096 | method | time |`, one sequence of 12 heads) are plotted against $N$,
  /// next to the CPU reference measured above (one head). The GPU rows are the ladder of
  /// [the GPU page](../docs/gpu.md): level 1 (`monarch_L1`), level 2 (`monarch_L2`) and the naive
  /// cuBLAS baseline; the CSV of `bench/compare_sdpa.py` adds the fastest level (`monarch`) beside
  /// PyTorch's FlashAttention-2 (`flash`) and cuDNN (`cudnn`) kernels, timed in one process.
  const std::filesystem::path results = std::filesystem::path(MONARCH_SOURCE_DIR) / "bench" / "results";
  std::vector<std::string> files;
  if (std::filesystem::is_directory(results))
    for (const auto& e : std::filesystem::directory_iterator(results))
      if (e.path().extension() == ".txt" || e.path().extension() == ".md" || e.path().extension() == ".csv")
        files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  if (files.empty()) std::printf("bench/results/ holds no recorded results yet.\n");
  for (const auto& f : files) {
    const auto series = parse_bench((results / f).string());
    std::printf("%s: %zu benchmark series\n", f.c_str(), series.size());
    for (const auto& [name, pts] : series) {
      nb::Series s{f.substr(0, f.rfind('.')) + ": " + name, {}, {}};
      for (const auto& [N, t] : pts) s.x.push_back(N), s.y.push_back(t * 1e3);
      if (s.x.size() >= 2) measured.push_back(s);
    }
  }
  nb::lineplot("nb7_measured.png", "Measured time of one head: the CPU reference here, and the recorded results",
               {"sequence length N", "milliseconds", true, true}, measured);

  return nb::finish();
}
