#!/usr/bin/env bash
# Session 45, call 3 (after call 2, .ab as there): the compiled 224 px step of hydra_vit_base with selective recompute,
# main then exp-compiled-ln (the partitioner cannot recompute inside the LayerNorm custom op: the memory this costs).
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s45_call3
for tree in main exp-compiled-ln; do
  in_packed_tree "$tree" timeout 150 python3 benchmarks/bench_models.py --models hydra_vit_base --modes train --quick \
    --img-sizes 224 --compile on --kernel-times 12 --model-kwargs selective_recompute=True \
    --out "$OUT/recompute_$tree.jsonl" >"$OUT/recompute_$tree.log" 2>&1
  grep '"case"' "$OUT/recompute_$tree.jsonl" | cut -c1-300
  archive
done
end_archived_call
