// The C ABI of include/monarch_cuda/c_api.h: argument checks, a small cache of MonarchSession
// objects so that timing loops allocate nothing, and the translation of every C++ exception into a
// return code plus a one-line message. Host-only C++ (compiled by the host compiler, not nvcc).
#include "monarch_cuda/c_api.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "monarch_cuda/monarch_cuda.hpp"

namespace {

using monarch::InputError;
using monarch::cuda::CudaError;
using monarch::cuda::MonarchSession;

// Each session holds O(E H N (d + d_v)) device memory, so only a few shapes are kept: enough for a
// benchmark that alternates between methods and dtypes on one shape, small enough that forgetting
// monarch_cuda_clear_cache() does not exhaust the device.
constexpr std::size_t kMaxCachedSessions = 8;
// Level 3 copies rows in 16-byte pieces; asking every level for it keeps the rule simple, and any
// tensor a framework allocates (256- or 512-byte aligned) satisfies it.
constexpr std::uintptr_t kPointerAlignment = 16;

/// Everything that decides a session's shape, options, dtype or level: two calls with equal keys
/// can share device buffers.
struct Key {
  int E, H, N, d, dv, block, steps, pre_pad;
  std::uint32_t scale_bits;  // bit pattern of the float scale after mapping <= 0 to 0
  int dtype, level;
  bool operator==(const Key& o) const {
    return E == o.E && H == o.H && N == o.N && d == o.d && dv == o.dv && block == o.block &&
           steps == o.steps && pre_pad == o.pre_pad && scale_bits == o.scale_bits && dtype == o.dtype &&
           level == o.level;
  }
};

struct Entry {
  Key key;
  std::unique_ptr<MonarchSession> session;
};

std::mutex g_cache_mutex;
std::list<Entry> g_cache;  // most recently used first
thread_local std::string g_last_error;

/// Messages cross the ABI as one line, whatever the thrower wrote.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

void require_positive(const char* name, int value) {
  if (value < 1) throw InputError(std::string(name) + " must be >= 1, got " + std::to_string(value));
}

monarch::cuda::DType to_dtype(int dtype) {
  switch (dtype) {
    case MONARCH_CUDA_FP32: return monarch::cuda::DType::F32;
    case MONARCH_CUDA_FP16: return monarch::cuda::DType::F16;
    case MONARCH_CUDA_BF16: return monarch::cuda::DType::BF16;
    default:
      throw InputError("dtype must be 0 (fp32), 1 (fp16) or 2 (bf16), got " + std::to_string(dtype));
  }
}

std::size_t dtype_bytes(int dtype) { return dtype == MONARCH_CUDA_FP32 ? 4 : 2; }

/// A host pointer or a pointer into another device's memory would fault inside a kernel and poison
/// the caller's whole CUDA context (every later call fails); refusing it here keeps the caller alive.
void require_device_pointer(const char* name, const void* ptr, int device) {
  if (reinterpret_cast<std::uintptr_t>(ptr) % kPointerAlignment != 0)
    throw InputError(std::string(name) + " is not " + std::to_string(kPointerAlignment) +
                     "-byte aligned (pass a contiguous tensor that starts at its allocation)");
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, ptr);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the non-sticky error so the caller's next CUDA call is unaffected
    throw CudaError(std::string("cudaPointerGetAttributes(") + name + "): " + cudaGetErrorString(err));
  }
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
    throw InputError(std::string(name) + " is not a device pointer (host memory? pass a CUDA tensor)");
  if (attr.type == cudaMemoryTypeDevice && attr.device != device)
    throw InputError(std::string(name) + " lives on device " + std::to_string(attr.device) +
                     " but the current device is " + std::to_string(device));
}

/// The kernels read q, k, v while writing o; an overlap would be a data race.
void require_disjoint(const char* name, const void* in, std::size_t in_bytes, const void* out,
                      std::size_t out_bytes) {
  const auto a = reinterpret_cast<std::uintptr_t>(in), b = reinterpret_cast<std::uintptr_t>(out);
  if (a < b + out_bytes && b < a + in_bytes)
    throw InputError(std::string("o overlaps ") + name + "; the output needs its own buffer");
}

/// The cached session for key, created (and the least recently used one dropped) when missing.
/// Caller holds g_cache_mutex.
MonarchSession& session_for(const Key& key, float scale) {
  for (auto it = g_cache.begin(); it != g_cache.end(); ++it) {
    if (it->key == key) {
      g_cache.splice(g_cache.begin(), g_cache, it);
      return *g_cache.front().session;
    }
  }
  monarch::Options opt;
  opt.steps = key.steps;
  opt.block = key.block;
  opt.pad = key.pre_pad ? monarch::Pad::Pre : monarch::Pad::Post;
  if (scale > 0) opt.scale = scale;
  const monarch::cuda::Config cfg{monarch::cuda::parse_level(key.level), to_dtype(key.dtype)};
  // Shape, option and level errors first, so that they never cost the cache its sessions.
  monarch::cuda::validate_session(key.E, key.H, key.N, key.d, key.dv, opt, cfg);
  auto make = [&] { return std::make_unique<MonarchSession>(key.E, key.H, key.N, key.d, key.dv, opt, cfg); };
  std::unique_ptr<MonarchSession> session;
  try {
    session = make();
  } catch (const std::exception&) {
    if (g_cache.empty()) throw;
    // What is left can only be a lack of device memory, which the cached sessions may be
    // holding: free them and try once more.
    g_cache.clear();
    session = make();
  }
  if (g_cache.size() >= kMaxCachedSessions) g_cache.pop_back();
  g_cache.push_front(Entry{key, std::move(session)});
  return *g_cache.front().session;
}

int attention(const void* q, const void* k, const void* v, void* o, int E, int H, int N, int d, int dv,
              int block, int steps, int pre_pad, float scale, int dtype, int level) {
  require_positive("E", E);
  require_positive("H", H);
  require_positive("N", N);
  require_positive("d", d);
  require_positive("dv", dv);
  require_positive("steps", steps);
  if (!std::isfinite(scale)) throw InputError("scale must be finite (<= 0 selects 1/sqrt(d))");
  to_dtype(dtype);
  monarch::cuda::parse_level(level);
  const char* names[] = {"q", "k", "v", "o"};
  const void* ptrs[] = {q, k, v, o};
  for (int i = 0; i < 4; ++i)
    if (ptrs[i] == nullptr) throw InputError(std::string(names[i]) + " is a null pointer");

  int device = 0;
  const cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw CudaError(std::string("cudaGetDevice: ") + cudaGetErrorString(err));
  }
  for (int i = 0; i < 4; ++i) require_device_pointer(names[i], ptrs[i], device);
  const std::size_t rows = static_cast<std::size_t>(E) * H * N, es = dtype_bytes(dtype);
  const std::size_t qk_bytes = rows * d * es, v_bytes = rows * dv * es;
  require_disjoint("q", q, qk_bytes, o, v_bytes);
  require_disjoint("k", k, qk_bytes, o, v_bytes);
  require_disjoint("v", v, v_bytes, o, v_bytes);

  const float key_scale = scale > 0 ? scale : 0.0f;  // every "use the default" value shares a session
  Key key{E, H, N, d, dv, block > 0 ? block : 0, steps, pre_pad != 0 ? 1 : 0, 0, dtype, level};
  std::memcpy(&key.scale_bits, &key_scale, sizeof key_scale);

  std::lock_guard<std::mutex> lock(g_cache_mutex);
  MonarchSession& session = session_for(key, scale);
  session.bind_device(q, k, v, o);
  session.run();
  return MONARCH_CUDA_OK;
}

}  // namespace

extern "C" int monarch_cuda_attention(const void* q, const void* k, const void* v, void* o, int E, int H,
                                      int N, int d, int dv, int block, int steps, int pre_pad, float scale,
                                      int dtype, int level) {
  g_last_error.clear();
  try {
    return attention(q, k, v, o, E, H, N, d, dv, block, steps, pre_pad, scale, dtype, level);
  } catch (const InputError& e) {
    g_last_error = one_line(e.what());
    return MONARCH_CUDA_INPUT_ERROR;
  } catch (const CudaError& e) {
    g_last_error = one_line(e.what());
    return MONARCH_CUDA_DEVICE_ERROR;
  } catch (const std::bad_alloc&) {
    g_last_error = "out of host memory";
    return MONARCH_CUDA_OTHER_ERROR;
  } catch (const std::exception& e) {
    g_last_error = one_line(e.what());
    return MONARCH_CUDA_OTHER_ERROR;
  } catch (...) {
    g_last_error = "unknown exception";
    return MONARCH_CUDA_OTHER_ERROR;
  }
}

extern "C" const char* monarch_cuda_last_error(void) { return g_last_error.c_str(); }

extern "C" void monarch_cuda_clear_cache(void) {
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  try {
    g_cache.clear();  // ~MonarchSession frees device memory; cudaFree waits for pending kernels
  } catch (...) {
    // Destructors of device buffers do not throw; this guards the ABI against any that would.
  }
}
