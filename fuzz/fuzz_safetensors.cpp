// libFuzzer target: the safetensors reader on arbitrary bytes. parse either returns a file whose
// every tensor reads back through every reader whose dtype fits, or throws FormatError -- never
// another exception, a crash, an out-of-bounds read (ASan) or undefined behaviour (UBSan).
// The checks live in harness.hpp, shared with the ctest replay of fuzz/regressions/.
#include "harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  monarch::fuzz::check_safetensors({data, size});  // a violation throws: libFuzzer reports it
  return 0;
}
