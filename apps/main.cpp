// `monarch`: the command-line tool. Every failure becomes one line "monarch: error: ..." on
// stderr with exit status 2 for bad input (1 for anything else); --help exits 0.
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "commands.hpp"
#include "monarch/options.hpp"

namespace {

/// Prints the one-line error; a message that spans lines is folded so the contract holds.
int fail(const std::string& what, int status) {
  std::string line = what;
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  while (!line.empty() && line.back() == ' ') line.pop_back();
  std::fprintf(stderr, "monarch: error: %s\n", line.c_str());
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace monarch::cli;
  try {
    CLI::App app{"MonarchAttention (Yaras et al. 2025): sub-quadratic structured attention.", "monarch"};
    app.require_subcommand(1);
    add_run_command(app);
    add_demo_command(app);
#ifdef MONARCH_WITH_CUDA
    add_check_command(app);
#endif
#ifdef MONARCH_WITH_MODELS
    add_zero_shot_command(app);
#endif
    try {
      app.parse(argc, argv);  // the chosen subcommand's callback runs inside parse
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == 0) return app.exit(e);  // --help, --help-all: usage on stdout
      return fail(e.what(), kExitBadInput);
    }
  } catch (const monarch::InputError& e) {  // bad file, bad tensor, bad option value
    return fail(e.what(), kExitBadInput);
  } catch (const std::bad_alloc&) {
    return fail("out of memory", kExitFailure);
  } catch (const std::exception& e) {
    return fail(e.what(), kExitFailure);
  } catch (...) {
    return fail("unknown internal error", kExitFailure);
  }
  return 0;
}
