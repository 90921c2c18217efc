#!/usr/bin/env bash
# Session 43, prepared and not run (no machine came): the compiled 224 px training step of hydra_vit_base before the
# fused layer became a custom op (branch s43-base = 872bb89) and after, with its ops tagged flexible_layout (main from
# 0c0443a on), on one machine, with each step's 60 kernels with the most GPU time. Here first:
# bash benchmarks/ab_branches.sh pack s43-base main; then on the device (carry .whl and .ab) this script.
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
end_archived_call
