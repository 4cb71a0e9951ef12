// Generates examples/demo.safetensors, the SYNTHETIC example that `make demo` runs.
//
//   make_demo OUT.safetensors
//
// The attention is built to look like real attention, not like random Gaussian Q/K (on which
// every sub-quadratic method, MonarchAttention included, has 60-100% error because the exact
// softmax is itself nearly uniform noise). Real heads mix a few recognisable patterns, so each
// head here is a sum of:
//  - locality: q_n . k_n' grows with cos(w (n - n')) over a few frequencies w (like rotary
//    position codes), so a query attends mostly to nearby tokens;
//  - topics: the sequence is cut into segments ("sentences"), each with one of a few shared
//    directions added to its queries and keys, so a query also attends its own segment;
//  - a sink: token 0 (like [CLS]) carries a key direction every query shares;
//  - small Gaussian noise.
// Head 0 is mostly local, head 1 mostly topical with a sink. A few trailing keys are masked (as
// padding tokens are). Values depend on the token's segment and vary slowly with position, plus
// noise. On this file MonarchAttention (b = 16) is within about 5-8% of exact attention.
//
// Deterministic on every platform: std::mt19937_64 is fully specified by the standard, and the
// Gaussian is our own Box-Muller on its raw output (std::normal_distribution differs between
// standard libraries). A later engineer may replace the file with real MiniLM activations.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.hpp"

namespace {

constexpr int kE = 1, kH = 2, kN = 256, kD = 32, kDv = 32;
constexpr int kMaskedTail = 4;            // trailing keys masked like padding
constexpr int kFreqs = 6;                 // locality: dims [0, 2 kFreqs) hold cos/sin pairs
constexpr int kTopics = 4;                // shared segment directions, dims [2 kFreqs, kD)
constexpr int kMinSeg = 12, kMaxSeg = 40;  // segment ("sentence") lengths
constexpr std::uint64_t kSeed = 20250601;
constexpr double kPi = 3.14159265358979323846;

/// Per-head mixture weights of the patterns (in units of the raw score before tau).
struct HeadStyle {
  double local;   // amplitude of the positional code
  double topic;   // amplitude of the segment direction
  double sink;    // how strongly every query looks at token 0
  double noise;   // Gaussian noise on q and k
};
constexpr HeadStyle kStyles[kH] = {{3.2, 1.2, 1.5, 0.25}, {1.0, 2.0, 3.0, 0.25}};
// Values: what a token carries depends on its segment (topic) and varies slowly with position.
constexpr double kValueWave = 1.0, kValueFreq = 0.01, kValueTopic = 1.0, kValueNoise = 0.3;

class Gauss {
 public:
  explicit Gauss(std::uint64_t seed) : rng_(seed) {}
  double uniform() { return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
  double operator()() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform())), t = 2.0 * kPi * uniform();
    spare_ = r * std::sin(t);
    have_spare_ = true;
    return r * std::cos(t);
  }
  std::uint64_t raw() { return rng_(); }

 private:
  std::mt19937_64 rng_;
  double spare_ = 0;
  bool have_spare_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_demo OUT.safetensors\n");
    return 2;
  }
  try {
    Gauss g(kSeed);
    std::vector<double> q(kE * kH * kN * kD), k(q.size()), v(kE * kH * kN * kDv);
    // Segments shared by all heads: the "sentences" of the sequence.
    std::vector<int> topic(kN);
    for (int n = 0; n < kN;) {
      const int len = kMinSeg + static_cast<int>(g.raw() % (kMaxSeg - kMinSeg + 1));
      const int t = static_cast<int>(g.raw() % kTopics);
      for (int i = n; i < n + len && i < kN; ++i) topic[i] = t;
      n += len;
    }
    for (int h = 0; h < kH; ++h) {
      const HeadStyle& s = kStyles[h];
      // Random unit directions for the topics and the sink, in the dims after the position code.
      constexpr int kFree = kD - 2 * kFreqs;
      std::vector<std::vector<double>> dir(kTopics + 1, std::vector<double>(kFree));
      for (auto& u : dir) {
        double norm = 0;
        for (auto& x : u) {
          x = g();
          norm += x * x;
        }
        for (auto& x : u) x /= std::sqrt(norm);
      }
      const auto& sink = dir[kTopics];
      std::vector<std::vector<double>> value_topic(kTopics, std::vector<double>(kDv));
      for (auto& u : value_topic)
        for (auto& x : u) x = g();
      for (int n = 0; n < kN; ++n) {
        double* qn = &q[(h * kN + n) * kD];
        double* kn = &k[(h * kN + n) * kD];
        for (int f = 0; f < kFreqs; ++f) {
          const double w = 2.0 * kPi / (12.0 * std::pow(2.0, f));  // periods 12, 24, ..., 384
          qn[2 * f] = kn[2 * f] = s.local * std::cos(w * n);
          qn[2 * f + 1] = kn[2 * f + 1] = s.local * std::sin(w * n);
        }
        for (int i = 0; i < kFree; ++i) {
          qn[2 * kFreqs + i] = s.topic * dir[topic[n]][i] + s.sink * sink[i];
          kn[2 * kFreqs + i] = s.topic * dir[topic[n]][i] + (n == 0 ? 2.0 * s.sink * sink[i] : 0.0);
        }
        for (int i = 0; i < kD; ++i) {
          qn[i] += s.noise * g();
          kn[i] += s.noise * g();
        }
        for (int i = 0; i < kDv; ++i)
          v[(h * kN + n) * kDv + i] = kValueWave * std::sin(kValueFreq * (i % 8 + 1) * n + i) +
                                      kValueTopic * value_topic[topic[n]][i] + kValueNoise * g();
      }
    }
    std::vector<double> mask(kE * kN, 1.0);
    for (int n = kN - kMaskedTail; n < kN; ++n) mask[n] = 0.0;

    using monarch::io::DType;
    using monarch::io::make_tensor;
    monarch::io::write_safetensors(
        argv[1],
        {make_tensor("q", DType::F32, {kE, kH, kN, kD}, q), make_tensor("k", DType::F32, {kE, kH, kN, kD}, k),
         make_tensor("v", DType::F32, {kE, kH, kN, kDv}, v), make_tensor("mask", DType::U8, {kE, kN}, mask)},
        {{"description", "synthetic attention (locality + topic segments + sink), see examples/make_demo.cpp"},
         {"generator", "examples/make_demo.cpp"}});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_demo: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
