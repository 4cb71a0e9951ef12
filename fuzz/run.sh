#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, replays the saved findings (fuzz/regressions/<target>/)
# and the seed corpus through each, then fuzzes every target for a bounded time. The targets fuzz
# side by side (CI has 2 cores), so the whole run takes about the build plus SECONDS.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]      default 60; BUILD_DIR overrides build-fuzz/
#
# New corpus entries go to the build directory, never into the repository. A crash leaves its
# input in build-fuzz/artifacts/<target>/: report it (/work/notes/bugs.md), and copy it to
# fuzz/regressions/<target>/ so that ctest replays it (tests/hardening/test_fuzz_regressions.cpp).
set -euo pipefail
shopt -s nullglob
seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-fuzz}"
fuzz="$root/fuzz"
targets=(fuzz_safetensors fuzz_attention fuzz_tokenizer)

cxx="$(command -v clang++ || command -v clang++-14 || true)"
[ -n "$cxx" ] || { echo "fuzz: clang++ not found (scripts/setup.d/fuzz.sh installs clang-14)" >&2; exit 1; }
cmake -S "$fuzz" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
cmake --build "$build" -j2 >"$build/build.log" 2>&1 || { tail -20 "$build/build.log"; exit 1; }

# Seeds: the committed small valid files (written by fuzz/make_seeds) and the shipped example.
seeds="$build/seeds/safetensors"
rm -rf "$seeds" && mkdir -p "$seeds"
cp "$fuzz"/corpus/safetensors/* "$seeds/"
if [ -f "$root/examples/demo.safetensors" ]; then cp "$root/examples/demo.safetensors" "$seeds/"; fi
declare -A seed_dir=([fuzz_safetensors]="$seeds" [fuzz_attention]="$seeds"
                     [fuzz_tokenizer]="$fuzz/corpus/tokenizer")
declare -A options=([fuzz_safetensors]="-dict=$fuzz/safetensors.dict -max_len=16384"
                    [fuzz_attention]="-dict=$fuzz/safetensors.dict -max_len=16384"
                    [fuzz_tokenizer]="-max_len=1024")

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
built=()
for t in "${targets[@]}"; do
  if [ -x "$build/$t" ]; then built+=("$t"); else echo "fuzz: $t not built (its sources are absent), skipped"; fi
done

# 1. Every saved finding and every seed must run clean, each input once.
for t in "${built[@]}"; do
  inputs=("$fuzz/regressions/$t"/* "${seed_dir[$t]}"/*)
  # (no -max_len here: libFuzzer would cut longer saved inputs short)
  if ((${#inputs[@]})) && ! "$build/$t" "${inputs[@]}" >"$build/$t.replay.log" 2>&1; then
    echo "fuzz: $t FAILS on a saved input (see $build/$t.replay.log):"
    grep -m3 -E "^Running:|what\(\)|ERROR:|runtime error" "$build/$t.replay.log" | tail -3 || true
    status=1
  fi
done

# 2. Fuzz all targets side by side for the given time, each from its saved corpus and seeds.
pids=()
for t in "${built[@]}"; do
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  "$build/$t" ${options[$t]} -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" "$build/corpus/$t" "${seed_dir[$t]}" \
    >"$build/$t.log" 2>&1 &
  pids+=($!)
done
for i in "${!built[@]}"; do
  t="${built[$i]}"
  if wait "${pids[$i]}"; then
    runs="$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$build/$t.log" | grep -o '[0-9]*$' || true)"
    echo "fuzz: $t clean for ${seconds}s (${runs:-?} runs)"
  else
    echo "fuzz: $t FOUND A PROBLEM (log $build/$t.log):"
    grep -m4 -E "what\(\)|ERROR:|runtime error|Test unit written" "$build/$t.log" || true
    status=1
  fi
done
exit $status
