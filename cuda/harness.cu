// The shared harness: validation, device buffers, dtype conversion, and the round loop of spec §4
// that every level runs with its own three step kernels (harness.cuh).
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "device_buffer.cuh"
#include "harness.cuh"

namespace monarch::cuda {
namespace detail {

bool sync_after_launch() {
  static const bool on = [] {
    const char* v = std::getenv("MONARCH_CUDA_SYNC_CHECK");
    return v != nullptr && std::string(v) == "1";
  }();
  return on;
}

namespace {

constexpr int kThreads = 256;  // elementwise kernels: one thread per element

template <class T>
__global__ void from_float_kernel(const float* __restrict__ src, T* __restrict__ dst, std::size_t n) {
  static_assert(kIsDeviceDType<T>, "fp32, fp16 or bf16");
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = from_float<T>(src[i]);
}

template <class T>
__global__ void to_float_kernel(const T* __restrict__ src, float* __restrict__ dst, std::size_t n) {
  static_assert(kIsDeviceDType<T>, "fp32, fp16 or bf16");
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = to_float<T>(src[i]);
}

/// Spec §4 "Initialisation": with L_j = I, eq. (11) reduces to alpha_R[k, j] = q_(k,j) (0 at a pad;
/// a caller-masked query keeps its q here) and c_R[k, j] = 1. One thread per (head, padded row, c).
template <class T>
__global__ void r_stats_init_kernel(Problem p) {
  static_assert(kIsDeviceDType<T>, "q is fp32, fp16 or bf16");  // grid: (N' d / threads, E H)
  const int head = blockIdx.y;
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::size_t>(p.Np) * p.d) return;
  const int row = static_cast<int>(i / p.d), c = static_cast<int>(i % p.d);
  const T* q = token_row<T>(p, p.Q, head, row, p.d);  // null at a pad
  p.alpha_R[padded_row(p, head, row, p.d) + c] = q ? to_float(q[c]) : 0.0f;
  if (c == 0) p.c_R[static_cast<std::size_t>(head) * p.Np + row] = 1.0f;
}

}  // namespace

void convert_from_float(const float* src, void* dst, std::size_t n, DType t) {
  if (n == 0) return;
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    from_float_kernel<T><<<blocks_for(n, kThreads), kThreads>>>(src, static_cast<T*>(dst), n);
    CUDA_CHECK_LAUNCH("from_float_kernel");
  });
}

void convert_to_float(const void* src, float* dst, std::size_t n, DType t) {
  if (n == 0) return;
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    to_float_kernel<T><<<blocks_for(n, kThreads), kThreads>>>(static_cast<const T*>(src), dst, n);
    CUDA_CHECK_LAUNCH("to_float_kernel");
  });
}

void launch_r_stats_init(const Problem& p) {
  const std::size_t n = static_cast<std::size_t>(p.Np) * p.d;
  const dim3 grid(blocks_for(n, kThreads), p.E * p.H);
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    r_stats_init_kernel<T><<<grid, kThreads>>>(p);
    CUDA_CHECK_LAUNCH("r_stats_init_kernel");
  });
}

void upload_tensor(const Tensor4<float>& x, const char* name, int E, int H, int N, int D, DType t,
                   DeviceBuffer& dst) {
  if (x.E != E || x.H != H || x.N != N || x.D != D)
    throw InputError(std::string(name) + " has shape " + x.shape() + " but the session was made for (" +
                     std::to_string(E) + ", " + std::to_string(H) + ", " + std::to_string(N) + ", " +
                     std::to_string(D) + ")");
  const std::size_t n = x.data.size();
  if (t == DType::F16) {  // a finite float past fp16's range would become inf on the device
    constexpr float kHalfMax = 65504.0f;
    for (std::size_t i = 0; i < n; ++i)
      if (std::abs(x.data[i]) > kHalfMax)
        throw InputError(std::string(name) + " holds " + std::to_string(x.data[i]) + " at flat index " +
                         std::to_string(i) + ", outside the fp16 range (|x| <= 65504); use bf16 or fp32");
  }
  if (t == DType::F32) {
    CUDA_CHECK(cudaMemcpy(dst.get(), x.data.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    return;
  }
  DeviceBuffer staging(n * sizeof(float));
  CUDA_CHECK(cudaMemcpy(staging.get(), x.data.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  convert_from_float(staging.get<float>(), dst.get(), n, t);
  CUDA_CHECK(cudaDeviceSynchronize());  // staging is freed on return
}

DeviceBuffer make_valid(const Geometry& g, int E, const KeyMask* mask) {
  std::vector<std::uint8_t> valid(static_cast<std::size_t>(E) * g.Np, 0);
  for (int e = 0; e < E; ++e)
    for (int n = 0; n < g.N; ++n) {
      const bool keep = mask == nullptr || mask->empty() || mask->row(e)[n] != 0;
      valid[static_cast<std::size_t>(e) * g.Np + n + g.off] = keep ? 1 : 0;  // eq. (1)
    }
  DeviceBuffer buf(valid.size());
  CUDA_CHECK(cudaMemcpy(buf.get(), valid.data(), valid.size(), cudaMemcpyHostToDevice));
  return buf;
}

Tensor4<float> download_tensor(const void* src, int E, int H, int N, int D, DType t) {
  Tensor4<float> out(E, H, N, D);
  const std::size_t n = out.data.size();
  if (t == DType::F32) {
    CUDA_CHECK(cudaMemcpy(out.data.data(), src, n * sizeof(float), cudaMemcpyDeviceToHost));
    return out;
  }
  DeviceBuffer staging(n * sizeof(float));
  convert_to_float(src, staging.get<float>(), n, t);
  CUDA_CHECK(cudaMemcpy(out.data.data(), staging.get(), n * sizeof(float), cudaMemcpyDeviceToHost));
  return out;
}

}  // namespace detail

using detail::DeviceBuffer;

// ---------------------------------------------------------------------------------------------
// Small public helpers.

const char* to_string(DType t) {
  switch (t) {
    case DType::F32: return "fp32";
    case DType::F16: return "fp16";
    case DType::BF16: return "bf16";
  }
  return "?";
}

DType parse_dtype(const std::string& s) {
  if (s == "fp32" || s == "float32") return DType::F32;
  if (s == "fp16" || s == "float16") return DType::F16;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  throw InputError("unknown dtype '" + s + "': expected fp32, fp16 or bf16");
}

Level parse_level(int level) {
  if (level == 1) return Level::Scalar;
  if (level == 2) return Level::TensorCore;
  if (level == 3) return Level::Fused;
  if (level == 4) return Level::WholeHead;
  if (level == 5) return Level::OneLaunch;
  if (level == 6) return Level::InPlace;
  if (level == 7) return Level::Warpgroup;
  if (level == 8) return Level::Cluster;
  throw InputError("unknown CUDA level " + std::to_string(level) +
                   ": levels 1 (scalar), 2 (tensor cores), 3 (fused, fp16/bf16), 4 (whole head per CTA, "
                   "fp16/bf16), 5 (one launch, fp16/bf16), 6 (intermediates in place, fp16/bf16), 7 (warpgroup tensor "
                   "cores, fp16/bf16) and 8 (a cluster per head, fp16/bf16) exist");
}

double tolerance(DType t) { return t == DType::F32 ? 1e-5 : 1e-2; }

int max_head_dim(Level level) {
  // Level 1 keeps three d-vectors per thread in local arrays; levels 2 and 3 keep (64, d) tiles in
  // shared memory (cuda/level2_tensor_core.cu, cuda/level3_fused.cu: kMaxDim there).
  return level == Level::Scalar ? 256 : 128;
}

DeviceInfo device_info() {
  DeviceInfo info;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    info.reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return info;
  }
  if (count == 0) {
    info.reason = "cudaGetDeviceCount found 0 devices";
    return info;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    info.reason = "cudaGetDeviceProperties failed";
    return info;
  }
  info.ok = true;
  info.name = prop.name;
  info.major = prop.major;
  info.minor = prop.minor;
  info.total_mem = prop.totalGlobalMem;
  int clock_kHz = 0;
  if (cudaDeviceGetAttribute(&clock_kHz, cudaDevAttrMemoryClockRate, 0) == cudaSuccess)
    info.mem_bandwidth_GBs = 2.0 * clock_kHz * 1e3 * (prop.memoryBusWidth / 8.0) / 1e9;  // DDR: x2
  return info;
}

void round_to_dtype(std::vector<float>& x, DType t) {
  if (t == DType::F16)
    for (float& v : x) v = __half2float(__float2half_rn(v));
  else if (t == DType::BF16)
    for (float& v : x) v = __bfloat162float(__float2bfloat16_rn(v));
}

void synchronize() { CUDA_CHECK(cudaDeviceSynchronize()); }

// ---------------------------------------------------------------------------------------------
// MonarchSession

struct MonarchSession::Impl {
  Config cfg;
  Options opt;
  Geometry g;
  detail::Problem p;
  detail::LevelSteps steps{};
  DeviceBuffer Q, K, V, valid, alpha_R, c_R, alpha_L, c_L, lse_L, Y, O;
  DeviceBuffer alpha_L_pm, Y_pm, c_L_pm;  // levels 3 to 8 only (harness.cuh, Problem)
  DeviceBuffer sync;                      // level 5 only
};

/// Levels 3 to 8: mma.sync or wgmma tiles, fp16/bf16, intermediates position-major in the input dtype.
static bool is_fused(Level level) {
  return level == Level::Fused || level == Level::WholeHead || level == Level::OneLaunch ||
         level == Level::InPlace || level == Level::Warpgroup || level == Level::Cluster;
}

void validate_session(int E, int H, int N, int d, int dv, const Options& opt, Config cfg) {
  validate_options(opt);
  if (E < 1 || H < 1 || d < 1 || dv < 1)
    throw InputError("E, H, d and d_v must be >= 1, got E = " + std::to_string(E) + ", H = " +
                     std::to_string(H) + ", d = " + std::to_string(d) + ", d_v = " + std::to_string(dv));
  Geometry::make(N, opt.block, opt.pad);  // N >= 1, 1 <= b <= N
  const int max_dim = max_head_dim(cfg.level);
  if (d > max_dim || dv > max_dim)
    throw InputError("CUDA level " + std::to_string(static_cast<int>(cfg.level)) + " supports d, d_v <= " +
                     std::to_string(max_dim) + ", got d = " + std::to_string(d) + ", d_v = " +
                     std::to_string(dv));
  if (is_fused(cfg.level)) {
    const std::string name = "CUDA level " + std::to_string(static_cast<int>(cfg.level));
    if (cfg.dtype == DType::F32)
      throw InputError(name + " runs on tensor cores in fp16 or bf16 only; use level 2 for fp32");
    constexpr int kRowAlign = 8;  // levels 3 to 8 copy rows in 16-byte pieces of 8 halves
    if (d % kRowAlign != 0 || dv % kRowAlign != 0)
      throw InputError(name + " needs d and d_v to be multiples of 8, got d = " + std::to_string(d) +
                       ", d_v = " + std::to_string(dv) + "; use level 2");
  }
  constexpr long long kMaxGridY = 65535;  // heads go on blockIdx.y
  if (static_cast<long long>(E) * H > kMaxGridY)
    throw InputError("E * H = " + std::to_string(static_cast<long long>(E) * H) + " exceeds " +
                     std::to_string(kMaxGridY) + " heads per call");
}

MonarchSession::MonarchSession(int E, int H, int N, int d, int dv, const Options& opt, Config cfg)
    : impl_(std::make_unique<Impl>()) {
  validate_session(E, H, N, d, dv, opt, cfg);
  const Geometry g = Geometry::make(N, opt.block, opt.pad);
  Impl& s = *impl_;
  s.cfg = cfg;
  s.opt = opt;
  s.g = g;
  s.steps = cfg.level == Level::Scalar       ? detail::level1_steps()
            : cfg.level == Level::TensorCore ? detail::level2_steps()
            : cfg.level == Level::Fused      ? detail::level3_steps()
            : cfg.level == Level::WholeHead  ? detail::level4_steps()
            : cfg.level == Level::OneLaunch  ? detail::level5_steps()
            : cfg.level == Level::InPlace    ? detail::level6_steps()
            : cfg.level == Level::Warpgroup  ? detail::level7_steps()
                                             : detail::level8_steps();
  const bool fused = is_fused(cfg.level);

  const std::size_t heads = static_cast<std::size_t>(E) * H, es = detail::dtype_size(cfg.dtype);
  const std::size_t f = sizeof(float);
  // A device too small for the O(N d) buffers below is refused before any allocation, with the
  // sizes, rather than failing halfway with "out of memory" (docs/bad-inputs.md row G4).
  const double need = static_cast<double>(heads) *
                      (static_cast<double>(N) * (2 * d + 2 * dv) * es +                 // Q, K, V, O
                       static_cast<double>(g.Np) * (2 * d + dv + 3) * f) +              // alpha_R/L, Y, c_R/L, lse_L
                      static_cast<double>(E) * g.Np;                                    // valid
  std::size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  constexpr double kHeadroom = 0.9;  // leave room for the context and the kernels' launch state
  if (need > kHeadroom * static_cast<double>(free_b))
    throw InputError("MonarchAttention needs " + std::to_string(need / 1e9) + " GB for its buffers, " +
                     std::to_string(free_b / 1e9) + " GB are free on the device");
  s.Q = DeviceBuffer(heads * N * d * es);
  s.K = DeviceBuffer(heads * N * d * es);
  s.V = DeviceBuffer(heads * N * dv * es);
  s.alpha_R = DeviceBuffer(heads * g.Np * d * f);
  s.c_R = DeviceBuffer(heads * g.Np * f);
  s.alpha_L = DeviceBuffer(heads * g.Np * d * f);
  s.c_L = DeviceBuffer(heads * g.Np * f);
  s.lse_L = DeviceBuffer(heads * g.Np * f);
  s.Y = DeviceBuffer(heads * g.Np * dv * f);
  s.O = DeviceBuffer(heads * N * dv * es);
  if (fused) {
    s.alpha_L_pm = DeviceBuffer(heads * g.Np * d * es);
    s.Y_pm = DeviceBuffer(heads * g.Np * dv * es);
    s.c_L_pm = DeviceBuffer(heads * g.Np * f);
  }
  if (cfg.level == Level::OneLaunch)
    s.sync = DeviceBuffer(detail::level5_sync_words(static_cast<int>(heads), opt.steps) * sizeof(unsigned));
  s.valid = detail::make_valid(g, E, nullptr);

  detail::Problem& p = s.p;
  p.E = E, p.H = H, p.N = N, p.d = d, p.dv = dv;
  p.b = g.b, p.m = g.m, p.Np = g.Np, p.off = g.off;
  p.div_b = detail::FastDiv(g.b), p.div_m = detail::FastDiv(g.m);
  p.tau = static_cast<float>(resolve_scale(opt, d));
  p.dtype = cfg.dtype;
  p.Q = s.Q.get(), p.K = s.K.get(), p.V = s.V.get();
  p.valid = s.valid.get<std::uint8_t>();
  p.alpha_R = s.alpha_R.get<float>(), p.c_R = s.c_R.get<float>();
  p.alpha_L = s.alpha_L.get<float>(), p.c_L = s.c_L.get<float>();
  p.lse_L = s.lse_L.get<float>(), p.Y = s.Y.get<float>(), p.O = s.O.get();
  p.alpha_L_pm = s.alpha_L_pm.get(), p.Y_pm = s.Y_pm.get(), p.c_L_pm = s.c_L_pm.get<float>();
  p.sync = s.sync.get<unsigned>();
}

MonarchSession::~MonarchSession() = default;

void MonarchSession::upload(const Tensor4<float>& Q, const Tensor4<float>& K, const Tensor4<float>& V,
                            const KeyMask* mask) {
  validate_inputs(Q, K, V, mask);
  Impl& s = *impl_;
  const detail::Problem& p = s.p;
  detail::upload_tensor(Q, "q", p.E, p.H, p.N, p.d, p.dtype, s.Q);
  detail::upload_tensor(K, "k", p.E, p.H, p.N, p.d, p.dtype, s.K);
  detail::upload_tensor(V, "v", p.E, p.H, p.N, p.dv, p.dtype, s.V);
  s.valid = detail::make_valid(s.g, p.E, mask);
  s.p.valid = s.valid.get<std::uint8_t>();
}

void MonarchSession::bind_device(const void* Q, const void* K, const void* V, void* O) {
  if (Q == nullptr || K == nullptr || V == nullptr || O == nullptr)
    throw InputError("bind_device: Q, K, V and O must all be device pointers, one of them is null");
  detail::Problem& p = impl_->p;
  p.Q = Q, p.K = K, p.V = V, p.O = O;
}

namespace {

/// Fills this CTA's dynamic shared memory with 0xFF bytes: NaN as fp16, bf16 and fp32.
__global__ void poison_shared_kernel(int bytes) {
  extern __shared__ unsigned char smem[];
  for (int i = threadIdx.x; i < bytes / 4; i += blockDim.x) reinterpret_cast<unsigned*>(smem)[i] = ~0u;
}

/// NaN in every SM's shared memory, so that a kernel reading shared memory it never wrote computes
/// with NaN (and fails its test) rather than with whatever an earlier kernel left there. The
/// hardware does not clear shared memory between kernels, so this is what a later kernel finds.
/// MONARCH_CUDA_SKIP_SHARED_POISON=1 skips it: under racecheck, whose instrumented shared stores
/// make these 227 KB per SM cost seconds per call, and which looks for hazards, not NaN.
void poison_shared_memory() {
  static const bool skip = [] {
    const char* v = std::getenv("MONARCH_CUDA_SKIP_SHARED_POISON");
    return v != nullptr && v[0] == '1';
  }();
  if (skip) return;
  int dev = 0, sms = 0, bytes = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  static const bool raised = [bytes] {  // once: allow the kernel the device's whole opt-in limit
    CUDA_CHECK(cudaFuncSetAttribute(poison_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    return true;
  }();
  (void)raised;
  constexpr int kThreads = 1024;
  constexpr int kWaves = 4;  // CTAs per SM, in case the scheduler does not spread them evenly
  poison_shared_kernel<<<sms * kWaves, kThreads, bytes>>>(bytes);
  CUDA_CHECK_LAUNCH("poison_shared_kernel");
}

}  // namespace

void MonarchSession::poison() {
  poison_shared_memory();
  Impl& s = *impl_;
  for (const DeviceBuffer* b : {&s.alpha_R, &s.c_R, &s.alpha_L, &s.c_L, &s.lse_L, &s.Y, &s.O, &s.alpha_L_pm,
                                &s.Y_pm, &s.c_L_pm})
    b->poison();
}

namespace {

std::vector<float> copy_head(const float* base, int head, std::size_t per_head) {
  std::vector<float> h(per_head);
  CUDA_CHECK(cudaMemcpy(h.data(), base + head * per_head, per_head * sizeof(float), cudaMemcpyDeviceToHost));
  return h;
}

}  // namespace

void MonarchSession::run(std::vector<Trace>* traces) {
  Impl& s = *impl_;
  detail::Problem& p = s.p;
  const int T = s.opt.steps, heads = p.E * p.H;
  if (traces) {
    traces->assign(heads, Trace{});
    for (Trace& tr : *traces) tr.g = s.g, tr.tau = p.tau;
  }
  // Level 4: one launch; a trace of T >= 2 rounds takes the per-step kernels, which stop after each.
  const bool whole = s.steps.whole != nullptr && s.steps.whole_fits(p, T) && (T == 1 || traces == nullptr);
  const bool rounds = !whole && s.steps.rounds != nullptr;  // level 5: one launch
  if (whole && !traces) {
    p.round = T;  // whole() runs rounds 1..T
    s.steps.whole(p, false);
    return;
  }
  if (rounds && !traces) {
    p.round = T;
    s.steps.rounds(p, 1, T, false);  // every step of every round
    return;
  }
  for (int t = 1; t <= T; ++t) {
    const bool want = traces != nullptr || t == T;  // Y and O are needed only at the end or for a trace
    p.round = t;
    if (whole) {
      if (traces) detail::launch_r_stats_init(p);  // round-1 alpha_R, c_R for the trace (eq. (14))
      s.steps.whole(p, traces != nullptr);
    } else if (rounds) {  // a trace: one launch per round, so each round's intermediates can be read
      if (t == 1) detail::launch_r_stats_init(p);  // round-1 alpha_R, c_R for the trace (eq. (14))
      s.steps.rounds(p, t, t, true);
    } else if (t == 1) {
      if (traces || !s.steps.round1_reads_q) detail::launch_r_stats_init(p);  // L = I, eq. (14)
    } else {
      s.steps.r_stats(p);  // eq. (11) with the previous round's L
    }
    if (!whole && !rounds) {
      s.steps.r_update(p, want);  // eqs. (12), (10), (4)
      s.steps.l_update(p, want);  // eq. (13) and o = L Y, eq. (4)
    }
    if (!traces) continue;
    if (s.steps.export_trace) s.steps.export_trace(p);
    const Tensor4<float> O = output();
    for (int h = 0; h < heads; ++h) {
      RoundArrays r;
      r.alpha_R = copy_head(p.alpha_R, h, static_cast<std::size_t>(p.Np) * p.d);
      r.c_R = copy_head(p.c_R, h, p.Np);
      r.alpha_L = copy_head(p.alpha_L, h, static_cast<std::size_t>(p.Np) * p.d);
      r.c_L = copy_head(p.c_L, h, p.Np);
      r.Y = copy_head(p.Y, h, static_cast<std::size_t>(p.Np) * p.dv);
      const float* o = O.data.data() + static_cast<std::size_t>(h) * p.N * p.dv;
      r.O.assign(o, o + static_cast<std::size_t>(p.N) * p.dv);
      (*traces)[h].rounds.push_back(std::move(r));
    }
  }
}

Tensor4<float> MonarchSession::output() const {
  const detail::Problem& p = impl_->p;
  return detail::download_tensor(p.O, p.E, p.H, p.N, p.dv, p.dtype);  // bound or own
}

const Geometry& MonarchSession::geometry() const { return impl_->g; }
Config MonarchSession::config() const { return impl_->cfg; }

std::string MonarchSession::plan() const {
  const Impl& s = *impl_;
  const int T = s.opt.steps;
  if (s.steps.whole != nullptr && s.steps.whole_fits(s.p, T)) {
    if (s.steps.describe_whole != nullptr)
      if (std::string d = s.steps.describe_whole(s.p, T); !d.empty()) return d;
    return "one whole-head kernel";
  }
  if (s.steps.rounds != nullptr) return "one launch for every round";
  return "step kernels";
}

double MonarchSession::floor_bytes() const {
  const detail::Problem& p = impl_->p;
  return static_cast<double>(p.E) * p.H * p.N * (2.0 * p.d + 2.0 * p.dv) *
         static_cast<double>(detail::dtype_size(p.dtype));
}

Tensor4<float> monarch_attention(const Tensor4<float>& Q, const Tensor4<float>& K, const Tensor4<float>& V,
                                 const KeyMask* mask, const Options& opt, Config cfg,
                                 std::vector<Trace>* traces) {
  validate_inputs(Q, K, V, mask);
  MonarchSession s(Q.E, Q.H, Q.N, Q.D, V.D, opt, cfg);
  s.upload(Q, K, V, mask);
  s.run(traces);
  return s.output();
}

}  // namespace monarch::cuda
