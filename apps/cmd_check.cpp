// `monarch check`: the CUDA path against the reference on fresh random inputs, step by step.
// For every intermediate of every round (alpha_R, c_R, alpha_L, c_L, Y, O) and for the output it
// prints the relative error ||gpu - ref|| / ||ref|| and the largest absolute error, worst over heads,
// and exits non-zero when any is past the dtype's tolerance (1e-5 fp32, 1e-2 fp16/bf16) or NaN.
// The reference runs in double on exactly the values the device sees (inputs rounded to the dtype).
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.hpp"
#include "monarch/attention.hpp"
#include "monarch_cuda/compare.hpp"
#include "monarch_cuda/monarch_cuda.hpp"

namespace monarch::cli {
namespace {

struct CheckArgs {
  int E = 1, H = 2, N = 1000, d = 64, dv = 0, steps = 2, block = 0, level = 0;
  std::string pad = "post", dtype = "fp32";
  double drop = 0.0;  // fraction of keys masked out at random
  std::uint64_t seed = 0;
  bool naive = true;
};

Tensor4<float> random_tensor(int E, int H, int N, int D, cuda::DType t, std::mt19937_64& rng) {
  Tensor4<float> x(E, H, N, D);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (float& v : x.data) v = g(rng);
  cuda::round_to_dtype(x.data, t);
  return x;
}

Tensor4<double> to_double(const Tensor4<float>& x) {
  Tensor4<double> y(x.E, x.H, x.N, x.D);
  for (std::size_t i = 0; i < x.data.size(); ++i) y.data[i] = x.data[i];
  return y;
}

bool report(const cuda::ArrayError& e, double tol) {
  const bool ok = e.pass(tol);
  std::printf("  %-6s %-8s rel %10.3e   max %10.3e   %s\n",
              e.round ? ("t=" + std::to_string(e.round)).c_str() : "final", e.name.c_str(), e.rel, e.max_abs,
              ok ? "ok" : (e.nan ? "FAIL (NaN)" : e.inf_mismatch ? "FAIL (inf)" : "FAIL"));
  return ok;
}

void run_check(const CheckArgs& a) {
  const cuda::DType dtype = cuda::parse_dtype(a.dtype);
  if (a.pad != "pre" && a.pad != "post") throw InputError("--pad must be pre or post, got '" + a.pad + "'");
  if (a.drop < 0 || a.drop >= 1) throw InputError("--mask-drop must be in [0, 1)");
  std::vector<cuda::Level> levels;
  if (a.level == 0) {
    levels = {cuda::Level::Scalar, cuda::Level::TensorCore};
    if (dtype != cuda::DType::F32) {  // levels 3 to 8: fp16/bf16 only
      levels.push_back(cuda::Level::Fused);
      levels.push_back(cuda::Level::WholeHead);
      levels.push_back(cuda::Level::OneLaunch);
      levels.push_back(cuda::Level::InPlace);
      levels.push_back(cuda::Level::Warpgroup);
      levels.push_back(cuda::Level::Cluster);
    }
  } else
    levels = {cuda::parse_level(a.level)};
  Options opt;
  opt.steps = a.steps;
  opt.block = a.block;
  opt.pad = a.pad == "pre" ? Pad::Pre : Pad::Post;
  validate_options(opt);
  const int dv = a.dv > 0 ? a.dv : a.d;
  const Geometry g = Geometry::make(a.N, a.block, opt.pad);
  for (cuda::Level level : levels) cuda::validate_session(a.E, a.H, a.N, a.d, dv, opt, {level, dtype});

  const cuda::DeviceInfo dev = cuda::device_info();
  if (!dev.ok) throw std::runtime_error("no CUDA device: " + dev.reason);

  const std::uint64_t seed = a.seed ? a.seed : std::random_device{}();
  std::mt19937_64 rng(seed);
  const Tensor4<float> Q = random_tensor(a.E, a.H, a.N, a.d, dtype, rng);
  const Tensor4<float> K = random_tensor(a.E, a.H, a.N, a.d, dtype, rng);
  const Tensor4<float> V = random_tensor(a.E, a.H, a.N, dv, dtype, rng);
  KeyMask mask;
  if (a.drop > 0) {
    mask.E = a.E;
    mask.N = a.N;
    mask.keep.resize(static_cast<std::size_t>(a.E) * a.N);
    std::bernoulli_distribution drop(a.drop);
    for (auto& k : mask.keep) k = drop(rng) ? 0 : 1;
    for (int e = 0; e < a.E; ++e) mask.keep[static_cast<std::size_t>(e) * a.N] = 1;  // a key always stays
  }
  const double tol = cuda::tolerance(dtype);
  std::printf("monarch check: %s on %s, E=%d H=%d N=%d d=%d d_v=%d b=%d (m=%d, %s-padding) T=%d, mask drop %.2f, "
              "seed %llu, tolerance %.0e\n",
              cuda::to_string(dtype), dev.name.c_str(), a.E, a.H, a.N, a.d, dv, g.b, g.m, a.pad.c_str(), a.steps,
              a.drop, static_cast<unsigned long long>(seed), tol);

  std::vector<HeadTrace<double>> ref_traces;
  const Tensor4<double> ref = monarch_attention(to_double(Q), to_double(K), to_double(V), &mask, opt, &ref_traces);

  int failures = 0, checks = 0;
  for (cuda::Level level : levels) {
    std::printf("level %d (%s), worst over %d heads:\n", static_cast<int>(level),
                level == cuda::Level::Scalar       ? "scalar"
                : level == cuda::Level::TensorCore ? "tensor cores"
                : level == cuda::Level::Fused      ? "fused steps, mma.sync"
                : level == cuda::Level::WholeHead  ? "whole head per CTA"
                : level == cuda::Level::OneLaunch  ? "one launch per call"
                : level == cuda::Level::InPlace    ? "whole head, intermediates in place"
                : level == cuda::Level::Warpgroup  ? "fused steps, warpgroup wgmma"
                                                   : "a cluster per head (T = 1), else level 7",
                a.E * a.H);
    cuda::MonarchSession s(a.E, a.H, a.N, a.d, dv, opt, {level, dtype});
    s.upload(Q, K, V, &mask);
    s.poison();
    std::vector<cuda::Trace> traces;
    s.run(&traces);
    // Worst error of each (round, array) over heads, in the order the rounds produced them.
    std::vector<cuda::ArrayError> worst;
    for (std::size_t h = 0; h < traces.size(); ++h) {
      const std::vector<cuda::ArrayError> errs = cuda::compare_trace(ref_traces[h], traces[h]);
      if (worst.empty()) {
        worst = errs;
      } else {
        for (std::size_t i = 0; i < errs.size() && i < worst.size(); ++i) cuda::merge_into(worst[i], errs[i]);
      }
    }
    worst.push_back(cuda::ArrayError{});
    s.poison();
    s.run();  // untraced: Y and O only in the last round
    worst.back() = cuda::compare_output(ref, s.output());
    for (const auto& e : worst) {
      failures += report(e, tol) ? 0 : 1;
      ++checks;
    }
  }
  if (a.naive) {
    constexpr int kMaxNaiveN = 16384;  // scores E H N^2: keep the check quick
    if (a.N <= kMaxNaiveN) {
      std::printf("naive cuBLAS attention vs exact softmax attention (double):\n");
      const Tensor4<double> exact = exact_attention(to_double(Q), to_double(K), to_double(V), &mask, opt);
      const Tensor4<float> naive = cuda::naive_attention(Q, K, V, &mask, opt, dtype);
      cuda::ArrayError e = cuda::compare_output(exact, naive);
      e.name = "naive";
      failures += report(e, tol) ? 0 : 1;
      ++checks;
    }
  }
  if (failures > 0)
    throw std::runtime_error("check failed: " + std::to_string(failures) + " of " + std::to_string(checks) +
                             " comparisons past the " + cuda::to_string(dtype) + " tolerance " +
                             std::to_string(tol) + " (seed " + std::to_string(seed) + ")");
  std::printf("all %d comparisons within %.0e\n", checks, tol);
}

}  // namespace

void add_check_command(CLI::App& app) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* cmd = app.add_subcommand(
      "check", "Run the CUDA levels and the reference (double) on fresh random inputs and compare every "
               "intermediate of every round; exits non-zero past the dtype's tolerance");
  cmd->add_option("--E", args->E, "batch size")->check(CLI::PositiveNumber);
  cmd->add_option("--H", args->H, "heads")->check(CLI::PositiveNumber);
  cmd->add_option("--N", args->N, "sequence length")->check(CLI::PositiveNumber);
  cmd->add_option("--d", args->d, "query/key dimension")->check(CLI::PositiveNumber);
  cmd->add_option("--dv", args->dv, "value dimension (default d)")->check(CLI::PositiveNumber);
  cmd->add_option("--steps", args->steps, "rounds T")->check(CLI::PositiveNumber);
  cmd->add_option("--block", args->block, "block size b (default ceil(sqrt(N)))")->check(CLI::PositiveNumber);
  cmd->add_option("--pad", args->pad, "pre or post")->check(CLI::IsMember({"pre", "post"}));
  cmd->add_option("--dtype", args->dtype, "fp32, fp16 or bf16")->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  cmd->add_option("--level", args->level,
                  "1 (scalar), 2 (tensor cores), 3 (fused steps), 4 (whole head per CTA), 5 (one launch), 6 (in "
                  "place), 7 (warpgroup) or 8 (a cluster per head); 3 to 8 run fp16/bf16; default: every level that "
                  "runs the dtype")
      ->check(CLI::Range(0, 8));
  cmd->add_option("--mask-drop", args->drop, "fraction of keys masked at random (default 0)");
  cmd->add_option("--seed", args->seed, "random seed (default: fresh)");
  cmd->add_flag("!--no-naive", args->naive, "skip the naive cuBLAS baseline check");
  cmd->callback([args] { run_check(*args); });
}

}  // namespace monarch::cli
