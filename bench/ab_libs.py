#!/usr/bin/env python3
"""Two or more builds of libmonarch_cuda_c.so timed against each other in one process (an A/B of a
kernel change, or A/B/C of two steps), on the same tensors and with compare_sdpa.py's timing: CUDA-event medians, an L2 flush
before every call, calls queued behind a sleep kernel. Before it is timed, each build's output is
poisoned with NaN, computed and checked against the float64 reference of the spec, as in the
comparison. The builds alternate `--rounds` times per case, so drift of the card shows as spread.
Usage (GPU machine):
    python3 bench/ab_libs.py --base old/libmonarch_cuda_c.so --new build/cuda/libmonarch_cuda_c.so \\
        --configs 4096x256,4096x197 --steps 1,2
`--new` may be given more than once (labelled new1, new2, ...), each build compared with the base.
`--new-level` times the new builds at another level than the base's `--level` (with the same library
for both: one level against another, e.g. 7 against 8, in one process).
Prints one line per case and round, then per case the mean of the medians and each change, and the
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
    ap.add_argument("--new", required=True, action="append", help="libmonarch_cuda_c.so after the change (repeatable)")
    ap.add_argument("--configs", default="4096x256", help="comma-separated E x N")
    ap.add_argument("--steps", default="1", help="comma-separated T")
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"])
    ap.add_argument("--level", type=int, default=cs.DEFAULT_LEVEL, help="the base's CUDA level")
    ap.add_argument("--new-level", type=int, default=None, help="the new builds' CUDA level (default: --level)")
    ap.add_argument("--reps", type=int, default=30, help="timed calls per measurement (median)")
    ap.add_argument("--rounds", type=int, default=2, help="base/new alternations per case")
    args = ap.parse_args()

    news = ["new"] if len(args.new) == 1 else [f"new{i + 1}" for i in range(len(args.new))]
    libs = {"base": cs.MonarchLib(args.base), **{n: cs.MonarchLib(path) for n, path in zip(news, args.new)}}
    flush = torch.empty(cs.FLUSH_BYTES // 4, dtype=torch.float32, device=cs.DEVICE)
    levels = {name: args.level if name == "base" or args.new_level is None else args.new_level for name in libs}
    print(f"# {torch.cuda.get_device_name()}, level {' / '.join(str(levels[n]) for n in libs)}, {args.dtype}, H = {cs.HEADS}, d = {cs.HEAD_DIM}, "
          f"b = ceil(sqrt N); medians of {args.reps} calls (us), L2 flushed before each")
    ratios, summary = {n: [] for n in news}, []
    for E, N in cs.parse_configs(args.configs):
        q, k, v = cs.make_inputs(E, N, args.dtype, seed=0)
        b, scale = cs.default_block(N), 1.0 / math.sqrt(cs.HEAD_DIM)
        for T in (int(t) for t in args.steps.split(",")):
            times = {name: [] for name in libs}
            for r in range(args.rounds):
                for name, lib in libs.items():
                    res = cs.run_monarch(lib, q, k, v, N, b, T, args.dtype, scale, levels[name], args.reps, flush)
                    if res.median is None:
                        sys.exit(f"{name} {E}x{N} T={T}: {res.status}")
                    times[name].append(res.median)
                    print(f"{E}x{N} T={T} round {r + 1} {name}: {res.median:.1f} us (rel err {res.err:.1e})", flush=True)
            mean = {name: sum(ts) / len(ts) for name, ts in times.items()}
            line = f"{E}x{N} T={T}: " + "; ".join(f"{name} {', '.join(f'{t:.1f}' for t in ts)}" for name, ts in times.items())
            for n in news:
                ratios[n].append(mean[n] / mean["base"])
                line += f"; {n} change {100 * (mean[n] / mean['base'] - 1):+.1f}%"
            summary.append(line)
        del q, k, v
        torch.cuda.empty_cache()
    print("\n".join(summary))
    for n in news:
        print(f"geometric mean of {n}/base: {math.exp(sum(map(math.log, ratios[n])) / len(ratios[n])):.3f}")


if __name__ == "__main__":
    main()
