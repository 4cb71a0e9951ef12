// `monarch run IN OUT`: MonarchAttention on the q, k, v (and optional mask) of a safetensors file;
// writes `out` (and with --exact the softmax attention `exact`) to another safetensors file.
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "inputs.hpp"
#include "io/safetensors.hpp"
#include "monarch/attention.hpp"
#ifdef MONARCH_WITH_CUDA
#include <limits>
#include <stdexcept>

#include "monarch_cuda/monarch_cuda.hpp"
#endif

namespace monarch::cli {
namespace {

/// The command line of one run, as CLI11 fills it.
struct RunArgs {
  std::string in, out;
  int steps = 1;            // T
  int block = 0;            // b; only read when --block was given (default ceil(sqrt(N)))
  std::string pad = "post";
  double scale = 0;         // tau; only read when --scale was given (default 1/sqrt(d))
  std::string precision;    // empty: the device's default
  std::string device = "cpu";
  bool exact = false, trace = false;
  CLI::Option* block_opt = nullptr;
  CLI::Option* scale_opt = nullptr;
};

/// F of eq. (6) after every half-step of one head (R, L, R, L, ...) and the optimum F*.
struct HeadF {
  double F_star = 0;
  std::vector<double> F;
};

/// What a device produced, widened to double for writing and reporting.
struct DeviceResult {
  io::DType out_dtype = io::DType::F64;  // the dtype `out` (and `exact`) are written with
  std::vector<double> out;               // (E, H, N, d_v)
  std::vector<double> exact;             // (E, H, N, d_v); only with --exact
  std::vector<HeadF> trace;              // E*H heads in (e, h) order; only with --trace
};

/// Inputs narrowed to float (--precision fp32, and every precision of --device cuda). A finite
/// value past float's range would become inf and be reported as non-finite, which it is not in the
/// file; so it is refused here, naming the file and what narrowed it (`range`, e.g. ", outside the
/// fp32 range of --device cuda": docs/bad-inputs.md rows V6, G6).
Tensor4<float> narrow_to_float(const Tensor4<double>& t, const char* name, const std::string& file,
                               const char* range) {
  constexpr double kFloatMax = std::numeric_limits<float>::max();
  for (std::size_t i = 0; i < t.data.size(); ++i)
    if (std::abs(t.data[i]) > kFloatMax) {
      char value[32];
      std::snprintf(value, sizeof value, "%g", t.data[i]);
      throw InputError(file + ": " + name + " holds " + value + " at flat index " + std::to_string(i) + range);
    }
  return convert<float>(t);
}

/// The inputs in precision S: double as read, or narrowed to float.
template <class S>
Tensor4<S> in_precision(const Tensor4<double>& t, const char* name, const std::string& file) {
  if constexpr (std::is_same_v<S, float>)
    return narrow_to_float(t, name, file, ", outside the fp32 range of --precision fp32");
  else
    return t;
}

/// The CPU reference in precision S (double or float).
template <class S>
DeviceResult run_reference(const RunArgs& a, const AttentionInputs& in, const Options& opt) {
  const Tensor4<S> q = in_precision<S>(in.q, "q", a.in), k = in_precision<S>(in.k, "k", a.in),
                   v = in_precision<S>(in.v, "v", a.in);
  std::vector<HeadTrace<S>> traces;
  const Tensor4<S> o = monarch_attention<S>(q, k, v, &in.mask, opt, a.trace ? &traces : nullptr);
  DeviceResult r;
  r.out_dtype = std::is_same_v<S, double> ? io::DType::F64 : io::DType::F32;
  r.out.assign(o.data.begin(), o.data.end());
  if (a.exact) {
    const Tensor4<S> x = exact_attention<S>(q, k, v, &in.mask, opt);
    r.exact.assign(x.data.begin(), x.data.end());
  }
  for (const auto& t : traces) {
    HeadF h;
    h.F_star = static_cast<double>(t.F_star);
    for (const auto& round : t.rounds) {
      h.F.push_back(static_cast<double>(round.F_after_R));
      h.F.push_back(static_cast<double>(round.F_after_L));
    }
    r.trace.push_back(std::move(h));
  }
  return r;
}

// ===================== Device dispatch: the one place that knows the engines ==================
// To add a device (e.g. "cuda" with fp32/fp16/bf16): accept it in check_device, give it a default
// precision, and branch to its engine in run_on_device. Nothing else in this file changes.

/// Validates --device and --precision before any file is read; fills in the default precision.
void check_device(RunArgs& a) {
#ifdef MONARCH_WITH_CUDA
  // ---- CUDA branch (issue 3): --device cuda --precision fp32|fp16|bf16, level 2 (tensor cores) ----
  if (a.device == "cuda") {
    if (a.precision.empty()) a.precision = "fp32";
    cuda::parse_dtype(a.precision);  // InputError for anything but fp32, fp16, bf16
    if (a.trace)
      throw InputError("--trace (F after every half-step) is computed by the reference: use --device cpu");
    return;
  }
  if (a.device != "cpu")
    throw InputError("unknown device '" + a.device + "': this build supports --device cpu or cuda");
#else
  if (a.device != "cpu")
    throw InputError("unknown device '" + a.device + "': this build supports --device cpu");
#endif
  if (a.precision.empty()) a.precision = "fp64";  // the reference's ground truth
  if (a.precision != "fp64" && a.precision != "fp32")
    throw InputError("precision '" + a.precision + "' is not available on cpu: use fp64 or fp32");
}

#ifdef MONARCH_WITH_CUDA
// ---- CUDA branch (issue 3) ----
/// MonarchAttention on the GPU: the fastest level that runs the problem (level 7 for fp16/bf16 with
/// d, d_v multiples of 8: level 6's whole-head kernel where a head fits, warpgroup steps where not;
/// otherwise level 2); --exact runs the naive cuBLAS softmax attention in the
/// same precision.
DeviceResult run_cuda(const RunArgs& a, const AttentionInputs& in, const Options& opt) {
  const cuda::DeviceInfo dev = cuda::device_info();
  if (!dev.ok) throw std::runtime_error("--device cuda: no CUDA device (" + dev.reason + ")");
  const cuda::DType dtype = cuda::parse_dtype(a.precision);
  constexpr int kFusedRowAlign = 8;  // levels 3 to 8 copy 16-byte row pieces (cuda/fused_warp.cuh)
  const bool fused = dtype != cuda::DType::F32 && in.q.D % kFusedRowAlign == 0 && in.v.D % kFusedRowAlign == 0;
  const cuda::Config cfg{fused ? cuda::Level::Warpgroup : cuda::Level::TensorCore, dtype};
  // Narrowed to float for the device, which rounds further to fp16/bf16 if asked.
  constexpr const char* kRange = ", outside the fp32 range of --device cuda";
  const Tensor4<float> q = narrow_to_float(in.q, "q", a.in, kRange), k = narrow_to_float(in.k, "k", a.in, kRange),
                       v = narrow_to_float(in.v, "v", a.in, kRange);
  DeviceResult r;
  r.out_dtype = io::DType::F32;  // fp16/bf16 results are exact in F32
  const Tensor4<float> o = cuda::monarch_attention(q, k, v, &in.mask, opt, cfg);
  r.out.assign(o.data.begin(), o.data.end());
  if (a.exact) {
    const Tensor4<float> x = cuda::naive_attention(q, k, v, &in.mask, opt, cfg.dtype);
    r.exact.assign(x.data.begin(), x.data.end());
  }
  return r;
}
#endif

DeviceResult run_on_device(const RunArgs& a, const AttentionInputs& in, const Options& opt) {
  if (a.device == "cpu") {
    if (a.precision == "fp64") return run_reference<double>(a, in, opt);
    return run_reference<float>(a, in, opt);
  }
#ifdef MONARCH_WITH_CUDA
  if (a.device == "cuda") return run_cuda(a, in, opt);
#endif
  throw InputError("unknown device '" + a.device + "'");
}
// ==============================================================================================

Options parse_options(const RunArgs& a) {
  Options opt;
  opt.steps = a.steps;
  if (a.steps < 1) throw InputError("--steps T must be >= 1, got " + std::to_string(a.steps));
  if (a.block_opt->count() > 0) {
    if (a.block < 1) throw InputError("--block b must be >= 1, got " + std::to_string(a.block));
    opt.block = a.block;
  }
  if (a.pad == "pre")
    opt.pad = Pad::Pre;
  else if (a.pad == "post")
    opt.pad = Pad::Post;
  else
    throw InputError("unknown --pad '" + a.pad + "': use pre or post");
  if (a.scale_opt->count() > 0) {
    if (!std::isfinite(a.scale)) throw InputError("--scale tau must be finite");
    opt.scale = a.scale;
  }
  validate_options(opt);
  return opt;
}

/// F and the KL gap F* - F (eq. (7)) after every half-step: summed over heads, and per head
/// when there are few.
void print_trace(const std::vector<HeadF>& heads, int H) {
  constexpr std::size_t kMaxHeadsShown = 4;
  const bool per_head = heads.size() <= kMaxHeadsShown;
  double F_star = 0;
  for (const auto& h : heads) F_star += h.F_star;
  std::printf("trace: F of eq. (6) after each half-step, KL gap F* - F of eq. (7); F* = %.9g\n", F_star);
  std::printf("  %-10s %18s %14s", "half-step", "F (sum of heads)", "F* - F");
  if (per_head)
    for (std::size_t i = 0; i < heads.size(); ++i)
      std::printf("   gap e%zu,h%zu", i / H, i % H);
  std::printf("\n");
  const std::size_t steps = heads.empty() ? 0 : heads[0].F.size();
  for (std::size_t s = 0; s < steps; ++s) {
    double F = 0;
    for (const auto& h : heads) F += h.F[s];
    char label[32];
    std::snprintf(label, sizeof label, "t=%zu %s", s / 2 + 1, s % 2 == 0 ? "R" : "L");
    std::printf("  %-10s %18.9g %14.6e", label, F, F_star - F);
    if (per_head)
      for (const auto& h : heads) std::printf(" %12.4e", h.F_star - h.F[s]);
    std::printf("\n");
  }
}

void write_output(const RunArgs& a, const AttentionInputs& in, const Options& opt, const DeviceResult& r) {
  const int E = in.q.E, H = in.q.H, N = in.q.N, dv = in.v.D;
  const std::vector<std::int64_t> shape{E, H, N, dv};
  std::vector<io::OutTensor> tensors{io::make_tensor("out", r.out_dtype, shape, r.out)};
  if (a.exact) tensors.push_back(io::make_tensor("exact", r.out_dtype, shape, r.exact));
  const Geometry g = Geometry::make(N, opt.block, opt.pad);
  const std::map<std::string, std::string> meta{
      {"generator", "monarch run"}, {"steps", std::to_string(opt.steps)}, {"block", std::to_string(g.b)},
      {"pad", a.pad},               {"scale", std::to_string(resolve_scale(opt, in.q.D))},
      {"precision", a.precision},   {"device", a.device}};
  io::write_safetensors(a.out, tensors, meta);
  std::printf("wrote out%s (%d, %d, %d, %d) %s to %s  [T=%d, b=%d, m=%d, pad=%s, %s on %s]\n",
              a.exact ? " and exact" : "", E, H, N, dv, io::dtype_name(r.out_dtype), a.out.c_str(),
              opt.steps, g.b, g.m, a.pad.c_str(), a.precision.c_str(), a.device.c_str());
}

void run(RunArgs& a) {
  const Options opt = parse_options(a);
  check_device(a);
  const AttentionInputs in = read_inputs(a.in);
  const DeviceResult r = run_on_device(a, in, opt);
  require_finite_result(r.out, a.in + ": the result 'out' in " + a.precision);
  require_finite_result(r.exact, a.in + ": the result 'exact' in " + a.precision);
  if (a.trace) print_trace(r.trace, in.q.H);
  if (a.exact)
    std::printf("relative Frobenius error ||out - exact|| / ||exact|| = %.6e\n",
                relative_frobenius_error(r.out, r.exact));
  write_output(a, in, opt, r);
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "MonarchAttention on q, k, v (+ optional mask) of a safetensors file");
  cmd->add_option("IN", a->in, "input .safetensors with q, k (E,H,N,d), v (E,H,N,d_v), optional mask (E,N)")
      ->required();
  cmd->add_option("OUT", a->out, "output .safetensors: out (E,H,N,d_v), and exact with --exact")->required();
  cmd->add_option("--steps,-T", a->steps, "rounds T of (R-update, L-update), >= 1")->capture_default_str();
  a->block_opt = cmd->add_option("--block,-b", a->block, "block size b, 1..N (default ceil(sqrt(N)))");
  cmd->add_option("--pad", a->pad, "where pads go when b does not divide N: pre or post")
      ->capture_default_str();
  a->scale_opt = cmd->add_option("--scale", a->scale, "softmax scale tau (default 1/sqrt(d))");
  cmd->add_option("--precision", a->precision,
                  "cpu: fp64 or fp32 (default fp64); cuda: fp32, fp16 or bf16 (default fp32)");
  cmd->add_flag("--exact", a->exact, "also write exact softmax attention and print the relative error");
  cmd->add_flag("--trace", a->trace, "print F and the KL gap after every half-step");
  cmd->add_option("--device", a->device, "cpu, or cuda where the build has the CUDA path")->capture_default_str();
  cmd->callback([a] { run(*a); });
}

}  // namespace monarch::cli
