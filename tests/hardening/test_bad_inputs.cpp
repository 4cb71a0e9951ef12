// docs/bad-inputs.md is the list: this test reads its tables, builds the input each row describes,
// and requires exactly the row's message -- from the C++ API (an InputError / FormatError) and/or
// from `monarch run` (one line "monarch: error: ..." on stderr, exit status 2). A row without a
// case here, or a case without a row, fails. `{file}` in a message stands for the input's path,
// any other `{placeholder}` (such as `{reason}`) for any text.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "io/safetensors.hpp"
#include "monarch/attention.hpp"

using namespace monarch;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// ------------------------------------------------------------------ the table in the docs
struct Row {
  std::string id, input, interface, message;
};

/// Rows "| ID | input | interface | `message` |" of every table in docs/bad-inputs.md.
std::vector<Row> read_table() {
  std::ifstream in(MONARCH_SOURCE_DIR "/docs/bad-inputs.md");
  REQUIRE(in.good());
  const std::regex row(R"(^\|\s*([A-Z]+[0-9]+)\s*\|(.*)\|\s*([^|]*?)\s*\|\s*(.*?)\s*\|\s*$)");
  std::vector<Row> rows;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, row)) continue;
    std::string message = m[4];
    if (message.size() >= 2 && message.front() == '`' && message.back() == '`')
      message = message.substr(1, message.size() - 2);
    rows.push_back({m[1], m[2], m[3], message});
  }
  return rows;
}

const std::regex kPlaceholder(R"(\{[a-z]+\})");

/// The expected line as a regex: the message verbatim, `{file}` -> the path, any other
/// `{placeholder}` (such as `{reason}`) -> .+
std::regex expected_regex(const std::string& message, const std::string& path) {
  auto escape = [](const std::string& s) {
    static const std::regex special(R"([.^$|()\[\]{}*+?\\])");
    return std::regex_replace(s, special, R"(\$&)");
  };
  std::string pattern;
  std::size_t last = 0;
  for (std::sregex_iterator it(message.begin(), message.end(), kPlaceholder), end; it != end; ++it) {
    pattern += escape(message.substr(last, it->position() - last));
    pattern += it->str() == "{file}" ? escape(path) : std::string(".+");
    last = it->position() + it->length();
  }
  return std::regex(pattern + escape(message.substr(last)));
}

/// The longest piece of a message between placeholders: what must occur in the source verbatim.
std::string longest_literal(const std::string& message) {
  std::string best;
  for (std::sregex_token_iterator it(message.begin(), message.end(), kPlaceholder, -1), end; it != end; ++it)
    if (it->length() > static_cast<long>(best.size())) best = *it;
  return best;
}

/// Every .cpp, .cu and .cuh of the folders, concatenated (to find a message's text).
std::string sources_of(std::initializer_list<const char*> folders) {
  std::string all;
  for (const char* folder : folders) {
    const fs::path dir = fs::path(MONARCH_SOURCE_DIR) / folder;
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      const auto ext = e.path().extension();
      if (ext != ".cpp" && ext != ".cu" && ext != ".cuh" && ext != ".hpp") continue;
      std::ifstream in(e.path());
      all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  return all;
}

// ------------------------------------------------------------------ inputs
constexpr int kN = 8, kD = 4, kDv = 3;  // the examples of the docs: q, k (1, 1, 8, 4), v (1, 1, 8, 3)

/// Deterministic, non-zero, distinct values.
std::vector<double> ramp(std::size_t n, double start) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::sin(start + 0.7 * static_cast<double>(i));
  return v;
}

Tensor4<double> tensor(int E, int H, int N, int D, double start) {
  Tensor4<double> t(E, H, N, D);
  t.data = ramp(t.data.size(), start);
  return t;
}

struct Qkv {
  Tensor4<double> q = tensor(1, 1, kN, kD, 0.1), k = tensor(1, 1, kN, kD, 1.3), v = tensor(1, 1, kN, kDv, 2.9);
  KeyMask mask;
};

/// Runs monarch_attention on in-memory tensors (the library rows about shapes, masks, values).
void attend(const Qkv& x, const Options& opt = {}) {
  monarch_attention<double>(x.q, x.k, x.v, x.mask.empty() ? nullptr : &x.mask, opt);
}

io::OutTensor out_tensor(const char* name, const Tensor4<double>& t) {
  return io::make_tensor(name, io::DType::F64, {t.E, t.H, t.N, t.D}, t.data);
}

/// The good file's tensors: q, k, v as F64 (bytes [0, 256), [256, 512), [512, 704)).
std::vector<io::OutTensor> good_tensors(const Qkv& x = {}) {
  return {out_tensor("q", x.q), out_tensor("k", x.k), out_tensor("v", x.v)};
}

io::OutTensor mask_tensor(io::DType t, std::vector<std::int64_t> shape, double value = 1.0) {
  std::size_t n = 1;
  for (auto s : shape) n *= static_cast<std::size_t>(s);
  return io::make_tensor("mask", t, std::move(shape), std::vector<double>(n, value));
}

/// The good file's header as JSON, to be edited by a row before it is written raw.
json good_header() {
  return json{{"q", {{"dtype", "F64"}, {"shape", {1, 1, kN, kD}}, {"data_offsets", {0, 256}}}},
              {"k", {{"dtype", "F64"}, {"shape", {1, 1, kN, kD}}, {"data_offsets", {256, 512}}}},
              {"v", {{"dtype", "F64"}, {"shape", {1, 1, kN, kDv}}, {"data_offsets", {512, 704}}}}};
}
constexpr std::size_t kGoodDataBytes = 704;

/// Writes a length field, then the header text, then data_bytes bytes of small doubles.
void write_raw(const std::string& path, const std::string& header, std::size_t data_bytes,
               std::uint64_t length_field = std::numeric_limits<std::uint64_t>::max()) {
  const std::uint64_t n = length_field == std::numeric_limits<std::uint64_t>::max() ? header.size() : length_field;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&n), sizeof n);  // little-endian (x86, as io/ asserts)
  out << header;
  for (std::size_t i = 0; i < data_bytes; ++i) out.put(static_cast<char>(i % 8 == 7 ? 0x3f : 0x00));
}

void write_header(const std::string& path, const json& header, std::size_t data_bytes = kGoodDataBytes) {
  write_raw(path, header.dump(), data_bytes);
}

// ------------------------------------------------------------------ the cases, one per row
struct Case {
  std::function<void(const std::string& path)> write;    // the input file (rows read from a file)
  std::function<void(const std::string& path)> library;  // must throw InputError
  std::vector<std::string> cli_args;                     // after `monarch run IN OUT`
  bool cli = false;                                      // the row is tested through the CLI
  bool cli_names_file = false;  // the CLI puts "<file>: " before a library message (read_inputs)
  bool format_error = false;    // the library must throw io::FormatError specifically
};

/// The library call of the file rows: open the file, then read what the row is about.
std::function<void(const std::string&)> open_then(std::function<void(const io::SafetensorsFile&)> read = {}) {
  return [read](const std::string& path) {
    const io::SafetensorsFile f = io::SafetensorsFile::open(path);
    if (read) read(f);
  };
}

/// A row whose input is a file with some tensors, read by both the library and the CLI.
Case file_case(std::function<void(const std::string&)> write,
               std::function<void(const io::SafetensorsFile&)> read = {}) {
  Case c;
  c.write = std::move(write);
  c.library = open_then(std::move(read));
  c.cli = true;
  c.format_error = true;
  return c;
}

/// A row about tensor values or the mask: in memory for the library, from a file for the CLI.
Case value_case(std::function<void(Qkv&)> edit) {
  Case c;
  c.write = [edit](const std::string& path) {
    Qkv x;
    edit(x);
    auto t = good_tensors(x);
    if (!x.mask.empty()) {
      std::vector<double> keep(x.mask.keep.begin(), x.mask.keep.end());
      t.push_back(io::make_tensor("mask", io::DType::U8, {x.mask.E, x.mask.N}, keep));
    }
    io::write_safetensors(path, t);
  };
  c.library = [edit](const std::string&) {
    Qkv x;
    edit(x);
    attend(x);
  };
  c.cli = true;
  c.cli_names_file = true;
  return c;
}

Case library_case(std::function<void()> call) {
  Case c;
  c.library = [call](const std::string&) { call(); };
  return c;
}

Case cli_case(std::vector<std::string> args) {
  Case c;
  c.write = [](const std::string& path) { io::write_safetensors(path, good_tensors()); };
  c.cli_args = std::move(args);
  c.cli = true;
  return c;
}

Case header_case(std::function<void(json&)> edit, std::size_t data_bytes = kGoodDataBytes) {
  return file_case([edit, data_bytes](const std::string& path) {
    json h = good_header();
    edit(h);
    write_header(path, h, data_bytes);
  });
}

std::map<std::string, Case> cases() {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  std::map<std::string, Case> c;
  // Shapes and options.
  c["S1"] = library_case([] {
    Qkv x;
    x.q = Tensor4<double>(1, 1, 0, kD);
    attend(x);
  });
  c["S2"] = library_case([] {
    Qkv x;
    x.q.data.pop_back();
    attend(x);
  });
  c["S3"] = library_case([] {
    Qkv x;
    x.k = tensor(1, 1, 7, kD, 1.0);
    attend(x);
  });
  c["S4"] = library_case([] {
    Qkv x;
    x.v = tensor(1, 2, kN, kDv, 1.0);
    attend(x);
  });
  c["S5"] = library_case([] {
    const double z = 0;
    monarch_head<double>(&z, &z, &z, 0, 1, 1, {}, Options{});
  });
  c["O1"] = library_case([] { attend(Qkv{}, Options{.block = -3}); });
  c["O2"] = cli_case({"--block", "0"});
  c["O3"] = library_case([] { attend(Qkv{}, Options{.steps = 0}); });
  c["O4"] = cli_case({"--steps", "0"});
  c["O5"] = cli_case({"--block", "9"});
  c["O5"].library = [](const std::string&) { attend(Qkv{}, Options{.block = 9}); };
  c["O6"] = library_case([] {
    Options opt;
    opt.scale = std::numeric_limits<double>::infinity();
    attend(Qkv{}, opt);
  });
  c["O7"] = cli_case({"--pad", "middle"});
  c["O8"] = cli_case({"--precision", "fp16"});
  c["O9"] = cli_case({"--steps", "two"});
  c["O10"] = cli_case({"--device", "gpu"});
  // Masks and values.
  c["M1"] = value_case([](Qkv& x) { x.mask = KeyMask{1, 7, std::vector<std::uint8_t>(7, 1)}; });
  c["M2"] = value_case([](Qkv& x) { x.mask = KeyMask{1, kN, std::vector<std::uint8_t>(kN, 0)}; });
  c["M3"] = library_case([] {
    const Qkv x;
    const std::vector<std::uint8_t> none(kN, 0);
    monarch_head<double>(x.q.data.data(), x.k.data.data(), x.v.data.data(), kN, kD, kDv, none, Options{});
  });
  c["M4"] = file_case(
      [](const std::string& p) {
        auto t = good_tensors();
        t.push_back(mask_tensor(io::DType::U8, {1, 1, kN}));
        io::write_safetensors(p, t);
      },
      [](const io::SafetensorsFile& f) { io::read_mask(f, "mask"); });
  c["V1"] = value_case([nan](Qkv& x) { x.q.data[5] = nan; });
  c["V2"] = value_case([inf](Qkv& x) { x.k.data[0] = inf; });
  c["V3"] = value_case([inf](Qkv& x) { x.v.data[23] = -inf; });
  // Finite inputs whose scores overflow: refused before any score is formed (validate_score_range).
  auto overflowing = [](io::DType t, double big) {
    return [t, big](const std::string& p) {
      io::write_safetensors(p, {io::make_tensor("q", t, {1, 1, 2, 1}, std::vector<double>{big, -big}),
                                io::make_tensor("k", t, {1, 1, 2, 1}, std::vector<double>{big, big}),
                                io::make_tensor("v", t, {1, 1, 2, 1}, std::vector<double>{1.0, 2.0})});
    };
  };
  auto attend_file = []<class S>(S, const std::string& p) {
    const auto f = io::SafetensorsFile::open(p);
    monarch_attention(io::read_tensor4<S>(f, "q"), io::read_tensor4<S>(f, "k"), io::read_tensor4<S>(f, "v"),
                      nullptr, Options{});
  };
  c["V4"] = cli_case({});
  c["V4"].write = overflowing(io::DType::F64, 1e200);
  c["V4"].library = [attend_file](const std::string& p) { attend_file(0.0, p); };
  c["V5"] = cli_case({"--precision", "fp32"});
  c["V5"].write = overflowing(io::DType::F32, 1e20);
  c["V5"].library = [attend_file](const std::string& p) { attend_file(0.0f, p); };
  c["V6"] = cli_case({"--precision", "fp32"});
  c["V6"].write = overflowing(io::DType::F64, 1e200);
  // Files.
  c["F1"] = file_case([](const std::string&) {});  // nothing written: the file does not exist
  c["F1"].format_error = false;                     // an unreadable file is an InputError
  c["F2"] = file_case([](const std::string& p) { std::ofstream(p, std::ios::binary) << "abc"; });
  c["F3"] = file_case([](const std::string& p) { write_raw(p, good_header().dump(), kGoodDataBytes, 1ull << 32); });
  c["F4"] = file_case([](const std::string& p) { write_raw(p, std::string(20, ' '), 0, 1000); });
  c["F5"] = file_case([](const std::string& p) { write_raw(p, "{\"q\": {not json", 0); });
  c["F6"] = file_case([](const std::string& p) { write_raw(p, "[1, 2]", 0); });
  c["F7"] = header_case([](json& h) { h["q"].erase("shape"); });
  c["F8"] = header_case([](json& h) { h["q"]["dtype"] = "F8_E4M3"; });
  c["F9"] = header_case([](json& h) { h["q"]["shape"] = {1, 1, -8, 4}; });
  c["F10"] = header_case([](json& h) { h["q"]["shape"] = {1ll << 32, 1ll << 32, 2}; });
  c["F11"] = header_case([](json& h) { h["q"]["data_offsets"] = {0}; });
  c["F12"] = header_case([](json& h) { h["q"]["data_offsets"] = {256, 0}; });
  c["F13"] = header_case([](json& h) { h["q"]["data_offsets"] = {0, 128}; });
  c["F14"] = header_case([](json& h) { h["k"]["data_offsets"] = {128, 384}; });
  c["F15"] = header_case([](json&) {}, kGoodDataBytes - 10);
  c["F16"] = header_case([](json& h) { h["v"]["data_offsets"] = {1024, 1216}; });
  c["F17"] = header_case([](json& h) { h["__metadata__"] = {{"steps", 2}}; });
  c["F18"] = file_case([](const std::string& p) {
    write_raw(p, good_header().dump() + std::string(1, '\0') + "{\"x\": 1}", kGoodDataBytes);
  });
  // What the CLI reads from a file.
  c["C1"] = cli_case({});
  c["C1"].write = [](const std::string& p) {
    auto t = good_tensors();
    t.pop_back();
    io::write_safetensors(p, t);
  };
  c["C2"] = file_case(
      [](const std::string& p) {
        json h = good_header();
        h["q"] = {{"dtype", "I32"}, {"shape", {1, 1, kN, kD}}, {"data_offsets", {0, 128}}};
        h["k"]["data_offsets"] = {128, 384};
        h["v"]["data_offsets"] = {384, 576};
        write_header(p, h, 576);
      },
      [](const io::SafetensorsFile& f) { io::read_tensor4<double>(f, "q"); });
  c["C3"] = file_case(
      [](const std::string& p) {
        auto t = good_tensors();
        t.push_back(mask_tensor(io::DType::F32, {1, kN}));
        io::write_safetensors(p, t);
      },
      [](const io::SafetensorsFile& f) { io::read_mask(f, "mask"); });
  c["C4"] = file_case(
      [](const std::string& p) {
        auto t = good_tensors();
        t[0] = io::make_tensor("q", io::DType::F64, {kN, kD}, ramp(kN * kD, 0.1));
        io::write_safetensors(p, t);
      },
      [](const io::SafetensorsFile& f) { io::read_tensor4<double>(f, "q"); });
  return c;
}

// ------------------------------------------------------------------ running the CLI
struct CliResult {
  int status = -1;
  std::string err;
};

std::string quoted(const std::string& s) { return "'" + s + "'"; }

CliResult run_cli(const std::string& args, const fs::path& dir) {
  const fs::path err = dir / "stderr.txt";
  const std::string cmd = quoted(MONARCH_CLI) + " " + args + " >/dev/null 2>" + quoted(err.string());
  const int raw = std::system(cmd.c_str());
  CliResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  std::ifstream in(err);
  std::stringstream s;
  s << in.rdbuf();
  r.err = s.str();
  return r;
}

/// A scratch directory removed at the end of the test.
struct ScratchDir {
  fs::path path = fs::temp_directory_path() / ("monarch_bad_inputs_" + std::to_string(::getpid()));
  ScratchDir() { fs::create_directories(path); }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

bool mentions(const std::string& interface, const char* what) {
  return interface.find(what) != std::string::npos;
}

}  // namespace

TEST_CASE("every row of docs/bad-inputs.md has a test and every test has a row") {
  const auto rows = read_table();
  const auto all = cases();
  CHECK(rows.size() >= 40);
  std::map<std::string, int> seen;
  for (const Row& r : rows) {
    CAPTURE(r.id);
    CHECK(++seen[r.id] == 1);  // ids are unique
    if (r.id[0] == 'G') continue;  // the GPU rows are tested below
    REQUIRE(all.count(r.id) == 1);
    const Case& c = all.at(r.id);
    CHECK(mentions(r.interface, "library") == static_cast<bool>(c.library));
    CHECK(mentions(r.interface, "CLI") == c.cli);
  }
  for (const auto& [id, c] : all) {
    CAPTURE(id);
    CHECK(seen.count(id) == 1);
  }
}

TEST_CASE("every rejected input of docs/bad-inputs.md gives its documented message") {
  const ScratchDir dir;
  const auto all = cases();
  int library_rows = 0, cli_rows = 0;
  for (const Row& r : read_table()) {
    if (!all.count(r.id)) continue;  // reported by the test above
    const Case& c = all.at(r.id);
    CAPTURE(r.id);
    CAPTURE(r.message);
    const std::string path = (dir.path / (r.id + ".safetensors")).string();
    fs::remove(path);
    if (c.write) c.write(path);

    if (c.library) {
      ++library_rows;
      std::string what = "(no exception)";
      bool format_error = false;
      try {
        c.library(path);
      } catch (const io::FormatError& e) {
        what = e.what();
        format_error = true;
      } catch (const InputError& e) {
        what = e.what();
      }
      CAPTURE(what);
      CHECK(std::regex_match(what, expected_regex(r.message, path)));
      CHECK(format_error == c.format_error);
      CHECK(what.find('\n') == std::string::npos);  // one line
    }

#ifdef MONARCH_CLI
    if (c.cli) {
      ++cli_rows;
      std::string args = "run " + quoted(path) + " " + quoted((dir.path / "out.safetensors").string());
      for (const auto& a : c.cli_args) args += " " + quoted(a);
      const CliResult res = run_cli(args, dir.path);
      const std::string prefix = c.cli_names_file ? "monarch: error: {file}: " : "monarch: error: ";
      CAPTURE(res.err);
      CHECK(res.status == 2);
      REQUIRE(!res.err.empty());
      CHECK(res.err.back() == '\n');
      CHECK(std::count(res.err.begin(), res.err.end(), '\n') == 1);  // exactly one line
      CHECK(std::regex_match(res.err.substr(0, res.err.size() - 1), expected_regex(prefix + r.message, path)));
    }
#endif
  }
  CHECK(library_rows >= 30);
#ifdef MONARCH_CLI
  CHECK(cli_rows >= 30);
#else
  MESSAGE("the monarch executable is not built: CLI rows of docs/bad-inputs.md not checked");
#endif
}

TEST_CASE("GPU rows of docs/bad-inputs.md: produced where possible, their text found in the sources") {
  const ScratchDir dir;
  const std::string sources = sources_of({"cuda", "apps"});
  int rows = 0;
  for (const Row& r : read_table()) {
    if (r.id[0] != 'G') continue;
    ++rows;
    CAPTURE(r.id);
    CAPTURE(r.message);
    if (mentions(r.interface, "pending")) {
      MESSAGE(r.id << " is pending in docs/bad-inputs.md:" << r.input);
      continue;
    }
    // The documented text must be what the code prints (tests/cuda checks it on the GPU machine).
    const std::string literal = longest_literal(r.message);
    CHECK(literal.size() >= 12);
    CHECK(sources.find(literal) != std::string::npos);
    if (!mentions(r.interface, "CLI")) continue;
#if defined(MONARCH_CLI) && defined(MONARCH_CLI_HAS_CUDA)
    const std::string path = (dir.path / "good.safetensors").string();
    io::write_safetensors(path, good_tensors());
    const std::string args = r.id == "G1" ? std::string("check --N 16 --d 8 --steps 1")
                                          : "run " + quoted(path) + " " + quoted((dir.path / "out.st").string()) +
                                                " --device cuda";
    const CliResult res = run_cli(args, dir.path);
    if (res.status == 0) {
      MESSAGE("a CUDA device is present: " << r.id << " cannot be produced here");
      continue;
    }
    CAPTURE(res.err);
    CHECK(res.status == 1);  // no GPU is not the user's input
    REQUIRE(!res.err.empty());
    CHECK(std::count(res.err.begin(), res.err.end(), '\n') == 1);
    CHECK(std::regex_match(res.err.substr(0, res.err.size() - 1), expected_regex("monarch: error: " + r.message, path)));
#else
    MESSAGE("monarch is built without CUDA: " << r.id << " checked in the sources only");
#endif
  }
  CHECK(rows >= 5);
}
