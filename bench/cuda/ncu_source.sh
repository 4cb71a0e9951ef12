#!/usr/bin/env bash
# Which instructions a fused level's warps wait on: Nsight Compute's per-instruction (SASS) warp-state
# samples for one kernel of one call, written as CSV, and the 40 hottest instructions printed with
# their dominant stall reasons. Default: level 6's kernel at 4096 x 256, fp16, T = 1 (bench/NOTES.md,
# step 12). Run on the device machine:
#   LIB=build-dev/prebuilt/bin/libmonarch_cuda_c.so OUTDIR=$OUT bash bench/cuda/ncu_source.sh
set -u
LIB=${LIB:-build-dev/prebuilt/bin/libmonarch_cuda_c.so}
CONFIG=${CONFIG:-4096x256}
LEVEL=${LEVEL:-6}
KERNEL=${KERNEL:-in_place}  # kernel-name regex
SKIP=${SKIP:-0}             # matching launches to skip first (level 7's second kernel of a call: SKIP=1)
OUTDIR=${OUTDIR:-/tmp}
REP=/tmp/ncu-source-$LEVEL-$SKIP
rm -f "$REP.ncu-rep"
ncu --clock-control none --section SourceCounters --section WarpStateStats --kernel-name regex:"$KERNEL" \
  --launch-skip "$SKIP" --launch-count 1 -o "$REP" python3 bench/compare_sdpa.py --lib "$LIB" --out /tmp/ncu-run --configs "$CONFIG" \
  --steps 1 --dtypes fp16 --reps 2 --level "$LEVEL" >/dev/null 2>&1 || { echo "ncu failed"; exit 1; }
ncu -i "$REP.ncu-rep" --page source --csv --print-source sass >"$OUTDIR/ncu-source-level$LEVEL-$CONFIG-$SKIP.csv" 2>&1
ncu -i "$REP.ncu-rep" --section WarpStateStats --section SourceCounters 2>&1 | grep -vE "^\s*$" | head -80
python3 - "$OUTDIR/ncu-source-level$LEVEL-$CONFIG-$SKIP.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
head = next(i for i, r in enumerate(rows) if any("Source" == c for c in r))
cols, body = rows[head], [r for r in rows[head + 1:] if len(r) == len(rows[head])]
def num(s):
    try: return float(s.replace(",", ""))
    except ValueError: return 0.0
samp = next(c for c in cols if c.startswith("Warp Stall Sampling (All"))
stalls = [c for c in cols if c.startswith("stall_") or "Stall" in c and c != samp]
total = sum(num(r[cols.index(samp)]) for r in body) or 1
print(f"{len(body)} SASS instructions, {total:.0f} warp samples; the hottest 40:")
for r in sorted(body, key=lambda r: -num(r[cols.index(samp)]))[:40]:
    s = num(r[cols.index(samp)])
    top = sorted(((num(r[cols.index(c)]), c) for c in stalls), reverse=True)[:2]
    print(f"{100 * s / total:5.2f}%  {r[cols.index('Address')] if 'Address' in cols else ''}  "
          f"{r[cols.index('Source')][:60]:60s}  " + ", ".join(f"{c} {v:.0f}" for v, c in top if v))
# Bank conflicts: shared-memory instructions by excess wavefronts (an ldmatrix of 8 conflict-free rows
# takes 4 per warp; step 12 found 32).
ex, wf, ideal = "L1 Wavefronts Shared Excessive", "L1 Wavefronts Shared", "L1 Wavefronts Shared Ideal"
if ex in cols:
    col = lambda r, c: num(r[cols.index(c)])
    excess = sum(col(r, ex) for r in body) or 1
    print(f"\nshared wavefronts {sum(col(r, wf) for r in body):.0f}, excess {excess:.0f}; the worst 12:")
    for r in sorted(body, key=lambda r: -col(r, ex))[:12]:
        n = col(r, "Instructions Executed") or 1
        print(f"{100 * col(r, ex) / excess:5.1f}%  {r[cols.index('Source')][:55]:55s}  "
              f"{col(r, wf) / n:.1f} wavefronts per instruction (ideal {col(r, ideal) / n:.1f})")
PY
