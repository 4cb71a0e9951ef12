#!/usr/bin/env python3
"""Two builds of libmonarch_cuda_c.so timed against each other in one process (an A/B of a kernel
change), on the same tensors and with compare_sdpa.py's timing: CUDA-event medians, an L2 flush
before every call, calls queued behind a sleep kernel. Before it is timed, each build's output is
poisoned with NaN, computed and checked against the float64 reference of the spec, as in the
comparison. The builds alternate `--rounds` times per case, so drift of the card shows as spread.
Usage (GPU machine):
    python3 bench/ab_libs.py --base old/libmonarch_cuda_c.so --new build/cuda/libmonarch_cuda_c.so \\
        --configs 4096x256,4096x197 --steps 1,2
Prints one line per case and round, then per case the mean of the medians and the change, and the
geometric mean of new / base over every case.
"""
import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_sdpa as cs  # noqa: E402  (the comparison's library binding, inputs, checks and timer)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="libmonarch_cuda_c.so before the change")
    ap.add_argument("--new", required=True, help="libmonarch_cuda_c.so after the change")
    ap.add_argument("--configs", default="4096x256", help="comma-separated E x N")
    ap.add_argument("--steps", default="1", help="comma-separated T")
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"])
    ap.add_argument("--level", type=int, default=cs.DEFAULT_LEVEL)
    ap.add_argument("--reps", type=int, default=30, help="timed calls per measurement (median)")
    ap.add_argument("--rounds", type=int, default=2, help="base/new alternations per case")
    args = ap.parse_args()

    libs = {"base": cs.MonarchLib(args.base), "new": cs.MonarchLib(args.new)}
    flush = torch.empty(cs.FLUSH_BYTES // 4, dtype=torch.float32, device=cs.DEVICE)
    print(f"# {torch.cuda.get_device_name()}, level {args.level}, {args.dtype}, H = {cs.HEADS}, d = {cs.HEAD_DIM}, "
          f"b = ceil(sqrt N); medians of {args.reps} calls (us), L2 flushed before each")
    ratios, summary = [], []
    for E, N in cs.parse_configs(args.configs):
        q, k, v = cs.make_inputs(E, N, args.dtype, seed=0)
        b, scale = cs.default_block(N), 1.0 / math.sqrt(cs.HEAD_DIM)
        for T in (int(t) for t in args.steps.split(",")):
            times = {"base": [], "new": []}
            for r in range(args.rounds):
                for name, lib in libs.items():
                    res = cs.run_monarch(lib, q, k, v, N, b, T, args.dtype, scale, args.level, args.reps, flush)
                    if res.median is None:
                        sys.exit(f"{name} {E}x{N} T={T}: {res.status}")
                    times[name].append(res.median)
                    print(f"{E}x{N} T={T} round {r + 1} {name}: {res.median:.1f} us (rel err {res.err:.1e})", flush=True)
            base, new = (sum(times[n]) / len(times[n]) for n in ("base", "new"))
            ratios.append(new / base)
            summary.append(f"{E}x{N} T={T}: base {', '.join(f'{t:.1f}' for t in times['base'])}; "
                           f"new {', '.join(f'{t:.1f}' for t in times['new'])}; change {100 * (new / base - 1):+.1f}%")
        del q, k, v
        torch.cuda.empty_cache()
    print("\n".join(summary))
    print(f"geometric mean of new/base: {math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f}")


if __name__ == "__main__":
    main()
