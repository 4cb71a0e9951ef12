// libFuzzer target: the path of `monarch run` from file bytes to attention output. Either a
// clean InputError / FormatError, or MonarchAttention and exact attention outputs with no NaN or
// Inf, in double and in float (the project rule: "never a crash or NaN").
// The checks live in harness.hpp, shared with the ctest replay of fuzz/regressions/.
#include "harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  monarch::fuzz::check_attention({data, size});  // a violation throws: libFuzzer reports it
  return 0;
}
