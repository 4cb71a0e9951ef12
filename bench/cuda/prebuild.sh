#!/usr/bin/env bash
# Builds the GPU binaries on the CPU machine (nvcc needs no GPU) and gathers them, stripped, with the
# one shared library the device image may lack, into build-dev/prebuilt/{bin,lib}: carried to the
# device machine, they save its build minutes (PREBUILT=build-dev/prebuilt bash bench/cuda/gpu_session.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-dev}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a -DMONARCH_CUDA=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target cuda_levels cuda_naive cuda_errors monarch bench_cuda monarch_cuda_c nb5_cpu_vs_gpu
OUTDIR=build-dev/prebuilt
rm -rf "$OUTDIR" && mkdir -p "$OUTDIR/bin" "$OUTDIR/lib"
for b in tests/cuda/cuda_levels tests/cuda/cuda_naive tests/cuda/cuda_errors apps/monarch bench/cuda/bench_cuda \
  cuda/libmonarch_cuda_c.so notebooks_cpp/nb5_cpu_vs_gpu; do
  cp "$BUILD/$b" "$OUTDIR/bin/" && strip --strip-unneeded "$OUTDIR/bin/$(basename "$b")"
done
cp -L /usr/lib/x86_64-linux-gnu/libbenchmark.so.1debian "$OUTDIR/lib/"
du -sh "$OUTDIR"
