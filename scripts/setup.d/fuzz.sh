#!/usr/bin/env bash
# The fuzzers (fuzz/, issue 6) need clang with libFuzzer: Debian 12's clang-14 provides
# -fsanitize=fuzzer, its runtime is in libclang-rt-14-dev. Installed once; silent when present.
set -euo pipefail
source "$(dirname "$0")/../apt_install.sh"
packages=(clang-14 libclang-rt-14-dev)
apt_install_missing "for fuzz/run.sh" "${packages[@]}"
