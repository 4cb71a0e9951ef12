#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time, after replaying the
# saved regression inputs (fuzz/regressions/<target>/) and the seed corpus through it.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]      default 60; BUILD_DIR overrides build-fuzz/
#
# New corpus entries go to the build directory, never into the repository. A crash leaves its
# input as build-fuzz/artifacts/<target>/crash-*: copy it to fuzz/regressions/<target>/ once the
# owner has fixed the bug, so that ctest replays it (tests/hardening/test_fuzz_regressions.cpp).
set -euo pipefail
shopt -s nullglob
seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-fuzz}"
fuzz="$root/fuzz"

CXX="${CXX_FUZZ:-$(command -v clang++ || command -v clang++-14 || true)}"
[ -n "$CXX" ] || { echo "fuzz: clang++ not found (scripts/setup.sh installs clang-14)" >&2; exit 1; }
cmake -S "$fuzz" -B "$build" -DCMAKE_CXX_COMPILER="$CXX" >/dev/null
cmake --build "$build" -j2 >/dev/null

# The seed corpus: the committed small valid files (fuzz/make_seeds writes them) plus the
# shipped example, gathered in the build directory.
seeds="$build/seeds"
rm -rf "$seeds" && mkdir -p "$seeds"
cp "$fuzz"/corpus/safetensors/*.safetensors "$seeds/"
[ -f "$root/examples/demo.safetensors" ] && cp "$root/examples/demo.safetensors" "$seeds/"

# target -> its seed directories and extra flags.
declare -A seed_dirs=([fuzz_safetensors]="$seeds" [fuzz_attention]="$seeds" [fuzz_tokenizer]="$fuzz/corpus/tokenizer")
declare -A flags=([fuzz_safetensors]="-dict=$fuzz/safetensors.dict -max_len=16384"
                  [fuzz_attention]="-dict=$fuzz/safetensors.dict -max_len=16384"
                  [fuzz_tokenizer]="-max_len=4096")

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for target in fuzz_safetensors fuzz_attention fuzz_tokenizer; do
  exe="$build/$target"
  [ -x "$exe" ] || { echo "fuzz: $target not built (its sources are absent), skipped"; continue; }
  regressions="$fuzz/regressions/$target"
  corpus="$build/corpus/$target"
  artifacts="$build/artifacts/$target/"
  mkdir -p "$corpus" "$artifacts"
  # 1. Every saved finding and every seed must run clean (no fuzzing, each input once).
  replay=()
  [ -d "$regressions" ] && replay+=("$regressions"/*)
  for dir in ${seed_dirs[$target]}; do [ -d "$dir" ] && replay+=("$dir"/*); done
  if ((${#replay[@]})); then
    if ! "$exe" ${flags[$target]} "${replay[@]}" >"$build/$target.replay.log" 2>&1; then
      echo "fuzz: $target FAILED replaying saved inputs, see $build/$target.replay.log"; status=1; continue
    fi
  fi
  # 2. Fuzz for a bounded time from the saved corpus plus the seeds.
  if "$exe" ${flags[$target]} -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts" "$corpus" ${seed_dirs[$target]} \
      >"$build/$target.log" 2>&1; then
    echo "fuzz: $target clean for ${seconds}s ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$build/$target.log" | grep -o '[0-9]*$') runs)"
  else
    echo "fuzz: $target FOUND A PROBLEM, input in $artifacts, log $build/$target.log"; status=1
    grep -m5 -E "ERROR|runtime error|==ABORT|deadly signal|Test unit written" "$build/$target.log" || true
  fi
done
exit $status
