// The `monarch` executable end to end: files written with the io library go through
// `monarch run`, and what comes back equals the reference computed in this process; every bad
// input is one line "monarch: error: ..." and exit status 2. MONARCH_EXE and MONARCH_SOURCE_DIR
// come from tests/apps/CMakeLists.txt.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "io/safetensors.hpp"
#include "monarch/attention.hpp"

using namespace monarch;
using namespace monarch::io;

namespace {

namespace fs = std::filesystem;

/// A private temporary directory, removed when the test program exits.
struct ScratchDir {
  fs::path path = fs::temp_directory_path() / ("monarch_cli_" + std::to_string(::getpid()));
  ScratchDir() { fs::create_directories(path); }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
fs::path scratch_dir() {
  static const ScratchDir dir;
  return dir.path;
}
std::string tmp(const std::string& name) { return (scratch_dir() / name).string(); }

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Result {
  int status = -1;
  std::string out, err;
};

/// Runs `monarch ARGS`, capturing stdout, stderr and the exit status.
Result monarch_cli(const std::string& args) {
  const std::string o = tmp("stdout.txt"), e = tmp("stderr.txt");
  const std::string cmd = std::string("'") + MONARCH_EXE + "' " + args + " >'" + o + "' 2>'" + e + "'";
  const int raw = std::system(cmd.c_str());
  Result r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = slurp(o);
  r.err = slurp(e);
  return r;
}

/// A bad-input run: status 2, nothing on stdout, exactly one stderr line naming the problem.
void check_one_line_error(const std::string& args, const std::string& expect) {
  CAPTURE(args);
  const Result r = monarch_cli(args);
  CHECK(r.status == 2);
  CAPTURE(r.err);
  CHECK(r.err.rfind("monarch: error: ", 0) == 0);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find(expect) != std::string::npos);
}

Tensor4<double> random_tensor(int E, int H, int N, int D, std::mt19937_64& rng) {
  std::normal_distribution<double> gauss;
  Tensor4<double> t(E, H, N, D);
  for (auto& x : t.data) x = gauss(rng);
  return t;
}

std::vector<double> as_values(const std::vector<std::uint8_t>& keep) {
  return std::vector<double>(keep.begin(), keep.end());
}

OutTensor pack(const std::string& name, DType dt, const Tensor4<double>& t) {
  return make_tensor(name, dt, {t.E, t.H, t.N, t.D}, t.data);
}

/// A NaN-filled `out` at the output path, so a run that writes nothing cannot pass.
void poison(const std::string& path, const Tensor4<double>& like) {
  Tensor4<double> nan = like;
  for (auto& x : nan.data) x = std::numeric_limits<double>::quiet_NaN();
  write_safetensors(path, {pack("out", DType::F64, nan)});
}

struct Inputs {
  Tensor4<double> q, k, v;
  KeyMask mask;
};

/// Fresh random q, k, v of a ragged length with a key mask that hides a few keys.
Inputs make_inputs(std::uint64_t seed, int E = 2, int H = 2, int N = 37, int d = 8, int dv = 5) {
  std::mt19937_64 rng(seed);
  Inputs in{random_tensor(E, H, N, d, rng), random_tensor(E, H, N, d, rng), random_tensor(E, H, N, dv, rng), {}};
  in.mask.E = E;
  in.mask.N = N;
  in.mask.keep.assign(static_cast<std::size_t>(E) * N, 1);
  for (int e = 0; e < E; ++e)
    for (int i = 0; i < 3; ++i) in.mask.keep[e * N + (rng() % N)] = 0;
  return in;
}

void write_inputs(const std::string& path, const Inputs& in, DType dt, bool with_mask = true) {
  std::vector<OutTensor> t{pack("q", dt, in.q), pack("k", dt, in.k), pack("v", dt, in.v)};
  if (with_mask) t.push_back(make_tensor("mask", DType::BOOL, {in.mask.E, in.mask.N}, as_values(in.mask.keep)));
  write_safetensors(path, t);
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST_CASE("monarch run (fp64) writes the out and exact that the reference computes in process") {
  const Inputs in = make_inputs(101);
  const std::string src = tmp("in64.safetensors"), dst = tmp("out64.safetensors");
  write_inputs(src, in, DType::F64);
  poison(dst, in.v);
  const Result r = monarch_cli("run '" + src + "' '" + dst +
                               "' --steps 2 --block 6 --pad pre --scale 0.4 --precision fp64 --exact");
  REQUIRE(r.status == 0);
  CHECK(r.out.find("relative Frobenius error") != std::string::npos);

  Options opt;
  opt.steps = 2;
  opt.block = 6;
  opt.pad = Pad::Pre;
  opt.scale = 0.4;
  const auto want = monarch_attention<double>(in.q, in.k, in.v, &in.mask, opt);
  const auto want_exact = exact_attention<double>(in.q, in.k, in.v, &in.mask, opt);
  const auto f = SafetensorsFile::open(dst);
  CHECK(f.info("out").dtype == DType::F64);
  CHECK(f.info("out").shape == std::vector<std::int64_t>{2, 2, 37, 5});
  CHECK(max_abs_diff(f.read_f64("out"), want.data) <= 1e-12);
  CHECK(max_abs_diff(f.read_f64("exact"), want_exact.data) <= 1e-12);
  // Monarch at b = 6 is an approximation: out and exact must differ (the run did not copy one).
  CHECK(max_abs_diff(f.read_f64("out"), f.read_f64("exact")) > 1e-6);
}

TEST_CASE("monarch run with defaults (T = 1, b = ceil(sqrt(N)), post, tau = 1/sqrt(d)) in fp32") {
  const Inputs in = make_inputs(202, 1, 3, 50, 6, 7);
  const std::string src = tmp("in32.safetensors"), dst = tmp("out32.safetensors");
  write_inputs(src, in, DType::F32);
  poison(dst, in.v);
  const Result r = monarch_cli("run '" + src + "' '" + dst + "' --precision fp32");
  REQUIRE(r.status == 0);
  const auto f32in = SafetensorsFile::open(src);
  const auto q = read_tensor4<float>(f32in, "q"), k = read_tensor4<float>(f32in, "k"),
             v = read_tensor4<float>(f32in, "v");
  const auto want = monarch_attention<float>(q, k, v, &in.mask, Options{});
  const auto f = SafetensorsFile::open(dst);
  CHECK(f.info("out").dtype == DType::F32);
  CHECK_FALSE(f.has("exact"));
  const auto got = f.read_f32("out");
  REQUIRE(got.size() == want.data.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want.data[i]).epsilon(1e-6));
}

TEST_CASE("monarch run reads F16 and BF16 inputs and --trace prints F and the KL gap per half-step") {
  const Inputs in = make_inputs(303, 1, 2, 20, 4, 4);
  for (DType dt : {DType::F16, DType::BF16}) {
    CAPTURE(dtype_name(dt));
    const std::string src = tmp("in16.safetensors"), dst = tmp("out16.safetensors");
    write_inputs(src, in, dt, /*with_mask=*/false);
    poison(dst, in.v);
    const Result r = monarch_cli("run '" + src + "' '" + dst + "' --steps 3 --trace");
    REQUIRE(r.status == 0);
    for (const char* row : {"t=1 R", "t=1 L", "t=2 R", "t=2 L", "t=3 R", "t=3 L"})
      CHECK(r.out.find(row) != std::string::npos);
    CHECK(r.out.find("F* - F") != std::string::npos);
    const auto f = SafetensorsFile::open(src);
    std::vector<HeadTrace<double>> traces;
    const auto want = monarch_attention<double>(read_tensor4<double>(f, "q"), read_tensor4<double>(f, "k"),
                                                read_tensor4<double>(f, "v"), nullptr, Options{.steps = 3}, &traces);
    CHECK(max_abs_diff(SafetensorsFile::open(dst).read_f64("out"), want.data) <= 1e-12);
    // The printed F (summed over heads) and gap F* - F match the trace computed here.
    double F_star = 0;
    for (const auto& t : traces) F_star += t.F_star;
    std::istringstream lines(r.out);
    std::string line;
    int rows = 0;
    while (std::getline(lines, line)) {
      int round = 0;
      char half = 0;
      double F = 0, gap = 0;
      if (std::sscanf(line.c_str(), " t=%d %c %lf %lf", &round, &half, &F, &gap) != 4) continue;
      REQUIRE(round >= 1);
      REQUIRE(round <= 3);
      double want_F = 0;
      for (const auto& t : traces)
        want_F += half == 'R' ? t.rounds[round - 1].F_after_R : t.rounds[round - 1].F_after_L;
      CHECK(F == doctest::Approx(want_F).epsilon(1e-7));
      CHECK(gap == doctest::Approx(F_star - want_F).epsilon(1e-5));
      CHECK(gap >= -1e-9);
      ++rows;
    }
    CHECK(rows == 6);
  }
}

TEST_CASE("every bad input is one line 'monarch: error:' and exit status 2") {
  const Inputs in = make_inputs(404);
  const std::string good = tmp("good.safetensors"), dst = tmp("err_out.safetensors");
  write_inputs(good, in, DType::F32);
  const std::string run = "run '" + good + "' '" + dst + "' ";

  SUBCASE("bad options") {
    check_one_line_error(run + "--block 0", "--block b must be >= 1");
    check_one_line_error(run + "--steps 0", "--steps T must be >= 1");
    check_one_line_error(run + "--block 38", "exceeds the sequence length N = 37");
    check_one_line_error(run + "--pad middle", "unknown --pad 'middle'");
    check_one_line_error(run + "--device tpu", "unknown device 'tpu'");
    check_one_line_error(run + "--precision fp8", "precision 'fp8'");
    check_one_line_error(run + "--scale nan", "--scale tau must be finite");
    check_one_line_error(run + "--steps two", "two");  // CLI11 conversion error
    check_one_line_error(run + "--bogus", "--bogus");  // CLI11 unknown option
    check_one_line_error("run '" + good + "'", "OUT");  // missing positional
    check_one_line_error("", "subcommand");
  }

  SUBCASE("missing q") {
    const std::string p = tmp("noq.safetensors");
    write_safetensors(p, {pack("k", DType::F32, in.k), pack("v", DType::F32, in.v)});
    check_one_line_error("run '" + p + "' '" + dst + "'", "missing tensor 'q'");
  }
  SUBCASE("mismatched shapes") {
    std::mt19937_64 rng(5);
    const std::string p = tmp("shapes.safetensors");
    write_safetensors(p, {pack("q", DType::F32, in.q), pack("k", DType::F32, random_tensor(2, 2, 36, 8, rng)),
                          pack("v", DType::F32, in.v)});
    check_one_line_error("run '" + p + "' '" + dst + "'", "k must have the shape of q");
  }
  SUBCASE("NaN in q") {
    Inputs bad = in;
    bad.q.data[17] = std::numeric_limits<double>::quiet_NaN();
    const std::string p = tmp("nan.safetensors");
    write_inputs(p, bad, DType::F32);
    check_one_line_error("run '" + p + "' '" + dst + "'", "q holds a non-finite value");
  }
  SUBCASE("all-masked sequence") {
    Inputs bad = in;
    for (int n = 0; n < bad.mask.N; ++n) bad.mask.keep[bad.mask.N + n] = 0;  // batch element 1
    const std::string p = tmp("masked.safetensors");
    write_inputs(p, bad, DType::F32);
    check_one_line_error("run '" + p + "' '" + dst + "'", "mask hides every key of batch element 1");
  }
  SUBCASE("truncated file") {
    const std::string p = tmp("truncated.safetensors");
    fs::copy_file(good, p, fs::copy_options::overwrite_existing);
    fs::resize_file(p, fs::file_size(p) - 100);
    check_one_line_error("run '" + p + "' '" + dst + "'", "file is truncated");
  }
  SUBCASE("unreadable file") {
    check_one_line_error("run '" + tmp("absent.safetensors") + "' '" + dst + "'", "cannot open");
  }
  SUBCASE("unwritable output") {
    check_one_line_error("run '" + good + "' '" + tmp("no/such/dir/out.safetensors") + "'", "cannot open");
  }
}

TEST_CASE("huge finite inputs give a finite out or a one-line refusal, never a NaN file") {
  Inputs in = make_inputs(505, 1, 1, 9, 3, 2);
  for (auto& x : in.q.data) x *= 1e200;  // finite in F64, but tau q.k overflows double
  for (auto& x : in.k.data) x *= 1e200;
  const std::string src = tmp("huge.safetensors"), dst = tmp("huge_out.safetensors");
  write_inputs(src, in, DType::F64);
  for (const char* args : {"", " --exact", " --precision fp32"}) {
    CAPTURE(args);
    fs::remove(dst);
    const Result r = monarch_cli("run '" + src + "' '" + dst + "'" + args);
    if (r.status == 0) {
      for (double x : SafetensorsFile::open(dst).read_f64("out")) CHECK(std::isfinite(x));
    } else {
      CHECK(r.status == 2);
      CHECK(r.err.rfind("monarch: error: ", 0) == 0);
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
      CHECK_FALSE(fs::exists(dst));
    }
  }
}

TEST_CASE("--help exits 0 and lists the options") {
  const Result top = monarch_cli("--help");
  CHECK(top.status == 0);
  CHECK(top.out.find("run") != std::string::npos);
  CHECK(top.out.find("demo") != std::string::npos);
  const Result r = monarch_cli("run --help");
  CHECK(r.status == 0);
  CHECK(r.out.find("--steps") != std::string::npos);
  CHECK(r.out.find("--precision") != std::string::npos);
  CHECK(r.err.empty());
}

TEST_CASE("monarch demo on the shipped example prints a table for T = 1, 2, 3 with small error") {
  const Result r = monarch_cli(std::string("demo '") + MONARCH_SOURCE_DIR + "/examples/demo.safetensors'");
  REQUIRE(r.status == 0);
  CAPTURE(r.out);
  CHECK(r.out.find("KL gap") != std::string::npos);
  CHECK(r.out.find("Monarch FLOPs") != std::string::npos);
  // The three rows "T rel.error ..." and their errors: the synthetic example is structured, so
  // Monarch must be far better than the 60-100% of random inputs.
  std::istringstream lines(r.out);
  std::string line;
  int rows = 0;
  while (std::getline(lines, line)) {
    int T = 0;
    double err = 0;
    if (std::sscanf(line.c_str(), " %d %lf", &T, &err) == 2 && T >= 1 && T <= 3 && line.find("ms") != std::string::npos) {
      ++rows;
      CHECK(err < 0.2);
      CHECK(err > 0);
    }
  }
  CHECK(rows == 3);
  check_one_line_error("demo '" + tmp("absent.safetensors") + "'", "cannot open");
}
