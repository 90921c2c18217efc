#!/usr/bin/env bash
# Session 45, call 3 (after call 2, .ab as there). 1: the small model under CUDA graphs, where host time decides
# (session 5: hydra_vit_tiny 12,623 img/s, 0.29x deit_tiny, 128 px, batch 392, reduce-overhead): s45-base (a graph
# break a block on torch 2.11) against main (one graph), deit_tiny with main. 2: the compiled 224 px step of
# hydra_vit_base with selective recompute, main then exp-compiled-ln (the partitioner cannot recompute inside the
# LayerNorm custom op: the memory this costs).
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s45_call3
compiled() {  # BRANCH NAME MODELS [bench_models.py options] -> $OUT/NAME.jsonl
  local branch=$1 name=$2 models=$3
  shift 3
  in_packed_tree "$branch" timeout 200 python3 benchmarks/bench_models.py --models $models --modes train --quick \
    --out "$OUT/$name.jsonl" "$@" >"$OUT/$name.log" 2>&1
  grep '"case"' "$OUT/$name.jsonl" | cut -c1-300
  archive
}
tiny=(--img-sizes 128 --batch-sizes 392 --compile reduce-overhead)
compiled s45-base tiny_graphs_base hydra_vit_tiny "${tiny[@]}"
compiled main tiny_graphs_main "hydra_vit_tiny deit_tiny_patch16_224" "${tiny[@]}"
recompute=(--img-sizes 224 --compile on --kernel-times 12 --model-kwargs selective_recompute=True)
compiled main compiled_main_recompute hydra_vit_base "${recompute[@]}"
compiled exp-compiled-ln compiled_branch_recompute hydra_vit_base "${recompute[@]}"
end_archived_call
