#!/usr/bin/env bash
# Session 49, call E (.whl and .ab carried): eager training and inference of hydra_vit_base and ViT-B at 224 px
# on today's main (the 8 top kernels), to restate the eager ratios; one process.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s49_e
in_packed_tree main timeout 150 python3 benchmarks/bench_models.py --models hydra_vit_base vit_base_patch16_224 \
  --img-sizes 224 --compile off --quick --kernel-times 8 --out "$OUT/eager.jsonl" >"$OUT/eager.log" 2>&1
grep '"case"' "$OUT/eager.jsonl" | cut -c1-200
end_archived_call
