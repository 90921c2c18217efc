#!/usr/bin/env bash
# Session 49, call D (.whl and .ab carried): inference under CUDA graphs (torch.compile mode="reduce-overhead") of
# hydra_vit_base and ViT-B at 224, 512, 1,024 and 2,048 px, one process (call C found default-mode compiled
# inference bound by the host at 224 px).
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s49_d
in_packed_tree main timeout 300 python3 benchmarks/bench_models.py --models hydra_vit_base vit_base_patch16_224 \
  --modes infer --quick --compile reduce-overhead --out "$OUT/graphs_infer.jsonl" >"$OUT/graphs_infer.log" 2>&1
grep '"case"' "$OUT/graphs_infer.jsonl" | cut -c1-200
end_archived_call
