// CPU reference: MonarchAttention (T = 1, 2) against exact softmax attention, one head, d = 64,
// one thread, N = 256 ... 16384. After the runs it fits time ~ N^p by least squares on log-log
// axes for each method and prints the growth exponent p and the speed-up at every N.
//
//   ./bench_reference --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>

#include "monarch/attention.hpp"

namespace {

constexpr int kHeadDim = 64;
constexpr int kMinN = 256, kMaxN = 16384;

struct Inputs {
  monarch::Matrix<double> Q, K, V;
};

const Inputs& inputs(int N) {
  static std::map<int, Inputs> cache;
  auto it = cache.find(N);
  if (it != cache.end()) return it->second;
  std::mt19937_64 rng(N);
  std::normal_distribution<double> g;
  Inputs in{monarch::Matrix<double>(N, kHeadDim), monarch::Matrix<double>(N, kHeadDim),
            monarch::Matrix<double>(N, kHeadDim)};
  for (auto* M : {&in.Q, &in.K, &in.V})
    for (Eigen::Index i = 0; i < M->size(); ++i) M->data()[i] = g(rng);
  return cache.emplace(N, std::move(in)).first->second;
}

void BM_Monarch(benchmark::State& state, int steps) {
  const int N = static_cast<int>(state.range(0));
  const Inputs& in = inputs(N);
  const monarch::Options opt{.steps = steps};
  for (auto _ : state) {
    auto O = monarch::monarch_head(in.Q.data(), in.K.data(), in.V.data(), N, kHeadDim, kHeadDim, {}, opt);
    benchmark::DoNotOptimize(O.data());
  }
  const int b = monarch::default_block(N);
  state.counters["GFLOP/s"] = benchmark::Counter(monarch::monarch_flops(N, kHeadDim, kHeadDim, b, steps) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Exact(benchmark::State& state) {
  const int N = static_cast<int>(state.range(0));
  const Inputs& in = inputs(N);
  const double tau = 1.0 / std::sqrt(static_cast<double>(kHeadDim));
  for (auto _ : state) {
    auto O = monarch::exact_head(in.Q.data(), in.K.data(), in.V.data(), N, kHeadDim, kHeadDim, {}, tau);
    benchmark::DoNotOptimize(O.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(monarch::exact_flops(N, kHeadDim, kHeadDim) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK_CAPTURE(BM_Monarch, T1, 1)->RangeMultiplier(2)->Range(kMinN, kMaxN)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Monarch, T2, 2)->RangeMultiplier(2)->Range(kMinN, kMaxN)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Exact)->RangeMultiplier(2)->Range(kMinN, kMaxN)->Unit(benchmark::kMillisecond);

// Collects the median (or the single run) of every case, then prints exponents and speed-ups.
class GrowthReporter : public benchmark::ConsoleReporter {
 public:
  GrowthReporter() : ConsoleReporter(OO_Tabular) {}  // plain text: the output is saved as a result file
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      const bool single = r.run_type == Run::RT_Iteration && r.repetitions <= 1;
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      if (!single && !median) continue;
      const std::string name = r.run_name.function_name + (r.run_name.args.empty() ? "" : "/" + r.run_name.args);
      const auto slash = name.rfind('/');
      const std::string key = name.substr(0, slash);
      const int N = std::stoi(name.substr(slash + 1));
      seconds_[key][N] = r.GetAdjustedRealTime() * 1e-3;  // reported in ms
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nGrowth exponent p in time ~ N^p (least squares on log-log axes):\n");
    for (const auto& [method, times] : seconds_) {
      double sx = 0, sy = 0, sxx = 0, sxy = 0, n = 0;
      for (auto [N, t] : times) {
        const double x = std::log(N), y = std::log(t);
        sx += x, sy += y, sxx += x * x, sxy += x * y, n += 1;
      }
      std::printf("  %-16s p = %.2f\n", method.c_str(), (n * sxy - sx * sy) / (n * sxx - sx * sx));
    }
    const auto exact = seconds_.find("BM_Exact");
    if (exact == seconds_.end()) return;
    std::printf("\nSpeed-up of MonarchAttention over exact attention (same process):\n  %8s", "N");
    for (const auto& [method, times] : seconds_)
      if (method != "BM_Exact") std::printf("  %14s", method.c_str());
    std::printf("\n");
    for (auto [N, t_exact] : exact->second) {
      std::printf("  %8d", N);
      for (const auto& [method, times] : seconds_)
        if (method != "BM_Exact" && times.count(N)) std::printf("  %13.1fx", t_exact / times.at(N));
      std::printf("\n");
    }
  }

 private:
  std::map<std::string, std::map<int, double>> seconds_;
};

}  // namespace

int main(int argc, char** argv) {
  Eigen::setNbThreads(1);  // the comparison is single-threaded by design
  benchmark::Initialize(&argc, argv);
  GrowthReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
}
