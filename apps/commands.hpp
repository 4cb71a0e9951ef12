// The subcommands of the `monarch` tool. Each lives in its own apps/cmd_<name>.cpp and registers
// itself on the CLI11 app; main.cpp only calls these. Optional subcommands are compiled when
// their library exists (see apps/CMakeLists.txt), announced by a compile definition.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace monarch::cli {

/// Exit status for every bad option, bad file or bad input (CLI11 parse errors included).
constexpr int kExitBadInput = 2;
/// Exit status for failures that are not the user's input (out of memory, internal errors).
constexpr int kExitFailure = 1;

void add_run_command(CLI::App& app);   // apps/cmd_run.cpp
void add_demo_command(CLI::App& app);  // apps/cmd_demo.cpp
#ifdef MONARCH_WITH_CUDA
void add_check_command(CLI::App& app);  // apps/cmd_check.cpp
#endif
#ifdef MONARCH_WITH_MODELS
void add_zero_shot_command(CLI::App& app);  // apps/cmd_zero_shot.cpp
#endif

}  // namespace monarch::cli
