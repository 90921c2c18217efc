#!/usr/bin/env bash
# Session 49, call C (.whl and .ab carried; right after call B on the warm machine): compiled inference (default mode)
# of hydra_vit_base and ViT-B at 224, 512, 1,024 and 2,048 px, one process.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s49_c
in_packed_tree main timeout 320 python3 benchmarks/bench_models.py --models hydra_vit_base vit_base_patch16_224 \
  --modes infer --quick --compile on --out "$OUT/compiled_infer.jsonl" >"$OUT/compiled_infer.log" 2>&1
grep '"case"' "$OUT/compiled_infer.jsonl" | cut -c1-260
end_archived_call
