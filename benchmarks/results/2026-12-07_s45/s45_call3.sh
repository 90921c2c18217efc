#!/usr/bin/env bash
# Session 45, call 3 (after call 2, .ab as there): the compiled 224 px step of hydra_vit_base with selective recompute,
# main then exp-compiled-ln (the partitioner cannot recompute inside the LayerNorm custom op: the memory this costs).
set -uo pipefail
. benchmarks/run_concurrent.sh
. benchmarks/results/2026-12-07_s45/s45_steps.sh
start_device_call s45_call3
for tree in main exp-compiled-ln; do
  bench "$tree" "recompute_$tree" hydra_vit_base 150 --img-sizes 224 --compile on --kernel-times 12 \
    --model-kwargs selective_recompute=True
done
end_archived_call
