#!/usr/bin/env bash
# Where a fused level's cycles go: Nsight Compute's per-issue stall ratios, instruction and
# tensor-core (HMMA) instruction counts for the kernels of one call, level 3 against level 5, on the
# comparison's 1 x 16384 fp16 T = 1 problem (bench/NOTES.md, steps 6 and 9). Run on the device machine:
#   LIB=build-dev/prebuilt/bin/libmonarch_cuda_c.so bash bench/cuda/ncu_stalls.sh > $OUT/ncu-stalls.txt
# Levels 4 against 6 at 4096 x 256 (step 11):
#   CONFIG=4096x256 LEVELS="4 6" KERNELS="whole_head|in_place" LAUNCHES=1 bash bench/cuda/ncu_stalls.sh
set -u
LIB=${LIB:-build-dev/prebuilt/bin/libmonarch_cuda_c.so}
CONFIG=${CONFIG:-1x16384}
KERNELS=${KERNELS:-level3_kernel|one_launch}  # kernel-name regex
LAUNCHES=${LAUNCHES:-2}                        # kernels profiled per level (level 3: two per call)
M=gpu__time_duration.sum,smsp__inst_executed.sum,sm__inst_executed_pipe_tensor_op_hmma.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_bytes.sum
for r in no_instruction long_scoreboard short_scoreboard wait barrier branch_resolving membar sleeping \
  math_pipe_throttle mio_throttle lg_throttle dispatch_stall; do
  M=$M,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio
done
for L in ${LEVELS:-3 5}; do
  echo "== level $L, $CONFIG fp16 T=1 (kernels matching $KERNELS)"
  ncu --clock-control none --metrics "$M" --kernel-name regex:"$KERNELS" --launch-count "$LAUNCHES" \
    python3 bench/compare_sdpa.py --lib "$LIB" --out /tmp/ncu-run --configs "$CONFIG" --steps 1 --dtypes fp16 \
    --reps 2 --level "$L" 2>&1 | grep -E "_kernel|duration|inst_executed|stalled|bytes"
done
