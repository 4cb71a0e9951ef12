// Replays every saved fuzzer finding (fuzz/regressions/<target>/) and the committed seed corpus
// (fuzz/corpus/safetensors/) through the fuzz targets' own checks (fuzz/harness.hpp), in the
// normal ctest suite: each input must be rejected cleanly (FormatError / InputError) or accepted
// with every read working and every output finite. A finding stays here after its fix.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "../../fuzz/harness.hpp"

namespace fs = std::filesystem;
using monarch::fuzz::Outcome;

namespace {

const fs::path kFuzzDir = fs::path(MONARCH_SOURCE_DIR) / "fuzz";

std::vector<std::uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The files of a folder in name order (empty when the folder does not exist).
std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("saved fuzzer findings for the safetensors reader are rejected cleanly or read fully") {
  for (const fs::path& p : files_in(kFuzzDir / "regressions" / "fuzz_safetensors")) {
    CAPTURE(p.filename().string());
    const auto bytes = read_bytes(p);
    CHECK_NOTHROW(monarch::fuzz::check_safetensors(bytes));
  }
}

TEST_CASE("saved fuzzer findings for file -> attention are rejected cleanly or give finite outputs") {
  for (const fs::path& p : files_in(kFuzzDir / "regressions" / "fuzz_attention")) {
    CAPTURE(p.filename().string());
    const auto bytes = read_bytes(p);
    CHECK_NOTHROW(monarch::fuzz::check_attention(bytes));
  }
}

TEST_CASE("every seed file of the fuzz corpus is a valid safetensors file that reads fully") {
  const auto seeds = files_in(kFuzzDir / "corpus" / "safetensors");
  CHECK(seeds.size() >= 8);
  for (const fs::path& p : seeds) {
    CAPTURE(p.filename().string());
    const auto bytes = read_bytes(p);
    Outcome outcome = Outcome::Rejected;
    CHECK_NOTHROW(outcome = monarch::fuzz::check_safetensors(bytes));
    CHECK(outcome == Outcome::Accepted);
    CHECK_NOTHROW(monarch::fuzz::check_attention(bytes));
  }
}
