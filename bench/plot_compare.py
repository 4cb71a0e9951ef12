#!/usr/bin/env python3
"""Draws the CSV of bench/compare_sdpa.py: runtime against N, log-log, one line per method.

One panel per (dtype, T). Lines are the single-sequence configurations (E = 1); batched ones
(E > 1, e.g. 4096x256 and 8x4096) are hollow markers at their N, labelled with E, since their
times are not on the same scale as the E = 1 lines. Above each Monarch point: its speed-up over
the faster SDPA backend (flash, cudnn).

Needs matplotlib, which the GPU machine lacks, so run it where the CSV was copied to:
    pip install matplotlib
    python3 bench/plot_compare.py bench/results/<date>-<gpu>-compare-sdpa.csv [--out plot.png]
"""

import argparse
import csv
import math
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # files only; no display on the machines this runs on
import matplotlib.pyplot as plt  # noqa: E402

METHODS = ("monarch", "flash", "cudnn", "naive")  # drawing order, and legend order
LABELS = {"monarch": "MonarchAttention (this project)", "flash": "SDPA FlashAttention-2",
          "cudnn": "SDPA cuDNN", "naive": "naive (materialised scores)"}
COLOURS = {"monarch": "tab:red", "flash": "tab:blue", "cudnn": "tab:green", "naive": "tab:gray"}
MARKERS = {"monarch": "o", "flash": "s", "cudnn": "^", "naive": "x"}
SDPA_METHODS = ("flash", "cudnn")
# The memory floor's shape constants, as fixed in compare_sdpa.py (H heads, d = d_v).
HEADS, HEAD_DIM = 12, 64
BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}
PANEL_SIZE = (5.5, 4.2)  # inches per panel
DPI = 130


def read(path):
    """{(dtype, T): {(E, N): {method: median µs}}} for the rows measured ("ok")."""
    data = defaultdict(lambda: defaultdict(dict))
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["status"] == "ok" and r["median_us"]:
                data[(r["dtype"], int(r["T"]))][(int(r["E"]), int(r["N"]))][r["method"]] = float(r["median_us"])
    return data


def speedup(times):
    sdpa = [times[m] for m in SDPA_METHODS if m in times]
    return min(sdpa) / times["monarch"] if sdpa and "monarch" in times else None


def draw_panel(ax, dtype, T, configs, peak_gbs):
    single = sorted((N, t) for (E, N), t in configs.items() if E == 1)
    batched = sorted(((E, N), t) for (E, N), t in configs.items() if E > 1)
    for m in METHODS:
        pts = [(N, t[m]) for N, t in single if m in t]
        if pts:
            ax.plot(*zip(*pts), marker=MARKERS[m], color=COLOURS[m], label=LABELS[m])
        for (E, N), t in batched:
            if m in t:
                ax.plot([N], [t[m]], marker=MARKERS[m], color=COLOURS[m], markerfacecolor="none",
                        markersize=9, linestyle="none")
    for N, t in single:
        s = speedup(t)
        if s:
            ax.annotate(f"{s:.1f}x", (N, t["monarch"]), textcoords="offset points", xytext=(0, -14),
                        ha="center", fontsize=8, color=COLOURS["monarch"])
    close = 1.5  # batched points closer than this ratio in N share the space above them
    batched_n = sorted(N for (_, N), _ in batched)
    for (E, N), t in batched:
        top = max(t.values())
        s = speedup(t)
        label = f"E={E}" + (f"\n{s:.1f}x" if s else "")
        # Of two neighbouring batched points (4096 x 197 and 4096 x 256) the shorter is labelled on its
        # left and the longer on its right, so that the labels do not overlap.
        side = -1 if any(N < n < close * N for n in batched_n) else 1
        ax.annotate(label, (N, top), textcoords="offset points", xytext=(side * 10, 6),
                    ha="right" if side < 0 else "left", fontsize=8)
    if peak_gbs and single:
        ns = [N for N, _ in single]
        floor = [N * HEADS * 4 * HEAD_DIM * BYTES.get(dtype, 2) / (peak_gbs * 1e9) * 1e6 for N in ns]
        ax.plot(ns, floor, linestyle="--", color="black", linewidth=1, label=f"memory floor ({peak_gbs:.0f} GB/s)")
    ax.set_xscale("log", base=2)
    ax.margins(x=0.16)  # room for the labels of the outermost points
    ax.set_yscale("log")
    ax.set_xlabel("sequence length N")
    ax.set_ylabel("median time (µs)")
    ax.set_title(f"{dtype}, T = {T}")
    ax.grid(True, which="both", alpha=0.3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", help="CSV written by bench/compare_sdpa.py")
    ap.add_argument("--out", help="PNG to write (default: the CSV's name with .png)")
    ap.add_argument("--title", help="figure title (default: the CSV's file name)")
    ap.add_argument("--peak-gbs", type=float, help="also draw the E = 1 memory floor at this bandwidth")
    args = ap.parse_args()

    data = read(args.csv)
    if not data:
        sys.exit(f"{args.csv}: no measured rows (status 'ok') to plot")
    panels = sorted(data, key=lambda k: (k[0] != "fp16", k[0], k[1]))  # fp16 first, then by T
    cols = min(len(panels), 2)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows), squeeze=False)
    for ax, key in zip(axes.flat, panels):
        draw_panel(ax, *key, data[key], args.peak_gbs)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], marker="o", color="black", markerfacecolor="none", linestyle="none"))
    labels.append("hollow: batched (E > 1), labelled with E")
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(args.title or os.path.basename(args.csv) + "  (H = 12, d = 64, b = ceil(sqrt N); "
                 "numbers: speed-up over the faster SDPA)", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    out = args.out or os.path.splitext(args.csv)[0] + ".png"
    fig.savefig(out, dpi=DPI)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
