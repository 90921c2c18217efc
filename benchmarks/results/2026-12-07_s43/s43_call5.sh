#!/usr/bin/env bash
# Session 43, prepared and not run (no machine came). 1: the compiled 224 px training step of hydra_vit_base before
# the fused layer became a custom op (branch s43-base = 872bb89) and after, with its ops tagged flexible_layout (main
# from 0c0443a on), on one machine, with each step's 60 kernels with the most GPU time. 2: the eager 224 px step with
# selective recompute, main against exp-norm-cap-recompute (the gated norm's backward capped at 168 registers where
# it writes y again), two interleaved rounds. Here first:
# bash benchmarks/ab_branches.sh pack s43-base main exp-norm-cap-recompute; then on the device (carry .whl and .ab).
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s43_call5
for branch in main s43-base; do
  in_packed_tree "$branch" timeout 150 python3 benchmarks/bench_models.py --models hydra_vit_base --img-sizes 224 \
    --modes train --compile on --quick --kernel-times 60 --out "$OUT/compiled_224_$branch.jsonl" \
    >"$OUT/compiled_224_$branch.log" 2>&1
  grep '"case"' "$OUT/compiled_224_$branch.jsonl" | cut -c1-300
  archive
done
AB=models AB_ARGS="--kernel-times 60 --model-kwargs selective_recompute=True" ab_run recompute 240 main \
  exp-norm-cap-recompute main exp-norm-cap-recompute
end_archived_call
